"""Defect boxes of a training split: reading boxes.csv (each bad row named), masks drawn per batch, and the
dense map's cell targets."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from optical_inspection.data.boxes import draw_masks, read_boxes_csv, split_boxes
from optical_inspection.data.table import read_split
from optical_inspection.errors import DataError
from optical_inspection.models.losses import cell_targets
from optical_inspection.spec import validate_dict


def _table(tmp_path: Path):
    images = tmp_path / "images"
    for side in ("test", "golden"):
        (images / side).mkdir(parents=True)
        for name in ("a", "b", "c"):
            (images / side / f"{name}.jpg").write_bytes(b"")  # read_split checks existence only
    (tmp_path / "dataset.csv").write_text("input_path,golden_path,object_name,label\n"
                                          "test,golden,a,open\ntest,golden,b,PASS\ntest,golden,c,short\n")
    cfg = validate_dict({"dataset": {"input_map": None}}).dataset
    return read_split(tmp_path / "dataset.csv", images, cfg)


def _boxes(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "boxes.csv"
    path.write_text("input_path,object_name,x1,y1,x2,y2,type\n" + body)
    return path


def test_boxes_are_kept_per_row_scaled_by_their_image(tmp_path: Path) -> None:
    table = _table(tmp_path)
    path = _boxes(tmp_path, "test,a,0,0,8,4,open\ntest,a,10,10,20,20,\ntest,c,4,4,12,12,mystery\n")
    per_row = read_boxes_csv(path, table)
    assert per_row == [[(0, 0, 8, 4), (10, 10, 20, 20)], [], [(4, 4, 12, 12)]]
    boxes = split_boxes(per_row, np.array([[20, 40], [20, 40], [16, 16]]), table.labels)
    assert boxes.boxes.shape == (3, 2, 4) and boxes.known.tolist() == [True, True, True]
    assert np.allclose(boxes.boxes[0, 0], [0, 0, 0.2, 0.2]) and np.allclose(boxes.boxes[2, 0], [0.25, 0.25, 0.75, 0.75])
    assert np.allclose(boxes.boxes[2, 1], 0)  # padding: an empty box
    no_boxes = split_boxes([[], [], []], np.ones((3, 2), dtype=int), table.labels)
    assert no_boxes.known.tolist() == [False, True, False]  # a FAIL row without boxes: its pixels are unknown


@pytest.mark.parametrize("body, pattern", [
    ("test,a,0,0,x,4,open\n", r"line 2: x1, y1, x2, y2 must be numbers"),
    ("test,a,8,0,4,4,open\n", r"line 2: box \(8, 0, 4, 4\) needs 0 <= x1 < x2"),
    ("test,zz,0,0,4,4,open\n", r"no box is on an image of .*dataset.csv \(e.g. line 2: input_path 'test', "
                                r"object_name 'zz'\); is it the boxes file of another split"),
    ("test,a,0,0,4,4,open\ntest,b,0,0,4,4,open\n", r"line 3: a box on .* labelled PASS"),
])
def test_bad_box_rows_are_named(tmp_path: Path, body: str, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern):
        read_boxes_csv(_boxes(tmp_path, body), _table(tmp_path))


def test_boxes_on_images_of_other_splits_are_skipped_with_a_warning(tmp_path: Path, caplog) -> None:
    path = _boxes(tmp_path, "test,a,0,0,8,4,open\nother,a,0,0,4,4,open\n")
    assert read_boxes_csv(path, _table(tmp_path)) == [[(0, 0, 8, 4)], [], []]
    assert "1 of 2 boxes are on images that" in caplog.text and "line 3: input_path 'other'" in caplog.text


def test_a_boxes_file_without_its_columns_or_missing_is_refused(tmp_path: Path) -> None:
    table = _table(tmp_path)
    (tmp_path / "boxes.csv").write_text("input_path,object_name,x,y\n")
    with pytest.raises(DataError, match=r"lacks column\(s\) x1, y1, x2, y2"):
        read_boxes_csv(tmp_path / "boxes.csv", table)
    with pytest.raises(DataError, match=r"boxes_path '.*nope.csv' does not exist"):
        read_boxes_csv(tmp_path / "nope.csv", table)


def test_masks_cover_exactly_the_pixels_of_the_boxes() -> None:
    boxes = torch.tensor([[[0.0, 0.0, 0.5, 0.25], [0.25, 0.5, 1.0, 1.0]], [[0, 0, 0, 0], [0, 0, 0, 0]]])
    masks = draw_masks(boxes, 8, 8)
    assert masks.shape == (2, 1, 8, 8) and masks.dtype == torch.uint8
    expected = torch.zeros(8, 8, dtype=torch.uint8)
    expected[0:2, 0:4] = 1
    expected[4:8, 2:8] = 1
    assert torch.equal(masks[0, 0], expected) and masks[1].eq(0).all()


def test_a_cell_is_a_defect_when_its_8px_footprint_touches_one() -> None:
    mask = torch.zeros(1, 1, 32, 32, dtype=torch.uint8)
    mask[0, 0, 13, 20] = 1  # cell (y, x): footprint [8i - 4, 8i + 4) holds pixel 13 -> i = 2; pixel 20 -> 2 or 3
    cells = cell_targets(mask, 4, 4)[0, 0]
    assert cells.nonzero().tolist() == [[2, 3]]  # 20 lies in [20, 28): cell 3
