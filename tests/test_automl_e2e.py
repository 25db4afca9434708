"""AutoML through the runner's front door on a tiny generated dataset: parallel trials as child train jobs, the
best epoch's checkpoint handed to evaluate, and a kill -9 + restart that continues the same study."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from helpers import wait_until
from optical_inspection.status import read_status
from splits import automl_splits

REPO = Path(__file__).resolve().parents[1]
OVERRIDES = {"epochs": 2, "image_size": 32, "batch_size": 8, "dataset.workers": 0, "train.progress_bar": False,
             "automl.max_trials": 6, "automl.workers": 2, "automl.seed": 11}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return automl_splits(tmp_path_factory.mktemp("automl_data"))


def runner_args(jobs: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "runners", *args, "--jobs-root", str(jobs)]


def runner(jobs: Path, *args: str, timeout: float = 300) -> dict:
    proc = subprocess.run(runner_args(jobs, *args), cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    return json.loads(proc.stdout)


def train_args(data: Path, **extra) -> list[str]:
    return ["run", "train", "--data", f"train_datasets={data / 'train'}", "--data", f"eval_dataset={data / 'val'}",
            "--overrides", json.dumps({**OVERRIDES, **extra})]


def children(jobs: Path, parent_ids: set[str]) -> list[dict]:
    """The trial jobs (plain train jobs) of the given AutoML jobs."""
    records = [json.loads(p.read_text()) for p in jobs.glob("*/job.json")]
    return [r for r in records if r["parent_id"] in parent_ids and r["automl_policy"].get("value") == "off"]


def two_running(jobs: Path, parent_id: str) -> list[str] | None:
    """The statuses of the AutoML job's trial jobs once two of them run (None before)."""
    statuses = [k["status"] for k in children(jobs, {parent_id})]
    return statuses if statuses.count("running") == 2 else None


def trial_rows(results_dir: str) -> list[dict]:
    with open(Path(results_dir) / "trials.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_policy_on_runs_parallel_trials_and_evaluate_takes_the_best_epoch(data, tmp_path):
    jobs = tmp_path / "jobs"
    automl = runner(jobs, *train_args(data))
    assert automl["automl_policy"]["value"] == "on" and automl["status"] == "success", automl["message"]
    results = Path(automl["results_dir"])
    for name in ("best_rec.json", "trials.csv", "metric_vs_trial.png", "param_importance.png", "study.db"):
        assert (results / name).is_file(), name

    rows = trial_rows(automl["results_dir"])
    assert [r["state"] for r in rows] == ["COMPLETE"] * 6
    spans = [(datetime.fromisoformat(r["started"]), datetime.fromisoformat(r["finished"])) for r in rows]
    assert any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1:])  # 2 at once

    kids = children(jobs, {automl["id"]})
    assert len(kids) == 6 and all(k["status"] == "success" and k["action"] == "train" for k in kids)
    spec = yaml.safe_load(Path(kids[0]["spec_path"]).read_text())
    assert spec["train"]["checkpoint_interval"] == 1 and spec["results_dir"] == kids[0]["results_dir"]

    best = json.loads((results / "best_rec.json").read_text())
    assert best["value"] == max(float(r["value"]) for r in rows) and best["epochs_trained"] == 2
    child = next(k for k in kids if k["id"] == best["job_id"])
    epochs = {r["epoch"]: r["kpi"]["val_acc"] for r in read_status(Path(child["decisions"]["results_folder"])
                                                                    / "status.json") if "epoch" in r}
    best_epoch = max(sorted(epochs), key=lambda e: epochs[e])      # earliest epoch with the best val_acc
    assert best["best_epoch"] == best_epoch + 1 and best["value"] == epochs[best_epoch]
    assert Path(best["checkpoint"]).name.startswith(f"model_epoch_{best_epoch:03d}_")
    assert {k: v for k, v in best["params"].items() if k.startswith("model.")}  # base_channels/shift under Compact
    assert "model.margin" not in best["params"]                                # dead under Compact

    evaluate = runner(jobs, "run", "evaluate", "--parent-job", automl["id"], "--data", f"eval_dataset={data / 'val'}")
    assert evaluate["status"] == "success", evaluate["message"]
    assert yaml.safe_load(Path(evaluate["spec_path"]).read_text())["evaluate"]["checkpoint"] == best["checkpoint"]
    assert "best_rec.json" in evaluate["decisions"]["parent"]["choice"]
    plan = runner(jobs, "plan", "evaluate", "--parent-job", automl["id"], "--checkpoint", "epoch=2",
                  "--data", f"eval_dataset={data / 'val'}")
    chosen = Path(plan["spec"]["evaluate"]["checkpoint"])                # epoch=N: N-th epoch of the best trial
    assert chosen.parent == Path(best["checkpoint"]).parent and chosen.name.startswith("model_epoch_001_")

    again = runner(jobs, "plan", *train_args(data)[1:])                   # its trials measured this machine's speed
    estimate = again["decisions"]["automl_estimate"]
    assert estimate["pairs_per_s_source"].startswith("measured by job oi-train-") and estimate["pairs_per_s"] > 0
    assert estimate["max_trials"] == 6 and estimate["train_pairs"] > 0 and estimate["estimated_s"] > 0


