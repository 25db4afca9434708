"""AutoML study driver with cheap injected objectives: seeds, workers, failures, budgets, pruning, resume."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from runners.automl.driver import STOP_INTERRUPT, STOP_TIME, StudyDriver, TrialStopped
from runners.automl.results import best_record, write_plots, write_tables
from runners.automl.settings import AutoMLSettings, read_settings
from optical_inspection.config.walk import action_index
from runners.automl.space import build_search_space
from runners.automl.study import counted_trials, open_study, recover_interrupted
from runners.errors import RequestError
from runners.skill_info import load_skill_info

REPO = Path(__file__).resolve().parents[1]
SCHEMA = action_index("train")
KEYS = ["train.optim.lr", "dataset.fpratio_sampling", "dataset.augmentation_config.augment", "model.base_channels"]


def settings(**kw) -> AutoMLSettings:
    base = dict(algorithm="bayesian", max_trials=6, max_time_s=None, workers=1, metric="val_acc",
                direction="maximize", storage=None, study_name=None, seed=3, reduction_factor=3)
    base.update(kw)
    return AutoMLSettings(**base)


def score(params: dict) -> float:
    """A smooth cheap objective: best near lr = 1e-3, fpratio_sampling = 0.5."""
    return -abs(math.log10(params["train.optim.lr"]) + 3) - abs(params["dataset.fpratio_sampling"] - 0.5)


def run(tmp: Path, objective, name: str = "s", fingerprint: dict | None = None, **kw):
    s = settings(**kw)
    space = build_search_space(SCHEMA, KEYS)
    study = open_study(s, tmp, name, max_epochs=9, fingerprint=fingerprint or {"metric": s.metric})
    driver = StudyDriver(study, space, objective, base_spec={}, max_trials=s.max_trials, workers=s.workers,
                         max_time_s=s.max_time_s)
    return study, driver, driver.run()


def test_settings_come_from_the_spec_and_skill_info():
    s = read_settings({"automl": {"metric": "val_loss", "max_time": 2}}, load_skill_info())
    assert (s.metric, s.direction, s.max_time_s, s.algorithm) == ("val_loss", "minimize", 120.0, "bayesian")
    with pytest.raises(RequestError, match="automl.workers"):
        read_settings({"automl": {"workers": 0}}, load_skill_info())


def test_same_seed_gives_the_same_configurations(tmp_path):
    def configs(folder: Path, seed: int) -> list[dict]:
        study, _, _ = run(folder, lambda t, p, stop: score(p), max_trials=8, seed=seed)   # 3 random, 5 TPE
        return [t.user_attrs["config"] for t in study.trials]

    first = configs(tmp_path / "a", 5)
    assert first == configs(tmp_path / "b", 5)
    assert first != configs(tmp_path / "c", 6)
    assert len({json.dumps(c, sort_keys=True) for c in first}) == 8


def test_workers_run_trials_at_once_and_a_failed_trial_does_not_stop_the_study(tmp_path):
    both_running = threading.Barrier(2)

    def objective(trial, params, stop):
        if trial.number < 2:
            both_running.wait(timeout=120)   # passes only when two trials run at the same time
        if trial.number == 1:
            raise RuntimeError("boom")
        return score(params)

    study, _, reason = run(tmp_path, objective, max_trials=6, workers=2)
    assert reason is None
    states = [t.state for t in study.trials]
    assert len(states) == 6 and states.count(TrialState.FAIL) == 1 and states.count(TrialState.COMPLETE) == 5
    assert "boom" in study.trials[1].user_attrs["failure"]
    assert study.trials[0].state == TrialState.COMPLETE        # the barrier was crossed by both trials


def test_a_study_whose_first_trials_all_fail_stops(tmp_path):
    def objective(trial, params, stop):
        raise FileNotFoundError("dataset.csv is missing")

    study, _, reason = run(tmp_path, objective, max_trials=10)
    assert len(study.trials) == 3 and reason.startswith("the first 3 trials all failed")
    assert "dataset.csv is missing" in reason


def test_time_budget_stops_running_trials(tmp_path):
    def objective(trial, params, stop):
        if stop.wait(30):
            raise TrialStopped()
        return 0.0

    study, _, reason = run(tmp_path, objective, max_trials=6, workers=2, max_time_s=1.0)
    assert reason == STOP_TIME
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 2   # stopped by the budget, not the 30 s wait
    assert study.trials[0].user_attrs["stopped"] == STOP_TIME


def test_interrupted_trials_are_queued_again_and_not_counted(tmp_path):
    started = threading.Event()

    def objective(trial, params, stop):
        started.set()
        if stop.wait(30):
            raise TrialStopped()
        return 0.0

    s = settings(max_trials=3)
    space = build_search_space(SCHEMA, KEYS)
    study = open_study(s, tmp_path, "s", 9, {"metric": "val_acc"})
    driver = StudyDriver(study, space, objective, base_spec={}, max_trials=3, workers=1)
    threading.Thread(target=lambda: (started.wait(10), driver.stop(STOP_INTERRUPT))).start()
    assert driver.run() == STOP_INTERRUPT
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.WAITING]
    assert counted_trials(study) == []
    _, _, reason = run(tmp_path, lambda t, p, stop: score(p), max_trials=3)
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert study.trials[1].params == study.trials[0].params            # the same configuration, re-run
    assert [t.state for t in counted_trials(study)] == [TrialState.COMPLETE] * 3


def test_asha_prunes_with_per_epoch_reports(tmp_path):
    def objective(trial, params, stop):
        value = score(params)
        for epoch in range(1, 7):
            trial.report(value + 0.01 * epoch, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value + 0.06

    study, _, _ = run(tmp_path, objective, algorithm="asha", max_trials=8)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.PRUNED) >= 3 and states.count(TrialState.COMPLETE) >= 1
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert all(max(t.intermediate_values) < 6 for t in pruned)      # stopped before the last epoch


def test_reopening_a_study_with_other_settings_is_refused(tmp_path):
    run(tmp_path, lambda t, p, stop: 0.0, max_trials=1, fingerprint={"metric": "val_acc"})
    with pytest.raises(RequestError, match="metric differ"):
        run(tmp_path, lambda t, p, stop: 0.0, max_trials=1, fingerprint={"metric": "val_auroc"})


def test_results_best_record_csv_and_plots(tmp_path):
    def objective(trial, params, stop):
        trial.set_user_attr("best_epoch", 2)
        if trial.number == 2:
            raise ValueError("no metric")
        return score(params)

    study, _, _ = run(tmp_path, objective, max_trials=5)
    space = build_search_space(SCHEMA, KEYS)
    written = write_tables(study, tmp_path, space, "val_acc", "bayesian")
    written.update(write_plots(study, tmp_path, "val_acc"))
    best = json.loads(Path(written["best_rec"]).read_text())
    values = [t.value for t in study.trials if t.state == TrialState.COMPLETE]
    assert best["value"] == max(values) and best["best_epoch"] == 2
    assert best["params"] == study.trials[best["trial"]].user_attrs["config"]
    assert best["trials"] == {"complete": 4, "fail": 1}
    lines = Path(written["trials_csv"]).read_text().splitlines()
    assert len(lines) == 6 and "train.optim.lr" in lines[0] and "no metric" in lines[3]
    assert Path(written["metric_plot"]).stat().st_size > 1000
    assert Path(written["importance_plot"]).stat().st_size > 1000
    assert best_record(optuna.create_study(), "val_acc", "bayesian") is None


DRIVER_SCRIPT = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    sys.path.insert(0, {repo!r})
    from runners.automl.driver import StudyDriver
    from runners.automl.space import build_search_space
    from runners.automl.study import open_study, recover_interrupted
    from tests.test_automl_driver import KEYS, SCHEMA, settings, score

    folder = Path(sys.argv[1])
    s = settings(max_trials=6, workers=2)
    study = open_study(s, folder, "kill", 9, {{"metric": "val_acc"}})
    recover_interrupted(study)

    def objective(trial, params, stop):
        with open(folder / "calls.log", "a") as fh:
            fh.write(json.dumps(params, sort_keys=True) + "\\n")
        if trial.number >= 2 and not (folder / "restarted").exists():
            stop.wait(600)   # first run: trials after the first two stay running until the kill
        return score(params)

    StudyDriver(study, build_search_space(SCHEMA, KEYS), objective, base_spec={{}}, max_trials=6, workers=2).run()
""")


