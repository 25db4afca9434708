"""ONNX Runtime backend: parity with torch on real preprocessed pairs, providers, TAO-style files, errors."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from deploy_helpers import export_models, load_split_pairs
from optical_inspection.cli import run_action
from optical_inspection.config import ExperimentConfig
from optical_inspection.deploy import load_scorer
from optical_inspection.deploy.geometry import model_dataset_config
from optical_inspection.deploy.metadata import META_KEY, run_options
from optical_inspection.deploy.onnx_backend import CPU, CUDA, TENSORRT, OnnxScorer, choose_providers
from optical_inspection.errors import OIError
from splits import deploy_split

PARITY = 1e-4


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """{model_type: (checkpoint, onnx, cfg)} for the default model and Siamese_3, on a real synthetic split."""
    root = tmp_path_factory.mktemp("deploy_onnx")
    return export_models(root, *deploy_split(root / "split", n_pairs=40))


@pytest.mark.parametrize("model_type", ["Compact", "Siamese_3"])
@pytest.mark.parametrize("batch", [1, 32])
def test_onnxruntime_reproduces_torch_scores_and_decisions(exported, model_type, batch):
    checkpoint, onnx_path, cfg = exported[model_type]
    torch_scorer = load_scorer(checkpoint, cfg)
    onnx_scorer = load_scorer(onnx_path, cfg)
    assert isinstance(onnx_scorer, OnnxScorer) and onnx_scorer.providers == [CPU]
    assert onnx_scorer.threshold == pytest.approx(torch_scorer.threshold)
    test, golden = load_split_pairs(cfg)
    ref, got = [], []
    for start in range(0, len(test), batch):
        ref.append(torch_scorer.score(test[start:start + batch], golden[start:start + batch]))
        got.append(onnx_scorer.score(test[start:start + batch].numpy(), golden[start:start + batch].numpy()))
    ref, got = np.concatenate(ref), np.concatenate(got)
    assert np.max(np.abs(ref - got)) <= PARITY
    assert np.array_equal(ref > torch_scorer.threshold, got > onnx_scorer.threshold)
    assert 0 < int((got > onnx_scorer.threshold).sum()) < len(got)  # the threshold really splits the pairs


def test_tao_style_onnx_without_metadata_uses_output_names_and_spec(exported, tmp_path):
    _, onnx_path, cfg = exported["Siamese_3"]
    model = onnx.load(str(onnx_path))
    kept = [p for p in model.metadata_props if p.key != META_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    bare = tmp_path / "tao.onnx"
    onnx.save(model, str(bare))
    spec = copy.deepcopy(cfg)
    spec.model.margin = 3.5
    scorer = load_scorer(bare, spec)
    assert scorer.meta == {}
    assert scorer.output_type == "embeddings"
    assert scorer.threshold == 3.5
    test, golden = load_split_pairs(cfg)
    expected = OnnxScorer(onnx_path, "cpu").score(test[:4], golden[:4])
    np.testing.assert_allclose(scorer.score(test[:4], golden[:4]), expected, atol=1e-6)


def test_wrong_geometry_and_bad_files_get_clear_errors(exported, tmp_path):
    _, onnx_path, _ = exported["Compact"]
    scorer = OnnxScorer(onnx_path, "cpu")
    wrong = np.zeros((2, 3, 16, 16), dtype=np.float32)
    with pytest.raises(OIError, match=r"takes strips \(3, 32, 16\).*must match training"):
        scorer.score(wrong, wrong)
    with pytest.raises(OIError, match="must both be"):
        scorer.score(np.zeros((2, 3, 32, 16), np.float32), np.zeros((3, 3, 32, 16), np.float32))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(OIError, match="cannot load"):
        OnnxScorer(garbage, "cpu")
    with pytest.raises(OIError, match="does not exist"):
        OnnxScorer(tmp_path / "missing.onnx", "cpu")


def test_provider_choice():
    assert choose_providers("cpu", [CUDA, CPU]) == [CPU]
    assert choose_providers("auto", [CPU]) == [CPU]
    assert choose_providers("auto", [CUDA, CPU], gpu_id=1) == [(CUDA, {"device_id": 1}), CPU]
    assert choose_providers("tensorrt", [TENSORRT, CUDA, CPU]) == [
        (TENSORRT, {"device_id": 0}), (CUDA, {"device_id": 0}), CPU]
    with pytest.raises(OIError, match="install onnxruntime-gpu"):
        choose_providers("cuda", [CPU])
    cfg = ExperimentConfig()
    assert run_options(cfg) == ("auto", 0)
    cfg.inference.provider = "cpu"
    cfg.inference.gpu_ids = [2]
    assert run_options(cfg) == ("cpu", 2)


def test_model_geometry_overrides_the_spec_and_names_each_change(exported):
    _, onnx_path, cfg = exported["Compact"]
    meta = OnnxScorer(onnx_path, "cpu").meta
    spec = ExperimentConfig()  # default geometry: one image per side, 128 x 128
    dataset, changes = model_dataset_config(spec.dataset, meta["dataset"])
    assert dataset.input_map == {"LowAngleLight": 0, "WhiteLight": 1}
    assert (dataset.image_height, dataset.image_width) == (16, 16)
    assert any(c.startswith("lights:") for c in changes) and any(c.startswith("image_height:") for c in changes)
    assert model_dataset_config(cfg.dataset, meta["dataset"]) == (cfg.dataset, [])


def test_metadata_is_plain_json(exported):
    _, onnx_path, _ = exported["Siamese_3"]
    props = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    meta = json.loads(props[META_KEY])
    assert meta["input_shape"] == [3, 32, 16] and meta["batch_size"] == -1
    assert Path(meta["source"]).name == "Siamese_3.pth"


def _read_csv(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("model_type", ["Compact", "Siamese_3"])
def test_onnx_inference_csv_reproduces_torch_inference_csv_at_batch_1_and_32(exported, tmp_path, model_type):
    checkpoint, onnx_path, cfg = exported[model_type]
    runs = {}
    for name, model_key, batch in (("torch", "checkpoint", 32), ("onnx_b1", "onnx_file", 1),
                                   ("onnx_b32", "onnx_file", 32)):
        spec = copy.deepcopy(cfg)
        spec.inference.results_dir = str(tmp_path / name)
        spec.inference.batch_size = batch
        setattr(spec.inference, model_key, str(checkpoint if model_key == "checkpoint" else onnx_path))
        assert run_action("inference", spec) == 0
        runs[name] = _read_csv(tmp_path / name / "inference.csv")
    reference = runs.pop("torch")
    ref_scores = np.array([float(r["siamese_score"]) for r in reference])
    for rows in runs.values():
        assert [{k: v for k, v in r.items() if k not in ("siamese_score",)} for r in rows] == [
            {k: v for k, v in r.items() if k not in ("siamese_score",)} for r in reference]  # same decisions
        scores = np.array([float(r["siamese_score"]) for r in rows])
        assert np.max(np.abs(scores - ref_scores)) <= PARITY
    assert {r["prediction"] for r in reference} == {"PASS", "FAIL"}


def test_onnx_inference_cli_runs_without_torch(exported, tmp_path):
    """A fresh `optical_inspection inference` process scoring from ONNX never imports torch (its import alone
    took ~1.7 s of a 12,560-pair run) and writes what the in-process run writes."""
    import subprocess
    import sys

    from optical_inspection.spec import to_yaml

    _, onnx_path, cfg = exported["Compact"]
    rows = {}
    for name in ("subprocess", "in_process"):
        spec = copy.deepcopy(cfg)
        spec.inference.results_dir = str(tmp_path / name)
        spec.inference.onnx_file = str(onnx_path)
        if name == "in_process":
            assert run_action("inference", spec) == 0
        else:
            (tmp_path / "spec.yaml").write_text(to_yaml(spec))
            probe = ("import runpy, sys\nsys.argv = ['optical_inspection', 'inference', '-e', sys.argv[1]]\n"
                     "try:\n    runpy.run_module('optical_inspection', run_name='__main__')\n"
                     "except SystemExit as exc:\n    code = exc.code\n"
                     "print('exit', code, 'torch' in sys.modules)\n")
            proc = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "spec.yaml")], capture_output=True,
                                  text=True, timeout=300)
            assert proc.stdout.strip().splitlines()[-1] == "exit 0 False", proc.stdout + proc.stderr
        rows[name] = _read_csv(tmp_path / name / "inference.csv")
    assert rows["subprocess"] == rows["in_process"] and len(rows["subprocess"]) == 40


def test_onnx_evaluate_writes_the_same_metrics_as_torch(exported, tmp_path):
    checkpoint, onnx_path, cfg = exported["Compact"]
    metrics = {}
    for name, key, value in (("torch", "checkpoint", checkpoint), ("onnx", "onnx_file", onnx_path)):
        spec = copy.deepcopy(cfg)
        spec.evaluate.results_dir = str(tmp_path / name)
        setattr(spec.evaluate, key, str(value))
        assert run_action("evaluate", spec) == 0
        metrics[name] = json.loads((tmp_path / name / "metrics.json").read_text())
        assert (tmp_path / name / "roc.png").is_file()
    for key in ("total_accuracy", "false_alarm", "false_negative", "defect_accuracy", "auroc", "threshold"):
        assert metrics["onnx"][key] == pytest.approx(metrics["torch"][key], abs=1e-6), key


def test_cpu_micro_batches_give_the_same_scores(exported, tmp_path):
    from optical_inspection.deploy.onnx_backend import MICRO_BATCH_BYTES, micro_batch

    _, onnx_path, cfg = exported["Compact"]
    assert micro_batch(onnx_path, (3, 512, 128), [CPU]) == MICRO_BATCH_BYTES // (2 * 4 * 3 * 512 * 128)
    assert micro_batch(onnx_path, (3, 512, 128), [CUDA, CPU]) is None
    big = tmp_path / "big.onnx"
    big.write_bytes(b"\0" * (MICRO_BATCH_BYTES + 1))  # weights over budget (TAO's Siamese heads): whole batch
    assert micro_batch(big, (3, 512, 128), [CPU]) is None
    scorer = OnnxScorer(onnx_path, "cpu")
    test, golden = load_split_pairs(cfg)
    whole = scorer.score(test, golden)
    scorer.micro_batch = 3
    np.testing.assert_allclose(scorer.score(test, golden), whole, atol=1e-6)
