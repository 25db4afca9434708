"""Checkpoint choice without torch in the runner: metadata from the trainer's JSON sidecar, best by recorded metric
(never the file name), epoch=N (1-based, = zero-based metadata epoch N-1), latest only when asked, clear errors
listing what exists; checkpoints without a sidecar (TAO's) are listed as unknown and never chosen."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from optical_inspection.models.callbacks import publish_latest
from optical_inspection.models.checkpoint import write_checkpoint
from runners.checkpoints import choose, epoch_metrics, list_checkpoints, parse_request
from runners.errors import NotFoundError, RequestError


def save(folder: Path, name: str, epoch: int, step: int, metrics: dict | None = None, val_epoch: int | None = -1
         ) -> Path:
    """A checkpoint as the trainer writes it (Lightning dict + oi_meta, and its sidecar); val_epoch -1 means =
    epoch."""
    meta = {"epoch": epoch, "step": step, "val_epoch": epoch if val_epoch == -1 else val_epoch}
    if metrics is not None:
        meta["metrics"] = metrics
    state = {"model.w": torch.randn(2, 2)}
    return write_checkpoint(folder / name, {"state_dict": state, "epoch": epoch, "global_step": step, "oi_meta": meta,
                                            "optimizer_states": [{"state": {0: {"exp_avg": torch.ones(2)}}}]})


def pick(folder: Path, request: str, metric: str = "val_acc", direction: str = "maximize", status=None):
    return choose(list_checkpoints(folder, status), parse_request(request), metric, direction, "job x")


def test_metadata_comes_from_the_sidecar_and_the_runner_never_imports_torch(tmp_path):
    path = save(tmp_path, "model_epoch_000_step_00003.pth", 0, 3, {"val_acc": 50.0})
    sidecar = json.loads((tmp_path / "model_epoch_000_step_00003.pth.json").read_text())
    assert sidecar == {"epoch": 0, "step": 3, "val_epoch": 0, "metrics": {"val_acc": 50.0}}
    code = ("import sys; from pathlib import Path; from runners.checkpoints import list_checkpoints; "
            f"[c] = list_checkpoints(Path({str(tmp_path)!r})); "
            "print(c.epoch, c.step, c.metrics, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["0", "3", "{'val_acc':", "50.0}", "False"]
    assert path.is_file()


def test_best_is_the_highest_metric_never_the_file_name(tmp_path):
    save(tmp_path, "model_epoch_000_step_00003.pth", 0, 3, {"val_acc": 60.0})
    save(tmp_path, "model_epoch_001_step_00006.pth", 1, 6, {"val_acc": 90.0})
    save(tmp_path, "model_best_epoch_002.pth", 2, 9, {"val_acc": 70.0})
    publish_latest(tmp_path / "model_best_epoch_002.pth", tmp_path)
    chosen, reason = pick(tmp_path, "best")
    assert chosen.path.name == "model_epoch_001_step_00006.pth"
    assert "val_acc = 90" in reason and "epoch 2" in reason


def test_minimized_metric_and_ties_go_to_the_earliest_epoch(tmp_path):
    save(tmp_path, "a.pth", 0, 3, {"val_loss": 0.5, "val_acc": 80.0})
    save(tmp_path, "b.pth", 1, 6, {"val_loss": 0.2, "val_acc": 80.0})
    save(tmp_path, "c.pth", 2, 9, {"val_loss": 0.3, "val_acc": 70.0})
    assert pick(tmp_path, "best", "val_loss", "minimize")[0].path.name == "b.pth"
    chosen, reason = pick(tmp_path, "best")
    assert chosen.path.name == "a.pth" and "the earliest is used" in reason


def test_stale_validation_metrics_do_not_count(tmp_path):
    save(tmp_path, "e0.pth", 0, 3, {"val_acc": 70.0})
    save(tmp_path, "e1.pth", 1, 6, {"val_acc": 95.0}, val_epoch=0)  # carried over, not validated at epoch 1
    assert pick(tmp_path, "best")[0].path.name == "e0.pth"


def test_status_json_metrics_when_checkpoints_carry_none(tmp_path):
    save(tmp_path, "model_epoch_000_step_00003.pth", 0, 3, None)
    save(tmp_path, "model_epoch_001_step_00006.pth", 1, 6, None)
    records = [{"status": "STARTED"},
               {"status": "RUNNING", "epoch": 0, "kpi": {"val_acc": 88.0}},
               {"status": "RUNNING", "epoch": 1, "kpi": {"val_acc": 55.0}},
               {"status": "SUCCESS", "kpi": {"val_acc": 55.0}}]
    status = epoch_metrics(records)
    assert status == {0: {"val_acc": 88.0}, 1: {"val_acc": 55.0}}
    assert pick(tmp_path, "best", status=status)[0].path.name == "model_epoch_000_step_00003.pth"


def test_epoch_n_counts_from_one(tmp_path):
    save(tmp_path, "model_epoch_000_step_00003.pth", 0, 3, {})
    save(tmp_path, "model_epoch_001_step_00006.pth", 1, 6, {})
    publish_latest(tmp_path / "model_epoch_001_step_00006.pth", tmp_path)
    assert pick(tmp_path, "epoch=1")[0].path.name == "model_epoch_000_step_00003.pth"
    assert pick(tmp_path, "epoch=2")[0].path.name == "model_epoch_001_step_00006.pth"
    with pytest.raises(NotFoundError) as err:
        pick(tmp_path, "epoch=3")
    assert "no checkpoint of epoch 3" in str(err.value)
    assert "model_epoch_000_step_00003.pth (epoch 1, step 3)" in str(err.value)
    assert "oi_model_latest.pth (epoch 2, step 6)" in str(err.value)


def test_two_files_for_one_epoch_are_ambiguous(tmp_path):
    save(tmp_path, "model_epoch_001_step_00004.pth", 1, 4, {})
    save(tmp_path, "model_epoch_001_step_00006.pth", 1, 6, {})
    with pytest.raises(NotFoundError, match="epoch 2 is ambiguous"):
        pick(tmp_path, "epoch=2")


def test_latest_only_when_asked_and_errors_list_what_exists(tmp_path):
    save(tmp_path, "model_epoch_000_step_00003.pth", 0, 3, {})
    save(tmp_path, "model_epoch_001_step_00006.pth", 1, 6, {})
    assert pick(tmp_path, "latest")[0].path.name == "model_epoch_001_step_00006.pth"
    with pytest.raises(NotFoundError, match="no checkpoint has a recorded val_acc.*model_epoch_000"):
        pick(tmp_path, "best")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NotFoundError, match="no checkpoint files"):
        pick(empty, "best")


def test_a_checkpoint_without_sidecar_is_listed_as_unknown_and_never_chosen(tmp_path):
    save(tmp_path, "model_epoch_000_step_00003.pth", 0, 3, {"val_acc": 50.0})
    torch.save({"state_dict": {"model.w": torch.ones(1)}, "epoch": 5, "global_step": 30}, tmp_path / "tao.pth")
    listed = {c.path.name: c for c in list_checkpoints(tmp_path)}
    assert not listed["tao.pth"].known and listed["tao.pth"].epoch is None
    assert pick(tmp_path, "best")[0].path.name == "model_epoch_000_step_00003.pth"
    assert pick(tmp_path, "latest")[0].path.name == "model_epoch_000_step_00003.pth"
    (tmp_path / "model_epoch_000_step_00003.pth").unlink()
    with pytest.raises(NotFoundError, match="'latest' cannot be chosen.*tao.pth .metadata unknown: no tao.pth.json"):
        pick(tmp_path, "latest")
    with pytest.raises(NotFoundError, match="no checkpoint has a recorded val_acc.*tao.pth .metadata unknown"):
        pick(tmp_path, "best")


def test_a_damaged_sidecar_is_a_clear_error(tmp_path):
    save(tmp_path, "m.pth", 0, 3, {})
    (tmp_path / "m.pth.json").write_text("{not json")
    with pytest.raises(NotFoundError, match=r"m.pth.json: not valid JSON .*delete it"):
        list_checkpoints(tmp_path)
    (tmp_path / "m.pth.json").write_text("[1, 2]")
    with pytest.raises(NotFoundError, match=r"m.pth.json: holds a list, not a JSON object"):
        list_checkpoints(tmp_path)


@pytest.mark.parametrize("text", ["epoch=0", "epoch=-1", "epoch=x", "best2", "last"])
def test_bad_requests(text):
    with pytest.raises(RequestError):
        parse_request(text)
