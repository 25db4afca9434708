"""TAO-compatible status.json: JSON lines, appended, written by rank 0 only, secret values redacted."""
from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from .redaction import redact
from .strict_json import dumps

STATUSES = ("STARTED", "RUNNING", "SUCCESS", "FAILURE", "SKIPPED")


def is_rank_zero() -> bool:
    """True in the main process of a distributed run (or when not distributed)."""
    for var in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        if os.environ.get(var, "0") != "0":
            return False
    return True


class StatusLogger:
    """Appends TAO's status records: date "M/D/YYYY", time "H:M:S", status, verbosity, message, kpi..."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.kpi: dict[str, Any] = {}

    def write(self, status: str, message: str = "", *, kpi: dict[str, Any] | None = None,
              verbosity: str = "INFO", **extra: Any) -> None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        if not is_rank_zero():
            return
        if kpi:
            self.kpi = {k: _plain(v) for k, v in kpi.items()}
        now = datetime.now()
        record: dict[str, Any] = {
            "date": f"{now.month}/{now.day}/{now.year}",
            "time": f"{now.hour}:{now.minute}:{now.second}",
            "status": status,
            "verbosity": verbosity,
            "message": message,
        }
        if self.kpi:
            record["kpi"] = self.kpi
        record.update({k: _plain(v) for k, v in extra.items()})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(redact(dumps(record)) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def read_status(path: str | Path) -> list[dict[str, Any]]:
    """All records of a status.json (skips a torn last line left by a crash)."""
    records: list[dict[str, Any]] = []
    p = Path(path)
    if not p.exists():
        return records
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _plain(value: Any) -> Any:
    """Numbers from numpy/torch become plain floats/ints so json can write them."""
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (ValueError, RuntimeError):
            return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
