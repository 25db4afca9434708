"""Training: SIGKILL mid-epoch + restart = an uninterrupted run; checkpoints always complete and plain."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import REPO, write_spec
from model_helpers import train_spec
from splits import model_splits

EPOCHS = 2


def _cli(spec: Path) -> list[str]:
    return [sys.executable, "-m", "optical_inspection", "train", "-e", str(spec)]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def _epoch_records(status: Path) -> list[dict]:
    if not status.exists():
        return []
    lines = status.read_text().splitlines()
    return [r for r in (json.loads(x) for x in lines if x.strip()) if r.get("message") == "Training loop in progress"]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_restart_matches_uninterrupted_run(tmp_path: Path) -> None:
    splits = model_splits(tmp_path / "data", n_train=240, n_val=16)
    spec_a = write_spec(tmp_path / "a.yaml", train_spec(splits, tmp_path / "a", train__num_epochs=EPOCHS))
    spec_b = write_spec(tmp_path / "b.yaml", train_spec(splits, tmp_path / "b", train__num_epochs=EPOCHS))

    done = subprocess.run(_cli(spec_a), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    results_b = tmp_path / "b" / "train"
    proc = subprocess.Popen(_cli(spec_b), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not _epoch_records(results_b / "status.json") and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    saved = sorted(p.name for p in results_b.glob("model_epoch_*.pth"))
    assert saved == ["model_epoch_000_step_00030.pth"], f"not killed during epoch 1: {saved}"
    for path in results_b.glob("*.pth"):  # every checkpoint on disk is complete and plain
        torch.load(path, weights_only=True)
    assert "SUCCESS" not in (results_b / "status.json").read_text()

    again = subprocess.run(_cli(spec_b), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "Resuming training from" in again.stderr or "Restoring states" in again.stderr
    final = f"model_epoch_{EPOCHS - 1:03d}_step_{EPOCHS * 30:05d}.pth"
    a, b = _weights(tmp_path / "a" / "train" / final), _weights(results_b / final)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=key)
    meta_a = torch.load(tmp_path / "a" / "train" / final, weights_only=True)["oi_meta"]
    meta_b = torch.load(results_b / final, weights_only=True)["oi_meta"]
    assert meta_b["metrics"]["val_auroc"] == pytest.approx(meta_a["metrics"]["val_auroc"], abs=1e-6)
    assert meta_b["threshold"] == pytest.approx(meta_a["threshold"], abs=1e-5)
    assert not [p for p in results_b.iterdir() if p.name.endswith(".tmp")]  # stale temp files cleaned up
