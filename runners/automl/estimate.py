"""How long a planned AutoML search should take: trials × (epochs × training pairs ÷ pairs/s + start-up) ÷ workers.

pairs/s is measured: the newest successful plain train job of the same model type in this jobs root (its epoch
time in status.json and its training split's rows); with no such job, a default for 2 CPU cores at 128 px.
"""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from optical_inspection.dotted import get_dotted
from optical_inspection.status import read_status

from ..records import JobStore
from .settings import AutoMLSettings

STARTUP_S = 10.0  # interpreter, torch import and first batch of one trial process
DEFAULT_PAIRS_PER_S = {"Compact": 250.0, "Siamese": 25.0, "Siamese_3": 25.0}
TRAIN_CSV = "dataset.train_dataset.csv_path"


def csv_rows(path: Any) -> int | None:
    """Data rows of a CSV (the header excluded), or None when it is not a readable local file yet."""
    if not isinstance(path, str) or not Path(path).is_file():
        return None
    with open(path, "rb") as fh:
        return max(sum(1 for _ in fh) - 1, 0)


def _seconds(text: Any) -> float | None:
    """``0:00:01.5`` (status.json's time_per_epoch) in seconds."""
    try:
        h, m, s = str(text).split(":")
        return timedelta(hours=int(h), minutes=int(m), seconds=float(s)).total_seconds()
    except ValueError:
        return None


def measured_pairs_per_s(store: JobStore, model_type: str) -> tuple[float, str]:
    """(pairs/s, where the figure comes from)."""
    for record in reversed(store.list()):
        if record.action != "train" or record.status != "success" or record.automl_policy.get("value") == "on":
            continue
        spec_path = Path(record.spec_path)
        if not spec_path.is_file():
            continue
        import yaml

        spec = yaml.safe_load(spec_path.read_text(encoding="utf-8")) or {}
        if get_dotted(spec, "model.model_type", "Compact") != model_type:
            continue
        folder = Path(record.decisions.get("results_folder", record.results_dir))
        epochs = [r for r in read_status(folder / "status.json") if r.get("time_per_epoch")]
        rows = csv_rows(get_dotted(spec, TRAIN_CSV))
        seconds = _seconds(epochs[-1]["time_per_epoch"]) if epochs else None
        if rows and seconds:
            return rows / seconds, f"measured by job {record.id} ({rows} pairs in {seconds:.1f} s per epoch)"
    default = DEFAULT_PAIRS_PER_S.get(model_type, 25.0)
    return default, f"default for {model_type} on 2 CPU cores at 128 px (no finished {model_type} train job here yet)"


def estimate_search(spec: dict[str, Any], settings: AutoMLSettings, store: JobStore) -> dict[str, Any]:
    """Trials, epochs, pairs, pairs/s with its source, and the estimated seconds (null when pairs are unknown)."""
    epochs = get_dotted(spec, "train.num_epochs", 10)
    pairs = csv_rows(get_dotted(spec, TRAIN_CSV))
    rate, source = measured_pairs_per_s(store, str(get_dotted(spec, "model.model_type", "Compact")))
    estimate = None
    if pairs is not None and isinstance(epochs, int):
        trial_s = epochs * pairs / rate + STARTUP_S
        estimate = settings.max_trials * trial_s / max(settings.workers, 1)
        if settings.max_time_s is not None:
            estimate = min(estimate, settings.max_time_s)
    return {"max_trials": settings.max_trials, "workers": settings.workers, "num_epochs": epochs,
            "train_pairs": pairs, "pairs_per_s": round(rate, 1), "pairs_per_s_source": source,
            "estimated_s": round(estimate) if estimate is not None else None}
