"""Choosing a checkpoint of a train job: ``best``, ``latest`` or ``epoch=N`` — never by file name.

Metadata is read without torch, from the JSON sidecar the trainer writes beside every checkpoint
(``<name>.pth.json``, :mod:`optical_inspection.sidecar`): each file's epoch, step and metrics. A checkpoint without
one (trained by TAO or by a version before sidecars) is listed as "metadata unknown" and never chosen here: its
epoch cannot be known without unpickling it, which the runner does not do. Pass such a file by path instead
(``--overrides train.resume_model_path=...`` and the like); the trainer reads it with ``torch.load``.

Epoch convention: users count epochs from 1. ``epoch=N`` means the checkpoint saved after the N-th epoch, whose
metadata (like TAO's and Lightning's) stores the zero-based epoch index N-1, i.e. the file
``model_epoch_{N-1:03d}_step_*.pth``. Two files for the same epoch (e.g. step-interval checkpoints) are ambiguous
and rejected. ``best`` = the highest (or lowest, for a minimised metric) validation metric recorded for a
checkpointed epoch, from the checkpoint's metadata (only when that epoch was validated: ``val_epoch``) or, for
checkpoints without metadata metrics, from status.json's epoch records; ties go to the earliest epoch.
``latest`` = the highest epoch/step (the ``oi_model_latest.pth`` alias on a tie).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optical_inspection.errors import OIError
from optical_inspection.sidecar import read_sidecar

from .errors import NotFoundError, RequestError

SUFFIXES = (".pth", ".ckpt", ".pt")
LATEST_ALIAS = re.compile(r"latest", re.IGNORECASE)


PRETRAINED = "pretrained"  # the trainer's keyword for its bundled weights (no parent job)


@dataclass(frozen=True)
class CheckpointRequest:
    kind: str               # "best" | "latest" | "epoch" | "pretrained"
    epoch: int | None = None  # as the user counts (1-based)

    def __str__(self) -> str:
        return f"epoch={self.epoch}" if self.kind == "epoch" else self.kind


def parse_request(text: str | None, default: str = "best") -> CheckpointRequest:
    value = (text or default).strip().lower()
    if value in ("best", "latest", PRETRAINED):
        return CheckpointRequest(value)
    match = re.fullmatch(r"epoch\s*=\s*(\d+)", value)
    if match and int(match.group(1)) >= 1:
        return CheckpointRequest("epoch", int(match.group(1)))
    raise RequestError(f"--checkpoint '{text}' is not best, latest or epoch=N (N counts epochs from 1), nor "
                       f"pretrained (the bundled weights)")


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    epoch: int | None        # zero-based epoch index, as stored in the metadata
    step: int | None
    metrics: dict[str, float] = field(default_factory=dict)
    is_alias: bool = False   # oi_model_latest.pth: a copy of the most recent state
    known: bool = True       # False: no sidecar (a TAO or older checkpoint), never chosen

    def describe(self) -> str:
        if not self.known:
            return f"{self.path.name} (metadata unknown: no {self.path.name}.json; pass it by path)"
        epoch = "?" if self.epoch is None else self.epoch + 1
        return f"{self.path.name} (epoch {epoch}, step {self.step if self.step is not None else '?'})"


def list_checkpoints(folder: Path, status_metrics: dict[int, dict[str, float]] | None = None) -> list[Checkpoint]:
    """Every checkpoint file in ``folder`` with its epoch, step and validation metrics."""
    found = []
    for path in sorted(p for p in Path(folder).glob("*") if p.suffix in SUFFIXES and p.is_file()):
        try:
            meta = read_sidecar(path)
        except OIError as exc:
            raise NotFoundError(str(exc)) from None
        if meta is None:
            found.append(Checkpoint(path, None, None, {}, bool(LATEST_ALIAS.search(path.name)), known=False))
            continue
        epoch = _int(meta.get("epoch"))
        step = _int(meta.get("step"))
        if isinstance(meta.get("metrics"), dict):
            metrics = {k: float(v) for k, v in meta["metrics"].items() if _number(v)}
        else:
            metrics = dict((status_metrics or {}).get(epoch, {})) if epoch is not None else {}
        val_epoch = _int(meta.get("val_epoch"))
        if val_epoch is not None and val_epoch != epoch:  # validation metrics carried over from an earlier epoch
            metrics = {k: v for k, v in metrics.items() if not k.startswith("val_")}
        found.append(Checkpoint(path, epoch, step, metrics, bool(LATEST_ALIAS.search(path.name))))
    return found


def epoch_metrics(status_records: list[dict[str, Any]]) -> dict[int, dict[str, float]]:
    """{zero-based epoch: metrics} from status.json's per-epoch records (the last record of an epoch wins)."""
    out: dict[int, dict[str, float]] = {}
    for record in status_records:
        epoch = _int(record.get("epoch"))
        kpi = record.get("kpi")
        if epoch is None or not isinstance(kpi, dict) or record.get("status") != "RUNNING":
            continue
        out[epoch] = {k: float(v) for k, v in kpi.items() if _number(v)}
    return out


