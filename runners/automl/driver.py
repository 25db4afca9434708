"""Run a study: N worker threads ask Optuna for trials, sample the search space and call the objective.

The objective (``objective(trial, params, stop_event) -> value``) trains one configuration, may report
intermediate values and raise ``optuna.TrialPruned``; it raises :class:`TrialStopped` when ``stop_event`` is
set. Outcomes: a value → COMPLETE; pruned → PRUNED; any other exception → FAIL (recorded in the trial's
``failure`` attribute; the study goes on). When the time budget is spent the running trials are stopped and
recorded PRUNED; when the driver is interrupted (SIGINT/SIGTERM) they are failed and queued again, so the
next run of the same study re-runs them without spending budget.

Shared studies (several processes, e.g. on several machines, one storage): ``max_trials`` counts the trials of
the whole study, asked under the study's cross-process lock. A process whose budget is spent waits until no
counted trial of the study is running before it ends, so its final tables see the finished study; meanwhile
it re-queues the trial of any process that died (same host: its pid is gone; other hosts: no heartbeat for
``STALE_AFTER_S``), and runs it. ``request_stop`` (``python -m runners.automl stop``) ends every process of a study.
"""
from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import Any, Callable, ContextManager

import optuna
from optuna.trial import TrialState

from .space import SearchSpace
from .study import counted_trials, owner_record, requeue

HEARTBEAT_S = 30.0
WAIT_S = 2.0                  # how often a process at the budget looks whether the study's last trials ended
STOP_ATTR = "stop_requested"  # study user attribute: every process of the study stops when it is set
STOP_TIME = "time budget spent"
STOP_INTERRUPT = "interrupted"
FAIL_FAST = 3  # stop when the first max(FAIL_FAST, workers) trials of a study all failed: the setup is broken

Objective = Callable[[optuna.Trial, dict[str, Any], threading.Event], float]


def request_stop(study: optuna.Study, reason: str) -> None:
    """Ask every process of a (shared) study running now to stop within seconds: running trials end PRUNED
    ("stopped"), each process writes its tables and its job ends; a worker started later runs as usual."""
    study.set_user_attr(STOP_ATTR, {"reason": reason or "stop requested", "time": time.time()})


class TrialStopped(Exception):
    """Raised by an objective that stopped its training because the driver asked it to."""


class StudyDriver:
    """Runs trials of ``study`` until ``max_trials`` are spent, time runs out or it is interrupted."""

    def __init__(self, study: optuna.Study, space: SearchSpace, objective: Objective, *, base_spec: dict[str, Any],
                 max_trials: int, workers: int, max_time_s: float | None = None,
                 on_trial_done: Callable[[optuna.Study], None] | None = None,
                 study_lock: Callable[[], ContextManager[None]] | None = None,
                 recover: Callable[[optuna.Study], Any] | None = None) -> None:
        self.study = study
        self.space = space
        self.objective = objective
        self.base_spec = base_spec
        self.max_trials = max_trials
        self.workers = workers
        self.max_time_s = max_time_s
        self.on_trial_done = on_trial_done
        self.study_lock = study_lock or contextlib.nullcontext
        self.recover = recover
        self.stop_event = threading.Event()
        self.stop_reason: str | None = None
        self._lock = threading.Lock()
        self._inflight: dict[int, optuna.Trial] = {}
        self._owner = owner_record()
        self._errors: list[BaseException] = []
        self._spent_before = float(study.user_attrs.get("time_spent_s", 0.0))
        self._started = time.monotonic()
        self._started_at = time.time()

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
        last_beat = last_look = 0.0
        while any(t.is_alive() for t in threads):
            for thread in threads:
                thread.join(timeout=0.5)
            if self.time_left() <= 0:
                self.stop(STOP_TIME)
            if time.monotonic() - last_beat >= HEARTBEAT_S:
                last_beat = time.monotonic()
                self._heartbeat()
            if time.monotonic() - last_look >= WAIT_S:
                last_look = time.monotonic()
                self._stop_if_requested()
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
        """The next trial, asked under the study lock; None when stopped or when the study's budget is spent
        and none of its counted trials is still running (a dead process's trial is re-queued first)."""
        while True:
            with self._lock, self.study_lock():
                if self.stop_event.is_set() or self.time_left() <= 0:
                    return None
                if self.recover is not None:
                    self.recover(self.study)
                counted = counted_trials(self.study)
                if len(counted) < self.max_trials:
                    trial = self.study.ask()
                    trial.set_user_attr("owner", self._owner)
                    trial.set_user_attr("heartbeat", time.time())
                    self._inflight[trial.number] = trial
                    return trial
                if not any(t.state == TrialState.RUNNING for t in counted):
                    return None
            if self.stop_event.wait(WAIT_S):
                return None

    def _run_trial(self, trial: optuna.Trial) -> None:
        try:
            params = self.space.sample(trial, self.base_spec)
            trial.set_user_attr("config", params)
            value = self.objective(trial, params, self.stop_event)
        except optuna.TrialPruned:
            self._tell(trial, state=TrialState.PRUNED)
        except TrialStopped:
            if self.stop_reason == STOP_INTERRUPT:
                self._tell(trial, requeue_reason="the AutoML run was interrupted")
            else:
                self._tell(trial, state=TrialState.PRUNED, attrs={"stopped": self.stop_reason or "stopped"})
        except Exception as exc:  # noqa: BLE001 - a failed trial is recorded and the study goes on
            self._tell(trial, state=TrialState.FAIL, attrs={"failure": f"{type(exc).__name__}: {exc}"[:2000]})
            print(f"automl: trial {trial.number} failed: {exc}", file=sys.stderr)
            self._stop_if_nothing_works(exc)
        else:
            self._tell(trial, value)
        finally:
            with self._lock:
                self._inflight.pop(trial.number, None)
                if self.on_trial_done is not None:
                    self.on_trial_done(self.study)

    def _tell(self, trial: optuna.Trial, value: float | None = None, *, state: TrialState | None = None,
              attrs: dict[str, Any] | None = None, requeue_reason: str | None = None) -> None:
        """Record the trial's end; a trial another process took over as dead (no heartbeat reached it in
        STALE_AFTER_S) is already re-queued there: its result here is dropped with a message."""
        try:
            for key, item in (attrs or {}).items():
                trial.set_user_attr(key, item)
            if requeue_reason is not None:
                with self.study_lock():
                    if requeue(self.study, trial.number, trial.params, reason=requeue_reason):
                        return
                raise optuna.exceptions.UpdateFinishedTrialError()
            if state is None:
                self.study.tell(trial, value)
            else:
                self.study.tell(trial, state=state)
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
            print(f"automl: trial {trial.number} was re-queued by another AutoML process (it saw no heartbeat); "
                  "this process's result for it is dropped", file=sys.stderr)

    def _stop_if_requested(self) -> None:
        """Stop like a spent time budget when someone asked the whole study to stop."""
        request = self.study.user_attrs.get(STOP_ATTR)
        if isinstance(request, dict) and request.get("time", 0) >= self._started_at:
            self.stop(f"stop requested: {request.get('reason')}")

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