def test_kill_9_mid_study_then_restart_continues_without_rerunning_finished_trials(data, tmp_path):
    jobs = tmp_path / "jobs"
    proc = subprocess.Popen(runner_args(jobs, *train_args(data)), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    deadline = time.monotonic() + 240
    first: dict = {}
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.3)
        records = [json.loads(p.read_text()) for p in jobs.glob("*/job.json")] if jobs.is_dir() else []
        first = next((r for r in records if r.get("automl_policy", {}).get("value") == "on"), {})
        states = [k["status"] for k in children(jobs, {first["id"]})] if first else []
        if states.count("success") >= 2 and "running" in states:   # kill while a trial is training
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {k["id"] for k in children(jobs, {first["id"]}) if k["status"] == "success"}
    assert 2 <= len(done_before) < 6

    assert runner(jobs, "status", first["id"])["status"] == "failure"      # its runner is gone
    resumed = runner(jobs, "run", "train", "--parent-job", first["id"])
    assert resumed["automl_policy"]["value"] == "on" and resumed["status"] == "success", resumed["message"]
    assert first["id"] in yaml.safe_load(Path(resumed["spec_path"]).read_text())["automl"]["storage"]

    rows = trial_rows(resumed["results_dir"])
    counted = [r for r in rows if r["state"] != "INTERRUPTED"]
    assert len(counted) == 6 and all(r["state"] == "COMPLETE" for r in counted)
    assert done_before <= {r["job_id"] for r in counted}                   # finished trials kept, not re-run
    interrupted = {r["trial"]: r["job_id"] for r in rows if r["state"] == "INTERRUPTED"}
    retries = {r["retry_of"]: r["job_id"] for r in rows if r["retry_of"]}
    assert interrupted and set(interrupted) == set(retries)
    kids = children(jobs, {first["id"], resumed["id"]})
    status_of = {k["id"]: k["status"] for k in kids}
    for n, retry_job in retries.items():
        if retry_job == interrupted[n]:   # its trainer outlived the kill and finished first: adopted, not retrained
            assert status_of[retry_job] == "success"
        elif not interrupted[n]:          # killed before its job was recorded: nothing to stop, trained afresh
            assert status_of[retry_job] == "success"
        else:                             # still training at the resume: stopped, and trained again
            assert status_of[interrupted[n]] == "cancelled" and status_of[retry_job] == "success"
    assert sum(k["status"] == "success" for k in kids) == 6               # each configuration trained once to the end
    assert all(k["status"] in ("success", "cancelled") for k in kids)     # no orphan left running


