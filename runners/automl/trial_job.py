"""One trial = one child train job of the AutoML job, launched the way the runner launches jobs.

The child gets its own job record (parent id = the AutoML job), ``spec.yaml`` (the AutoML job's spec with the
trial's values, a checkpoint and a validation every epoch, its own results folder) and ``job.log``. While it
trains, its ``status.json`` per-epoch records feed the monitored metric to Optuna (step = epochs completed), so
hyperband/asha can prune it. When it ends, the runner's own ``best`` rule picks the best epoch's checkpoint
(highest/lowest recorded metric, never the file name and never simply the last epoch): that epoch's metric is
the trial's value.
"""
from __future__ import annotations

import contextlib
import copy
import os
import subprocess
import threading
from pathlib import Path
from typing import Any, Iterator

import optuna
import yaml

from optical_inspection.dotted import set_dotted
from optical_inspection.io_utils import write_text_atomic
from optical_inspection.status import read_status

from ..checkpoints import CheckpointRequest, choose, epoch_metrics, list_checkpoints
from ..launch import env_refs, finish, process_start, set_supervisor, spawn, stop, trainer_command
from ..parents import action_results
from ..records import TERMINAL, JobRecord, JobStore, now_iso
from .driver import TrialStopped
from .settings import AutoMLSettings

ADOPT_ATTR = "adopt_job"  # a re-queued trial whose child job had already finished training
# Values every trial needs: a metric and a checkpoint after every epoch, and a fresh start in its own folder.
FORCED = {
    "train.checkpoint_interval": 1,
    "train.checkpoint_interval_unit": "epoch",
    "train.validation_interval": 1,
    "train.resume_training_checkpoint_path": None,
    "train.results_dir": None,
}


class TrialFailed(Exception):
    """The child train job failed or left no usable metric/checkpoint."""


