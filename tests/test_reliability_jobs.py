"""Jobs cannot hurt each other, secrets are never written, every hostile input is a clean error (issue 19,
defects 1, 2, 3, 4, 9, 12 and 13; each test names its defect). Real runner and trainer processes on tiny data."""
from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml

from helpers import folder_digest, run_cli, write_spec
from runner_support import REPO, TRAIN_OVERRIDES, admin_client, enforce_auth, moto_server, s3_user
from runners.api import job_status, plan_job, run_job, wait_job
from runners.errors import RequestError
from splits import archive_split, runner_split

pytestmark = pytest.mark.slow
KEY = "oi-sentinel-encryption-key-7f3a9c"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reliability_data")
    return {"train": runner_split(root / "train", 12, seed=0), "val": runner_split(root / "val", 8, seed=1)}


@pytest.fixture(scope="module")
def jobs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("reliability_jobs")


@pytest.fixture(scope="module")
def trained(data, jobs):
    """A finished train job, run with OI_ENCRYPTION_KEY set."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OI_ENCRYPTION_KEY", KEY)
        record = run_job("train", jobs_root=jobs, automl_policy="off", overrides=TRAIN_OVERRIDES,
                         data={"train_datasets": data["train"], "eval_dataset": data["val"]})
    assert record.status == "success", _log(record)
    return record


def _log(record) -> str:
    return f"{record.id} {record.status}: {record.message}\n" + Path(record.log_path).read_text()[-4000:]


def _files_holding(root: Path, *secrets: str) -> list[str]:
    needles = [s.encode() for s in secrets]
    return sorted(str(p) for p in root.rglob("*") if p.is_file() and any(n in p.read_bytes() for n in needles))


def _trainer_spec(record, **top) -> dict:
    """The job's spec for a direct trainer run: every split set, no key reference to resolve."""
    spec = yaml.safe_load(Path(record.spec_path).read_text())
    spec.pop("encryption_key", None)
    for split in ("test_dataset", "infer_dataset"):
        spec["dataset"][split] = dict(spec["dataset"]["validation_dataset"])
    return {**spec, **top}


def _runner(jobs: Path, *args: str) -> tuple[int, dict]:
    done = subprocess.run([sys.executable, "-m", "runners", *args, "--jobs-root", str(jobs)], cwd=REPO,
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(REPO)))
    return done.returncode, json.loads(done.stdout)


