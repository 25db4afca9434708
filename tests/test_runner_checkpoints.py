"""Checkpoint choice without torch in the runner: best by recorded metric (never the file name), epoch=N
(1-based, = zero-based metadata epoch N-1), latest only when asked, clear errors listing what exists."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
import torch

from runners.checkpoints import choose, epoch_metrics, list_checkpoints, parse_request, read_meta
from runners.errors import NotFoundError, RequestError


def save(folder: Path, name: str, epoch: int, step: int, metrics: dict | None = None, val_epoch: int | None = -1
         ) -> Path:
    """A checkpoint shaped like the trainer's (Lightning dict + oi_meta); val_epoch -1 means = epoch."""
    meta = {"epoch": epoch, "step": step, "val_epoch": epoch if val_epoch == -1 else val_epoch}
    if metrics is not None:
        meta["metrics"] = metrics
    state = {"model.w": torch.randn(2, 2)}
    torch.save({"state_dict": state, "epoch": epoch, "global_step": step, "oi_meta": meta,
                "optimizer_states": [{"state": {0: {"exp_avg": torch.ones(2)}}}]}, folder / name)
    return folder / name


def pick(folder: Path, request: str, metric: str = "val_acc", direction: str = "maximize", status=None):
    return choose(list_checkpoints(folder, status), parse_request(request), metric, direction, "job x")


def test_metadata_is_read_without_building_tensors(tmp_path):
    path = save(tmp_path, "model_epoch_000_step_00003.pth", 0, 3, {"val_acc": 50.0})
    data = read_meta(path)
    assert data["oi_meta"] == {"epoch": 0, "step": 3, "val_epoch": 0, "metrics": {"val_acc": 50.0}}
    assert not isinstance(data["state_dict"]["model.w"], torch.Tensor)


def test_best_is_the_highest_metric_never_the_file_name(tmp_path):
    save(tmp_path, "model_epoch_000_step_00003.pth", 0, 3, {"val_acc": 60.0})
    save(tmp_path, "model_epoch_001_step_00006.pth", 1, 6, {"val_acc": 90.0})
    save(tmp_path, "model_best_epoch_002.pth", 2, 9, {"val_acc": 70.0})
    (tmp_path / "oi_model_latest.pth").hardlink_to(tmp_path / "model_best_epoch_002.pth")
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
    (tmp_path / "oi_model_latest.pth").hardlink_to(tmp_path / "model_epoch_001_step_00006.pth")
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


def test_a_checkpoint_with_pickled_objects_is_refused(tmp_path):
    torch.save({"state_dict": {}, "oi_meta": {"epoch": 0}, "bad": Fraction(1, 3)}, tmp_path / "evil.pth")
    with pytest.raises(NotFoundError, match="refusing to load fractions.Fraction"):
        read_meta(tmp_path / "evil.pth")
    (tmp_path / "junk.pth").write_text("not a zip")
    with pytest.raises(NotFoundError, match="cannot read the checkpoint's metadata"):
        read_meta(tmp_path / "junk.pth")


@pytest.mark.parametrize("text", ["epoch=0", "epoch=-1", "epoch=x", "best2", "last"])
def test_bad_requests(text):
    with pytest.raises(RequestError):
        parse_request(text)
