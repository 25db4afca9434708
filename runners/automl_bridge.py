"""Hand-over point from the runner to AutoML for train jobs whose automl_policy is on.

The runner has already created the job (pending record, ``spec.yaml`` written with every resolved value, the
decisions recorded); AutoML takes it from there and must leave the record in a terminal state.
"""
from __future__ import annotations

import importlib.util

from .errors import RunnerError
from .records import JobRecord, JobStore, now_iso


class AutoMLUnavailable(RunnerError):
    """AutoML was asked for (policy on) but Optuna is not installed. Exit code 1."""


def launch_automl(store: JobStore, record: JobRecord, detach: bool = False) -> JobRecord:
    """Run the AutoML search for ``record`` (a train job) and return its final (or, detached, current) record."""
    if importlib.util.find_spec("optuna") is None:  # the optional `automl` extra
        message = ("AutoML needs Optuna, which is not installed: pip install 'optical-inspection[automl]'. "
                   "Or pass --automl-policy off (or say 'turn off AutoML') to run one plain training job.")

        def fail(r: JobRecord) -> None:
            r.status, r.finished, r.exit_code, r.message = "failure", now_iso(), AutoMLUnavailable.exit_code, message

        store.update(record.id, fail)
        raise AutoMLUnavailable(message)
    from .automl.job import launch

    return launch(store, record, detach=detach)