def choose(checkpoints: list[Checkpoint], request: CheckpointRequest, metric: str, direction: str,
           where: str) -> tuple[Checkpoint, str]:
    """The checkpoint the request names, with the reason; NotFoundError listing what exists otherwise."""
    if not checkpoints:
        raise NotFoundError(f"{where}: no checkpoint files ({', '.join(SUFFIXES)}) exist")
    listing = "; ".join(c.describe() for c in checkpoints)
    epochs = [c for c in checkpoints if not c.is_alias and c.epoch is not None]
    if request.kind == "latest":
        known = [c for c in checkpoints if c.known]
        if not known:
            raise NotFoundError(f"{where}: no checkpoint carries its metadata, so 'latest' cannot be chosen; "
                                f"existing: {listing}; pass a path with --overrides instead")
        chosen = max(known, key=lambda c: (c.epoch if c.epoch is not None else -1,
                                                 c.step if c.step is not None else -1, c.is_alias))
        return chosen, f"latest: {chosen.describe()}"
    if request.kind == "epoch":
        assert request.epoch is not None
        matches = [c for c in epochs if c.epoch == request.epoch - 1]
        if not matches:
            raise NotFoundError(f"{where}: no checkpoint of epoch {request.epoch} (epochs count from 1); "
                                f"existing: {listing}")
        if len(matches) > 1:
            raise NotFoundError(f"{where}: epoch {request.epoch} is ambiguous, several checkpoints hold it: "
                                f"{'; '.join(c.describe() for c in matches)}; pass a path with --overrides instead")
        return matches[0], (f"epoch={request.epoch} (the checkpoint saved after epoch {request.epoch}): "
                            f"{matches[0].describe()}")
    scored = [c for c in epochs if metric in c.metrics and not math.isnan(c.metrics[metric])]
    if not scored:
        raise NotFoundError(f"{where}: no checkpoint has a recorded {metric}, so 'best' cannot be chosen; "
                            f"existing: {listing}; pass --checkpoint latest or epoch=N")
    sign = 1.0 if direction == "maximize" else -1.0
    best_value = max(sign * c.metrics[metric] for c in scored)
    tied = sorted((c for c in scored if sign * c.metrics[metric] == best_value), key=lambda c: (c.epoch, c.step or 0))
    chosen = tied[0]
    tie = f"; tie with {len(tied) - 1} later checkpoint(s), the earliest is used" if len(tied) > 1 else ""
    return chosen, (f"best: {direction} {metric} = {chosen.metrics[metric]:g} at {chosen.describe()} "
                    f"among {len(scored)} checkpoint(s) with a recorded {metric}{tie}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int(value: Any) -> int | None:
    return int(value) if _number(value) else None