class TrainTrialObjective:
    """The study objective: train ``params`` as a child job and return its best epoch's metric."""

    def __init__(self, store: JobStore, automl: JobRecord, base_spec: dict[str, Any], settings: AutoMLSettings,
                 poll_s: float = 1.0) -> None:
        self.store = store
        self.automl = automl
        self.base_spec = base_spec
        self.settings = settings
        self.poll_s = poll_s
        cores = os.cpu_count() or 1
        self.threads = str(max(1, cores // max(1, settings.workers)))
        self.gpus = GpuSlots(base_spec)
        self.storage_vars = env_refs(str((base_spec.get("automl") or {}).get("storage") or ""))

    def __call__(self, trial: optuna.Trial, params: dict[str, Any], stop: threading.Event) -> float:
        if trial.user_attrs.get(ADOPT_ATTR):
            return self.adopt(trial, trial.user_attrs[ADOPT_ATTR])
        with self.gpus.slot() as gpu:
            child = self.create_child(trial.number, params, gpu)
            trial.set_user_attr("job_id", child.id)
            trial.set_user_attr("job_dir", child.job_dir)
            proc = self.launch(child)
            try:
                return self.watch(trial, child, proc, stop)
            finally:
                if proc.poll() is None:  # an unexpected error in the watcher: never leave a trainer behind
                    self.end(child, proc, "stopped: the AutoML trial watcher failed")

    # ------------------------------------------------------------ child job

    def trial_spec(self, child: JobRecord, params: dict[str, Any], gpu: int | None = None) -> dict[str, Any]:
        """The child's spec: no ``automl`` section (a trial is a plain train job; the trainer never sees the
        storage URL), the trial's values and FORCED."""
        spec = copy.deepcopy(self.base_spec)
        spec.pop("automl", None)
        for key, value in {**params, **FORCED, "results_dir": child.results_dir}.items():
            set_dotted(spec, key, value)
        if gpu is not None:
            set_dotted(spec, "train.gpu_ids", [gpu])
        return spec

    def create_child(self, number: int, params: dict[str, Any], gpu: int | None = None) -> JobRecord:
        """Record the child job and write its spec; a spec the trainer would reject fails the trial here."""
        from optical_inspection.errors import SpecError
        from optical_inspection.spec import validate_dict

        child = self.store.create("train", self.automl.id)
        spec = self.trial_spec(child, params, gpu)
        try:
            validate_dict(copy.deepcopy(spec), "train")
        except SpecError as exc:
            message = str(exc)
            self.store.update(child.id, lambda r: _failed(r, message, 2))
            raise TrialFailed(f"trial {number}: the sampled spec is invalid: {exc}") from None
        write_text_atomic(child.spec_path, yaml.safe_dump(spec, sort_keys=False, default_flow_style=False))

        def planned(r: JobRecord) -> None:
            r.automl_policy = {"value": "off", "reason": f"trial {number} of AutoML job {self.automl.id}"}
            r.decisions = {
                "automl": {"parent_job": self.automl.id, "trial": number, "params": params,
                           "forced": FORCED, "metric": self.settings.metric,
                           "num_epochs": (spec.get("train") or {}).get("num_epochs")},
                "results_folder": action_results(spec, "train"),
            }
            set_supervisor(r, os.getpid())

        return self.store.update(child.id, planned)

    def launch(self, child: JobRecord) -> subprocess.Popen:
        """Start the trainer in its own process group; torch threads shared out between the workers."""
        proc = spawn(trainer_command(child), child.log_path, child.spec_path,
                     extra_env={"OMP_NUM_THREADS": self.threads}, drop_env=self.storage_vars)  # no DB URL

        def running(r: JobRecord) -> None:
            r.status, r.started, r.pid, r.pid_start = "running", now_iso(), proc.pid, process_start(proc.pid)

        self.store.update(child.id, running)
        return proc

    def end(self, child: JobRecord, proc: subprocess.Popen, message: str) -> None:
        """Stop the trainer (SIGTERM to its group, SIGKILL after a grace period) and record it cancelled."""
        code = stop(proc)
        finish(self.store, child.id, code, cancelled=True)
        self.store.update(child.id, lambda r: setattr(r, "message", message))

    def adopt(self, trial: optuna.Trial, job_id: str) -> float:
        """Take the result of a child job that finished training for an interrupted trial of this config."""
        child = self.store.load(job_id)
        if child.status not in TERMINAL:
            child = finish(self.store, job_id, 0)
        trial.set_user_attr("job_id", child.id)
        trial.set_user_attr("job_dir", child.job_dir)
        folder = Path(child.decisions.get("results_folder", child.results_dir))
        epochs = epoch_metrics(read_status(folder / "status.json"))
        trial.set_user_attr("epochs_trained", len(epochs))
        return self.best_epoch(trial, child, folder, epochs)

    # ------------------------------------------------------------ watching

    def watch(self, trial: optuna.Trial, child: JobRecord, proc: subprocess.Popen, stop: threading.Event) -> float:
        folder = Path(child.decisions["results_folder"])
        last = child.decisions["automl"]["num_epochs"]
        metric = self.settings.metric
        reported: set[int] = set()
        while True:
            code = proc.poll()
            epochs = epoch_metrics(read_status(folder / "status.json"))
            for epoch in sorted(e for e in epochs if e not in reported and metric in epochs[e]):
                reported.add(epoch)
                trial.report(epochs[epoch][metric], epoch + 1)
                # the last epoch is trained already: never prune there (it would only throw the result away)
                if code is None and epoch + 1 != last and trial.should_prune():
                    self.end(child, proc, f"pruned by AutoML ({self.settings.algorithm}) after epoch {epoch + 1}")
                    trial.set_user_attr("epochs_trained", epoch + 1)
                    raise optuna.TrialPruned(f"pruned after epoch {epoch + 1}")
            if code is not None:
                break
            if stop.wait(self.poll_s):
                self.end(child, proc, "stopped by AutoML (time budget or interruption)")
                raise TrialStopped()
        record = finish(self.store, child.id, code)
        trial.set_user_attr("epochs_trained", len(epochs))
        if code != 0:
            raise TrialFailed(f"child job {child.id} failed (exit {code}): {record.message} (log: {child.log_path})")
        return self.best_epoch(trial, child, folder, epochs)

    def best_epoch(self, trial: optuna.Trial, child: JobRecord, folder: Path,
                   epochs: dict[int, dict[str, float]]) -> float:
        """The best epoch's metric; its checkpoint and number (counted from 1) go to the trial's attributes."""
        metric, direction = self.settings.metric, self.settings.direction
        if not any(metric in m for m in epochs.values()):
            raise TrialFailed(f"child job {child.id} finished without recording {metric} in {folder}/status.json")
        chosen, _ = choose(list_checkpoints(folder, epochs), CheckpointRequest("best"), metric, direction,
                           f"trial {trial.number} (job {child.id})")
        assert chosen.epoch is not None
        trial.set_user_attr("best_epoch", chosen.epoch + 1)
        trial.set_user_attr("checkpoint", str(chosen.path))
        def keep(r: JobRecord) -> None:
            r.artifacts.setdefault("best_checkpoint", str(chosen.path))

        self.store.update(child.id, keep)
        return float(chosen.metrics[metric])


class GpuSlots:
    """Spreads concurrent trials over the spec's ``train.gpu_ids`` (one GPU per trial, the least busy first)
    when each trial uses one GPU and several are listed; otherwise every trial keeps the spec's devices."""

    def __init__(self, base_spec: dict[str, Any]) -> None:
        train = base_spec.get("train") or {}
        ids = train.get("gpu_ids") or []
        spread = train.get("accelerator", "auto") != "cpu" and train.get("num_gpus", 1) == 1 and len(ids) > 1
        self.busy: dict[int, int] = {int(i): 0 for i in ids} if spread else {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def slot(self) -> Iterator[int | None]:
        if not self.busy:
            yield None
            return
        with self._lock:
            gpu = min(self.busy, key=lambda i: self.busy[i])
            self.busy[gpu] += 1
        try:
            yield gpu
        finally:
            with self._lock:
                self.busy[gpu] -= 1


def _failed(record: JobRecord, message: str, code: int) -> None:
    record.status, record.finished, record.message, record.exit_code = "failure", now_iso(), message, code

