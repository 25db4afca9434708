"""A 2-process DDP run on CPU (gloo): one set of checkpoints, one status stream, one correct inference.csv."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import run_cli, write_spec
from model_helpers import config_of, make_splits, train_spec
from optical_inspection.data.preprocess import Preprocessor
from optical_inspection.data.table import read_split
from optical_inspection.models.checkpoint import load_checkpoint
from optical_inspection.status import read_status


@pytest.mark.slow
def test_two_process_cpu_ddp_trains_once_and_infers_in_order(tmp_path: Path) -> None:
    splits = make_splits(tmp_path / "data", n_train=64, n_val=21)
    spec = train_spec(splits, tmp_path / "results", train__num_gpus=2, train__accelerator="cpu")
    spec_path = write_spec(tmp_path / "spec.yaml", spec)
    done = run_cli("train", "-e", str(spec_path), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = tmp_path / "results" / "train"
    # 64 pairs / (2 ranks x batch 8) = 4 steps per epoch
    assert sorted(p.name for p in results.glob("*.pth")) == [
        "model_epoch_000_step_00004.pth", "model_epoch_001_step_00008.pth", "oi_model_latest.pth"]
    records = read_status(results / "status.json")
    assert [r["status"] for r in records].count("STARTED") == 1 and records[-1]["status"] == "SUCCESS"
    assert [r["epoch"] for r in records if r["message"] == "Training loop in progress"] == [0, 1]
    meta = torch.load(results / "oi_model_latest.pth", weights_only=True)["oi_meta"]
    assert meta["threshold"] is not None and meta["metrics"]["val_auroc"] is not None

    checkpoint = results / "oi_model_latest.pth"
    done = run_cli("inference", "-e", str(spec_path), f"inference.checkpoint={checkpoint}", timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "results" / "inference" / "inference.csv").open()))
    config = config_of(spec)
    table = read_split(*splits["val"], config.dataset)
    assert [r["object_name"] for r in rows] == [r["object_name"] for r in table.rows]
    model, meta = load_checkpoint(checkpoint)
    test, golden = Preprocessor(config.dataset).load_pairs(table, range(len(table)))
    with torch.no_grad():
        expected = model.score(test, golden).numpy()
    np.testing.assert_allclose([float(r["siamese_score"]) for r in rows], expected, rtol=1e-4, atol=1e-5)
    thresholds = {float(r["threshold"]) for r in rows}
    assert len(thresholds) == 1 and thresholds.pop() == pytest.approx(meta["threshold"])
