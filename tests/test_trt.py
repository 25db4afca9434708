"""TensorRT path: spec and environment errors (no GPU needed), calibration pairs, the TensorRT 11 ONNX rewrites
(fp16 conversion, INT8 QDQ) checked with ONNX Runtime, and real engine builds where TensorRT and a GPU exist."""
from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from deploy_helpers import export_models, load_split_pairs
from optical_inspection.cli import run_action
from optical_inspection.deploy.calibration import CalibrationPairs
from optical_inspection.deploy.metadata import read_sidecar
from optical_inspection.sidecar import write_sidecar
from optical_inspection.deploy.onnx_backend import OnnxScorer
from optical_inspection.deploy.onnx_fp16 import convert_to_fp16
from optical_inspection.deploy.qdq import quantize_to_qdq
from optical_inspection.deploy.trt_backend import check_batch
from optical_inspection.deploy.trt_compat import import_tensorrt
from optical_inspection.errors import OIError
from optical_inspection.status import read_status
from splits import deploy_split

HAS_TRT = importlib.util.find_spec("tensorrt") is not None
HAS_GPU = torch.cuda.is_available()
needs_trt = pytest.mark.skipif(not (HAS_TRT and HAS_GPU),
                               reason="needs TensorRT and an NVIDIA GPU (run benchmarks/gpu_check.sh on a GPU machine)")


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("trt")
    models = export_models(root, *deploy_split(root / "cal", n_pairs=24, seed=3))
    return root, {model_type: (onnx_path, cfg) for model_type, (_, onnx_path, cfg) in models.items()}


@pytest.fixture(scope="module")
def trained_compact(model_files):
    """Compact trained briefly on its own split, exported; calibrated and scored on the held-out 'cal' split."""
    root, _ = model_files
    held_out = root / "cal" / "dataset.csv", root / "cal" / "images"
    models = export_models(root / "trained", *held_out, ("Compact",), train_on=deploy_split(root / "train", 48, seed=5),
                           steps=60)
    _, onnx_path, cfg = models["Compact"]
    return root, onnx_path, cfg


def _engine_spec(cfg, onnx_path: Path, results: Path, **tensorrt):
    spec = copy.deepcopy(cfg)
    spec.results_dir = str(results)
    spec.gen_trt_engine.onnx_file = str(onnx_path)
    for key, value in tensorrt.items():
        setattr(spec.gen_trt_engine.tensorrt, key, value)
    return spec


def test_spec_errors_are_reported_together_before_tensorrt_is_needed(model_files, tmp_path, capsys):
    _, files = model_files
    onnx_path, cfg = files["Compact"]
    spec = _engine_spec(cfg, onnx_path, tmp_path, min_batch_size=8, opt_batch_size=4, max_batch_size=2,
                        layers_precision=["conv1-fp16"], data_type="int8")
    assert run_action("gen_trt_engine", spec) == 2
    err = capsys.readouterr().err
    assert "min_batch_size 8 <= opt_batch_size 4 <= max_batch_size 2" in err
    assert "'conv1-fp16' must be 'layer_name:precision'" in err
    assert "int8 needs calibration pairs" in err
    spec = _engine_spec(cfg, tmp_path / "missing.onnx", tmp_path)
    assert run_action("gen_trt_engine", spec) == 2
    assert "missing.onnx' does not exist; run export first" in capsys.readouterr().err
    assert read_status(tmp_path / "gen_trt_engine" / "status.json")[-1]["status"] == "FAILURE"


@pytest.mark.skipif(HAS_TRT and HAS_GPU, reason="TensorRT and a GPU are present: the missing-TensorRT path can't run")
def test_without_tensorrt_or_gpu_the_action_exits_1_and_says_what_to_do(model_files, tmp_path, capsys):
    _, files = model_files
    onnx_path, cfg = files["Compact"]
    assert run_action("gen_trt_engine", _engine_spec(cfg, onnx_path, tmp_path)) == 1
    err = capsys.readouterr().err
    assert "pip install tensorrt" in err or "NVIDIA GPU" in err
    assert not (tmp_path / "gen_trt_engine" / "oi_model.engine").exists()


@pytest.mark.skipif(HAS_TRT, reason="tensorrt is installed")
def test_import_tensorrt_error_names_the_install_and_the_onnx_alternative():
    with pytest.raises(OIError, match=r"pip install tensorrt.*onnx_file"):
        import_tensorrt()


@pytest.mark.skipif(HAS_TRT, reason="tensorrt is installed")
@pytest.mark.parametrize("action", ["evaluate", "inference"])
def test_tensorrt_evaluate_and_inference_without_tensorrt_exit_1(model_files, tmp_path, capsys, action):
    _, files = model_files
    _, cfg = files["Compact"]
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"engine bytes")
    spec = copy.deepcopy(cfg)
    spec.results_dir = str(tmp_path / "results")
    getattr(spec, action).trt_engine = str(engine)
    assert run_action(action, spec) == 1
    assert "TensorRT is not available" in capsys.readouterr().err


