"""AutoML job records without training: bad settings end the job with a clear error; hand-over to child jobs."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from runners.automl.handoff import automl_checkpoint, continue_study, default_storage
from runners.automl.job import run_automl_job
from runners.checkpoints import CheckpointRequest
from runners.errors import NotFoundError, RequestError
from runners.records import JobStore, is_automl_job


def automl_job(tmp_path: Path, automl: dict) -> tuple[JobStore, str]:
    store = JobStore(tmp_path / "jobs")
    record = store.create("train", None)
    Path(record.spec_path).write_text(yaml.safe_dump({"results_dir": record.results_dir, "automl": automl}))
    store.update(record.id, lambda r: setattr(r, "automl_policy", {"value": "on", "reason": "test"}))
    return store, record.id


def test_bad_search_settings_end_the_job_with_every_problem(tmp_path):
    store, job_id = automl_job(tmp_path, {"parameters": ["train.optim.lr", "model.nope"],
                                          "parameter_ranges": {"train.optim.lr": {"low": 0.5, "high": 0.1}}})
    with pytest.raises(RequestError) as err:
        run_automl_job(store, job_id)
    assert len(err.value.problems) == 2
    record = store.load(job_id)
    assert (record.status, record.exit_code) == ("failure", 2)
    assert "model.nope" in record.message and "low 0.5 must be below high 0.1" in record.message


def test_a_study_is_not_continued_with_other_settings(tmp_path):
    store, first = automl_job(tmp_path, {"parameters": ["train.optim.lr"], "max_trials": 1})
    storage = default_storage(store.load(first).results_dir)
    from runners.automl.settings import read_settings
    from runners.automl.study import open_study
    from runners.skill_info import load_skill_info

    settings = read_settings({"automl": {"metric": "val_auroc"}}, load_skill_info())
    open_study(settings, Path(store.load(first).results_dir), first, 10, {"metric": "val_auroc"})
    store2, second = automl_job(tmp_path, {"parameters": ["train.optim.lr"], "storage": storage,
                                           "study_name": first})
    with pytest.raises(RequestError, match="created with other settings"):
        run_automl_job(store2, second)
    assert store2.load(second).status == "failure"


def test_handoff_needs_a_best_rec_and_continues_the_same_study(tmp_path):
    store, job_id = automl_job(tmp_path, {})
    record = store.load(job_id)
    assert is_automl_job(record)
    with pytest.raises(NotFoundError, match="no trial has completed yet"):
        automl_checkpoint(record, CheckpointRequest("best"))
    spec = yaml.safe_load(Path(record.spec_path).read_text())
    values = {k: v for k, v, _ in continue_study(record, spec)}
    assert values == {"automl.storage": default_storage(record.results_dir), "automl.study_name": job_id}
    Path(record.results_dir).mkdir(parents=True, exist_ok=True)
    (Path(record.results_dir) / "best_rec.json").write_text(json.dumps({"checkpoint": str(tmp_path / "gone.pth")}))
    with pytest.raises(NotFoundError, match="does not exist"):
        automl_checkpoint(record, CheckpointRequest("best"))


def test_automl_never_imports_torch(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys, optuna\n"
        "import runners.automl.__main__, runners.automl.job\n"
        "from runners.automl.results import write_plots\n"
        "s = optuna.create_study(direction='maximize')\n"
        "s.optimize(lambda t: t.suggest_float('x', 0, 1) + t.suggest_int('n', 1, 4), n_trials=4)\n"
        f"write_plots(s, __import__('pathlib').Path({str(tmp_path)!r}), 'val_acc')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'pytorch_lightning', 'lightning')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    assert (tmp_path / "param_importance.png").is_file()


def test_failed_trials_are_recorded_and_a_study_without_a_complete_trial_fails(tmp_path, monkeypatch):
    db = tmp_path / "elsewhere.db"
    monkeypatch.setenv("OI_TEST_OPTUNA_STORAGE", f"sqlite:///{db}")
    store, job_id = automl_job(tmp_path, {"parameters": ["train.optim.lr"], "max_trials": 2, "workers": 2,
                                          "storage": "${oc.env:OI_TEST_OPTUNA_STORAGE}"})
    record = run_automl_job(store, job_id)        # no dataset in the spec: every trial's spec is invalid
    assert record.status == "failure" and "no trial completed" in record.message
    assert db.is_file()                            # the storage came from the environment reference
    assert record.decisions["automl"]["storage"] == f"sqlite:///{db}"
    with open(Path(record.results_dir) / "trials.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["state"] for r in rows] == ["FAIL", "FAIL"]
    assert all("dataset.train_dataset.csv_path: missing required value" in r["note"] for r in rows)
    kids = [r for r in store.list() if r.parent_id == job_id]
    assert len(kids) == 2 and all((k.status, k.exit_code) == ("failure", 2) for k in kids)


def test_continuing_a_dead_study_stops_the_trial_job_no_trial_names(tmp_path):
    """The AutoML process died after recording a trial's job but before the trial named it: the continuing job
    cancels that job instead of leaving it pending for ever; a job a trial names and other parents' jobs stay."""
    import optuna

    from runners.automl.job import _stop_unnamed_children

    store, dead = automl_job(tmp_path, {})
    store.update(dead, lambda r: setattr(r, "status", "failure"))
    unnamed = store.create("train", dead)
    named = store.create("train", dead)
    elsewhere = store.create("train", None)
    continuing = store.create("train", dead)
    study = optuna.create_study()
    study.enqueue_trial({}, user_attrs={"job_id": named.id})
    study.ask()
    _stop_unnamed_children(store, continuing, study)
    assert store.load(unnamed.id).status == "cancelled"
    assert store.load(named.id).status == "pending" and store.load(elsewhere.id).status == "pending"
    assert store.load(continuing.id).status == "pending"
