"""The Optuna study: sampler and pruner per algorithm, storage, and recovery of trials a dead process left.

Algorithms (all seeded by ``automl.seed``):
- ``bayesian``: TPE (multivariate, grouped for conditional keys; constant liar when several workers run).
- ``hyperband``: TPE + ``HyperbandPruner`` (min 1 epoch, max = train.num_epochs, ``reduction_factor``).
- ``asha``: TPE + ``SuccessiveHalvingPruner`` (asynchronous successive halving, rungs 1, η, η², ... epochs).
- ``random``: ``RandomSampler``.
The pruners judge the monitored metric reported after every epoch. TPE's random start-up phase is a third of
the trial budget (3 to 10 trials), so small budgets still get model-guided trials.
"""
from __future__ import annotations

import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any, Callable

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
    sampler does not replay the configurations its first run already proposed."""
    seed = (settings.seed + 7919 * trials_so_far) % 2**32
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


def open_study(settings: AutoMLSettings, job_dir: Path, study_name: str, max_epochs: int,
               fingerprint: dict[str, Any]) -> optuna.Study:
    """Create the study, or load it to continue; refuse one created with other settings."""
    url = storage_url(settings, job_dir)
    if settings.storage is None:
        Path(job_dir).mkdir(parents=True, exist_ok=True)
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    except Exception as exc:  # noqa: BLE001 - any driver/URL error is the user's storage setting
        raise RequestError(f"automl.storage: cannot open Optuna storage '{redact_url(url)}': "
                           f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    study = optuna.create_study(storage=storage, study_name=study_name, direction=settings.direction,
                                sampler=make_sampler(settings), pruner=make_pruner(settings, max_epochs),
                                load_if_exists=True)
    if study.trials:
        study.sampler = make_sampler(settings, trials_so_far=len(study.trials))
    stored = study.user_attrs.get("fingerprint")
    if stored is None:
        study.set_user_attr("fingerprint", fingerprint)
    elif stored != fingerprint:
        changed = sorted(k for k in set(stored) | set(fingerprint) if stored.get(k) != fingerprint.get(k))
        raise RequestError(f"study '{study_name}' in {redact_url(url)} was created with other settings "
                           f"({', '.join(changed)} differ); keep them, or set a new automl.study_name")
    return study


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
        requeue(study, trial.number, trial.params, reason="its AutoML process died", extra=extra)
        recovered.append(trial)
    return recovered


def requeue(study: optuna.Study, number: int, params: dict[str, Any], reason: str,
            extra: dict[str, Any] | None = None) -> None:
    """Mark an interrupted trial failed and queue the same configuration as a new trial (not counted twice)."""
    study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
    study.enqueue_trial(dict(params), user_attrs={**(extra or {}), "retry_of": number, "retry_reason": reason})


def retried_numbers(study: optuna.Study) -> set[int]:
    """Numbers of the interrupted trials whose configuration was queued again."""
    return {t.user_attrs["retry_of"] for t in study.get_trials(deepcopy=False) if "retry_of" in t.user_attrs}


def counted_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Trials that spend the budget: every asked trial except those interrupted and queued again."""
    retried = retried_numbers(study)
    return [t for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING and t.number not in retried]