def test_batch_outside_the_profile_is_refused_with_the_fix():
    check_batch(4, 1, 32, "e.engine")
    with pytest.raises(OIError, match=r"batch of 64 pair\(s\) is outside the engine's profile \[1, 32\]"):
        check_batch(64, 1, 32, "e.engine")
    with pytest.raises(OIError, match="outside"):
        check_batch(0, 1, 8, "e.engine")


def test_calibration_pairs_feed_both_inputs_from_real_pairs_spread_over_the_split(model_files):
    root, files = model_files
    _, cfg = files["Compact"]
    pairs = CalibrationPairs([str(root / "cal")], cfg.dataset, batch_size=4, batches=3)
    batches = list(pairs)
    assert len(batches) == 3
    test, golden = load_split_pairs(cfg)
    for i, batch in enumerate(batches):  # 12 of the 24 rows: every other one, not the first 12
        assert set(batch) == {"input_1", "input_2"}
        np.testing.assert_array_equal(batch["input_1"], test[8 * i:8 * i + 8:2].numpy())
        np.testing.assert_array_equal(batch["input_2"], golden[8 * i:8 * i + 8:2].numpy())
    both = CalibrationPairs([str(root / "cal")] * 2, cfg.dataset, batch_size=8, batches=3)  # 24 of 48 rows
    np.testing.assert_array_equal(np.concatenate([b["input_1"] for b in both]), np.concatenate([test[::2]] * 2))


def test_calibration_folder_errors(model_files, tmp_path):
    root, files = model_files
    _, cfg = files["Compact"]
    with pytest.raises(OIError, match="needs cal_batch_size x cal_batches = 8 x 4 = 32 pairs"):
        CalibrationPairs([str(root / "cal")], cfg.dataset, batch_size=8, batches=4)
    with pytest.raises(OIError, match="does not exist"):
        CalibrationPairs([str(tmp_path / "nowhere")], cfg.dataset, 1, 1)
    with pytest.raises(OIError, match="has no dataset.csv"):
        CalibrationPairs([str(tmp_path)], cfg.dataset, 1, 1)
    with pytest.raises(OIError, match="set gen_trt_engine.tensorrt.calibration.cal_image_dir"):
        CalibrationPairs([], cfg.dataset, 1, 1)


@pytest.mark.parametrize("model_type", ["Compact", "Siamese_3"])
def test_fp16_onnx_for_tensorrt_11_keeps_fp32_io_and_scores(model_files, tmp_path, model_type):
    _, files = model_files
    onnx_path, cfg = files[model_type]
    half = convert_to_fp16(onnx.load(str(onnx_path)))
    onnx.checker.check_model(half, full_check=True)
    assert {i.type.tensor_type.elem_type for i in list(half.graph.input) + list(half.graph.output)} == {
        onnx.TensorProto.FLOAT}
    assert {t.data_type for t in half.graph.initializer if t.data_type in (1, 10)} == {onnx.TensorProto.FLOAT16}
    path = tmp_path / "half.onnx"
    onnx.save(half, str(path))
    test, golden = load_split_pairs(cfg)
    full = OnnxScorer(onnx_path, "cpu").score(test, golden)
    got = OnnxScorer(path, "cpu").score(test, golden)
    assert np.max(np.abs(got - full)) <= 2e-2 * max(1.0, float(np.max(np.abs(full))))


def test_int8_qdq_onnx_for_tensorrt_11_is_calibrated_on_real_pairs_and_cached(trained_compact, tmp_path):
    root, onnx_path, cfg = trained_compact
    pairs = CalibrationPairs([str(root / "cal")], cfg.dataset, batch_size=4, batches=4)
    cache = tmp_path / "cal.json"
    quantized = tmp_path / "int8.onnx"
    quantize_to_qdq(onnx_path, quantized, pairs, cache)
    model = onnx.load(str(quantized))
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") >= 4 and ops.count("DequantizeLinear") >= 4
    zero_points = [onnx.numpy_helper.to_array(t) for t in model.graph.initializer if t.name.endswith("_zero_point")]
    assert zero_points and all(not np.any(z) for z in zero_points)  # symmetric, as TensorRT needs
    assert cache.is_file() and "CLS" in json.loads(cache.read_text())
    test, golden = load_split_pairs(cfg)
    full = OnnxScorer(onnx_path, "cpu").score(test, golden)
    got = OnnxScorer(quantized, "cpu").score(test, golden)
    assert np.corrcoef(full, got)[0, 1] >= 0.99
    assert {n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}.isdisjoint(
        n.output[0] for n in model.graph.node if n.op_type in ("Conv", "Gemm"))  # Q/DQ on inputs only
    again = tmp_path / "int8_from_cache.onnx"
    quantize_to_qdq(onnx_path, again, None, cache)  # no pairs: the cached ranges are enough
    assert again.read_bytes() == quantized.read_bytes()


def test_int8_without_pairs_or_cache_is_refused(model_files, tmp_path):
    _, files = model_files
    onnx_path, _ = files["Compact"]
    with pytest.raises(OIError, match="cal_image_dir"):
        quantize_to_qdq(onnx_path, tmp_path / "q.onnx", None, None)


