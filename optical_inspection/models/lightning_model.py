"""The LightningModule: one network, its loss, epoch metrics (gathered over DDP ranks) and checkpoint metadata."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence, cast

import numpy as np
import pytorch_lightning as pl
import torch

from ..errors import OIError
from .checkpoint import META_KEY
from .factory import build_network, model_settings
from .threshold import natural_threshold
from .compact import Compact
from .losses import DENSE_LOSS_WEIGHT, TYPE_LOSS_WEIGHT, dense_loss, pair_losses, type_loss
from .metrics import (aoi_from_counts, aoi_metrics, auroc, average_precision, recall_at_false_alarm,
                      threshold_at_false_alarm)
from .schedule import budget_cosine

if TYPE_CHECKING:
    from ..config.experiment import ExperimentConfig

FORMAT_VERSION = 1


class OIModule(pl.LightningModule):
    """Trains ``self.model`` (so state-dict keys read ``model.<layer>``, as in TAO's checkpoints)."""

    def __init__(self, config: ExperimentConfig, geometry: dict[str, Any], defect_types: Sequence[str] = ()) -> None:
        super().__init__()
        self.config = config
        self.settings = model_settings(config.model)
        self.types = list(defect_types) if self.settings["model_type"] == "Compact" and config.model.type_head else []
        if self.types:
            self.settings["defect_types"] = self.types
        if self.types and self.settings.get("dense_map") and config.model.box_typer \
                and config.dataset.train_dataset.boxes_path and len(geometry.get("lights") or ()) <= 1:
            self.settings["box_typer"] = True  # trained by the train action before fit (box_typer.py)
        self.geometry = geometry
        self.model = build_network(self.settings, geometry["strip_shape"])
        self.model_type = self.settings["model_type"]
        self.margin = self.settings["margin"]
        fixed = config.model.threshold
        self.eval_threshold = float(fixed) if fixed is not None else natural_threshold(self.settings)
        self.target_false_alarm = float(config.train.target_false_alarm)
        self.seed = int(config.train.seed)
        self.calibrated_threshold: float | None = None
        self.val_metrics: dict[str, float] = {}
        self.val_epoch: int | None = None  # epoch of the latest validation
        self.epoch_in_progress = 0  # the epoch being trained, or the last one once fit returns
        self._summary: tuple[int, dict[str, float]] | None = None
        # this epoch's training [loss sum, tp, fp, fn, tn], added to in place: a list of per-step score tensors
        # kept alive between steps fragmented the heap (RSS grew ~1.5 MiB a step, 1.4 GiB on DeepPCB)
        self._train = torch.zeros(5, dtype=torch.float64)
        self._sample: tuple[torch.Tensor, torch.Tensor] | None = None  # one training pair, for TensorBoard
        self._val: list[tuple[torch.Tensor, ...]] = []

    # -- optimisation -----------------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        optim = self.config.train.optim
        params = [p for p in self.model.parameters() if p.requires_grad]  # not the box typer, trained before
        optimizer: torch.optim.Optimizer
        if optim.type == "Adam":
            optimizer = torch.optim.Adam(params, lr=optim.lr, weight_decay=optim.weight_decay)
        elif optim.type == "AdamW":
            optimizer = torch.optim.AdamW(params, lr=optim.lr, weight_decay=optim.weight_decay)
        elif optim.type == "SGD":
            optimizer = torch.optim.SGD(params, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay)
        else:
            raise OIError(f"train.optim.type '{optim.type}' is unknown; use Adam, AdamW or SGD")
        if optim.lr_scheduler == "none":
            return optimizer
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        minutes = self.config.train.max_time_minutes
        scheduler = budget_cosine(optimizer, total, 60.0 * minutes if minutes else None)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_train_epoch_start(self) -> None:
        """Reseed from (seed, epoch): an epoch's sampling and augmentation depend on nothing else, so a run
        resumed from any epoch-end checkpoint replays exactly what an uninterrupted run does."""
        if self.seed >= 0:
            pl.seed_everything((self.seed * 1_000_003 + self.current_epoch) % 2**32, workers=True, verbose=False)
        self.epoch_in_progress = self.current_epoch
        self._train = torch.zeros(5, dtype=torch.float64, device=self.device)
        self._summary = None

    def _forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(scores [B], defect-kind logits [B, K] or None without a type head)."""
        if self.types:
            return cast(Compact, self.model).score_and_types(batch["test"], batch["golden"])
        return self.model.score(batch["test"], batch["golden"]), None

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        dense = None
        if "mask" in batch:  # a dense-map network (the datamodule draws masks for it)
            model = cast(Compact, self.model)
            mixed = model.mixed(batch["test"], batch["golden"])
            score, dense = model.score_from_mixed(mixed), model.dense_logits(mixed)
            type_logits = model.types_from_mixed(mixed) if self.types else None
        else:
            score, type_logits = self._forward(batch)
        losses = pair_losses(self.model_type, score, batch["label"], self.margin)
        loss = losses.mean()
        if type_logits is not None:
            loss = loss + TYPE_LOSS_WEIGHT * type_loss(type_logits, batch["kind"])
        if dense is not None:
            loss = loss + DENSE_LOSS_WEIGHT * dense_loss(dense, batch["mask"], batch["mask_known"])
        with torch.no_grad():
            pred, pos = score > self.eval_threshold, batch["label"] == 1
            self._train += torch.stack([losses.sum(), (pred & pos).sum(), (pred & ~pos).sum(), (~pred & pos).sum(),
                                        (~pred & ~pos).sum()]).to(self._train.dtype)
        if self.config.train.tensorboard.enabled:
            self._sample = (batch["test"][0].detach().clone(), batch["golden"][0].detach().clone())
        self.log("train_loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=score.numel())
        return loss

    # -- validation ---------------------------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._val.clear()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        score, type_logits = self._forward(batch)
        losses = pair_losses(self.model_type, score, batch["label"], self.margin)
        # the predicted kind is right (1), wrong (0) or not applicable (-1: no kind known for the row)
        right = (torch.full_like(batch["kind"], -1) if type_logits is None else
                 torch.where(batch["kind"] >= 0, (type_logits.argmax(1) == batch["kind"]).long(), -1))
        self._val.append((score, batch["label"], losses, batch["index"], right))

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self._val.clear()
            return
        score, label, loss, index, right = (self._gather(torch.cat(parts)) for parts in zip(*self._val))
        self._val.clear()
        # DDP pads the last rank with repeated rows: keep each CSV row once.
        _, first = np.unique(index.numpy(), return_index=True)
        s, y, lo, ok = score.numpy()[first], label.numpy()[first], loss.numpy()[first], right.numpy()[first]
        if not np.isfinite(s).all():
            self.check_finite()
            bad = int((~np.isfinite(s)).sum())
            raise OIError(f"the network's scores on the validation split are not finite ({bad} of {s.size}); "
                          f"the weights are finite, so check the validation images and "
                          "dataset.augmentation_config.rgb_input_std")
        self.val_metrics = epoch_metrics("val", s, y, lo, self.eval_threshold)
        if (ok >= 0).any():
            self.val_metrics["val_type_acc"] = 100.0 * float((ok[ok >= 0] == 1).mean())
        passes = s[y == 0]
        if passes.size:
            self.calibrated_threshold = threshold_at_false_alarm(passes, self.target_false_alarm)
        self.val_epoch = self.epoch_in_progress
        self._summary = None
        self.log_dict({k: v for k, v in self.val_metrics.items() if k.startswith("val_")}, prog_bar=False)

    # -- epoch summary (used by the status and checkpoint callbacks) --------------------------------------------
    def epoch_summary(self) -> dict[str, float]:
        """train_loss/acc/fpr of this epoch (all ranks) plus the latest validation metrics. Collective under DDP:
        every rank calls it, once per epoch; later calls return the cached values."""
        if self._summary is not None and self._summary[0] == self.epoch_in_progress:
            return self._summary[1]
        sums = self._train if self.trainer.world_size == 1 else self.trainer.strategy.reduce(self._train.clone(),
                                                                                             reduce_op="sum")
        loss_sum, *counts = sums.cpu().tolist()
        pairs = sum(counts)
        train: dict[str, float] = {}
        if pairs:
            aoi = aoi_from_counts(*(int(c) for c in counts))
            train = {"train_loss": loss_sum / pairs, "train_acc": aoi["total_accuracy"],
                     "train_fpr": aoi["false_alarm"]}
        self.check_finite(train.get("train_loss"))
        summary: dict[str, float] = {**train, **self.val_metrics}
        self._summary = (self.epoch_in_progress, summary)
        return summary

    def check_finite(self, train_loss: float | None = None) -> None:
        """Refuse to go on (and to save a checkpoint) once the loss or a weight is NaN/infinite: training diverged.
        Every DDP rank sees the same gathered loss and the same weights, so all of them raise together."""
        where = f"epoch {self.epoch_in_progress + 1}, step {self.global_step}"
        if train_loss is not None and not math.isfinite(train_loss):
            raise OIError(f"training diverged at {where}: the training loss is {train_loss}; lower train.optim.lr "
                          f"(now {self.config.train.optim.lr}), or set train.clip_grad_norm")
        bad = [name for name, param in self.model.named_parameters() if not bool(torch.isfinite(param).all())]
        if bad:
            raise OIError(f"training diverged at {where}: {len(bad)} weight tensor(s) hold NaN/inf (e.g. {bad[0]}); "
                          f"lower train.optim.lr (now {self.config.train.optim.lr}), or set train.clip_grad_norm")

    def on_train_epoch_end(self) -> None:
        summary = self.epoch_summary()
        self.log_dict({k: v for k, v in summary.items() if k.startswith("train_")})
        every = self.config.train.tensorboard.infrequent_logging_frequency
        if (self.current_epoch + 1) % every == 0:
            self._log_images_and_histograms()

    def _log_images_and_histograms(self) -> None:
        """TensorBoard: one training pair (de-normalised, test above golden) and weight histograms (tensors of
        up to 1M values; TAO's 268M-value histograms cost more than the epoch)."""
        writer = getattr(self.logger, "experiment", None)
        if writer is None or not hasattr(writer, "add_image") or self._sample is None:
            return
        mean = torch.tensor(self.geometry["rgb_input_mean"]).view(3, 1, 1)
        std = torch.tensor(self.geometry["rgb_input_std"]).view(3, 1, 1)
        test, golden = (x.cpu() * std + mean for x in self._sample)
        writer.add_image("image/compare_sample", test.clamp(0, 1), self.current_epoch)
        writer.add_image("image/golden_sample", golden.clamp(0, 1), self.current_epoch)
        for name, param in self.model.named_parameters():
            if param.numel() <= 1_000_000:
                writer.add_histogram(f"weights/{name}", param.detach().cpu(), self.current_epoch)

    def _gather(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenate a 1-D tensor over DDP ranks (ranks may hold different lengths); CPU result."""
        x = x.detach()
        if self.trainer.world_size == 1:
            return x.cpu()
        size = torch.tensor([x.numel()], device=x.device)
        sizes = torch.as_tensor(self.all_gather(size)).view(-1).tolist()
        padded = torch.zeros(max(sizes), dtype=x.dtype, device=x.device)
        padded[: x.numel()] = x
        stacked = torch.as_tensor(self.all_gather(padded))
        return torch.cat([stacked[r, :n] for r, n in enumerate(sizes)]).cpu()

    # -- checkpoint metadata -------------------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        """Plain metadata stored in every checkpoint."""
        return {
            "format_version": FORMAT_VERSION,
            "model": dict(self.settings),
            "dataset": dict(self.geometry),
            "epoch": int(self.epoch_in_progress),
            "step": int(self.global_step),
            "val_epoch": self.val_epoch,
            "metrics": {k: _finite(v) for k, v in self.epoch_summary().items()},
            "threshold": _finite(self.calibrated_threshold),
            "threshold_source": (f"validation PASS scores at false alarm {self.target_false_alarm}"
                                 if self.calibrated_threshold is not None else None),
            "target_false_alarm": self.target_false_alarm,
            "eval_threshold": self.eval_threshold,
            "seed": self.seed,
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[META_KEY] = self.meta()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        meta = checkpoint.get(META_KEY) or {}
        stored = meta.get("model", {})
        different = {k: (stored.get(k), v) for k, v in self.settings.items()
                     if k in stored and stored[k] != v and k != "margin"}
        if different:
            raise OIError("cannot resume: the checkpoint's model differs from the spec ("
                          + ", ".join(f"model.{k}: checkpoint {a!r} vs spec {b!r}" for k, (a, b) in different.items())
                          + "); use train.pretrained_model_path for weights only, or a fresh results_dir")
        self.calibrated_threshold = meta.get("threshold")
        self.val_epoch = meta.get("val_epoch")
        self.val_metrics = {k: v for k, v in meta.get("metrics", {}).items() if k.startswith("val_")}


def epoch_metrics(prefix: str, score: np.ndarray, label: np.ndarray, loss: np.ndarray, threshold: float
                  ) -> dict[str, float]:
    """TAO's KPI names for one split (loss, acc = total accuracy %, fpr = FP/#PASS %, fnr = FN/#FAIL %) plus
    threshold-free metrics."""
    aoi = aoi_metrics(score, label, threshold)
    out = {
        f"{prefix}_loss": float(loss.mean()) if loss.size else math.nan,
        f"{prefix}_acc": aoi["total_accuracy"],
        f"{prefix}_fpr": aoi["false_alarm"],
        f"{prefix}_fnr": aoi["false_negative"],
        f"{prefix}_defect_acc": aoi["defect_accuracy"],
    }
    out[f"{prefix}_auroc"] = auroc(score, label)
    out[f"{prefix}_ap"] = average_precision(score, label)
    out[f"{prefix}_recall_at_fa_1pct"] = recall_at_false_alarm(score, label, 0.01)
    out[f"{prefix}_recall_at_fa_0_1pct"] = recall_at_false_alarm(score, label, 0.001)
    return out


def _finite(value: float | None) -> float | None:
    """JSON- and checkpoint-friendly: NaN/inf become None."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)
