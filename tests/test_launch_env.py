"""One launcher, one cleaned environment (issue 16 item 5): no process the runner starts — a detached job's
supervisor, its trainer, a detached AutoML job and its trial trainers — sees a credential. Each process reads its
own /proc/self/environ at start (a ``sitecustomize`` on PYTHONPATH, which every child inherits) and records it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner_support import TRAIN_OVERRIDES
from runners.api import run_job, wait_job
from splits import runner_split

pytestmark = pytest.mark.slow
SECRET = "oi-test-secret-access-key-4b1d"
KEY = "oi-test-encryption-key-9c2e"
HOOK = '''
import json, os
from pathlib import Path
_log = os.environ.get("OI_TEST_ENV_LOG")
if _log:
    _argv = [a.decode() for a in Path("/proc/self/cmdline").read_bytes().split(b"\\0") if a]
    _env = dict(e.decode().split("=", 1) for e in Path("/proc/self/environ").read_bytes().split(b"\\0") if b"=" in e)
    Path(_log, f"{os.getpid()}.json").write_text(json.dumps({"argv": _argv, "env": _env}))
'''


def _role(argv: list[str]) -> str:
    module = argv[argv.index("-m") + 1] if "-m" in argv else ""
    if module == "runners" and "supervise" in argv:
        return "supervisor"
    if module == "runners.automl":
        return "automl"
    if module == "optical_inspection":
        return "trainer"
    return "other: " + " ".join(argv)


def test_no_launched_process_sees_a_credential(tmp_path, monkeypatch):
    data = {"train_datasets": runner_split(tmp_path / "train", 12, seed=0),
            "eval_dataset": runner_split(tmp_path / "val", 8, seed=1)}
    hook, log = tmp_path / "hook", tmp_path / "envs"
    hook.mkdir()
    log.mkdir()
    (hook / "sitecustomize.py").write_text(HOOK)
    monkeypatch.setenv("PYTHONPATH", str(hook))
    monkeypatch.setenv("OI_TEST_ENV_LOG", str(log))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAOITESTKEY0001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "oi-test-session-token-77aa")
    monkeypatch.setenv("AWS_PROFILE", "oi-test-profile")
    monkeypatch.setenv("OI_ENCRYPTION_KEY", KEY)
    jobs = tmp_path / "jobs"
    plain = run_job("train", jobs_root=jobs, automl_policy="off", detach=True, data=data,
                    overrides={**TRAIN_OVERRIDES, "epochs": 1})
    automl = run_job("train", jobs_root=jobs, automl_policy="on", detach=True, data=data,
                     overrides={**TRAIN_OVERRIDES, "epochs": 1, "automl.max_trials": 1, "automl.workers": 1})
    for record in (plain, automl):
        done = wait_job(record.id, jobs_root=jobs, timeout_s=600)
        assert done.status == "success", f"{done.message}\n{Path(done.log_path).read_text()[-3000:]}"

    seen = [json.loads(p.read_text()) for p in log.glob("*.json")]
    roles = sorted(_role(s["argv"]) for s in seen)
    assert roles == ["automl", "supervisor", "trainer", "trainer"]  # plain trainer + the one trial's trainer
    for process in seen:
        env, argv = process["env"], process["argv"]
        assert not [k for k in env if k.startswith("AWS_")], argv
        assert not [k for k, v in env.items() if SECRET in v], argv
        # a registered secret reaches a process only where its spec reads it: the trainer resolves the
        # spec's ${oc.env:OI_ENCRYPTION_KEY}, so it keeps the key
        spec = argv[argv.index("-e") + 1] if "-e" in argv else None
        if spec is not None:
            assert "${oc.env:OI_ENCRYPTION_KEY}" in Path(spec).read_text() and env.get("OI_ENCRYPTION_KEY") == KEY
