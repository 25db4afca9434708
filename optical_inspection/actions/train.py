"""train: fit the network with Lightning; TAO-named checkpoints, status KPIs per epoch, a calibrated threshold."""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import torch

from ..data.datamodule import OIDataModule
from ..data.defect_types import defect_types
from ..models.denormals import flush_denormals
from ..errors import OIError, SpecError
from ..status import StatusLogger

if TYPE_CHECKING:
    from ..config.experiment import ExperimentConfig
    from ..config.train import TrainConfig

log = logging.getLogger(__name__)
RESUMABLE_SUFFIXES = (".pth", ".tlt", ".ckpt")


def run(config: ExperimentConfig, results_dir: Path, status: StatusLogger) -> dict[str, Any]:
    from ..models.callbacks import LATEST_NAME, CheckpointCallback, PlainCheckpointIO, StatusCallback
    from ..models.factory import dataset_geometry
    from ..models.lightning_model import OIModule

    train = config.train
    if config.wandb.enable:
        log.warning("wandb.enable is true: the wandb.* keys are accepted for TAO compatibility and ignored (no W&B "
                    "logging); metrics are in status.json, and in TensorBoard with train.tensorboard.enabled=true")
    if train.seed >= 0:
        pl.seed_everything(train.seed, workers=True, verbose=False)
    torch.backends.cudnn.benchmark = train.cudnn.benchmark
    torch.backends.cudnn.deterministic = train.cudnn.deterministic

    datamodule = TrainingData(config)
    module = OIModule(config, dataset_geometry(config.dataset), defect_types(datamodule.table("train").raw_labels))
    datamodule.types = tuple(module.types)
    if module.types:
        log.info("Defect-type head: %d kinds from the training labels (%s)", len(module.types), ", ".join(module.types))
    resume = resume_path(train, results_dir, LATEST_NAME)
    if train.pretrained_model_path and resume is None:
        initialise(module, train.pretrained_model_path, config)
    if module.settings.get("box_typer") and resume is None:  # a resumed run loads the trained one
        train_box_typer(module, datamodule, train, status)

    checkpoints = CheckpointCallback(results_dir, train.checkpoint_interval, train.checkpoint_interval_unit)
    trainer = pl.Trainer(
        **device_settings(train),
        max_epochs=train.num_epochs,
        max_time=timedelta_minutes(train.max_time_minutes),
        check_val_every_n_epoch=train.validation_interval,
        default_root_dir=str(results_dir),
        logger=_tensorboard(train, results_dir),
        enable_checkpointing=False,
        callbacks=[checkpoints, StatusCallback(status)],
        gradient_clip_val=train.clip_grad_norm or None,
        enable_progress_bar=train.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=10,
        plugins=[PlainCheckpointIO()],
    )
    if resume is not None:
        log.info("Resuming training from %s", resume)
    with flush_denormals():
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume) if resume else None)

    final = checkpoints.last_saved
    if final is not None and module.val_epoch != module.epoch_in_progress:
        # The last epoch was not validated (validation_interval): validate now so the stored threshold is fresh.
        trainer.validate(module, datamodule=datamodule, verbose=False)
        final = checkpoints.rewrite(trainer, module, final)
    if final is None:  # resumed from a run that had already finished: nothing left to train
        final = resume
    if final is None:
        raise OIError(f"training wrote no checkpoint in {results_dir}")
    kpi = {k: v for k, v in module.epoch_summary().items() if isinstance(v, float) and math.isfinite(v)}
    if module.calibrated_threshold is not None:
        status.write("RUNNING", f"Threshold calibrated on validation PASS pairs at false alarm "
                                f"{train.target_false_alarm}: {module.calibrated_threshold:.6g}")
    return {"artifacts": {"checkpoint": str(results_dir / LATEST_NAME), "final_checkpoint": str(final)},
            "kpi": kpi}


def initialise(module: Any, path: str, config: ExperimentConfig) -> None:
    """Load weights only from ``path``; ``pretrained``: the bundled weights when they fit the model (else a
    warning and random initialisation, so the template default works for every model type)."""
    from ..models import bundled
    from ..models.checkpoint import (BOX_TYPER_KEYS, DENSE_HEAD_KEYS, TYPE_HEAD_KEYS, adapt_normalisation,
                                     load_state, model_state, read_checkpoint)
    from ..models.factory import dataset_geometry

    if bundled.is_keyword(path) and not bundled.fits(module.settings):
        log.warning("train.pretrained_model_path is 'pretrained' but the bundled weights are for %s; model %s "
                    "starts from random weights", bundled.MODEL, {k: module.settings[k] for k in bundled.MODEL})
        return
    data = read_checkpoint(path)
    state = model_state(data)
    if bundled.is_keyword(path):
        state = adapt_normalisation(state, data["oi_meta"]["dataset"], dataset_geometry(config.dataset))
    stored = (data.get("oi_meta") or {}).get("model", {})
    same_kinds = list(stored.get("defect_types") or []) == module.types
    # the type head carries over only for the same kinds, the dense head only with them and when both have one;
    # otherwise they start from random weights
    dense_fits = same_kinds and bool(stored.get("dense_map")) == bool(module.settings.get("dense_map"))
    load_state(module.model, state, path, optional=(() if same_kinds else TYPE_HEAD_KEYS)
               + (() if dense_fits else DENSE_HEAD_KEYS) + BOX_TYPER_KEYS)  # the box typer is trained anew
    log.info("Initialised weights from %s", bundled.resolve(path) if bundled.is_keyword(path) else path)


