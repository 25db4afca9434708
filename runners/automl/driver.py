"""Run a study: N worker threads ask Optuna for trials, sample the search space and call the objective.

The objective (``objective(trial, params, stop_event) -> value``) trains one configuration, may report
intermediate values and raise ``optuna.TrialPruned``; it raises :class:`TrialStopped` when ``stop_event`` is
set. Outcomes: a value → COMPLETE; pruned → PRUNED; any other exception → FAIL (recorded in the trial's
``failure`` attribute; the study goes on). When the time budget is spent the running trials are stopped and
recorded PRUNED; when the driver is interrupted (SIGINT/SIGTERM) they are failed and queued again, so the
next run of the same study re-runs them without spending budget.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable

import optuna
from optuna.trial import TrialState

from .space import SearchSpace
from .study import counted_trials, owner_record, requeue

HEARTBEAT_S = 30.0
STOP_TIME = "time budget spent"
STOP_INTERRUPT = "interrupted"
FAIL_FAST = 3  # stop when the first max(FAIL_FAST, workers) trials of a study all failed: the setup is broken

Objective = Callable[[optuna.Trial, dict[str, Any], threading.Event], float]


class TrialStopped(Exception):
    """Raised by an objective that stopped its training because the driver asked it to."""


class StudyDriver:
    """Runs trials of ``study`` until ``max_trials`` are spent, time runs out or it is interrupted."""

    def __init__(self, study: optuna.Study, space: SearchSpace, objective: Objective, *, base_spec: dict[str, Any],
                 max_trials: int, workers: int, max_time_s: float | None = None,
                 on_trial_done: Callable[[optuna.Study], None] | None = None) -> None:
        self.study = study
        self.space = space
        self.objective = objective
        self.base_spec = base_spec
        self.max_trials = max_trials
        self.workers = workers
        self.max_time_s = max_time_s
        self.on_trial_done = on_trial_done
        self.stop_event = threading.Event()
        self.stop_reason: str | None = None
        self._lock = threading.Lock()
        self._inflight: dict[int, optuna.Trial] = {}
        self._owner = owner_record()
        self._errors: list[BaseException] = []
        self._spent_before = float(study.user_attrs.get("time_spent_s", 0.0))
        self._started = time.monotonic()

    # ------------------------------------------------------------ control

    def stop(self, reason: str) -> None:
        """Ask every worker to stop (running trials end as the reason says)."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self.stop_event.set()

    def time_spent(self) -> float:
        """Search seconds over every run of this study."""
        return self._spent_before + time.monotonic() - self._started

    def time_left(self) -> float:
        return float("inf") if self.max_time_s is None else self.max_time_s - self.time_spent()

    def run(self) -> str | None:
        """Run until done; return why it stopped early (None: the trial budget was used up)."""
        threads = [threading.Thread(target=self._worker, name=f"automl-worker-{i}", daemon=True)
                   for i in range(self.workers)]
        for thread in threads:
            thread.start()
        last_beat = 0.0
        while any(t.is_alive() for t in threads):
            for thread in threads:
                thread.join(timeout=0.5)
            if self.time_left() <= 0:
                self.stop(STOP_TIME)
            if time.monotonic() - last_beat >= HEARTBEAT_S:
                last_beat = time.monotonic()
                self._heartbeat()
        self.study.set_user_attr("time_spent_s", round(self.time_spent(), 3))
        if self._errors:
            raise self._errors[0]
        return self.stop_reason

    # ------------------------------------------------------------ workers

    def _worker(self) -> None:
        try:
            while True:
                trial = self._next_trial()
                if trial is None:
                    return
                self._run_trial(trial)
        except BaseException as exc:  # noqa: BLE001 - storage/driver errors end the run; reported by run()
            self._errors.append(exc)
            self.stop(f"error: {type(exc).__name__}: {exc}")

    def _next_trial(self) -> optuna.Trial | None:
        with self._lock:
            if self.stop_event.is_set() or self.time_left() <= 0:
                return None
            if len(counted_trials(self.study)) >= self.max_trials:
                return None
            trial = self.study.ask()
            trial.set_user_attr("owner", self._owner)
            trial.set_user_attr("heartbeat", time.time())
            self._inflight[trial.number] = trial
            return trial

    def _run_trial(self, trial: optuna.Trial) -> None:
        try:
            params = self.space.sample(trial, self.base_spec)
            trial.set_user_attr("config", params)
            value = self.objective(trial, params, self.stop_event)
        except optuna.TrialPruned:
            self.study.tell(trial, state=TrialState.PRUNED)
        except TrialStopped:
            if self.stop_reason == STOP_INTERRUPT:
                requeue(self.study, trial.number, trial.params, reason="the AutoML run was interrupted")
            else:
                trial.set_user_attr("stopped", self.stop_reason or "stopped")
                self.study.tell(trial, state=TrialState.PRUNED)
        except Exception as exc:  # noqa: BLE001 - a failed trial is recorded and the study goes on
            trial.set_user_attr("failure", f"{type(exc).__name__}: {exc}"[:2000])
            self.study.tell(trial, state=TrialState.FAIL)
            print(f"automl: trial {trial.number} failed: {exc}", file=sys.stderr)
            self._stop_if_nothing_works(exc)
        else:
            self.study.tell(trial, value)
        finally:
            with self._lock:
                self._inflight.pop(trial.number, None)
                if self.on_trial_done is not None:
                    self.on_trial_done(self.study)

    def _stop_if_nothing_works(self, exc: Exception) -> None:
        """Every trial of the study failed so far, and enough of them to rule out bad luck: stop."""
        trials = counted_trials(self.study)
        failed = [t for t in trials if t.state == TrialState.FAIL]
        if len(failed) == len(trials) and len(failed) >= max(FAIL_FAST, self.workers):
            self.stop(f"the first {len(failed)} trials all failed (last: {str(exc).splitlines()[0][:300]})")

    def _heartbeat(self) -> None:
        with self._lock:
            trials = list(self._inflight.values())
            self.study.set_user_attr("time_spent_s", round(self.time_spent(), 3))
        now = time.time()
        for trial in trials:
            try:
                trial.set_user_attr("heartbeat", now)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass  # it finished meanwhile