def test_kill_9_and_restart_continues_the_study_without_rerunning_finished_trials(tmp_path):
    script = tmp_path / "drive.py"
    script.write_text(DRIVER_SCRIPT.format(repo=str(REPO)))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], env=env)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    deadline = time.monotonic() + 240   # a generous bound for a loaded machine: the trials wait for the kill
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
        try:
            trials = optuna.load_study(study_name="kill", storage=storage).trials
        except KeyError:
            continue
        states = [t.state for t in trials]
        if states.count(TrialState.COMPLETE) >= 2 and TrialState.RUNNING in states:   # kill while one runs
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    (tmp_path / "restarted").touch()
    before = optuna.load_study(study_name="kill", storage=storage).trials
    finished = {t.number: t.params for t in before if t.state == TrialState.COMPLETE}
    assert 2 <= len(finished) < 6 and any(t.state == TrialState.RUNNING for t in before)

    subprocess.run([sys.executable, str(script), str(tmp_path)], env=env, check=True, timeout=240)
    study = optuna.load_study(study_name="kill", storage=storage)
    counted = counted_trials(study)
    assert len(counted) == 6 and all(t.state == TrialState.COMPLETE for t in counted)
    assert all(study.trials[n].state == TrialState.COMPLETE for n in finished)       # finished trials kept
    calls = (tmp_path / "calls.log").read_text().splitlines()
    for trial in before:
        if trial.state == TrialState.COMPLETE:            # a finished trial ran exactly once
            assert calls.count(json.dumps(trial.params, sort_keys=True)) == 1
        else:                                             # a killed one is re-run with the same configuration
            retry = next(t for t in study.trials if t.user_attrs.get("retry_of") == trial.number)
            assert retry.state == TrialState.COMPLETE and trial.params.items() <= retry.params.items()
    assert recover_interrupted(study) == []