def test_detached_automl_job_is_cancelled_with_its_running_trials(data, tmp_path):
    jobs = tmp_path / "jobs"
    # Trials that cannot finish before the cancel reaches them on any machine (500 epochs could, once training got
    # faster): far more epochs than fit, ended by a 5-minute cap should the cancel fail.
    started = runner(jobs, *train_args(data, **{"automl.max_trials": 2, "epochs": 1_000_000,
                                                "train.max_time_minutes": 5}), "--detach")
    assert started["status"] in ("pending", "running")
    assert wait_until(lambda: two_running(jobs, started["id"]), "the two trials to run at once",
                      interval=0.3) == ["running", "running"]
    cancelled = runner(jobs, "cancel", started["id"])
    assert cancelled["status"] == "cancelled" and f"--parent-job {started['id']}" in cancelled["message"]
    kids = children(jobs, {started["id"]})
    assert len(kids) == 2 and all(k["status"] == "cancelled" for k in kids)
    assert [r["state"] for r in trial_rows(str(jobs / started["id"] / "results"))] == ["INTERRUPTED"] * 2 + [
        "WAITING"] * 2                                                    # re-queued for a continuation


def test_a_wedged_automl_job_is_killed_with_its_trainers_and_says_how_to_continue(data, tmp_path, monkeypatch):
    """The fallback when the AutoML process cannot stop its trials itself (here: SIGSTOPped): after its grace it
    is killed, so are its trials' trainers (they run in their own sessions), and the answer says how to go on."""
    from runners import api, launch

    jobs = tmp_path / "jobs"
    started = runner(jobs, *train_args(data, **{"automl.max_trials": 2, "epochs": 1_000_000,
                                                "train.max_time_minutes": 5}), "--detach")
    wait_until(lambda: two_running(jobs, started["id"]), "the two trials to run at once", interval=0.3)
    automl_pid = json.loads((jobs / started["id"] / "job.json").read_text())["pid"]
    os.kill(automl_pid, signal.SIGSTOP)
    monkeypatch.setattr(launch, "_AUTOML_CANCEL_GRACE_S", 3.0)
    cancelled = api.cancel_job(started["id"], jobs)
    assert cancelled.status == "cancelled" and f"--parent-job {started['id']}" in cancelled.message
    kids = children(jobs, {started["id"]})
    assert len(kids) == 2 and all(k["status"] == "cancelled" for k in kids)
    assert wait_until(lambda: not any(launch.process_alive(k["pid"], k["pid_start"]) for k in kids) or None,
                      "the trial trainers to be gone", interval=0.2)
    assert not launch.process_alive(automl_pid, cancelled.pid_start)


def test_a_running_search_reports_trials_best_value_and_time_left_in_status_and_logs(data, tmp_path):
    jobs = tmp_path / "jobs"
    started = runner(jobs, *train_args(data, **{"automl.max_trials": 4, "automl.workers": 1}), "--detach")

    def after_the_first_trial() -> dict | None:
        status = runner(jobs, "status", started["id"])
        assert status["status"] in ("pending", "running"), f"the search ended before it was seen running: {status}"
        return status if (status["metrics"] or {}).get("trials_done", 0) >= 1 else None

    status = wait_until(after_the_first_trial, "a finished trial in the AutoML job's status", interval=0.3)
    metrics = status["metrics"]
    assert metrics["trials_planned"] == 4 and 1 <= metrics["trials_done"] < 4
    assert metrics["best_val_acc"] is not None and metrics["eta_s"] is not None and metrics["eta_s"] > 0
    log = runner(jobs, "logs", started["id"])["text"]
    assert "AutoML: 0/4 trials done" in log and f"AutoML: {metrics['trials_done']}/4 trials done" in log
    assert "best val_acc" in log and "left" in log
    runner(jobs, "cancel", started["id"])
