"""Every action run through the CLI leaves STARTED then SUCCESS or FAILURE in status.json, crashes included."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import dataset_spec
from helpers import REPO, run_cli, wait_until, write_spec
from optical_inspection.status import read_status


def _statuses(results: Path) -> list[str]:
    return [r["status"] for r in read_status(results / "status.json")]


def _train_spec(tmp_path: Path, split: tuple[Path, Path], epochs: int = 1) -> Path:
    spec = dataset_spec(*split)
    spec.update(results_dir=str(tmp_path / "results"), model={"model_type": "Compact"},
                train={"num_epochs": epochs, "progress_bar": False})
    return write_spec(tmp_path / "spec.yaml", spec)


def test_train_success_then_failures_of_every_other_action(tmp_path, synthetic_split):
    spec = _train_spec(tmp_path, synthetic_split)
    proc = run_cli("train", "-e", str(spec))
    assert proc.returncode == 0, proc.stderr
    records = read_status(tmp_path / "results" / "train" / "status.json")
    assert records[0]["status"] == "STARTED" and records[-1]["status"] == "SUCCESS"
    assert (tmp_path / "results" / "train" / "experiment.yaml").is_file()

    missing = str(tmp_path / "no_such_model.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint")
    garbage_onnx = tmp_path / "garbage.onnx"
    garbage_onnx.write_bytes(b"this is not an ONNX model")
    for action, args in [
        ("evaluate", [f"evaluate.checkpoint={missing}"]),
        ("inference", [f"inference.checkpoint={garbage}"]),
        ("export", [f"export.checkpoint={garbage}"]),
        ("gen_trt_engine", [f"gen_trt_engine.onnx_file={garbage_onnx}"]),
        ("dataset_convert", ["dataset_convert.format=deeppcb", f"dataset_convert.deeppcb.root_dir={missing}",
                             f"dataset_convert.data_convert_output_dir={tmp_path / 'converted'}"]),
    ]:
        proc = run_cli(action, "-e", str(spec), *args)
        assert proc.returncode == 1, (action, proc.stderr)
        assert "Traceback" not in proc.stderr, (action, proc.stderr)
        statuses = _statuses(tmp_path / "results" / action)
        assert statuses[0] == "STARTED" and statuses[-1] == "FAILURE" and "SUCCESS" not in statuses, action


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_train_records_failure(tmp_path, synthetic_split, sig):
    spec = _train_spec(tmp_path, synthetic_split, epochs=500)
    proc = subprocess.Popen([sys.executable, "-m", "optical_inspection", "train", "-e", str(spec)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    status = tmp_path / "results" / "train" / "status.json"
    def started() -> bool:
        assert proc.poll() is None, "training exited before it started its loop"
        return any(r.get("message") == "Training loop in progress" for r in read_status(status))

    wait_until(started, "the training loop to start")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert _statuses(tmp_path / "results" / "train")[0] == "STARTED"
    assert _statuses(tmp_path / "results" / "train")[-1] == "FAILURE"