def test_concurrent_trials_are_spread_over_the_listed_gpus():
    from runners.automl.trial_job import GpuSlots

    slots = GpuSlots({"train": {"gpu_ids": [0, 1], "num_gpus": 1}})
    with slots.slot() as a, slots.slot() as b, slots.slot() as c:
        assert (a, b, c) == (0, 1, 0)
    with slots.slot() as again:
        assert again == 0                                         # released slots are reused
    for train in ({"gpu_ids": [0]}, {"gpu_ids": [0, 1], "num_gpus": 2}, {"gpu_ids": [0, 1], "accelerator": "cpu"}):
        with GpuSlots({"train": train}).slot() as gpu:
            assert gpu is None                                    # the spec's devices are kept as they are


def shared_driver(tmp: Path, objective, max_trials: int, workers: int = 2):
    """A driver on its own storage connection to one SQLite study, as a second process would open it."""
    from runners.automl.study import StudyLock, open_storage, storage_url

    s = settings(max_trials=max_trials, workers=workers, storage=f"sqlite:///{tmp / 'shared.db'}")
    url = storage_url(s, tmp)
    storage = open_storage(url, workers)
    study = open_study(s, tmp, "shared", max_epochs=9, fingerprint={"metric": s.metric}, storage=storage)
    return study, StudyDriver(study, build_search_space(SCHEMA, KEYS), objective, base_spec={},
                              max_trials=max_trials, workers=workers,
                              study_lock=StudyLock(storage, url, "shared").hold,
                              recover=lambda st: recover_interrupted(st))


def test_two_drivers_on_one_storage_share_the_trial_budget_and_end_together(tmp_path):
    ran: list[int] = []

    def objective(trial, params, stop):
        ran.append(trial.number)
        time.sleep(0.05)
        return score(params)

    drivers = [shared_driver(tmp_path, objective, max_trials=7)[1] for _ in range(2)]
    threads = [threading.Thread(target=d.run) for d in drivers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    study = optuna.load_study(study_name="shared", storage=f"sqlite:///{tmp_path / 'shared.db'}")
    assert sorted(ran) == list(range(7))                                 # 7 in all, not 7 per driver; none twice
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 7


def test_a_stop_request_ends_every_driver_of_the_study(tmp_path):
    from runners.automl.driver import request_stop

    def objective(trial, params, stop):
        if stop.wait(120):
            raise TrialStopped()
        return score(params)

    study, driver = shared_driver(tmp_path, objective, max_trials=10)
    done: list = []
    thread = threading.Thread(target=lambda: done.append(driver.run()))
    thread.start()
    from helpers import wait_until

    wait_until(lambda: len(study.get_trials(states=(TrialState.RUNNING,))) == 2, "two running trials")
    request_stop(optuna.load_study(study_name="shared", storage=f"sqlite:///{tmp_path / 'shared.db'}"), "enough")
    thread.join(timeout=120)
    assert done == ["stop requested: enough"]
    assert [(t.state, t.user_attrs["stopped"]) for t in study.trials] == [
        (TrialState.PRUNED, "stop requested: enough")] * 2
    later = shared_driver(tmp_path, lambda t, p, s: score(p), max_trials=3)[1]   # a worker started afterwards runs
    assert later.run() is None


def test_the_stop_command_reads_the_url_from_the_environment_and_names_a_missing_study(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    optuna.create_study(study_name="pcb", storage=url)

    def stop(*args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "runners.automl", "stop", *args], cwd=REPO, capture_output=True,
                              text=True, timeout=120, env={**os.environ, **env})

    assert "OI_OPTUNA_STORAGE is not set" in stop("pcb", OI_OPTUNA_STORAGE="").stderr
    missing = stop("other", OI_OPTUNA_STORAGE=url)
    assert missing.returncode == 2 and "no study 'other'" in missing.stderr
    done = stop("pcb", "--storage-env", "MY_DB", "--reason", "budget cut", MY_DB=url)
    assert done.returncode == 0, done.stderr
    assert optuna.load_study(study_name="pcb", storage=url).user_attrs["stop_requested"]["reason"] == "budget cut"
