"""Launching the trainer (`python -m optical_inspection <action> -e spec.yaml`) for a job and recording the outcome.

The supervisor starts the trainer in its own process group with its output in the job's log, marks the job
running, waits, then records the exit code, status, metrics (the final status.json KPIs) and artefacts.
`run --detach` runs the same supervisor as a detached ``python -m runners supervise JOB`` process. Every child
process (trainer, supervisor, AutoML job, AutoML trial) is started by :func:`spawn`, with one cleaned environment.

Supervision follows the trainer, not only its supervisor: each process is known by pid + start time. A job whose
supervisor is gone stays running while its trainer runs; once both are gone, its end is read from the trainer's
final status.json record (SUCCESS is a success), so a dead supervisor never turns a finished training into a
failure.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Collection

from optical_inspection.redaction import SECRET_ENV

from .records import TERMINAL, JobRecord, JobStore, is_automl_job, now_iso

_CANCEL_GRACE_S = 20.0
# An AutoML job stops each running trial with the grace above, then writes its tables: it gets both, and a margin.
_AUTOML_CANCEL_GRACE_S = 2 * _CANCEL_GRACE_S + 10.0
_ENV_REF = re.compile(r"\$\{oc\.env:([A-Za-z_][A-Za-z0-9_]*)")


def trainer_command(record: JobRecord) -> list[str]:
    return [sys.executable, "-m", "optical_inspection", record.action, "-e", record.spec_path]


def spec_env_refs(spec_path: str | Path) -> set[str]:
    """The variables a spec file reads with ``${oc.env:NAME}`` (its process resolves them)."""
    try:
        return env_refs(Path(spec_path).read_text(encoding="utf-8"))
    except OSError:
        return set()


def env_refs(text: str) -> set[str]:
    """The variables ``text`` reads with ``${oc.env:NAME}``."""
    return set(_ENV_REF.findall(text))


def child_env(keep: Collection[str] = (), extra: dict[str, str] | None = None,
              drop: Collection[str] = ()) -> dict[str, str]:
    """The one environment of launched processes: this one's without credentials (every ``AWS_*`` variable and
    every registered secret, :data:`~optical_inspection.redaction.SECRET_ENV`; the runner fetched the data
    already) except the variables in ``keep`` (those the child's spec reads), with the folder holding this runner
    (and the trainer beside it) first on PYTHONPATH so the same code runs whatever the install, unbuffered output,
    and ``extra`` set where the environment has no value; the variables in ``drop`` never pass."""
    code_root = str(Path(__file__).resolve().parent.parent)
    paths = [code_root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != code_root]
    env = {k: v for k, v in os.environ.items()
           if k not in drop and (k in keep or not (k in SECRET_ENV or k.startswith("AWS_")))}
    return {**(extra or {}), **env, "PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1"}


def spawn(argv: list[str], log_path: str | Path, spec_path: str | Path, *, supervisor: bool = False,
          extra_env: dict[str, str] | None = None, drop_env: Collection[str] = ()) -> subprocess.Popen:
    """Start ``argv`` in its own session with :func:`child_env` (keeping what ``spec_path`` reads), output
    appended to ``log_path``: a trainer's stdout and stderr, a supervisor's stderr only (it logs nothing else)."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL if supervisor else log,
                                stderr=log if supervisor else subprocess.STDOUT, start_new_session=True,
                                env=child_env(spec_env_refs(spec_path), extra_env, drop_env))


def start_detached(store: JobStore, record: JobRecord) -> JobRecord:
    """Start ``python -m runners supervise`` in a new session and return the (pending) record."""
    proc = spawn([sys.executable, "-m", "runners", "supervise", record.id, "--jobs-root", str(store.root)],
                 record.log_path, record.spec_path, supervisor=True)
    return store.update(record.id, lambda r: set_supervisor(r, proc.pid))


def set_supervisor(record: JobRecord, pid: int) -> None:
    record.supervisor_pid, record.supervisor_start = pid, process_start(pid)


def supervise(store: JobStore, job_id: str) -> JobRecord:
    """Run the job's trainer to the end (SIGTERM/Ctrl-C stop it and mark the job cancelled)."""
    record = store.load(job_id)
    proc = spawn(trainer_command(record), record.log_path, record.spec_path)

    def mark_running(r: JobRecord) -> None:
        r.status, r.started, r.pid, r.pid_start = "running", now_iso(), proc.pid, process_start(proc.pid)
        set_supervisor(r, os.getpid())

    record = store.update(job_id, mark_running)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    interrupted = False
    try:
        if record.cancel_requested:
            stop(proc)
        code = proc.wait()
    except KeyboardInterrupt:
        interrupted = True
        stop(proc)
        code = proc.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return finish(store, job_id, code, cancelled=interrupted)


def results_folder(record: JobRecord) -> Path:
    """The folder the job's trainer writes into (its status.json is there)."""
    return Path(record.decisions.get("results_folder", record.results_dir))


def clear_stale_temps(folder: Path) -> list[str]:
    """Remove the temps a killed trainer left in ``folder`` (skipped while a run holds the folder)."""
    from optical_inspection.io_utils import remove_stale_temps
    from optical_inspection.locks import FolderLock

    if not folder.is_dir():
        return []
    with FolderLock(folder) as lock:
        return [p.name for p in remove_stale_temps(folder)] if lock.acquire() else []


