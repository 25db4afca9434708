"""An AutoML job end to end: the runner's pending train job (policy on) becomes an Optuna study whose trials
are child train jobs; the job ends with best_rec.json, trials.csv and plots in its results folder.

Continuing after a crash: ``python -m runners run train --parent-job <automl job>`` makes a new AutoML job on the
same study (storage and study name come from the parent, see :mod:`.handoff`): finished trials are kept, trials
the dead process left running are re-run, and the study goes on to its budget.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import yaml

from optical_inspection.config.walk import action_index
from optical_inspection.redaction import redact, register
from optical_inspection.status import read_status

from ..errors import NotFoundError, RequestError, RunnerError
from ..launch import kill_and_cancel, process_alive, process_start, results_folder, set_supervisor, spawn
from ..records import TERMINAL, JobRecord, JobStore, now_iso
from ..skill_info import load_skill_info
from .driver import STOP_INTERRUPT, StudyDriver
from .handoff import STUDY_DB
from .progress import ProgressWatcher
from .results import best_record, state_counts, write_plots, write_tables
from .settings import AutoMLSettings, read_settings
from .space import SearchSpace, build_search_space
from .study import StudyLock, open_storage, open_study, recover_interrupted, redact_url, storage_url
from .trial_job import ADOPT_ATTR, TrainTrialObjective


def launch(store: JobStore, record: JobRecord, detach: bool = False) -> JobRecord:
    """Run the AutoML job (or start it in a detached ``python -m runners.automl`` process)."""
    if not detach:
        return run_automl_job(store, record.id)
    proc = spawn([sys.executable, "-m", "runners.automl", record.id, "--jobs-root", str(store.root)],
                 record.log_path, record.spec_path, supervisor=True)
    return store.update(record.id, lambda r: set_supervisor(r, proc.pid))


def run_automl_job(store: JobStore, job_id: str) -> JobRecord:
    """Run the study of a pending AutoML job to its end; the record ends success, failure or cancelled."""
    record = store.load(job_id)
    try:
        spec = yaml.safe_load(Path(record.spec_path).read_text(encoding="utf-8")) or {}
        resolved = _resolve_interpolations(spec)
        skill = load_skill_info()
        settings = read_settings(resolved, skill)
        space = build_search_space(action_index("train"), settings.parameters, settings.parameter_ranges,
                                   skill.shorthand_keys)
        out_dir = Path(record.results_dir)
        url = storage_url(settings, out_dir)
        register_url_secret(url)
        if settings.storage is None:
            out_dir.mkdir(parents=True, exist_ok=True)
        storage = open_storage(url, settings.workers)
        study = open_study(settings, out_dir, settings.study_name or record.id, _epochs(resolved),
                           fingerprint(settings, space, resolved), storage=storage)
    except RunnerError as exc:
        message, code = redact(str(exc)), exc.exit_code
        store.update(job_id, lambda r: _end(r, "failure", message, code))
        raise
    record = store.update(job_id, lambda r: _running(r, settings, space, study.study_name, out_dir))
    objective = TrainTrialObjective(store, record, spec, settings)

    def tables(s: Any) -> None:
        write_tables(s, out_dir, space, settings.metric, settings.algorithm)

    def recover(s: Any) -> None:
        recover_interrupted(s, adopt=lambda trial: _adopt_or_stop(store, trial.user_attrs.get("job_id")))

    driver = StudyDriver(study, space, objective, base_spec=resolved, max_trials=settings.max_trials,
                         workers=settings.workers, max_time_s=settings.max_time_s, on_trial_done=tables,
                         study_lock=StudyLock(storage, url, study.study_name).hold, recover=recover)
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        handlers = {sig: signal.signal(sig, lambda *_: driver.stop(STOP_INTERRUPT))
                    for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        _stop_unnamed_children(store, record, study)
        with ProgressWatcher(store, record, study, settings.metric, settings.max_trials, settings.max_time_s):
            reason = driver.run()
        artifacts = {**write_tables(study, out_dir, space, settings.metric, settings.algorithm),
                     **write_plots(study, out_dir, settings.metric)}
        if settings.storage is None:
            artifacts["study_db"] = str(out_dir / STUDY_DB)
        best = best_record(study, settings.metric, settings.algorithm)
        counts = state_counts(study)
    except BaseException as exc:  # the record must end terminal whatever happened; re-raised
        message = redact(f"AutoML stopped: {type(exc).__name__}: {exc}")
        store.update(job_id, lambda r: _end(r, "failure", message, 1))
        raise
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return store.update(job_id, lambda r: _finished(r, reason, best, counts, artifacts))


def register_url_secret(url: str) -> None:
    """Redact the storage password from everything this process writes (records, logs, tables)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        password = make_url(url).password
    except (ArgumentError, ValueError):
        return
    if password:
        register(str(password))