def test_engine_sidecar_round_trip(tmp_path):
    engine = tmp_path / "m.engine"
    meta = {"format_version": 1, "output_type": "score", "threshold": 0.25}
    assert write_sidecar(engine, meta) == tmp_path / "m.engine.json"
    assert read_sidecar(engine) == meta
    assert read_sidecar(tmp_path / "tao.engine") == {}


# ---------------------------------------------------------------- real TensorRT (GPU machines only)

@needs_trt
@pytest.mark.trt
@pytest.mark.parametrize("model_type", ["Compact", "Siamese_3"])
def test_fp32_engine_matches_onnxruntime_over_its_dynamic_profile(model_files, tmp_path, model_type):
    from optical_inspection.deploy import load_scorer

    _, files = model_files
    onnx_path, cfg = files[model_type]
    spec = _engine_spec(cfg, onnx_path, tmp_path, min_batch_size=1, opt_batch_size=8, max_batch_size=32)
    spec.gen_trt_engine.timing_cache = str(tmp_path / "timing.cache")
    assert run_action("gen_trt_engine", spec) == 0
    engine = tmp_path / "gen_trt_engine" / "oi_model.engine"
    assert (tmp_path / "timing.cache").stat().st_size > 0
    scorer = load_scorer(engine, cfg)
    assert (scorer.min_batch, scorer.max_batch) == (1, 32)
    test, golden = load_split_pairs(cfg)
    ref = OnnxScorer(onnx_path, "cpu")
    for batch in (1, 24):
        np.testing.assert_allclose(scorer.score(test[:batch], golden[:batch]),
                                   ref.score(test[:batch], golden[:batch]), atol=1e-4, rtol=1e-4)
    assert scorer.threshold == pytest.approx(ref.threshold)
    big = torch.cat([test, test])[:33]
    with pytest.raises(OIError, match="outside the engine's profile"):
        scorer.score(big, big)
    assert run_action("gen_trt_engine", spec) == 0  # reuses and merges the timing cache


@needs_trt
@pytest.mark.trt
@pytest.mark.parametrize("data_type", ["fp16", "int8"])
def test_reduced_precision_engines_build_and_track_fp32(model_files, tmp_path, data_type):
    from optical_inspection.deploy import load_scorer

    root, files = model_files
    onnx_path, cfg = files["Compact"]
    spec = _engine_spec(cfg, onnx_path, tmp_path, data_type=data_type, max_batch_size=16, opt_batch_size=8)
    spec.gen_trt_engine.tensorrt.calibration.cal_image_dir = [str(root / "cal")]
    spec.gen_trt_engine.tensorrt.calibration.cal_batch_size = 4
    spec.gen_trt_engine.tensorrt.calibration.cal_batches = 4
    spec.gen_trt_engine.tensorrt.calibration.cal_cache_file = str(tmp_path / "cal.cache")
    assert run_action("gen_trt_engine", spec) == 0
    scorer = load_scorer(tmp_path / "gen_trt_engine" / "oi_model.engine", cfg)
    test, golden = load_split_pairs(cfg)
    ref = OnnxScorer(onnx_path, "cpu").score(test[:16], golden[:16])
    got = scorer.score(test[:16], golden[:16])
    assert np.corrcoef(ref, got)[0, 1] > 0.9
    if data_type == "int8":
        assert (tmp_path / "cal.cache").stat().st_size > 0


def test_tensorrt_11_gets_a_typed_onnx_and_tensorrt_10_the_original(model_files, tmp_path):
    from optical_inspection.deploy.trt_build import BuildSettings, _typed_onnx, onnx_batch

    root, files = model_files
    onnx_path, cfg = files["Compact"]
    assert onnx_batch(onnx_path) == -1
    assert _typed_onnx(10, onnx_path, tmp_path, BuildSettings(data_type="fp16"), None) == onnx_path
    assert _typed_onnx(11, onnx_path, tmp_path, BuildSettings(data_type="fp32"), None) == onnx_path
    half = _typed_onnx(11, onnx_path, tmp_path, BuildSettings(data_type="fp16"), None)
    assert half != onnx_path and (tmp_path / "model_fp16.onnx.data").is_file()
    onnx.checker.check_model(str(half), full_check=True)
    pairs = CalibrationPairs([str(root / "cal")], cfg.dataset, batch_size=4, batches=2)
    qdq = _typed_onnx(11, onnx_path, tmp_path, BuildSettings(data_type="int8"), pairs)
    assert "QuantizeLinear" in {n.op_type for n in onnx.load(str(qdq)).graph.node}
    with pytest.raises(OIError, match="layers_precision needs TensorRT 10"):
        _typed_onnx(11, onnx_path, tmp_path, BuildSettings(data_type="fp16", layers_precision=["*:fp16"]), None)


def test_onnx_without_oi_inputs_is_refused(tmp_path):
    from onnx import TensorProto, helper

    from optical_inspection.deploy.trt_build import onnx_batch

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(OIError, match="not OI's input_1/input_2"):
        onnx_batch(path)