def finish(store: JobStore, job_id: str, code: int, cancelled: bool = False) -> JobRecord:
    """Record the trainer's exit: status, exit code, metrics and artefacts from its status.json."""
    record = store.load(job_id)
    summary = read_outcome(results_folder(record))

    def done(r: JobRecord) -> None:
        r.exit_code = code
        r.finished = now_iso()
        r.metrics = summary.get("kpi", {})
        r.artifacts = summary.get("artifacts", {})
        if code == 0:
            r.status, r.message = "success", summary.get("message", "")
        elif cancelled or r.cancel_requested:
            r.status, r.message = "cancelled", "cancelled by request"
        else:
            r.status = "failure"
            r.message = summary.get("message") or f"the trainer exited with code {code}; see {r.log_path}"

    return store.update(job_id, done)


def read_outcome(folder: Path) -> dict[str, Any]:
    """The last terminal record of status.json: status (SUCCESS/FAILURE), message, kpi and artifacts."""
    from optical_inspection.status import read_status

    for entry in reversed(read_status(folder / "status.json")):
        if entry.get("status") in ("SUCCESS", "FAILURE"):
            return {"status": entry["status"], "message": entry.get("message", ""), "kpi": entry.get("kpi") or {},
                    "artifacts": entry.get("artifacts") or {}}
    return {}


def cancel(store: JobStore, job_id: str) -> JobRecord:
    """Ask a pending/running job to stop; the trainer gets SIGTERM and writes its FAILURE record. An AutoML job
    stops its trials itself; should it not end within its grace, it and its trials' trainers are killed."""
    record = store.update(job_id, lambda r: setattr(r, "cancel_requested", r.status not in TERMINAL))
    if record.status in TERMINAL:
        return record
    automl = is_automl_job(record)
    if record.pid and process_alive(record.pid, record.pid_start):
        _signal_group(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + (_AUTOML_CANCEL_GRACE_S if automl else _CANCEL_GRACE_S)
    while time.monotonic() < deadline:
        record = store.load(job_id)
        if record.status in TERMINAL:
            return record
        if not (process_alive(record.supervisor_pid, record.supervisor_start)
                or process_alive(record.pid, record.pid_start)):
            break
        time.sleep(0.2)
    if record.pid and process_alive(record.pid, record.pid_start):
        _signal_group(record.pid, signal.SIGKILL)
    if automl:
        for child in store.list():
            if child.parent_id == job_id and child.status not in TERMINAL:
                kill_and_cancel(store, child)   # trainers run in their own sessions: killed one by one
        return mark_cancelled(store, job_id, f"AutoML cancelled; continue the study with "
                              f"`python -m runners run train --parent-job {job_id}`")
    return mark_cancelled(store, job_id)


def kill_and_cancel(store: JobStore, record: JobRecord, message: str = "cancelled by request") -> None:
    """SIGKILL the job's trainer (its process group) if it still runs, record the job cancelled with ``message``
    unless it ended already, and remove the temps the killed trainer left."""
    if record.pid and process_alive(record.pid, record.pid_start):
        _signal_group(record.pid, signal.SIGKILL)
    if record.status not in TERMINAL:
        mark_cancelled(store, record.id, message)
    clear_stale_temps(results_folder(record))


def mark_cancelled(store: JobStore, job_id: str, message: str = "cancelled by request") -> JobRecord:
    def change(r: JobRecord) -> None:
        r.status, r.finished, r.message = "cancelled", r.finished or now_iso(), message

    return store.update(job_id, change)


def reconcile(store: JobStore, record: JobRecord) -> JobRecord:
    """A pending/running job whose supervisor is gone: still running while its trainer runs; once the trainer is
    gone too, ended by the trainer's last status.json record (none: failed, it can never finish)."""
    if (record.status in TERMINAL or process_alive(record.supervisor_pid, record.supervisor_start)
            or process_alive(record.pid, record.pid_start)):
        return record
    outcome = read_outcome(results_folder(record)) if record.pid else {}
    lost = "the runner supervising this job exited before the trainer ended"

    def change(r: JobRecord) -> None:
        if r.status in TERMINAL:
            return
        r.finished = now_iso()
        r.metrics = outcome.get("kpi") or r.metrics            # what the trainer recorded, else what the record had
        r.artifacts = outcome.get("artifacts") or r.artifacts
        if r.cancel_requested:
            r.status, r.message = "cancelled", "cancelled by request"
        elif outcome.get("status") == "SUCCESS":
            r.status, r.exit_code = "success", 0
            r.message = f"{outcome['message']} (read from the trainer's status.json: {lost})"
        elif outcome.get("status") == "FAILURE":
            r.status, r.message = "failure", f"{outcome['message']} (read from the trainer's status.json: {lost})"
        else:
            r.status = "failure"
            r.message = r.message or "the runner supervising this job exited without recording a result"

    return store.update(record.id, change)


def process_start(pid: int) -> str | None:
    """The start time of ``pid`` (Linux /proc), so a reused pid is not taken for our process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def process_alive(pid: int | None, start: str | None) -> bool:
    """True when ``pid`` runs and is the process that was recorded (same start time, where known); a zombie
    (exited, not yet reaped by its parent) is not alive. Ours, not psutil's: two /proc reads, and psutil would
    be a compiled dependency of the torch-free runner for them."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:  # no /proc: the pid exists, its start time is unknown
        return True
    if stat[0] in ("Z", "X"):
        return False
    return start is None or stat[19] == start


def stop(proc: subprocess.Popen) -> int:
    """SIGTERM to the process group, SIGKILL after a grace period; the exit code."""
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(timeout=_CANCEL_GRACE_S)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        return proc.wait()


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
