"""What an AutoML job hands to the jobs that name it as ``--parent-job`` (torch-free, no Optuna import).

- ``--checkpoint best`` (the default) on an AutoML parent: the checkpoint in ``best_rec.json``, i.e. the best
  epoch of the best trial. ``latest`` / ``epoch=N`` apply to the best trial's child job.
- A train job whose parent is an AutoML job that stopped (failure/cancelled, e.g. killed) continues the parent's
  study: ``automl.storage`` and ``automl.study_name`` are set to the parent's.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..checkpoints import CheckpointRequest, choose, epoch_metrics, list_checkpoints
from ..errors import NotFoundError
from ..records import JobRecord

BEST_REC = "best_rec.json"
STUDY_DB = "study.db"


def default_storage(results_dir: str | Path) -> str:
    """The study's storage when automl.storage is null: a SQLite file in the AutoML job's results folder."""
    return f"sqlite:///{(Path(results_dir) / STUDY_DB).resolve()}"


def read_best_rec(record: JobRecord) -> dict[str, Any]:
    path = Path(record.results_dir) / BEST_REC
    if not path.is_file():
        raise NotFoundError(f"AutoML job {record.id} ({record.status}) has no {path.name} in {path.parent}: no trial "
                            "has completed yet; wait for it (`python -m runners status "
                            f"{record.id}`) or continue it with `python -m runners run train --parent-job {record.id}`")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise NotFoundError(f"{path}: not valid JSON ({exc})") from None


def automl_checkpoint(record: JobRecord, request: CheckpointRequest) -> tuple[str, str]:
    """The checkpoint an AutoML job provides for ``request``, with the reason."""
    from optical_inspection.status import read_status

    rec = read_best_rec(record)
    checkpoint = rec.get("checkpoint")
    if not checkpoint or not Path(checkpoint).is_file():
        raise NotFoundError(f"AutoML job {record.id}: best_rec.json names checkpoint {checkpoint!r}, which does not "
                            "exist (deleted?)")
    head = f"AutoML job {record.id}, best trial {rec.get('trial')} (job {rec.get('job_id')})"
    if request.kind == "best":
        return checkpoint, (f"{head}: best_rec.json, {rec.get('metric')} = {rec.get('value'):g} at epoch "
                            f"{rec.get('best_epoch')} (the best epoch, not the last)")
    folder = Path(checkpoint).parent
    status = epoch_metrics(read_status(folder / "status.json"))
    chosen, reason = choose(list_checkpoints(folder, status), request, rec.get("metric", "val_acc"),
                            rec.get("direction", "maximize"), f"{head} ({folder})")
    return str(chosen.path), f"{head}: {reason}"


def continue_study(record: JobRecord, spec: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """(key, value, reason) that make a new AutoML job continue ``record``'s study."""
    automl = spec.get("automl") or {}
    storage = automl.get("storage") or default_storage(record.results_dir)
    name = automl.get("study_name") or record.id
    why = "continue its AutoML study (finished trials are kept, interrupted ones re-run)"
    return [("automl.storage", storage, why), ("automl.study_name", name, why)]
