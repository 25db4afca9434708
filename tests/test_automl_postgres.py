"""AutoML workers on several "machines" (separate jobs roots and processes) sharing one study on a real PostgreSQL
server: a study-wide trial budget, no trial run twice, a SIGKILLed worker's trial re-queued and run by the others,
the same best_rec.json everywhere, and the database password in no file of any jobs root."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from helpers import wait_until
from runners.launch import process_alive
from splits import automl_splits

REPO = Path(__file__).resolve().parents[1]
STUDY = "shared-study"
OVERRIDES = {"epochs": 1, "image_size": 32, "batch_size": 8, "dataset.workers": 0, "train.progress_bar": False,
             "automl.max_trials": 6, "automl.workers": 1, "automl.seed": 5, "automl.study_name": STUDY,
             "automl.parameters": ["train.optim.lr"], "automl.storage": "${oc.env:OI_OPTUNA_STORAGE}"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return automl_splits(tmp_path_factory.mktemp("pg_automl_data"))


def start_worker(jobs: Path, data: Path, url: str) -> subprocess.Popen:
    """One AutoML worker (`python -m runners run train`) with its own jobs root; the URL only in its environment."""
    args = [sys.executable, "-m", "runners", "run", "train", "--jobs-root", str(jobs),
            "--data", f"train_datasets={data / 'train'}", "--data", f"eval_dataset={data / 'val'}",
            "--overrides", json.dumps(OVERRIDES)]
    return subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1", OI_OPTUNA_STORAGE=url, OMP_NUM_THREADS="1"))


def records(jobs: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in jobs.glob("*/job.json")] if jobs.is_dir() else []


def trial_jobs(jobs: Path) -> list[dict]:
    return [r for r in records(jobs) if r["automl_policy"].get("value") == "off"]


def automl_job(jobs: Path) -> dict:
    return next(r for r in records(jobs) if r["automl_policy"].get("value") == "on")


def running_trial(jobs: Path, proc: subprocess.Popen) -> bool:
    """Whether the worker trains a trial now (fails the test at once when the worker ended)."""
    if proc.poll() is not None:
        pytest.fail(f"worker {jobs.name} ended early (exit {proc.returncode}): {proc.stderr.read()[-3000:]}")
    return any(k["status"] == "running" for k in trial_jobs(jobs))


def finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:] + out[-2000:]
    return json.loads(out)


def test_three_workers_share_one_study_with_a_global_budget_and_survive_a_kill_9(data, tmp_path, postgres):
    roots = {name: tmp_path / f"machine_{name}" for name in "ABC"}
    victim = start_worker(roots["C"], data, postgres.url)
    wait_until(lambda: running_trial(roots["C"], victim), "worker C to train a trial", interval=0.3)
    workers = {name: start_worker(roots[name], data, postgres.url) for name in "AB"}
    wait_until(lambda: any([running_trial(roots[n], workers[n]) for n in "AB"]) and running_trial(roots["C"], victim),
               "workers A or B and C to train a trial at once", interval=0.2)
    victim.send_signal(signal.SIGKILL)                                      # mid-trial: its job says running
    victim.communicate()
    results = {name: finish(proc) for name, proc in workers.items()}
    assert all(r["status"] == "success" for r in results.values()), [r["message"] for r in results.values()]

    study = optuna.load_study(study_name=STUDY, storage=postgres.url)
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}
    counted = [t for t in trials if t.number not in retried and t.state != TrialState.WAITING]
    assert len(counted) == 6 and all(t.state == TrialState.COMPLETE for t in counted)   # the study-wide budget
    killed = [t for t in trials if t.user_attrs.get("owner", {}).get("pid") == victim.pid]
    assert killed and all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in killed)
    interrupted = [t for t in killed if t.state == TrialState.FAIL]
    assert len(interrupted) == 1 and interrupted[0].number in retried      # its trial was re-queued ...
    retry = next(t for t in trials if t.user_attrs.get("retry_of") == interrupted[0].number)
    assert retry.state == TrialState.COMPLETE and retry.params == interrupted[0].params   # ... and run by A or B
    assert retry.user_attrs["owner"]["pid"] in {p.pid for p in workers.values()}
    owners = {name: p.pid for name, p in workers.items()}
    assert all(any(t.user_attrs.get("owner", {}).get("pid") == pid for t in counted) for pid in owners.values())

    jobs_of = {name: {k["id"]: k for k in trial_jobs(root)} for name, root in roots.items()}
    named = [t.user_attrs["job_id"] for t in counted]
    assert len(set(named)) == 6                                              # no trial run twice
    for t in counted:                                                        # each in its own worker's jobs root
        name = next(n for n, pid in {**owners, "C": victim.pid}.items() if pid == t.user_attrs["owner"]["pid"])
        assert jobs_of[name][t.user_attrs["job_id"]]["status"] == "success"
    successes = [k for name in "AB" for k in jobs_of[name].values() if k["status"] == "success"]
    assert len(successes) == sum(t.user_attrs["owner"]["pid"] in owners.values() for t in counted)

    best = {name: (Path(results[name]["results_dir"]) / "best_rec.json").read_text() for name in "AB"}
    assert best["A"] == best["B"]                                            # whichever worker wrote last
    rec = json.loads(best["A"])
    assert rec["value"] == max(t.value for t in counted) and rec["trials"]["complete"] == 6
    assert results["A"]["decisions"]["automl"]["storage"].endswith(f"{postgres.user}:***@127.0.0.1:{postgres.port}"
                                                                   f"/{postgres.database}")

    # The killed worker's trainer was in its own session: it outlives the kill and ends on its own.
    orphans = [k for k in jobs_of["C"].values() if k.get("pid")]
    wait_until(lambda: not any(process_alive(k["pid"], k.get("pid_start")) for k in orphans),
               "the killed worker's trainer to end", interval=0.5)
    secret = postgres.password.encode()
    leaks = [p for root in roots.values() for p in root.rglob("*") if p.is_file() and secret in p.read_bytes()]
    assert leaks == []


def test_the_engine_settings_reach_the_connections(postgres):
    from sqlalchemy import text

    from runners.automl.study import open_storage

    storage = open_storage(postgres.url, workers=3)
    engine = storage.engine
    assert engine.pool.size() == 5 and engine.pool._pre_ping and engine.pool._recycle == 1800
    with engine.connect() as conn:
        names = conn.execute(text("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"))
        assert names.scalar().startswith("oi-automl ")
    engine.dispose()


def test_a_wrong_password_fails_the_job_naming_the_url_without_any_password(postgres, tmp_path, monkeypatch):
    import yaml

    from runners.automl.job import run_automl_job
    from runners.errors import RequestError
    from runners.records import JobStore

    wrong = "Wrong-" + postgres.password
    monkeypatch.setenv("OI_OPTUNA_STORAGE", postgres.url.replace(postgres.password, wrong))
    store = JobStore(tmp_path / "jobs")
    record = store.create("train", None)
    Path(record.spec_path).write_text(yaml.safe_dump({"results_dir": record.results_dir, "automl": {
        "parameters": ["train.optim.lr"], "storage": "${oc.env:OI_OPTUNA_STORAGE}"}}))
    store.update(record.id, lambda r: setattr(r, "automl_policy", {"value": "on", "reason": "test"}))
    with pytest.raises(RequestError, match="cannot open Optuna storage") as err:
        run_automl_job(store, record.id)
    assert f"postgresql://{postgres.user}:***@127.0.0.1:{postgres.port}/postgres" in str(err.value)
    assert "password authentication failed" in str(err.value)
    assert store.load(record.id).status == "failure"
    files = [p.read_bytes() for p in (tmp_path / "jobs").rglob("*") if p.is_file()]
    assert files and not any(wrong.encode() in b or postgres.password.encode() in b for b in files)
