"""Job records: atomic, locked updates (two runners at once), terminal states, stale jobs, CLI verbs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runner_support import REPO
from runners.api import job_status, list_jobs
from runners.errors import NotFoundError
from runners.records import JobStore

_WORKER = """
import sys
from runners.records import JobStore
store, job_id, tag = JobStore(sys.argv[1]), sys.argv[2], sys.argv[3]
for i in range(40):
    store.update(job_id, lambda r: r.metrics.setdefault("writes", []).append(f"{tag}{i}"))
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def test_concurrent_updates_never_lose_or_corrupt_a_write(tmp_path):
    store = JobStore(tmp_path)
    record = store.create("train", None)
    workers = [subprocess.Popen([sys.executable, "-c", _WORKER, str(tmp_path), record.id, tag], env=_env())
               for tag in "abc"]
    assert [w.wait(timeout=120) for w in workers] == [0, 0, 0]
    writes = store.load(record.id).metrics["writes"]
    assert len(writes) == 120 and len(set(writes)) == 120
    assert not [p for p in Path(record.job_dir).iterdir() if p.name.endswith(".tmp")]


def test_record_fields_and_terminal_states_are_final(tmp_path):
    store = JobStore(tmp_path)
    record = store.create("evaluate", "oi-train-20250101-093000-a1b2c3")
    assert record.status == "pending" and record.parent_id == "oi-train-20250101-093000-a1b2c3"
    assert Path(record.job_dir).name == record.id and record.spec_path.endswith("spec.yaml")
    assert record.log_path.endswith("job.log") and record.results_dir.endswith("results")
    store.update(record.id, lambda r: setattr(r, "status", "success"))
    after = store.update(record.id, lambda r: setattr(r, "status", "running"))
    assert after.status == "success"
    with pytest.raises(ValueError):
        store.update(store.create("train", None).id, lambda r: setattr(r, "status", "weird"))
    with pytest.raises(NotFoundError, match="no job 'oi-train-20250101-093000-000000'"):
        store.load("oi-train-20250101-093000-000000")


def test_a_job_whose_runner_vanished_is_marked_failed(tmp_path):
    store = JobStore(tmp_path)
    record = store.create("train", None)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store.update(record.id, lambda r: (setattr(r, "supervisor_pid", dead.pid), setattr(r, "status", "running")))
    assert job_status(record.id, tmp_path).status == "failure"
    assert "exited without recording a result" in store.load(record.id).message
    alive = store.create("train", None)
    store.update(alive.id, lambda r: setattr(r, "supervisor_pid", os.getpid()))
    assert [r.status for r in list_jobs(tmp_path)] == ["failure", "pending"]


def test_cli_verbs_status_list_show_logs(tmp_path):
    store = JobStore(tmp_path)
    record = store.create("export", None)
    Path(record.log_path).write_text("".join(f"line {i}\n" for i in range(10)))
    Path(record.spec_path).write_text("encryption_key: hunter2\nresults_dir: /r\n")
    store.update(record.id, lambda r: (setattr(r, "status", "success"), setattr(r, "exit_code", 0)))

    def cli(*args: str) -> tuple[int, dict]:
        done = subprocess.run([sys.executable, "-m", "runners", *args, "--jobs-root", str(tmp_path)],
                              capture_output=True, text=True, env=_env())
        return done.returncode, json.loads(done.stdout)

    code, status = cli("status", record.id)
    assert code == 0 and status["status"] == "success" and status["exit_code"] == 0
    code, listing = cli("list")
    assert [j["id"] for j in listing["jobs"]] == [record.id]
    assert cli("list", "--status", "failure")[1]["jobs"] == []
    code, shown = cli("show", record.id)
    assert shown["spec"] == {"encryption_key": "***", "results_dir": "/r"}
    code, logs = cli("logs", record.id, "--tail", "2")
    assert logs["text"] == "line 8\nline 9\n"
    code, missing = cli("status", "oi-export-20250101-093000-000000")
    assert code == 3 and "no job 'oi-export-20250101-093000-000000'" in missing["error"]
    code, cancelled = cli("cancel", record.id)
    assert code == 0 and cancelled["status"] == "success", "a finished job stays finished"
