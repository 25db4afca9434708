"""What a running search reports: trials done / running / planned, the best value so far and the time left.

A watcher thread refreshes the AutoML job's record (``metrics``) and appends one line to the job's log whenever
the counts or the best value change, so ``status``, ``show`` and ``logs`` of the AutoML job can be followed
while the trials run (the record's final metrics replace these when the search ends).
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from ..records import JobRecord, JobStore
from .results import best_trial
from .study import counted_trials

REFRESH_S = 2.0
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def search_progress(study: optuna.Study, metric: str, max_trials: int, max_time_s: float | None,
                    elapsed_s: float) -> dict[str, Any]:
    """Counts over the trials that spend the budget, the best value and an estimate of the seconds left
    (elapsed time per finished trial × trials left, capped by the time budget; null before a trial ends)."""
    counted = counted_trials(study)
    done = sum(t.state in _FINISHED for t in counted)
    running = sum(t.state == TrialState.RUNNING for t in counted)
    best = best_trial(study)
    left = max(max_trials - done, 0)
    eta = elapsed_s / done * left if done else None
    if max_time_s is not None:
        budget_left = max(max_time_s - elapsed_s, 0.0)
        eta = budget_left if eta is None else min(eta, budget_left)
    return {"trials_done": done, "trials_running": running, "trials_planned": max_trials,
            f"best_{metric}": best.value if best is not None else None, "best_trial": best.number if best else None,
            "elapsed_s": round(elapsed_s, 1), "eta_s": round(eta, 1) if eta is not None else None}


class ProgressWatcher:
    """Refreshes a running AutoML job's record and log every ``REFRESH_S`` seconds until stopped."""

    def __init__(self, store: JobStore, record: JobRecord, study: optuna.Study, metric: str, max_trials: int,
                 max_time_s: float | None) -> None:
        self.store, self.job_id, self.log_path = store, record.id, Path(record.log_path)
        self.study, self.metric, self.max_trials, self.max_time_s = study, metric, max_trials, max_time_s
        self._start = time.monotonic()
        self._stop = threading.Event()
        self._last: tuple[Any, ...] | None = None
        self._thread = threading.Thread(target=self._loop, name="automl-progress", daemon=True)

    def __enter__(self) -> ProgressWatcher:
        self.refresh()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(REFRESH_S):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - a failed refresh must never stop the search; the next one retries
                continue

    def refresh(self) -> dict[str, Any]:
        progress = search_progress(self.study, self.metric, self.max_trials, self.max_time_s,
                                   time.monotonic() - self._start)

        def update(r: JobRecord) -> None:
            if r.status == "running":
                r.metrics = dict(progress)

        self.store.update(self.job_id, update)
        key = (progress["trials_done"], progress["trials_running"], progress[f"best_{self.metric}"])
        if key != self._last:
            self._last = key
            best, eta, trial = progress[f"best_{self.metric}"], progress["eta_s"], progress["best_trial"]
            best_text = "-" if best is None else f"{best:g} (trial {trial})"
            eta_text = "?" if eta is None else f"{eta:.0f} s"
            line = (f"{datetime.now(timezone.utc).isoformat(timespec='seconds')} AutoML: "
                    f"{progress['trials_done']}/{self.max_trials} trials done, {progress['trials_running']} running, "
                    f"best {self.metric} {best_text}, about {eta_text} left\n")
            with open(self.log_path, "a", encoding="utf-8") as log:
                log.write(line)
        return progress
