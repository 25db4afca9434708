"""What a study leaves in the AutoML job folder: ``best_rec.json``, ``trials.csv`` and two plots.

``best_rec.json`` names the best COMPLETE trial (ties: the earlier trial), its configuration, child job, the host
that trained it, metric value, the epoch that reached it and that epoch's checkpoint (a path on that host). Both
files hold only what the study holds, so every process of a shared study writes the same ones once it ends.
``trials.csv`` has one row per trial (every state), with the sampled value of each searched key (blank when a
condition left it out).
"""
from __future__ import annotations

import csv
import io
import math
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from optical_inspection.io_utils import atomic_path, write_text_atomic
from optical_inspection.redaction import redact

from .handoff import BEST_REC
from .space import CDF_SUFFIX, SearchSpace
from .study import retried_numbers
from optical_inspection.strict_json import dumps

TRIALS_CSV = "trials.csv"
METRIC_PLOT = "metric_vs_trial.png"
IMPORTANCE_PLOT = "param_importance.png"
_TRIAL_FIELDS = ("trial", "state", "value", "best_epoch", "epochs_trained", "job_id", "started", "finished",
                 "duration_s", "retry_of", "note")


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best COMPLETE trial (ties: the lowest number), or None."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None and math.isfinite(t.value)]
    if not done:
        return None
    sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
    return min(done, key=lambda t: (sign * float(t.value or 0.0), t.number))  # value: finite, checked above


def state_name(trial: FrozenTrial, retried: set[int]) -> str:
    """The trial's state; INTERRUPTED for a failed trial whose configuration was queued again."""
    return "INTERRUPTED" if trial.state == TrialState.FAIL and trial.number in retried else trial.state.name


def state_counts(study: optuna.Study) -> dict[str, int]:
    counts: dict[str, int] = {}
    retried = retried_numbers(study)
    for trial in study.get_trials(deepcopy=False):
        name = state_name(trial, retried).lower()
        counts[name] = counts.get(name, 0) + 1
    return counts


def best_record(study: optuna.Study, metric: str, algorithm: str) -> dict[str, Any] | None:
    """The content of best_rec.json, or None while no trial has completed."""
    best = best_trial(study)
    if best is None:
        return None
    attrs = best.user_attrs
    return {
        "study_name": study.study_name,
        "algorithm": algorithm,
        "metric": metric,
        "direction": study.direction.name.lower(),
        "value": best.value,
        "trial": best.number,
        "job_id": attrs.get("job_id"),
        "job_dir": attrs.get("job_dir"),
        "host": (attrs.get("owner") or {}).get("host"),
        "params": attrs.get("config", {}),
        "best_epoch": attrs.get("best_epoch"),
        "checkpoint": attrs.get("checkpoint"),
        "epochs_trained": attrs.get("epochs_trained"),
        "trials": state_counts(study),
    }


def trial_rows(study: optuna.Study, space: SearchSpace) -> tuple[list[str], list[dict[str, Any]]]:
    """Header and one row per trial, in trial order."""
    keys = [p.key for p in space.params]
    rows = []
    retried = retried_numbers(study)
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        start, end = t.datetime_start, t.datetime_complete
        row: dict[str, Any] = {
            "trial": t.number,
            "state": state_name(t, retried),
            "value": t.value if t.value is not None else _last_intermediate(t),
            "best_epoch": attrs.get("best_epoch"),
            "epochs_trained": attrs.get("epochs_trained"),
            "job_id": attrs.get("job_id"),
            "started": start.isoformat(timespec="milliseconds") if start else None,
            "finished": end.isoformat(timespec="milliseconds") if end else None,
            "duration_s": round((end - start).total_seconds(), 2) if start and end else None,
            "retry_of": attrs.get("retry_of"),
            "note": attrs.get("failure") or attrs.get("stopped") or "",
        }
        config = attrs.get("config", {})
        row.update({k: config.get(k) for k in keys})
        rows.append(row)
    return [*_TRIAL_FIELDS, *keys], rows


def _last_intermediate(trial: FrozenTrial) -> float | None:
    if not trial.intermediate_values:
        return None
    return trial.intermediate_values[max(trial.intermediate_values)]


def write_tables(study: optuna.Study, out_dir: Path, space: SearchSpace, metric: str, algorithm: str
                 ) -> dict[str, str]:
    """Write trials.csv and (once a trial has completed) best_rec.json; return the written paths."""
    out_dir = Path(out_dir)
    header, rows = trial_rows(study, space)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header)
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    written = {"trials_csv": str(write_text_atomic(out_dir / TRIALS_CSV, redact(buf.getvalue())))}
    record = best_record(study, metric, algorithm)
    if record is not None:
        text = redact(dumps(record, indent=2, default=str)) + "\n"
        written["best_rec"] = str(write_text_atomic(out_dir / BEST_REC, text))
    return written


def write_plots(study: optuna.Study, out_dir: Path, metric: str) -> dict[str, str]:
    """metric_vs_trial.png always (when any trial has a value); param_importance.png with >= 2 complete trials."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    written: dict[str, str] = {}
    trials = study.get_trials(deepcopy=False)
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    complete = [(t.number, t.value) for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    pruned = [(t.number, _last_intermediate(t)) for t in trials
              if t.state == TrialState.PRUNED and _last_intermediate(t) is not None]
    if complete or pruned:
        fig, ax = plt.subplots(figsize=(7, 4))
        if complete:
            xs, ys = zip(*complete)
            ax.plot(xs, ys, "o", color="tab:blue", label="complete")
            best_so_far = [max(ys[: i + 1]) if maximize else min(ys[: i + 1]) for i in range(len(ys))]
            ax.step(xs, best_so_far, where="post", color="tab:green", label="best so far")
        if pruned:
            xs, ys = zip(*pruned)
            ax.plot(xs, ys, "x", color="tab:gray", label="pruned / stopped (last epoch)")
        ax.set_xlabel("trial")
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} per trial ({'higher' if maximize else 'lower'} is better)")
        ax.legend(loc="best")
        ax.grid(alpha=0.3)
        written["metric_plot"] = _save(fig, out_dir / METRIC_PLOT)
        plt.close(fig)
    importances = param_importances(study)
    if importances:
        names = list(importances)[::-1]
        fig, ax = plt.subplots(figsize=(11, 0.35 * len(names) + 1.5))
        ax.barh(names, [importances[n] for n in names], color="tab:blue")
        ax.set_xlabel("importance (PED-ANOVA, normalised)")
        ax.set_title(f"Parameter importance for {metric} ({len(study.get_trials(states=(TrialState.COMPLETE,)))} "
                     "complete trials)", loc="left")
        fig.tight_layout()
        written["importance_plot"] = _save(fig, out_dir / IMPORTANCE_PLOT)
        plt.close(fig)
    return written


def param_importances(study: optuna.Study) -> dict[str, float]:
    """PED-ANOVA importances (Optuna's default; no scikit-learn needed) of the parameters every complete
    trial has; {} with fewer than 2 complete trials."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "fewer than 2 trials in a regime": expected when small
            raw = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
    except (RuntimeError, ValueError):  # e.g. no parameter shared by every complete trial
        return {}
    return {name.removesuffix(CDF_SUFFIX): value for name, value in raw.items()}


def _save(fig: Any, path: Path) -> str:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return str(path)
