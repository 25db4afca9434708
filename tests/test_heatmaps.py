"""Defect maps: Compact's map before pooling, evaluate/inference heatmaps, the ONNX export's defect_map output."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deploy_helpers import make_checkpoint, small_config
from model_helpers import config_of, run_inference, seeded_checkpoint, train_spec
from optical_inspection.actions import evaluate, export, inference
from optical_inspection.data.synth.pairs import generate_pairs
from optical_inspection.deploy.onnx_backend import OnnxScorer
from optical_inspection.errors import OIError, SpecError
from optical_inspection.models.checkpoint import load_checkpoint
from optical_inspection.status import StatusLogger
from splits import deploy_split, model_splits


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    root = tmp_path_factory.mktemp("maps")
    splits = model_splits(root, n_train=8, n_val=12)
    return splits, seeded_checkpoint(root / "model.pth", splits, seed=1)


def _normalised(tiles: np.ndarray, meta: dict) -> torch.Tensor:
    mean, std = (torch.tensor(meta["dataset"][k]).view(1, 3, 1, 1) for k in ("rgb_input_mean", "rgb_input_std"))
    strips = torch.from_numpy(tiles[:, 0]).permute(0, 3, 1, 2).float() / 255.0
    return (strips.expand(-1, 3, -1, -1) - mean) / std


def test_map_has_the_strip_size_leaves_the_score_unchanged_and_peaks_near_synthetic_defects() -> None:
    model, meta = load_checkpoint("pretrained")
    pairs = generate_pairs(96, size=64, style="binary", defect_rate=1.0, seed=3)
    test, golden = _normalised(pairs.test, meta), _normalised(pairs.golden, meta)
    with torch.no_grad():
        score, maps = model.score_and_map(test, golden)
        plain = model(test, golden)
    assert maps.shape == (96, 64, 64)
    torch.testing.assert_close(score, plain)
    found = np.flatnonzero(score.numpy() > 0)
    peak = maps.reshape(96, -1).argmax(1).numpy()
    py, px = peak // 64, peak % 64
    tol = 8  # one map cell
    near = [any(x0 - tol <= px[i] <= x1 + tol and y0 - tol <= py[i] <= y1 + tol for x0, y0, x1, y1 in pairs.boxes[i])
            for i in found]
    assert len(found) >= 20 and np.mean(near) >= 0.6  # a random peak lands there for ~15 % of the pairs


_infer = run_inference


def test_inference_heatmaps_add_columns_maps_and_overlays(setup, tmp_path: Path) -> None:
    splits, checkpoint = setup
    plain = _infer(splits, checkpoint, tmp_path / "plain")
    rows = _infer(splits, checkpoint, tmp_path / "maps", inference__heatmaps=True)
    assert list(rows[0]) == list(plain[0]) + ["defect_map", "peak_x", "peak_y", "defect_area"]
    assert [r["siamese_score"] for r in rows] == [r["siamese_score"] for r in plain]
    assert not (tmp_path / "plain" / "maps").exists()
    for row in rows:
        grey = np.asarray(Image.open(tmp_path / "maps" / row["defect_map"]))
        assert grey.shape == (64, 32)  # two 32-px lights stacked: the strip's size
        assert grey[int(row["peak_y"]), int(row["peak_x"])] == grey.max()
        assert 0 <= int(row["defect_area"]) <= 64 * 32
        overlay = Image.open(tmp_path / "maps" / "overlays" / Path(row["defect_map"]).name)
        assert overlay.size == (3 * 32 + 8, 64)


def test_evaluate_heatmaps_put_maps_in_worst_pairs(setup, tmp_path: Path) -> None:
    splits, checkpoint = setup
    results = tmp_path / "eval"
    results.mkdir()
    spec = train_spec(splits, tmp_path, evaluate__checkpoint=str(checkpoint), evaluate__heatmaps=True)
    out = evaluate.run(config_of(spec, "evaluate"), results, StatusLogger(results / "status.json"))
    assert Path(out["artifacts"]["worst_pairs"]).is_file()
    assert len(list((results / "maps").glob("row_*.png"))) == 12
    assert len(list((results / "overlays").glob("row_*.png"))) == 12


def test_heatmaps_with_a_model_without_maps_fail_clearly_and_write_nothing(tmp_path: Path) -> None:
    csv_path, images = deploy_split(tmp_path / "split", n_pairs=6)
    cfg = small_config("Siamese", csv_path, images)
    checkpoint = make_checkpoint(tmp_path, cfg)
    cfg.inference.checkpoint = str(checkpoint)
    cfg.inference.heatmaps = True
    results = tmp_path / "results"
    results.mkdir()
    with pytest.raises(OIError, match="inference.heatmaps"):
        inference.run(cfg, results, StatusLogger(results / "status.json"))
    assert sorted(p.name for p in results.iterdir()) == []
    cfg.export.checkpoint, cfg.export.heatmaps, cfg.export.onnx_file = str(checkpoint), True, str(tmp_path / "s.onnx")
    with pytest.raises(SpecError, match="export.heatmaps"):
        export.run(cfg, results, StatusLogger(results / "status.json"))
    assert not (tmp_path / "s.onnx").exists()


def test_onnx_export_with_heatmaps_outputs_the_map_and_inference_reads_it(setup, tmp_path: Path) -> None:
    splits, checkpoint = setup
    spec = train_spec(splits, tmp_path, export__checkpoint=str(checkpoint), export__heatmaps=True,
                      export__onnx_file=str(tmp_path / "m.onnx"))
    cfg = config_of(spec, "export")
    export.run(cfg, tmp_path, StatusLogger(tmp_path / "status.json"))  # verify compares the maps too
    scorer = OnnxScorer(tmp_path / "m.onnx", provider="cpu")
    assert scorer.supports_maps
    model, _ = load_checkpoint(checkpoint)
    test, golden = torch.randn(3, 3, 64, 32), torch.randn(3, 3, 64, 32)
    got_score, got_map = scorer.score_maps(test.numpy(), golden.numpy())
    with torch.no_grad():
        want_score, want_map = model.score_and_map(test, golden)
    np.testing.assert_allclose(got_map, want_map.numpy(), atol=1e-4)
    np.testing.assert_allclose(got_score, scorer.score(test.numpy(), golden.numpy()), atol=1e-6)
    torch_rows = _infer(splits, checkpoint, tmp_path / "torch", inference__heatmaps=True)
    rows = _infer(splits, "unused.pth", tmp_path / "onnx", inference__heatmaps=True,
                  inference__onnx_file=str(tmp_path / "m.onnx"))
    assert [r["peak_x"] for r in rows] == [r["peak_x"] for r in torch_rows]
