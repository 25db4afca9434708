"""export: ONNX on CPU, TAO I/O, score output, dynamic/static batch, metadata, full check, safe overwrite."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from deploy_helpers import load_split_pairs, make_checkpoint, small_config
from helpers import run_cli, write_spec
from optical_inspection.actions import export
from optical_inspection.deploy.metadata import META_KEY
from optical_inspection.deploy.onnx_backend import OnnxScorer
from optical_inspection.errors import OIError, SpecError
from optical_inspection.models.checkpoint import load_checkpoint
from optical_inspection.spec import to_dict
from optical_inspection.status import StatusLogger
from splits import deploy_split


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    csv_path, images_dir = deploy_split(root / "split", n_pairs=24)
    checkpoints = {}
    for model_type in ("Compact", "Siamese_3", "Siamese"):
        cfg = small_config(model_type, csv_path, images_dir)
        checkpoints[model_type] = (make_checkpoint(root, cfg), cfg)
    return root, checkpoints


def _export(cfg, checkpoint: Path, out: Path, **keys):
    cfg = copy.deepcopy(cfg)
    cfg.export.checkpoint = str(checkpoint)
    cfg.export.onnx_file = str(out)
    for key, value in keys.items():
        setattr(cfg.export, key, value)
    return export.run(cfg, out.parent, StatusLogger(out.parent / "status.json"))


@pytest.mark.parametrize("model_type,outputs", [
    ("Compact", ["score"]), ("Siamese_3", ["output_1", "output_2"]), ("Siamese", ["output_1", "output_2"]),
])
def test_auto_export_has_tao_io_dynamic_batch_metadata_and_passes_full_check(workspace, tmp_path, model_type, outputs):
    _, checkpoints = workspace
    checkpoint, cfg = checkpoints[model_type]
    result = _export(cfg, checkpoint, tmp_path / "model.onnx")
    path = Path(result["artifacts"]["onnx_file"])
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["input_1", "input_2"]
    assert [o.name for o in model.graph.output] == outputs
    for value in list(model.graph.input) + list(model.graph.output):
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]] == [3, 32, 16]
    meta = json.loads({p.key: p.value for p in model.metadata_props}[META_KEY])
    _, ckpt_meta = load_checkpoint(checkpoint)
    assert meta["model"] == ckpt_meta["model"]
    assert meta["dataset"]["lights"] == ["LowAngleLight", "WhiteLight"]
    assert meta["dataset"]["rgb_input_std"] == pytest.approx([0.229, 0.224, 0.225])
    assert meta["threshold"] == pytest.approx(ckpt_meta["threshold"])
    assert meta["output_type"] == ("score" if outputs == ["score"] else "embeddings")
    assert result["kpi"]["max_abs_score_diff"] <= 1e-4


def test_score_output_for_siamese_reproduces_the_torch_distance(workspace, tmp_path):
    _, checkpoints = workspace
    checkpoint, cfg = checkpoints["Siamese_3"]
    path = Path(_export(cfg, checkpoint, tmp_path / "score.onnx", output_type="score")["artifacts"]["onnx_file"])
    assert [o.name for o in onnx.load(str(path)).graph.output] == ["score"]
    test, golden = load_split_pairs(cfg)
    model, _ = load_checkpoint(checkpoint)
    with torch.no_grad():
        expected = model.score(test, golden).numpy()
    np.testing.assert_allclose(OnnxScorer(path, "cpu").score(test, golden), expected, atol=1e-5)


def test_tao_style_static_batch_export_pads_and_chunks_any_batch(workspace, tmp_path):
    _, checkpoints = workspace
    checkpoint, cfg = checkpoints["Compact"]
    result = _export(cfg, checkpoint, tmp_path / "static.onnx", batch_size=4, opset_version=17,
                     do_constant_folding=False, input_height=32, input_width=16)  # TAO's export keys
    assert result["kpi"]["opset"] == 18  # the exporter's lowest opset; the note says so
    path = Path(result["artifacts"]["onnx_file"])
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_value == 4
    scorer = OnnxScorer(path, "cpu")
    assert scorer.max_batch == 4
    test, golden = load_split_pairs(cfg)
    model, _ = load_checkpoint(checkpoint)
    with torch.no_grad():
        expected = model.score(test[:10], golden[:10]).numpy()
    np.testing.assert_allclose(scorer.score(test[:10], golden[:10]), expected, atol=1e-5)
    np.testing.assert_allclose(scorer.score(test[:1], golden[:1]), expected[:1], atol=1e-5)


def test_existing_file_needs_overwrite_and_survives_a_failed_export(workspace, tmp_path, monkeypatch):
    _, checkpoints = workspace
    checkpoint, cfg = checkpoints["Compact"]
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old model")
    with pytest.raises(OIError, match="overwrite"):
        _export(cfg, checkpoint, target)

    def broken_checker(*args, **kwargs):
        raise onnx.checker.ValidationError("simulated checker failure")

    monkeypatch.setattr(onnx.checker, "check_model", broken_checker)
    with pytest.raises(onnx.checker.ValidationError):
        _export(cfg, checkpoint, target, overwrite=True)
    assert target.read_bytes() == b"old model"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "status.json") == ["model.onnx"]
    monkeypatch.undo()
    _export(cfg, checkpoint, target, overwrite=True)
    onnx.checker.check_model(str(target), full_check=True)


def test_bad_requests_fail_before_writing(workspace, tmp_path):
    _, checkpoints = workspace
    checkpoint, cfg = checkpoints["Compact"]
    with pytest.raises(SpecError, match="output_type 'embeddings' needs a Siamese model"):
        _export(cfg, checkpoint, tmp_path / "a.onnx", output_type="embeddings")
    with pytest.raises(SpecError, match="input_height is 64 .* set input_height: 32"):
        _export(cfg, checkpoint, tmp_path / "b.onnx", output_type="auto", input_height=64)
    with pytest.raises(OIError, match="does not exist"):
        _export(cfg, tmp_path / "missing.pth", tmp_path / "c.onnx", input_height=None)
    assert not list(tmp_path.glob("*.onnx"))


def test_cli_export_exit_codes(workspace, tmp_path):
    _, checkpoints = workspace
    checkpoint, cfg = checkpoints["Compact"]
    spec = to_dict(cfg)
    spec["results_dir"] = str(tmp_path / "results")
    spec["export"]["checkpoint"] = str(checkpoint)
    spec_path = write_spec(tmp_path / "spec.yaml", spec)
    first = run_cli("export", "-e", str(spec_path), timeout=300)
    assert first.returncode == 0, first.stderr
    onnx_path = tmp_path / "results" / "export" / "oi_model.onnx"
    assert onnx_path.is_file()
    records = (onnx_path.parent / "status.json").read_bytes()
    again = run_cli("export", "-e", str(spec_path), timeout=300)  # the folder holds one run: refused, untouched
    assert again.returncode == 2 and "holds another run's files" in again.stderr
    assert "export.overwrite=true" in again.stderr
    assert (onnx_path.parent / "status.json").read_bytes() == records
    replaced = run_cli("export", "-e", str(spec_path), "export.overwrite=true", timeout=300)
    assert replaced.returncode == 0, replaced.stderr
    status = [json.loads(line) for line in (onnx_path.parent / "status.json").read_text().splitlines()]
    assert [s["status"] for s in status if s["status"] != "RUNNING"] == ["STARTED", "SUCCESS", "STARTED", "SUCCESS"]


def test_models_over_the_protobuf_limit_keep_weights_in_a_data_file(workspace, tmp_path, monkeypatch):
    from optical_inspection.deploy import onnx_export

    _, checkpoints = workspace
    checkpoint, cfg = checkpoints["Siamese_3"]
    monkeypatch.setattr(onnx_export, "PROTOBUF_LIMIT", 0)  # as if the weights exceeded 2 GiB
    result = _export(cfg, checkpoint, tmp_path / "big.onnx")
    data = Path(result["artifacts"]["onnx_external_data"])
    assert data == tmp_path / "big.onnx.data" and data.stat().st_size > 4 * 2_000_000
    assert (tmp_path / "big.onnx").stat().st_size < 1_000_000
    assert result["kpi"]["max_abs_score_diff"] <= 1e-4  # ONNX Runtime found the weights next to the file
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
