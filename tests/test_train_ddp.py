"""Distributed training on CPU (gloo): 2 processes launched by Lightning, and 2 "nodes" launched by torchrun on
the loopback; one set of checkpoints, one status stream, the metrics of one process, a clear error for a spec whose
node count disagrees with the launcher."""
from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import REPO, run_cli, write_spec
from model_helpers import config_of, train_spec
from optical_inspection.data.preprocess import Preprocessor
from optical_inspection.data.table import read_split
from optical_inspection.models.checkpoint import load_checkpoint
from optical_inspection.status import read_status
from splits import model_splits


@pytest.mark.slow
def test_two_process_cpu_ddp_trains_once_and_infers_in_order(tmp_path: Path) -> None:
    splits = model_splits(tmp_path / "data", n_train=64, n_val=21)
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun_node(rank: int, port: int, spec_path: Path) -> subprocess.Popen:
    """One "node" of `torchrun --nnodes 2 --nproc_per_node 1` on the loopback (static rendezvous at rank 0)."""
    args = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
            "--node_rank", str(rank), "--master_addr", "127.0.0.1", "--master_port", str(port),
            "-m", "optical_inspection", "train", "-e", str(spec_path)]
    return subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1"))


@pytest.mark.slow
def test_two_torchrun_nodes_train_once_with_the_metrics_of_one_process(tmp_path: Path) -> None:
    """2 nodes x batch 8 against 1 process x batch 16 on the same data: the same samples per step (the distributed
    sampler deals the sampler's order out to the ranks) and averaged gradients; only BatchNorm statistics are per
    process (8 pairs, not 16), hence a small tolerance."""
    splits = model_splits(tmp_path / "data", n_train=48, n_val=24)
    # Augmentation and synthetic defects draw per process: off, so both runs see the very same pairs.
    same = {"train__accelerator": "cpu", "dataset__augmentation_config__augment": False,
            "dataset__synthetic_defects__enable": False}
    nodes_spec = write_spec(tmp_path / "nodes.yaml", train_spec(splits, tmp_path / "nodes", train__num_nodes=2, **same))
    single_spec = write_spec(tmp_path / "single.yaml", train_spec(splits, tmp_path / "single", dataset__batch_size=16,
                                                                  **same))
    port = _free_port()
    nodes = [_torchrun_node(rank, port, nodes_spec) for rank in (0, 1)]
    single = run_cli("train", "-e", str(single_spec), timeout=300, env={"OMP_NUM_THREADS": "1"})
    outputs = [node.communicate(timeout=300)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    assert single.returncode == 0, single.stderr[-3000:]

    results = tmp_path / "nodes" / "train"
    # 48 pairs / (2 nodes x batch 8) = 3 steps per epoch, like 48 / 16 in one process
    names = ["model_epoch_000_step_00003.pth", "model_epoch_001_step_00006.pth", "oi_model_latest.pth"]
    assert sorted(p.name for p in results.glob("*.pth")) == names
    assert sorted(p.name for p in (tmp_path / "single" / "train").glob("*.pth")) == names
    records = read_status(results / "status.json")                      # written by rank 0 only
    assert [r["status"] for r in records].count("STARTED") == 1 and records[-1]["status"] == "SUCCESS"
    assert [r["epoch"] for r in records if r["message"] == "Training loop in progress"] == [0, 1]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in outputs[1]                    # really two processes of one world

    two = records[-1]["kpi"]
    one = read_status(tmp_path / "single" / "train" / "status.json")[-1]["kpi"]
    assert abs(two["val_loss"] - one["val_loss"]) < 0.02 and abs(two["train_loss"] - one["train_loss"]) < 0.06
    assert abs(two["val_acc"] - one["val_acc"]) <= 100 / 24 + 1e-9          # at most one of 24 pairs decided otherwise


def test_num_nodes_that_disagree_with_torchrun_are_refused_naming_the_keys(tmp_path: Path) -> None:
    """The environment torchrun gives each process (2 nodes x 1): a spec for one node fails before training."""
    splits = model_splits(tmp_path / "data", n_train=16, n_val=8)
    spec_path = write_spec(tmp_path / "spec.yaml", train_spec(splits, tmp_path / "results", train__accelerator="cpu"))
    launcher = {"TORCHELASTIC_RUN_ID": "test", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "1", "RANK": "0",
                "LOCAL_RANK": "0", "GROUP_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    done = run_cli("train", "-e", str(spec_path), timeout=300, env=launcher)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "train.num_nodes=1 x train.num_gpus=1 does not match the launcher" in done.stderr
    assert "set train.num_nodes=2 and train.num_gpus=1" in done.stderr
    records = read_status(tmp_path / "results" / "train" / "status.json")
    assert records[-1]["status"] == "FAILURE" and "does not match the launcher" in records[-1]["message"]
    assert not list((tmp_path / "results" / "train").glob("*.pth"))


def test_several_nodes_without_a_launcher_are_refused_instead_of_waiting(tmp_path: Path, monkeypatch) -> None:
    from optical_inspection.actions.train import device_settings
    from optical_inspection.errors import SpecError

    for var in ("TORCHELASTIC_RUN_ID", "SLURM_NTASKS", "NODE_RANK"):
        monkeypatch.delenv(var, raising=False)
    splits = model_splits(tmp_path / "data", n_train=8, n_val=4)
    config = config_of(train_spec(splits, tmp_path / "results", train__accelerator="cpu", train__num_nodes=2))
    with pytest.raises(SpecError, match="train.num_nodes=2 but no launcher started this process"):
        device_settings(config.train)
    monkeypatch.setenv("NODE_RANK", "0")                    # Lightning's own multi-node variables: accepted
    assert device_settings(config.train)["num_nodes"] == 2
