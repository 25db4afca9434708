"""The one preprocessing: geometry, tile order, resize, normalisation, grey images, unreadable files."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from optical_inspection.data.preprocess import Preprocessor
from optical_inspection.data.table import read_split
from optical_inspection.errors import DataError, SpecError
from optical_inspection.spec import validate_dict

LIGHTS4 = {"A": 0, "B": 1, "C": 2, "D": 3}


def _pre(**dataset) -> Preprocessor:
    return Preprocessor(validate_dict({"dataset": dataset}, None).dataset)


def test_strip_shapes():
    assert _pre(input_map=LIGHTS4, image_height=16, image_width=8).strip_shape == (3, 64, 8)
    assert _pre(input_map=LIGHTS4, image_height=16, image_width=8, concat_type="grid").strip_shape == (3, 32, 16)
    assert _pre(input_map=None, image_height=16, image_width=8).strip_shape == (3, 16, 8)
    six = {f"L{i}": i for i in range(6)}
    assert _pre(input_map=six, image_height=8, image_width=8, concat_type="grid",
                grid_map={"x": 3, "y": 2}).strip_shape == (3, 16, 24)


@pytest.mark.parametrize("dataset, pattern", [
    ({"input_map": LIGHTS4, "concat_type": "grid", "grid_map": {"x": 3, "y": 1}}, "grid_map 3x1 holds 3 tiles"),
    ({"input_map": {"A": 0, "B": 1, "C": 2}, "concat_type": "grid"}, "grid_map 2x2 holds 4 tiles but there are 3"),
    ({"input_map": LIGHTS4, "num_input": 8}, "num_input is 8 but dataset.input_map has 4"),
    ({"augmentation_config": {"rgb_input_mean": [0.5]}}, "rgb_input_mean needs 3 values"),
    ({"augmentation_config": {"rgb_input_std": [0.2, 0.0, 0.2]}}, "must be > 0"),
    ({"image_ext": "jpg"}, "image_ext must start with a dot"),
])
def test_impossible_geometry_is_a_spec_error(dataset, pattern):
    with pytest.raises(SpecError, match=pattern):
        _pre(**dataset)


def test_linear_and_grid_tile_order():
    tiles = torch.arange(4).view(4, 1, 1, 1).expand(4, 3, 8, 8)  # tile k is filled with k
    linear = _pre(input_map=LIGHTS4, image_height=8, image_width=8).concat(tiles)
    assert linear[0, ::8, 0].tolist() == [0, 1, 2, 3]  # stacked vertically in input_map order
    six = {f"L{i}": i for i in range(6)}
    tiles6 = torch.arange(6).view(6, 1, 1, 1).expand(6, 3, 8, 8)
    grid = _pre(input_map=six, image_height=8, image_width=8, concat_type="grid",
                grid_map={"x": 3, "y": 2}).concat(tiles6[None])[0]
    assert grid[0, ::8, ::8].tolist() == [[0, 1, 2], [3, 4, 5]]  # row-major, x columns


def test_load_strip_resizes_bilinear_and_normalises(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for name in LIGHTS4:
        arr = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
        Image.fromarray(arr).save(tmp_path / f"x_{name}.png")
        paths.append(tmp_path / f"x_{name}.png")
    pre = _pre(input_map=LIGHTS4, image_height=10, image_width=12)
    strip = pre.load_strip(paths)
    assert strip.dtype == torch.uint8 and strip.shape == (3, 40, 12)
    expected = np.asarray(Image.open(paths[2]).resize((12, 10), Image.Resampling.BILINEAR))
    assert np.array_equal(strip[:, 20:30].permute(1, 2, 0).numpy(), expected)
    norm = pre.normalize(strip)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    ref = (strip.float() / 255 - mean.view(3, 1, 1)) / std.view(3, 1, 1)
    assert norm.dtype == torch.float32 and torch.allclose(norm, ref, atol=1e-5)


def test_grey_files_broadcast_like_rgb(tmp_path):
    grey = np.random.default_rng(1).integers(0, 256, (16, 16), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    Image.fromarray(np.repeat(grey[..., None], 3, -1)).save(tmp_path / "rgb.png")
    pre = _pre(input_map=None, image_height=8, image_width=8)
    compact, _ = pre.load_tiles([tmp_path / "g.png"], grey_ok=True)
    rgb, _ = pre.load_tiles([tmp_path / "rgb.png"])
    assert compact.shape == (1, 1, 8, 8) and rgb.shape == (1, 3, 8, 8)
    assert torch.equal(pre.normalize(pre.concat(compact)), pre.normalize(pre.concat(rgb)))
    assert torch.equal(pre.load_strip([tmp_path / "g.png"]), pre.concat(rgb))


def test_unreadable_and_truncated_images(tmp_path):
    pre = _pre(input_map=None, image_height=8, image_width=8)
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 100).save(tmp_path / "ok.jpg")
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.jpg").write_text("not an image")
    for name in ("cut.jpg", "text.jpg"):
        with pytest.raises(DataError, match=f"cannot read image .*{name}"):
            pre.load_strip([tmp_path / name])
    with pytest.raises(DataError, match="expected 1 image"):
        pre.load_strip([tmp_path / "ok.jpg"] * 2)


def test_test_golden_size_mismatch(tmp_path, make_config):
    for folder, size in (("t", 20), ("g", 24)):
        (tmp_path / folder).mkdir()
        Image.fromarray(np.zeros((size, size, 3), np.uint8)).save(tmp_path / folder / "a.jpg")
    (tmp_path / "d.csv").write_text("input_path,golden_path,label,object_name\nt,g,PASS,a\n")
    cfg = make_config(tmp_path / "d.csv", tmp_path, input_map=None)
    table = read_split(tmp_path / "d.csv", tmp_path, cfg.dataset)
    with pytest.raises(DataError, match="line 2: test 20x20 vs golden 24x24"):
        Preprocessor(cfg.dataset).load_pairs(table, [0])


def test_load_pairs_matches_synthetic_rows(synthetic_split, make_config):
    csv_path, images = synthetic_split
    cfg = make_config(csv_path, images)
    table = read_split(csv_path, images, cfg.dataset)
    pre = Preprocessor(cfg.dataset)
    test, golden = pre.load_pairs(table, [0, 5])
    assert test.shape == golden.shape == (2, 3, 128, 32) and test.dtype == torch.float32
    assert torch.equal(test[1], pre.normalize(pre.load_strip(table.test_paths(5))))
    assert pre.geometry()["strip_shape"] == [3, 128, 32]
