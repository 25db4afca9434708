"""The Optuna study: sampler and pruner per algorithm, storage, and recovery of trials a dead process left.

Algorithms (all seeded by ``automl.seed``):
- ``bayesian``: TPE (multivariate, grouped for conditional keys; constant liar when several workers run).
- ``hyperband``: TPE + ``HyperbandPruner`` (min 1 epoch, max = train.num_epochs, ``reduction_factor``).
- ``asha``: TPE + ``SuccessiveHalvingPruner`` (asynchronous successive halving, rungs 1, η, η², ... epochs).
- ``random``: ``RandomSampler``.
The pruners judge the monitored metric reported after every epoch. TPE's random start-up phase is a third of
the trial budget (3 to 10 trials), so small budgets still get model-guided trials.

Several AutoML processes (on one machine or many) may share one study through one storage URL: every ask of a
trial happens under :class:`StudyLock` (a PostgreSQL advisory lock, or a file lock beside a SQLite file), so the
trial budget is counted over the whole study and a dead process's trial is re-queued exactly once.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, cast

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..errors import RequestError
from ..launch import process_alive, process_start
from .handoff import default_storage
from .settings import AutoMLSettings

STALE_AFTER_S = 600.0          # a trial of another host whose heartbeat is older than this is dead

optuna.logging.set_verbosity(optuna.logging.WARNING)


def make_sampler(settings: AutoMLSettings, trials_so_far: int = 0) -> optuna.samplers.BaseSampler:
    """The seeded sampler. A resumed study (``trials_so_far`` > 0) derives a new seed from it, so the restarted
    sampler does not replay the configurations its first run already proposed; with a configured storage (maybe
    shared by several processes) the process id joins the seed, so two workers never propose the same ones."""
    shared = os.getpid() if settings.storage else 0
    seed = (settings.seed + 7919 * trials_so_far + 104729 * shared) % 2**32
    if settings.algorithm == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    startup = min(10, max(3, settings.max_trials // 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # multivariate/group are stable enough
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True,
                                          group=True, constant_liar=settings.workers > 1)


def make_pruner(settings: AutoMLSettings, max_epochs: int) -> optuna.pruners.BasePruner:
    if settings.algorithm == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(1, max_epochs),
                                              reduction_factor=settings.reduction_factor)
    if settings.algorithm == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=settings.reduction_factor)
    return optuna.pruners.NopPruner()


def storage_url(settings: AutoMLSettings, job_dir: Path) -> str:
    """The configured storage URL, or a SQLite file in the AutoML job folder."""
    return settings.storage or default_storage(job_dir)


def engine_kwargs(url: str, workers: int) -> dict[str, Any]:
    """SQLAlchemy engine settings for the storage, chosen for many processes sharing one database server."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}  # wait up to 60 s for another process's write lock
    kwargs: dict[str, Any] = {
        "pool_size": workers + 2,     # one connection per trial thread, plus the progress watcher and the heartbeat
        "max_overflow": workers + 2,  # bursts (the study lock's own connection) never wait for the pool
        "pool_timeout": 60,           # seconds to wait for a free connection before failing loudly
        "pool_pre_ping": True,        # a connection the server or a firewall dropped is replaced, not used
        "pool_recycle": 1800,         # no connection older than 30 min (idle-timeout proxies cut older ones)
    }
    if url.startswith("postgresql"):
        kwargs["connect_args"] = {
            "connect_timeout": 10,                               # an unreachable server fails in 10 s
            "application_name": f"oi-automl {socket.gethostname()}"[:63],  # pg_stat_activity names the worker
            "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
        }
    return kwargs


def open_storage(url: str, workers: int = 1) -> optuna.storages.RDBStorage:
    """The Optuna storage at ``url`` (a RequestError naming the URL without its password when it cannot open)."""
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs(url, workers))
    except Exception as exc:  # noqa: BLE001 - any driver/URL error is the user's storage setting
        raise RequestError(f"automl.storage: cannot open Optuna storage '{redact_url(url)}': "
                           f"{type(exc).__name__}: {_first_line(exc)}") from None


