"""Synthetic demo data: deterministic, multi-light, several defect kinds, loadable as a split."""
from __future__ import annotations


import numpy as np
import pytest
from PIL import Image

from optical_inspection.data.synthetic import DEFECT_KINDS, make_synthetic_split
from optical_inspection.data.table import read_split

from helpers import folder_digest


def test_same_seed_same_bytes(tmp_path):
    make_synthetic_split(tmp_path / "a", 10, size=24, seed=3)
    make_synthetic_split(tmp_path / "b", 10, size=24, seed=3)
    make_synthetic_split(tmp_path / "c", 10, size=24, seed=4)
    assert folder_digest(tmp_path / "a") == folder_digest(tmp_path / "b") != folder_digest(tmp_path / "c")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["boxes.csv", "dataset.csv", "images"]


def test_split_content(synthetic_split, make_config):
    csv_path, images = synthetic_split
    table = read_split(csv_path, images, make_config(csv_path, images).dataset)
    defects = {r for r, lab in zip(table.raw_labels, table.labels) if lab == 1}
    assert defects <= set(DEFECT_KINDS) and len(defects) >= 2
    assert round(table.labels.mean() * 24) == round(0.3 * 24)
    golden = np.asarray(Image.open(table.golden_paths(0)[0]), dtype=float)
    test = np.asarray(Image.open(table.test_paths(0)[0]), dtype=float)
    assert golden.shape == test.shape == (32, 32, 3)
    lights = [np.asarray(Image.open(p), dtype=float).mean() for p in table.golden_paths(0)]
    assert len(set(np.round(lights))) == 4  # each light renders differently


def test_single_image_per_side(tmp_path):
    csv_path, images = make_synthetic_split(tmp_path, 4, lights=(), size=16, defect_rate=0.5)
    names = sorted(p.name for p in (images / "golden").iterdir())
    assert names and all("_" not in n for n in names)
    assert csv_path.read_text().count("PASS") == 2


def _pass_pair_difference(csv_path, images) -> float:
    """Mean absolute test-vs-golden difference over the first light of the PASS pairs."""
    rows = [line.split(",") for line in csv_path.read_text().splitlines()[1:]]
    diffs = [np.abs(np.asarray(Image.open(images / board / f"{name}_LowAngleLight.jpg"), dtype=float)
                    - np.asarray(Image.open(images / golden / f"{name}_LowAngleLight.jpg"), dtype=float)).mean()
             for board, golden, label, name in rows if label == "PASS"]
    return float(np.mean(diffs))


def test_max_shift_sets_the_misregistration(tmp_path):
    registered = make_synthetic_split(tmp_path / "a", 12, size=32, seed=5, max_shift=0.0)
    shifted = make_synthetic_split(tmp_path / "b", 12, size=32, seed=5, max_shift=3.0)
    assert _pass_pair_difference(*registered) < _pass_pair_difference(*shifted)
    with pytest.raises(ValueError, match="max_shift"):
        make_synthetic_split(tmp_path / "c", 4, size=16, max_shift=-1.0)
    assert not (tmp_path / "c").exists()
