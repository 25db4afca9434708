"""Job records: one folder per job under the jobs root, holding ``job.json``, ``spec.yaml``, ``job.log`` and
``results/`` (the action's results_dir).

Every change is a read-modify-write under the job's file lock, written atomically (temp file + rename), so two
runners at once never corrupt a record. Terminal states (success/failure/cancelled) are final.

A job id is ``oi-<action>-<YYYYmmdd>-<HHMMSS>-<6 hex digits>`` (:data:`JOB_ID`); every id that comes in (CLI
arguments, parent ids, the ids inside records) is checked against it before it names a folder, so no id can
reach outside the jobs root, and a record whose id is not its folder's name is not a record.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from optical_inspection.locks import file_lock
from optical_inspection.strict_json import dumps

from .errors import NotFoundError, RequestError

STATUSES = ("pending", "running", "success", "failure", "cancelled")
TERMINAL = ("success", "failure", "cancelled")
RECORD_NAME = "job.json"
SCHEMA_VERSION = 1
JOB_ID = re.compile(r"oi-[a-z]+(?:-[a-z]+)*-\d{8}-\d{6}-[0-9a-f]{6}")
ID_EXAMPLE = "oi-train-20250101-093000-1a2b3c"


def is_job_id(value: object) -> bool:
    return isinstance(value, str) and JOB_ID.fullmatch(value) is not None


def check_job_id(value: object, what: str = "job id") -> str:
    """``value`` when it is a job id; else a RequestError (exit 2) saying what ids look like."""
    if not is_job_id(value):
        shown = repr(value)[:80]
        raise RequestError(f"{what} {shown} is not a job id (ids look like {ID_EXAMPLE}; "
                           "`python -m runners list` shows them)")
    return str(value)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class JobRecord:
    id: str
    action: str
    parent_id: str | None
    status: str
    created: str
    job_dir: str
    spec_path: str
    results_dir: str
    log_path: str
    started: str | None = None
    finished: str | None = None
    exit_code: int | None = None
    message: str = ""
    automl_policy: dict[str, str] = field(default_factory=dict)
    decisions: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    pid: int | None = None
    pid_start: str | None = None
    supervisor_pid: int | None = None
    supervisor_start: str | None = None
    cancel_requested: bool = False
    schema_version: int = SCHEMA_VERSION

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "JobRecord":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


class JobStore:
    """The jobs root: creates, reads, updates and lists job records."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()

    @property
    def cache_root(self) -> Path:
        return self.root / ".cache"

    def job_dir(self, job_id: str) -> Path:
        return self.root / check_job_id(job_id)

    def create(self, action: str, parent_id: str | None, **fields: Any) -> JobRecord:
        """Reserve a new job id (its folder is made with O_EXCL semantics) and write its pending record."""
        if parent_id is not None:
            check_job_id(parent_id, "parent job id")
        self.root.mkdir(parents=True, exist_ok=True)
        while True:
            job_id = f"oi-{action.replace('_', '-')}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
            folder = self.job_dir(job_id)
            try:
                folder.mkdir()
                break
            except FileExistsError:
                continue
        record = JobRecord(
            id=job_id, action=action, parent_id=parent_id, status="pending", created=now_iso(),
            job_dir=str(folder), spec_path=str(folder / "spec.yaml"), results_dir=str(folder / "results"),
            log_path=str(folder / "job.log"), **fields,
        )
        self._write(record)
        return record

    def load(self, job_id: str) -> JobRecord:
        path = self.job_dir(job_id) / RECORD_NAME
        if not path.is_file():
            known = ", ".join(r.id for r in self.list()[-5:]) or "none"
            raise NotFoundError(f"no job '{job_id}' in {self.root} (latest jobs: {known}); "
                                "list them with `python -m runners list`")
        try:
            return self._read(path, job_id)
        except (OSError, UnicodeDecodeError, ValueError, TypeError, AttributeError) as exc:
            raise NotFoundError(f"job '{job_id}': its record {path} is unreadable or corrupt, not a job record "
                                f"({type(exc).__name__}: {exc}); remove the job folder, or restore job.json") from None

    @staticmethod
    def _read(path: Path, job_id: str) -> JobRecord:
        """The record in ``path``; ValueError unless its id is the folder's and its parent id is an id."""
        record = JobRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))
        if record.id != job_id:
            raise ValueError(f"it names job {str(record.id)[:80]!r}, not {job_id}")
        if record.parent_id is not None and not is_job_id(record.parent_id):
            raise ValueError(f"its parent_id {str(record.parent_id)[:80]!r} is not a job id")
        return record

    def update(self, job_id: str, change: Callable[[JobRecord], None]) -> JobRecord:
        """Apply ``change`` to the record under its lock; a terminal status is never changed again."""
        with file_lock(self.job_dir(job_id) / ".lock"):
            record = self.load(job_id)
            before = record.status
            change(record)
            if before in TERMINAL and record.status != before:
                record.status = before
            if record.status not in STATUSES:
                raise ValueError(f"bad job status {record.status!r}")
            self._write(record)
            return record

    def list(self) -> list[JobRecord]:
        """Every job, oldest first."""
        if not self.root.is_dir():
            return []
        records = []
        for entry in os.scandir(self.root):
            path = Path(entry.path) / RECORD_NAME
            if is_job_id(entry.name) and entry.is_dir() and path.is_file():
                try:
                    records.append(self._read(path, entry.name))
                except (OSError, UnicodeDecodeError, ValueError, TypeError, AttributeError):
                    continue
        return sorted(records, key=lambda r: (r.created, r.id))

    def _write(self, record: JobRecord) -> None:
        from optical_inspection.io_utils import write_text_atomic

        write_text_atomic(self.job_dir(record.id) / RECORD_NAME, dumps(record.as_dict(), indent=2) + "\n")


def is_automl_job(record: JobRecord) -> bool:
    """A train job that ran as an AutoML search."""
    return record.action == "train" and (record.automl_policy or {}).get("value") == "on"
