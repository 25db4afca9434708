"""Training callbacks: TAO-named checkpoints (+ ``oi_model_latest.pth``; each with its ``.json`` sidecar),
status.json KPIs per epoch, and the checkpoint IO plugin that keeps every checkpoint plain, atomic and
``weights_only``-loadable."""
from __future__ import annotations

import math
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytorch_lightning as pl
from pytorch_lightning.plugins import TorchCheckpointIO

from ..io_utils import atomic_path, write_text_atomic
from ..results_folder import LATEST_NAME
from ..sidecar import sidecar_path
from ..status import StatusLogger
from .checkpoint import read_checkpoint, write_checkpoint

if TYPE_CHECKING:
    from .lightning_model import OIModule


def checkpoint_name(epoch: int, step: int) -> str:
    """TAO's name: ``model_epoch_000_step_00006.pth`` (0-based epoch, global optimiser step)."""
    return f"model_epoch_{epoch:03d}_step_{step:05d}.pth"


class PlainCheckpointIO(TorchCheckpointIO):
    """Lightning writes and reads checkpoints through this: plain content checked, atomic rename, weights_only."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        write_checkpoint(path, checkpoint)

    def load_checkpoint(self, path: str | Path, map_location: Any = None, weights_only: bool | None = None
                        ) -> dict[str, Any]:
        return read_checkpoint(path)


def publish_latest(checkpoint: Path, results_dir: Path) -> Path:
    """Point ``oi_model_latest.pth`` at ``checkpoint`` atomically: a hard link (same file, no copy) renamed into
    place, or a copy where links are not possible. Never a symlink, so it survives the original's deletion. Its
    sidecar is copied first, as :func:`write_checkpoint` orders them."""
    latest = results_dir / LATEST_NAME
    write_text_atomic(sidecar_path(latest), sidecar_path(checkpoint).read_text(encoding="utf-8"))
    with atomic_path(latest) as tmp:
        tmp.unlink()
        try:
            os.link(checkpoint, tmp)
        except OSError:
            tmp.write_bytes(checkpoint.read_bytes())
    return latest


class CheckpointCallback(pl.Callback):
    """Saves every ``interval`` epochs (at train-epoch end) or optimiser steps, and at the last epoch."""

    def __init__(self, results_dir: Path, interval: int, unit: str) -> None:
        self.results_dir = Path(results_dir)
        self.interval = interval
        self.unit = unit
        self.last_saved: Path | None = None
        self._last_step = -1

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if self.unit == "step" and trainer.global_step % self.interval == 0:
            self.save(trainer, pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        last = trainer.current_epoch + 1 >= (trainer.max_epochs or 0) or trainer.should_stop
        periodic = self.unit == "epoch" and (trainer.current_epoch + 1) % self.interval == 0
        if last or periodic:
            self.save(trainer, pl_module)

    def save(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> Path:
        """Write the checkpoint of the current state (every rank calls this; rank 0 writes)."""
        path = self.results_dir / checkpoint_name(trainer.current_epoch, trainer.global_step)
        if trainer.global_step == self._last_step and self.last_saved == path:
            return path
        return self.rewrite(trainer, cast("OIModule", pl_module), path)

    def rewrite(self, trainer: pl.Trainer, pl_module: OIModule, path: Path) -> Path:
        """Write the current state to ``path`` (also after fit, e.g. once a final validation ran) and publish it
        as the latest checkpoint."""
        pl_module.epoch_summary()  # collective under DDP: every rank computes the metrics stored in the meta
        pl_module.check_finite()  # never save diverged weights (also mid-epoch, with checkpoint_interval_unit step)
        trainer.save_checkpoint(path, weights_only=False)
        if trainer.is_global_zero:
            publish_latest(path, self.results_dir)
        trainer.strategy.barrier("oi_checkpoint")
        self.last_saved, self._last_step = path, trainer.global_step
        return path


class StatusCallback(pl.Callback):
    """One status.json RUNNING record per epoch with TAO's fields and KPI names (plus val_auroc and friends)."""

    def __init__(self, status: StatusLogger) -> None:
        self.status = status
        self._epoch_start = time.monotonic()
        self._epoch_times: list[float] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch_start = time.monotonic()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        kpi = cast("OIModule", pl_module).epoch_summary()
        if not trainer.is_global_zero:
            return
        elapsed = time.monotonic() - self._epoch_start
        self._epoch_times.append(elapsed)
        max_epochs = trainer.max_epochs or 0
        batches = int(trainer.num_training_batches) if trainer.num_training_batches != float("inf") else 0
        per_epoch = sum(self._epoch_times) / len(self._epoch_times)
        self.status.write(
            "RUNNING", "Training loop in progress",
            kpi={k: v for k, v in kpi.items() if v is not None and math.isfinite(v)},
            epoch=trainer.current_epoch, step=trainer.global_step, max_epoch=max_epochs - 1,
            max_step=max_epochs * batches,
            time_per_epoch=str(timedelta(seconds=elapsed)),
            time_per_step=str(timedelta(seconds=elapsed / max(batches, 1))),
            eta=_duration(per_epoch * max(max_epochs - trainer.current_epoch - 1, 0)),
        )


def _duration(seconds: float) -> str:
    """``H:MM:SS`` as TAO writes it; a duration beyond ``timedelta``'s range (huge num_epochs) is written in days."""
    try:
        return str(timedelta(seconds=seconds))
    except OverflowError:
        return f"{seconds / 86400:.3g} days"