def train_box_typer(module: Any, datamodule: OIDataModule, train: TrainConfig, status: StatusLogger) -> None:
    """Fit the network's box typer on the training boxes of known kind (then frozen), or drop it when none has
    one (e.g. a boxes file without a type column whose rows hold several boxes)."""
    from ..models import box_typer

    test, golden, kinds = box_typer.training_patches(datamodule.dataset("train"), datamodule.pre)
    if not len(kinds):
        log.warning("model.box_typer: no training box has a known kind (no type column in %s, and rows with "
                    "several boxes); inspect names kinds with the type head instead",
                    datamodule.dataset_cfg.train_dataset.boxes_path)
        module.model.box_typer = None
        del module.settings["box_typer"]
        return
    status.write("RUNNING", f"Training the box typer on {len(kinds)} boxes ({train.box_typer_epochs} passes, "
                 f"at most {train.box_typer_minutes:g} min)")
    with flush_denormals():
        fitted = box_typer.fit(module.model.box_typer, test, golden, kinds, datamodule.pre.normalize,
                               train.box_typer_minutes, train.box_typer_epochs, seed=int(train.seed))
    status.write("RUNNING", f"Box typer trained: {int(fitted['steps'])} steps, last loss {fitted['loss']:.3f}")


class TrainingData(OIDataModule):
    """OIDataModule whose training loader draws its worker base seed from its own generator. Lightning creates the
    epoch's iterator before ``on_train_epoch_start`` in a resumed run and after it otherwise; with the global RNG
    untouched by that, the per-epoch reseed makes a resumed run replay an uninterrupted one exactly."""

    def train_dataloader(self) -> Any:
        loader = super().train_dataloader()
        loader.generator = torch.Generator().manual_seed(max(int(self.config.train.seed), 0))
        return loader


def resume_path(train: TrainConfig, results_dir: Path, latest_name: str) -> Path | None:
    """Explicit ``resume_training_checkpoint_path``, else ``<results>/oi_model_latest.pth`` when it exists."""
    if train.resume_training_checkpoint_path:
        path = Path(train.resume_training_checkpoint_path)
        if path.suffix.lower() not in RESUMABLE_SUFFIXES:
            raise OIError(f"train.resume_training_checkpoint_path '{path}' must end in {', '.join(RESUMABLE_SUFFIXES)}")
        if not path.is_file():
            raise OIError(f"train.resume_training_checkpoint_path '{path}' does not exist")
        return path
    latest = results_dir / latest_name
    return latest if latest.is_file() else None


def device_settings(train: TrainConfig) -> dict[str, Any]:
    """Lightning accelerator/devices/strategy from num_gpus, gpu_ids, num_nodes (CPU: num_gpus processes)."""
    accelerator = train.accelerator
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    if accelerator == "gpu" and not torch.cuda.is_available():
        raise OIError("train.accelerator is 'gpu' but no CUDA GPU is visible; use accelerator: cpu or auto")
    if accelerator == "gpu":
        ids = list(train.gpu_ids)
        devices: Any = ids[: train.num_gpus] if len(ids) >= train.num_gpus else train.num_gpus
    else:
        devices = train.num_gpus
    check_launcher_world(train)
    distributed = train.num_gpus * train.num_nodes > 1
    if distributed:
        from pytorch_lightning.strategies import DDPStrategy

        strategy: Any = DDPStrategy(process_group_backend="gloo" if accelerator == "cpu" else None)
    else:
        strategy = "auto"
    return {"accelerator": accelerator, "devices": devices, "num_nodes": train.num_nodes, "strategy": strategy}


def check_launcher_world(train: TrainConfig) -> None:
    """Under torchrun (torch elastic) the launcher fixes the world: refuse a spec whose train.num_nodes x
    train.num_gpus disagrees, before any process group is set up (Lightning's own error names no spec key)."""
    env = os.environ
    if train.num_nodes > 1 and not any(v in env for v in ("TORCHELASTIC_RUN_ID", "SLURM_NTASKS", "NODE_RANK")):
        raise SpecError(f"train.num_nodes={train.num_nodes} but no launcher started this process, so it would wait "
                        "for the other nodes for ever; start it on every node with torchrun (--nnodes "
                        f"{train.num_nodes} --node_rank N --master_addr HOST) or SLURM srun, or set train.num_nodes=1")
    if "TORCHELASTIC_RUN_ID" not in env or "WORLD_SIZE" not in env or "LOCAL_WORLD_SIZE" not in env:
        return
    world, per_node = int(env["WORLD_SIZE"]), int(env["LOCAL_WORLD_SIZE"])
    nodes = max(1, world // max(1, per_node))
    if (train.num_nodes, train.num_gpus) != (nodes, per_node):
        raise SpecError(f"train.num_nodes={train.num_nodes} x train.num_gpus={train.num_gpus} does not match the "
                        f"launcher: torchrun started {world} process(es), {nodes} node(s) x {per_node} per node "
                        f"(--nnodes {nodes} --nproc_per_node {per_node}); set train.num_nodes={nodes} and "
                        f"train.num_gpus={per_node}, or launch with --nnodes {train.num_nodes} --nproc_per_node "
                        f"{train.num_gpus}")


def timedelta_minutes(minutes: float | None) -> Any:
    from datetime import timedelta

    return timedelta(minutes=minutes) if minutes else None


def _tensorboard(train: TrainConfig, results_dir: Path) -> Any:
    if not train.tensorboard.enabled:
        return False
    from pytorch_lightning.loggers import TensorBoardLogger

    return TensorBoardLogger(save_dir=str(results_dir), name="lightning_logs", version=1)