def _poll(condition, what: str, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_an_override_cannot_point_a_job_into_another_jobs_folder(trained, data, jobs):
    """Defect 1: `train.results_dir` (any `<action>.results_dir`) is refused like `results_dir`; the other job's
    folder is untouched and its `--checkpoint latest` still serves its own weights."""
    folder = Path(trained.decisions["results_folder"])
    before = folder_digest(Path(trained.job_dir))
    for action, key, extra in (("train", "train.results_dir", {"train_datasets": data["train"],
                                                              "eval_dataset": data["val"]}),
                               ("evaluate", "evaluate.results_dir", {"eval_dataset": data["val"]})):
        with pytest.raises(RequestError, match=f"{key}: results folders belong to the runner"):
            run_job(action, jobs_root=jobs, automl_policy="off" if action == "train" else None,
                    parent_job=trained.id if action == "evaluate" else None, data=extra,
                    overrides={**(TRAIN_OVERRIDES if action == "train" else {}), key: str(folder)})
    assert folder_digest(Path(trained.job_dir)) == before
    latest = plan_job("evaluate", jobs_root=jobs, parent_job=trained.id, checkpoint="latest",
                      data={"eval_dataset": data["val"]})
    assert Path(latest.draft.get("evaluate.checkpoint")).parent == folder


def test_a_training_that_outlives_its_supervisor_is_recorded_from_its_status(data, jobs):
    """Defect 2: the detached job's supervisor is killed; the trainer goes on to SUCCESS and the record says so
    (read from its final status.json), so evaluate accepts it as a parent."""
    record = run_job("train", jobs_root=jobs, automl_policy="off", detach=True,
                     data={"train_datasets": data["train"], "eval_dataset": data["val"]},
                     overrides={**TRAIN_OVERRIDES, "epochs": 3})
    _poll(lambda: job_status(record.id, jobs).status == "running", "the job to run")
    running = job_status(record.id, jobs)
    os.kill(running.supervisor_pid, signal.SIGKILL)
    os.waitpid(running.supervisor_pid, 0)  # reap it (it is this process's child): gone, not a zombie
    assert job_status(record.id, jobs).status == "running", "the trainer still runs"
    done = wait_job(record.id, jobs, timeout_s=300)
    assert done.status == "success" and done.exit_code == 0, _log(done)
    assert "read from the trainer's status.json" in done.message and "val_acc" in done.metrics
    child = plan_job("evaluate", jobs_root=jobs, parent_job=record.id, data={"eval_dataset": data["val"]})
    assert Path(child.draft.get("evaluate.checkpoint")).is_file()


def test_the_encryption_key_is_resolved_at_run_time_and_never_written(trained, data, jobs, tmp_path, monkeypatch):
    """Defect 3: OI_ENCRYPTION_KEY never lands in a file: experiment.yaml keeps the `${oc.env:...}` reference, and
    a child job still gets the key, resolved from the environment at run time."""
    monkeypatch.setenv("OI_ENCRYPTION_KEY", KEY)
    experiment = yaml.safe_load((Path(trained.decisions["results_folder"]) / "experiment.yaml").read_text())
    assert experiment["encryption_key"] == "${oc.env:OI_ENCRYPTION_KEY}"
    evaluated = run_job("evaluate", jobs_root=jobs, parent_job=trained.id, data={"eval_dataset": data["val"]})
    assert evaluated.status == "success", _log(evaluated)
    assert yaml.safe_load(Path(evaluated.spec_path).read_text())["encryption_key"] == "${oc.env:OI_ENCRYPTION_KEY}"
    spec = write_spec(tmp_path / "spec.yaml", {**yaml.safe_load(Path(evaluated.spec_path).read_text()),
                                               "encryption_key": KEY, "results_dir": str(tmp_path / "out")})
    dry = run_cli("evaluate", "-e", str(spec), "--dry-run", env={"OI_ENCRYPTION_KEY": "another-key"})
    assert dry.returncode == 0 and "encryption_key: '***'" in dry.stdout and KEY not in dry.stdout
    assert _files_holding(jobs, KEY) == []


def test_a_job_id_is_checked_before_it_names_a_folder(tmp_path):
    """Defect 4: `..` (or any id that is not a job id) is a clean error (exit 2) for status, show, logs, cancel
    and --parent-job; nothing outside the jobs root is read or signalled."""
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    victim = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        start = Path(f"/proc/{victim.pid}/stat").read_text().rsplit(")", 1)[-1].split()[19]
        outside = {"id": "..", "action": "train", "parent_id": None, "status": "running", "created": "x",
                   "job_dir": str(tmp_path), "spec_path": str(tmp_path / "spec.yaml"), "results_dir": str(tmp_path),
                   "log_path": str(tmp_path / "job.log"), "pid": victim.pid, "pid_start": start}
        (tmp_path / "job.json").write_text(json.dumps(outside))
        (tmp_path / "job.log").write_text("not a job's log\n")
        for args in (("status", ".."), ("show", ".."), ("logs", ".."), ("cancel", ".."), ("status", "../jobs"),
                     ("plan", "evaluate", "--parent-job", "..")):
            code, answer = _runner(jobs, *args)
            assert code == 2 and "is not a job id" in answer["error"], (args, answer)
        assert victim.poll() is None, "cancel .. signalled a process outside the jobs root"
        forged = jobs / "oi-train-20250101-093000-a1b2c3"
        forged.mkdir()
        (forged / "job.json").write_text(json.dumps(outside))
        code, answer = _runner(jobs, "cancel", forged.name)
        assert code == 3 and "not a job record" in answer["error"] and victim.poll() is None
        assert _runner(jobs, "list")[1]["jobs"] == []
    finally:
        victim.kill()
        victim.wait()


def test_one_results_folder_holds_one_run(trained, tmp_path):
    """Defect 9: a second run into a folder in use is refused (exit 2, nothing written); so is a run into a folder
    holding another run's files; a failed resume leaves experiment.yaml as it was."""
    spec_file = write_spec(tmp_path / "spec.yaml", _trainer_spec(trained))
    folder = Path(trained.decisions["results_folder"])
    before = folder_digest(folder)
    other = run_cli("evaluate", "-e", str(spec_file), f"evaluate.results_dir={folder}",
                    f"evaluate.checkpoint={tmp_path / 'missing.pth'}")
    assert other.returncode == 2 and "holds another run's files" in other.stderr, other.stderr
    assert folder_digest(folder) == before

    busy = tmp_path / "busy"
    first = subprocess.Popen([sys.executable, "-m", "optical_inspection", "train", "-e", str(spec_file),
                              f"train.results_dir={busy}", "train.num_epochs=500"], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _poll(lambda: (busy / "status.json").is_file(), "the first run to start")
        records = (busy / "status.json").read_bytes(), (busy / "experiment.yaml").read_bytes()
        second = run_cli("evaluate", "-e", str(spec_file), f"evaluate.results_dir={busy}",
                         f"evaluate.checkpoint={tmp_path / 'missing.pth'}")
        assert second.returncode == 2 and "is in use by another run" in second.stderr, second.stderr
        assert ((busy / "status.json").read_bytes(), (busy / "experiment.yaml").read_bytes()) == records
    finally:
        first.kill()
        first.wait()

    kept = tmp_path / "kept" / "train"
    shutil.copytree(folder, kept)
    experiment = (kept / "experiment.yaml").read_bytes()
    resumed = run_cli("train", "-e", str(spec_file), f"train.results_dir={kept}", "model.model_type=Siamese",
                      "train.num_epochs=4")
    assert resumed.returncode == 1, resumed.stderr[-2000:]
    assert (kept / "experiment.yaml").read_bytes() == experiment, "a failed resume replaced experiment.yaml"


def test_files_are_written_with_the_umask(trained, tmp_path):
    """Defect 12: checkpoints, experiment.yaml, metrics.json, plots, inference.csv and status.json all get
    0666 & ~umask (0640 under umask 027), like any file a plain open() creates."""
    spec = _trainer_spec(trained, results_dir=str(tmp_path / "out"))
    spec["train"]["num_epochs"] = 1
    spec_file = write_spec(tmp_path / "spec.yaml", spec)
    checkpoint = tmp_path / "out" / "train" / "oi_model_latest.pth"
    for action, extra in (("train", []), ("evaluate", [f"evaluate.checkpoint={checkpoint}"]),
                          ("inference", [f"inference.checkpoint={checkpoint}"])):
        done = subprocess.run([sys.executable, "-m", "optical_inspection", action, "-e", str(spec_file), *extra],
                              cwd=REPO, capture_output=True, text=True, timeout=600,
                              preexec_fn=lambda: os.umask(0o027))
        assert done.returncode == 0, done.stderr[-3000:]
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"oi_model_latest.pth", "experiment.yaml", "status.json", "metrics.json", "roc.png",
            "inference.csv"} <= names, names
    modes = {str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert {k: v for k, v in modes.items() if v != "0o640"} == {}


def test_a_runner_resume_removes_the_temps_of_a_killed_save(data, jobs):
    """Defect 13: `kill -9` during a checkpoint save leaves a hidden temp; resuming the job through the runner
    (a new folder) removes it from the parent's folder."""
    first = run_job("train", jobs_root=jobs, automl_policy="off", detach=True,
                    data={"train_datasets": data["train"], "eval_dataset": data["val"]},
                    overrides={**TRAIN_OVERRIDES, "epochs": 40})
    folder = Path(first.decisions["results_folder"])
    _poll(lambda: list(folder.glob("model_epoch_*.pth")) or job_status(first.id, jobs).status not in (
        "pending", "running"), "a first checkpoint")
    os.kill(job_status(first.id, jobs).pid, signal.SIGKILL)
    crashed = wait_job(first.id, jobs, timeout_s=60)
    assert crashed.status == "failure", _log(crashed)
    torn = subprocess.run([sys.executable, "-c", (
        "import os, sys\nfrom optical_inspection.io_utils import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n    tmp.write_bytes(bytes(1 << 20))\n"
        "    os.kill(os.getpid(), 9)\n"), str(folder / "model_epoch_039_step_00999.pth")], cwd=REPO)
    assert torn.returncode == -signal.SIGKILL

    def hidden() -> list[str]:
        return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and p.name != ".oi-lock")

    # the planted torn save; the SIGKILL may also have hit one of the trainer's own saves (its temp must go too)
    assert [n for n in hidden() if n.startswith(".model_epoch_039_step_00999.pth.")], hidden()
    last_epoch = max(int(p.name.split("_")[2]) for p in folder.glob("model_epoch_*.pth"))
    resumed = run_job("train", jobs_root=jobs, parent_job=first.id, automl_policy="off",
                      overrides={"epochs": last_epoch + 2})
    assert resumed.status == "success", _log(resumed)
    assert hidden() == []
    assert resumed.decisions["parent"]["stale_temps_removed"]
    assert not (folder / "model_epoch_039_step_00999.pth").exists()


def test_no_secret_reaches_a_file_of_a_train_automl_evaluate_export_chain(tmp_path, monkeypatch):
    """Secrets (OI_ENCRYPTION_KEY, AWS_SECRET_ACCESS_KEY and the credentials in an S3 location) appear in no file
    under the jobs root after train (AutoML, 2 trials) → evaluate → export through the runner, data from S3."""
    jobs = tmp_path / "jobs"
    with moto_server() as url:
        env_user, url_user = s3_user(url, "runner"), s3_user(url, "url-user")
        client = admin_client(url, "s3")
        client.create_bucket(Bucket="oi-secret")
        for prefix, seed in (("train", 0), ("val", 1)):
            split = archive_split(runner_split(tmp_path / f"{prefix}_src", 12 if prefix == "train" else 8, seed),
                                  tmp_path / prefix)
            for name in ("dataset.csv", "images.tar.gz"):
                client.upload_file(str(split / name), "oi-secret", f"{prefix}/{name}")
        enforce_auth(url)
        for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", env_user["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", env_user["SecretAccessKey"])
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
        monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        monkeypatch.setenv("OI_ENCRYPTION_KEY", KEY)
        userinfo = f"{quote(url_user['AccessKeyId'], safe='')}:{quote(url_user['SecretAccessKey'], safe='')}"
        val_with_credentials = f"s3://{userinfo}@oi-secret/val"
        automl = run_job("train", jobs_root=jobs, automl_policy="on",
                         data={"train_datasets": "s3://oi-secret/train", "eval_dataset": val_with_credentials},
                         overrides={**TRAIN_OVERRIDES, "epochs": 1, "automl.max_trials": 2, "automl.workers": 1})
        assert automl.status == "success", automl.message
        assert automl.decisions["data_sources"]["eval_dataset"][0]["location"] == "s3://oi-secret/val"
        evaluated = run_job("evaluate", jobs_root=jobs, parent_job=automl.id,
                            data={"eval_dataset": val_with_credentials})
        assert evaluated.status == "success", _log(evaluated)
        exported = run_job("export", jobs_root=jobs, parent_job=automl.id)
        assert exported.status == "success", _log(exported)
    trials = [p for p in jobs.glob("*/results/train/experiment.yaml") if p.parent.parent.parent.name != automl.id]
    assert len(trials) == 2
    assert all(yaml.safe_load(p.read_text())["encryption_key"] == "${oc.env:OI_ENCRYPTION_KEY}" for p in trials)
    secrets = (KEY, env_user["SecretAccessKey"], env_user["AccessKeyId"], url_user["SecretAccessKey"],
               url_user["AccessKeyId"], quote(url_user["SecretAccessKey"], safe=""), userinfo)
    assert _files_holding(jobs, *secrets) == []
