"""Checkpoints: plain content, atomic writes, a JSON sidecar, weights_only loading, refusal of pickled objects,
TAO files."""
from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest
import torch

from optical_inspection.deploy import load_scorer
from optical_inspection.errors import OIError
from optical_inspection.models import build_network
from optical_inspection.models.checkpoint import check_plain, load_checkpoint, save_checkpoint, write_checkpoint
from optical_inspection.models.siamese import Siamese3

META = {"model": {"model_type": "Compact", "base_channels": 8, "shift_tolerance": 1},
        "dataset": {"strip_shape": [3, 32, 16], "lights": []}, "epoch": 3, "step": 40, "threshold": 0.25,
        "metrics": {"val_auroc": 0.9}}


class Arbitrary:
    """Any class: pickling it into a checkpoint must make the checkpoint unloadable."""


def test_roundtrip_keeps_weights_meta_and_eval_mode(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_network(META["model"], (3, 32, 16))
    path = save_checkpoint(tmp_path / "m.pth", model, META)
    raw = torch.load(path, weights_only=True)
    assert all(k.startswith("model.") for k in raw["state_dict"])
    loaded, meta = load_checkpoint(path)
    assert not loaded.training and meta["threshold"] == 0.25 and meta["step"] == 40
    x, g = torch.randn(2, 3, 32, 16), torch.randn(2, 3, 32, 16)
    torch.testing.assert_close(loaded.score(x, g), model.eval().score(x, g))
    scorer = load_scorer(path)
    assert scorer.threshold == 0.25 and scorer.max_batch is None
    assert scorer.score(x.numpy(), g.numpy()).dtype.name == "float32"
    sidecar = tmp_path / "m.pth.json"
    assert sorted(tmp_path.iterdir()) == [path, sidecar]  # the JSON sidecar, no temp file left
    assert json.loads(sidecar.read_text()) == META


def test_pickled_object_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    state = {f"model.{k}": v for k, v in build_network(META["model"], (3, 32, 16)).state_dict().items()}
    torch.save({"state_dict": state, "oi_meta": META, "payload": Arbitrary()}, path)
    with pytest.raises(OIError, match=r"holds a pickled Python object \(.*Arbitrary\), which is refused"):
        load_checkpoint(path)


def test_non_plain_content_is_never_written(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"checkpoint\['meta'\]\['x'\] is a .*Arbitrary"):
        write_checkpoint(tmp_path / "x.pth", {"state_dict": {}, "meta": {"x": Arbitrary()}})
    assert list(tmp_path.iterdir()) == []
    check_plain({"a": [1, 2.0, "s", None, (True,)], "t": torch.zeros(1), "o": collections.OrderedDict()})


def test_missing_garbage_and_mismatched_checkpoints_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(OIError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(OIError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(tmp_path / "junk.pth")
    model = build_network(META["model"], (3, 32, 16))
    other = dict(META, model=dict(META["model"], base_channels=16))
    path = save_checkpoint(tmp_path / "m.pth", model, other)
    with pytest.raises(OIError, match="does not fit this network.*base_channels"):
        load_checkpoint(path)


def test_tao_checkpoint_without_metadata_loads_with_the_spec(tmp_path: Path, synthetic_split, make_config) -> None:
    config = make_config(*synthetic_split, image_height=16, image_width=16)
    config.model.model_type = "Siamese_3"
    model = Siamese3((3, 64, 16))
    path = tmp_path / "tao.pth"
    torch.save({"epoch": 4, "global_step": 10, "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                "optimizer_states": [], "lr_schedulers": []}, path)
    with pytest.raises(OIError, match="carries no optical_inspection metadata"):
        load_checkpoint(path)
    loaded, meta = load_checkpoint(path, config)
    assert meta["origin"] == "tao" and meta["model"]["model_type"] == "Siamese_3" and meta["threshold"] is None
    assert load_scorer(path, config).threshold == 2.0  # TAO's margin


def test_load_scorer_rejects_unknown_suffix(tmp_path: Path) -> None:
    (tmp_path / "m.bin").write_bytes(b"x")
    with pytest.raises(OIError, match="unknown suffix '.bin'"):
        load_scorer(tmp_path / "m.bin")