def fingerprint(settings: AutoMLSettings, space: SearchSpace, spec: dict[str, Any]) -> dict[str, Any]:
    """What must not change between runs of one study."""
    return {"metric": settings.metric, "direction": settings.direction, "algorithm": settings.algorithm,
            "search_space": space.describe(), "num_epochs": _epochs(spec)}


def _resolve_interpolations(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with ``${...}`` resolved (e.g. ``automl.storage: ${oc.env:OI_OPTUNA_STORAGE}`` keeps a database
    password out of every file); trial specs are written from the unresolved spec, the trainer resolves them."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        return OmegaConf.to_container(OmegaConf.create(spec), resolve=True)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        raise RequestError(f"cannot resolve the spec's ${{...}} references: {str(exc).splitlines()[0]}") from None


def _epochs(spec: dict[str, Any]) -> int:
    value = (spec.get("train") or {}).get("num_epochs", 10)
    return int(value) if isinstance(value, int) else 10


def _running(r: JobRecord, settings: AutoMLSettings, space: SearchSpace, study_name: str, out_dir: Path) -> None:
    r.status, r.started, r.pid, r.pid_start = "running", r.started or now_iso(), os.getpid(), process_start(os.getpid())
    set_supervisor(r, os.getpid())
    r.decisions = {**r.decisions, "automl": {
        "study_name": study_name, "storage": redact_url(storage_url(settings, out_dir)),
        "algorithm": settings.algorithm, "metric": settings.metric, "direction": settings.direction,
        "max_trials": settings.max_trials, "max_time_s": settings.max_time_s, "workers": settings.workers,
        "seed": settings.seed, "search_space": space.describe()}}


def _finished(r: JobRecord, reason: str | None, best: dict[str, Any] | None, counts: dict[str, int],
              artifacts: dict[str, str]) -> None:
    r.artifacts = dict(artifacts)
    if best is not None:
        r.metrics = {best["metric"]: best["value"], "best_trial": best["trial"], "best_epoch": best["best_epoch"]}
        if best.get("checkpoint"):
            r.artifacts["best_checkpoint"] = best["checkpoint"]
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    if reason == STOP_INTERRUPT:
        _end(r, "cancelled", f"AutoML interrupted ({summary or 'no trial finished'}); continue the study with "
             f"`python -m runners run train --parent-job {r.id}`", 130)
    elif best is None:
        _end(r, "failure", f"no trial completed ({reason or 'trial budget spent'}); see trials.csv and the child "
             "jobs' logs", 1)
    else:
        why = f"; stopped early: {reason}" if reason else ""
        _end(r, "success", f"best trial {best['trial']} (job {best['job_id']}): {best['metric']} = "
             f"{best['value']:g} at epoch {best['best_epoch']} ({summary}){why}", 0)


def _end(r: JobRecord, status: str, message: str, code: int) -> None:
    r.status, r.finished, r.message, r.exit_code = status, now_iso(), message, code


def _stop_unnamed_children(store: JobStore, record: JobRecord, study: Any) -> None:
    """Trial jobs of the dead AutoML job this one continues that no trial names (the process died between
    recording the job and the trial): stopped and cancelled, never left pending for ever."""
    if not record.parent_id:
        return
    try:
        parent = store.load(record.parent_id)
    except (NotFoundError, RequestError):
        return
    if parent.automl_policy.get("value") != "on" or parent.status not in TERMINAL:
        return
    named = {t.user_attrs.get("job_id") for t in study.get_trials(deepcopy=False)}
    for child in store.list():
        if (child.parent_id == parent.id and child.id != record.id and child.status not in TERMINAL
                and child.automl_policy.get("value") != "on" and child.id not in named
                and not process_alive(child.supervisor_pid, child.supervisor_start)):
            _adopt_or_stop(store, child.id)


def _adopt_or_stop(store: JobStore, job_id: str | None) -> dict[str, Any] | None:
    """The child job of a trial whose AutoML process died: adopt it when its training finished (the re-queued
    trial takes its result, nothing is trained twice); else kill its trainer and mark the job cancelled."""
    if not job_id:
        return None
    try:
        record = store.load(job_id)
    except (NotFoundError, RequestError):
        return None  # a trial of another jobs root (shared storage): its own runner cleans it up
    folder = results_folder(record)
    ends = [r.get("status") for r in read_status(folder / "status.json") if r.get("status") in ("SUCCESS", "FAILURE")]
    if ends and ends[-1] == "SUCCESS" and not process_alive(record.pid, record.pid_start):
        return {ADOPT_ATTR: job_id}
    kill_and_cancel(store, record, "stopped: its AutoML process died; the trial is re-run")
    return None
