"""The bundled pretrained weights: checked by sha256, usable as `pretrained` by every action and the runner."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from model_helpers import config_of, train_spec
from optical_inspection.actions import evaluate
from optical_inspection.errors import OIError
from optical_inspection.models import bundled
from optical_inspection.models.checkpoint import adapt_normalisation, load_checkpoint, model_state, read_checkpoint
from optical_inspection.models.factory import build_network
from optical_inspection.status import StatusLogger
from runners.api import plan_job
from runners.errors import RequestError
from splits import model_splits


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return model_splits(tmp_path_factory.mktemp("pretrained"), n_train=8, n_val=24)


def test_bundled_file_is_small_plain_and_recorded():
    path = bundled.bundled_path()
    assert path.stat().st_size <= 200 * 1024
    data = read_checkpoint("pretrained")  # weights_only=True inside
    meta = data["oi_meta"]
    assert bundled.fits(meta["model"]) and meta["threshold"] is not None and "synthetic" in meta["origin"]


def test_a_tampered_bundle_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "pretrained"
    shutil.copytree(bundled.FOLDER, folder)
    weights = folder / bundled.WEIGHTS.name
    raw = bytearray(weights.read_bytes())
    raw[-40] ^= 0xFF
    weights.write_bytes(bytes(raw))
    monkeypatch.setattr(bundled, "WEIGHTS", weights)
    monkeypatch.setattr(bundled, "DIGEST", folder / bundled.DIGEST.name)
    with pytest.raises(OIError, match="do not match their recorded sha256"):
        read_checkpoint("pretrained")
    (folder / bundled.DIGEST.name).unlink()
    with pytest.raises(OIError, match="missing"):
        read_checkpoint("pretrained")


def test_evaluate_with_no_training_at_all(splits, tmp_path):
    """Two lights of 32 px: the bundled network takes the spec's geometry; the stored default threshold is used."""
    config = config_of(train_spec(splits, tmp_path, evaluate__checkpoint="pretrained"), "evaluate")
    evaluate.run(config, tmp_path / "evaluate", StatusLogger(tmp_path / "status.json"))
    metrics = json.loads((tmp_path / "evaluate" / "metrics.json").read_text())
    assert 0.0 <= metrics["auroc"] <= 1.0 and metrics["num_pairs"] == 24
    model, meta = load_checkpoint("pretrained", config)
    assert meta["dataset"]["strip_shape"] == [3, 64, 32] and meta["threshold_source"].startswith("bundled default")


def test_normalisation_is_folded_into_the_first_layer():
    """Away from the zero-padded border, the adapted first block on new-normalised input equals the bundled one
    on the normalisation it was trained with."""
    data = read_checkpoint("pretrained")
    trained = data["oi_meta"]["dataset"]
    wanted = {"rgb_input_mean": [0.5, 0.5, 0.5], "rgb_input_std": [0.25, 0.3, 0.2]}
    nets = []
    for state in (model_state(data), adapt_normalisation(model_state(data), trained, wanted)):
        net = build_network(bundled.MODEL, (3, 32, 32))
        net.load_state_dict(state)
        nets.append(net.eval())
    u = torch.rand(2, 3, 32, 32)
    norm = lambda x, d: (x - torch.tensor(d["rgb_input_mean"]).view(1, 3, 1, 1)) / torch.tensor(  # noqa: E731
        d["rgb_input_std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        a = nets[0].encoder[0](norm(u, trained))
        b = nets[1].encoder[0](norm(u, wanted))
    assert torch.allclose(a[..., 1:-1, 1:-1], b[..., 1:-1, 1:-1], atol=1e-4)


def test_runner_checkpoint_pretrained_needs_no_parent(tmp_path):
    plan = plan_job("export", jobs_root=tmp_path, checkpoint="pretrained")
    assert plan.draft.data["export"]["checkpoint"] == "pretrained"
    with pytest.raises(RequestError, match="takes no --parent-job"):
        plan_job("export", jobs_root=tmp_path, checkpoint="pretrained", parent_job="x")
    with pytest.raises(RequestError, match="takes no checkpoint"):
        plan_job("gen_trt_engine", jobs_root=tmp_path, checkpoint="pretrained")


def test_pretrained_default_with_another_model_starts_from_scratch(splits, tmp_path, caplog):
    from optical_inspection.actions.train import initialise
    from optical_inspection.models.lightning_model import OIModule
    from optical_inspection.models.factory import dataset_geometry

    config = config_of(train_spec(splits, tmp_path, model__base_channels=8))
    module = OIModule(config, dataset_geometry(config.dataset))
    before = {k: v.clone() for k, v in module.model.state_dict().items()}
    initialise(module, "pretrained", config)
    assert "starts from random weights" in caplog.text
    assert all(torch.equal(before[k], v) for k, v in module.model.state_dict().items())
    default = config_of(train_spec(splits, tmp_path, model__base_channels=16))
    assert default.train.pretrained_model_path == "pretrained"
    module = OIModule(default, dataset_geometry(default.dataset))
    initialise(module, "pretrained", default)
    assert torch.equal(module.model.state_dict()["classifier.weight"],
                       model_state(read_checkpoint("pretrained"))["classifier.weight"])


def test_path_is_inside_the_package():
    assert Path(bundled.WEIGHTS).is_relative_to(Path(bundled.__file__).parent)


def test_the_pretraining_command_is_deterministic(tmp_path):
    """`make pretrained` reproduces its bytes: the same (small) settings twice give the same weights and digest,
    and training moved the weights away from their seeded initialisation."""
    from optical_inspection.models.pretrain import main

    args = ["--steps", "3", "--pool-pairs", "8", "--size", "32", "--batch", "8", "--threads", "1"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    assert main(args + ["--out", str(tmp_path / "b")]) == 0
    a, b = (tmp_path / name / bundled.WEIGHTS.name for name in ("a", "b"))
    assert bundled.sha256(a) == bundled.sha256(b)
    assert (tmp_path / "a" / bundled.DIGEST.name).read_text().split()[0] == bundled.sha256(a)
    torch.manual_seed(0)
    init = build_network(bundled.MODEL, (3, 32, 32)).state_dict()
    trained = model_state(read_checkpoint(a))
    assert not torch.equal(init["classifier.weight"], trained["classifier.weight"])