def open_study(settings: AutoMLSettings, job_dir: Path, study_name: str, max_epochs: int,
               fingerprint: dict[str, Any], storage: optuna.storages.BaseStorage | None = None) -> optuna.Study:
    """Create the study, or load it to continue; refuse one created with other settings."""
    url = storage_url(settings, job_dir)
    if settings.storage is None:
        Path(job_dir).mkdir(parents=True, exist_ok=True)
    if storage is None:
        storage = open_storage(url, settings.workers)
    with StudyLock(storage, url, study_name).hold():  # two workers starting at once create one study, not two
        study = optuna.create_study(storage=storage, study_name=study_name,
                                    direction=cast(Literal["minimize", "maximize"], settings.direction),
                                    sampler=make_sampler(settings), pruner=make_pruner(settings, max_epochs),
                                    load_if_exists=True)
        stored = study.user_attrs.get("fingerprint")
        if stored is None:
            study.set_user_attr("fingerprint", fingerprint)
    if study.trials:
        study.sampler = make_sampler(settings, trials_so_far=len(study.trials))
    if stored is not None and stored != fingerprint:
        changed = sorted(k for k in set(stored) | set(fingerprint) if stored.get(k) != fingerprint.get(k))
        raise RequestError(f"study '{study_name}' in {redact_url(url)} was created with other settings "
                           f"({', '.join(changed)} differ); keep them, or set a new automl.study_name")
    return study


class StudyLock:
    """A lock over one study shared by every process that uses the storage: ``pg_advisory_lock`` on
    PostgreSQL, ``flock`` on a file beside a SQLite database, only this process's lock on other databases.
    Ours because Optuna has none: its ask() of concurrent processes cannot keep a study-wide trial budget."""

    def __init__(self, storage: Any, url: str, study_name: str) -> None:
        self.url, self.study_name = url, study_name
        backend = getattr(storage, "_backend", storage)  # Optuna wraps an RDBStorage in a cache
        self.engine = getattr(backend, "engine", None)
        self.key = int.from_bytes(hashlib.sha256(f"oi-automl:{study_name}".encode()).digest()[:8], "big",
                                  signed=True)
        self._local = threading.RLock()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        with self._local:
            if self.url.startswith("postgresql") and self.engine is not None:
                with self._postgres():
                    yield
            elif self.url.startswith("sqlite:///"):
                with self._file():
                    yield
            else:
                yield

    @contextlib.contextmanager
    def _postgres(self) -> Iterator[None]:
        from sqlalchemy import text

        assert self.engine is not None  # _postgres is chosen only when the storage has an engine
        with self.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": self.key})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                conn.commit()

    @contextlib.contextmanager
    def _file(self) -> Iterator[None]:
        path = Path(self.url.removeprefix("sqlite:///") + ".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else ""


def redact_url(url: str) -> str:
    """A storage URL without its password."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        creds, _, host = rest.rpartition("@")
        rest = f"{creds.split(':', 1)[0]}:***@{host}"
    return scheme + sep + rest


# ---------------------------------------------------------------- owners and recovery

def owner_record() -> dict[str, Any]:
    """Identifies this process: host, pid and the pid's start time (so a reused pid is not mistaken)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": process_start(os.getpid())}


def owner_alive(owner: dict[str, Any] | None, heartbeat: float | None) -> bool:
    """Whether the process that runs a trial still exists (same host: by pid; other hosts: by heartbeat)."""
    if not owner:
        return False
    if owner.get("host") != socket.gethostname():
        return heartbeat is not None and time.time() - heartbeat < STALE_AFTER_S
    pid = owner.get("pid")
    return isinstance(pid, int) and process_alive(pid, owner.get("start"))


def recover_interrupted(study: optuna.Study,
                        adopt: Callable[[FrozenTrial], dict[str, Any] | None] | None = None) -> list[FrozenTrial]:
    """Fail the RUNNING trials whose process died and queue their configuration again; return them.

    ``adopt(trial)`` may return user attributes for the queued trial (e.g. a child job that finished training
    before the process died, so the new trial takes its result instead of training again).
    """
    recovered = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if owner_alive(trial.user_attrs.get("owner"), trial.user_attrs.get("heartbeat")):
            continue
        extra = adopt(trial) if adopt is not None else None
        if requeue(study, trial.number, trial.params, reason="its AutoML process died", extra=extra):
            recovered.append(trial)
    return recovered


def requeue(study: optuna.Study, number: int, params: dict[str, Any], reason: str,
            extra: dict[str, Any] | None = None) -> bool:
    """Mark an interrupted trial failed and queue the same configuration as a new trial (not counted twice);
    False (nothing queued) when the trial had ended already, e.g. another process re-queued it first."""
    try:
        study.tell(number, state=TrialState.FAIL)
    except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
        return False
    study.enqueue_trial(dict(params), user_attrs={**(extra or {}), "retry_of": number, "retry_reason": reason})
    return True


def retried_numbers(study: optuna.Study) -> set[int]:
    """Numbers of the interrupted trials whose configuration was queued again."""
    return {t.user_attrs["retry_of"] for t in study.get_trials(deepcopy=False) if "retry_of" in t.user_attrs}


def counted_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Trials that spend the budget: every asked trial except those interrupted and queued again."""
    retried = retried_numbers(study)
    return [t for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING and t.number not in retried]
