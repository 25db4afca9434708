"""Defect boxes of a training split (``dataset.train_dataset.boxes_path``) and the pixel masks drawn from them.

The CSV has one row per box: ``input_path, object_name`` (the pair's test image, as in the split's CSV) and
``x1, y1, x2, y2`` (pixel corners in that image file, x right, y down) and optionally ``type`` (the box's defect
kind, which dataset_convert writes; the box typer learns from it, the pair network's type head from the row's
label); other columns are ignored. Boxes are kept per split row, normalised to
[0, 1] by the image's own size, so they follow the resize to ``dataset.image_width x image_height``; a batch's
masks are drawn at once (broadcast comparisons).
"""
from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
import numpy as np
import torch

from ..errors import DataError
from .table import PairTable

log = logging.getLogger(__name__)

COLUMNS = ("input_path", "object_name", "x1", "y1", "x2", "y2")
_SHOWN = 10


@dataclass
class SplitBoxes:
    """Per split row: ``boxes`` float32 [R, K, 4] (x1 y1 x2 y2 as fractions of the image; rows with fewer boxes are
    padded with empty boxes) and ``known`` bool [R]: whether the row's defect pixels are known (PASS rows: none;
    FAIL rows: when they have boxes)."""

    boxes: np.ndarray
    known: np.ndarray
    kinds: np.ndarray | None = None  # int64 [R, K]: each box's index in the defect kinds, -1 unknown or padding


def read_boxes_csv(path: str | Path, table: PairTable) -> list[list[tuple[float, ...]]]:
    """Each split row's boxes ``(x1, y1, x2, y2)`` in pixels of its test image (see :func:`read_boxes`)."""
    return read_boxes(path, table)[0]


def read_boxes(path: str | Path, table: PairTable) -> tuple[list[list[tuple[float, ...]]], list[list[str]]]:
    """Each split row's boxes ``(x1, y1, x2, y2)`` in pixels of its test image and their ``type`` ("" without the
    column); a DataError naming the file and lines for anything it cannot use. Boxes on images the split does not
    have are skipped with a warning (one boxes file may serve several splits), unless none of them is on the split's
    images."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"dataset.train_dataset.boxes_path '{path}' does not exist; give the boxes CSV "
                        f"({', '.join(COLUMNS)}) or null")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise DataError(f"boxes CSV '{path}' lacks column(s) {', '.join(missing)}; it needs "
                            f"{', '.join(COLUMNS)}")
        reader.fieldnames = header
        rows = [(reader.line_num, row) for row in reader]
    rows_of: dict[tuple[str, str], list[int]] = {}
    for i, row in enumerate(table.rows):
        rows_of.setdefault((row["input_path"], row["object_name"]), []).append(i)
    out: list[list[tuple[float, ...]]] = [[] for _ in table.rows]
    types: list[list[str]] = [[] for _ in table.rows]
    problems: list[str] = []
    elsewhere: list[int] = []  # lines of boxes on images of no row
    for line, row in rows:
        key = ((row.get("input_path") or "").strip(), (row.get("object_name") or "").strip())
        try:
            x1, y1, x2, y2 = (float(row[c]) for c in COLUMNS[2:])
        except (TypeError, ValueError):
            problems.append(f"line {line}: x1, y1, x2, y2 must be numbers, got "
                            f"{[row.get(c) for c in COLUMNS[2:]]}")
            continue
        if not (np.isfinite([x1, y1, x2, y2]).all() and x2 > x1 and y2 > y1 and min(x1, y1) >= 0):
            problems.append(f"line {line}: box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) needs 0 <= x1 < x2 and 0 <= y1 < y2")
            continue
        targets = rows_of.get(key)
        if not targets:
            elsewhere.append(line)
            if len(elsewhere) == 1:
                first = f"line {line}: input_path {key[0]!r}, object_name {key[1]!r}"
            continue
        for i in targets:
            if table.labels[i] == 0:
                problems.append(f"line {line}: a box on {key} whose row (line {table.lines[i]} of {table.csv_path}) "
                                "is labelled PASS; label it with its defect or drop the box")
                continue
            out[i].append((x1, y1, x2, y2))
            types[i].append((row.get("type") or "").strip())
    if rows and len(elsewhere) == len(rows):
        problems.append(f"no box is on an image of {table.csv_path} (e.g. {first}); is it the boxes file of "
                        "another split?")
    elif elsewhere:
        log.warning("boxes CSV '%s': %d of %d boxes are on images that %s does not have (skipped; e.g. %s)", path,
                    len(elsewhere), len(rows), table.csv_path, first)
    if problems:
        shown = "; ".join(problems[:_SHOWN]) + (f"; ... and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN
                                                 else "")
        raise DataError(f"boxes CSV '{path}': {len(problems)} unusable row(s): {shown}")
    return out, types


def split_boxes(per_row: list[list[tuple[float, ...]]], sizes: np.ndarray, labels: np.ndarray,
                kinds: list[list[int]] | None = None) -> SplitBoxes:
    """Pixel boxes per row and each row's test image size ``sizes`` [R, 2] (H, W) -> :class:`SplitBoxes`;
    ``kinds``: each box's kind index (-1 unknown), in the same layout as ``per_row``."""
    k = max([len(b) for b in per_row] + [1])
    flat = np.zeros((len(per_row), k, 4), dtype=np.float64)
    for i, row_boxes in enumerate(per_row):  # a few boxes per row, once per split
        if row_boxes:
            flat[i, :len(row_boxes)] = row_boxes
    scale = np.maximum(sizes[:, ::-1], 1).astype(np.float64)  # (W, H)
    boxes = (flat / np.tile(scale, 2)[:, None, :]).clip(0, 1).astype(np.float32)
    has = np.array([bool(b) for b in per_row])
    kind_array = None
    if kinds is not None:
        kind_array = np.full((len(per_row), k), -1, dtype=np.int64)
        for i, row_kinds in enumerate(kinds):  # the same few boxes per row as above
            kind_array[i, :len(row_kinds)] = row_kinds
    return SplitBoxes(boxes, (labels == 0) | has, kind_array)


def draw_masks(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """uint8 [B, 1, H, W]: 1 on the pixels whose centres lie inside any of boxes [B, K, 4] (fractions of the
    image). Each box adds +1/-1 at its four corners of a [B, H+1, W+1] grid, two running sums fill it (O(B·H·W),
    5x faster than comparing every pixel with every box)."""
    b, k = boxes.shape[:2]
    # first pixel row/column inside, first one past: pixel i is inside when y1 <= (i + 0.5) / H < y2
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    edges = torch.ceil(boxes.float() * scale - 0.5).long()
    x1, y1, x2, y2 = (edges[..., i].clamp(0, side) for i, side in enumerate((width, height, width, height)))
    weight = ((x2 > x1) & (y2 > y1)).to(torch.int32)
    grid = torch.zeros(b, height + 1, width + 1, dtype=torch.int32)
    row = torch.arange(b)[:, None].expand(b, k)
    for ys, xs, sign in ((y1, x1, 1), (y1, x2, -1), (y2, x1, -1), (y2, x2, 1)):
        grid.index_put_((row, ys, xs), sign * weight, accumulate=True)
    cover = grid.cumsum(1).cumsum(2)[:, :height, :width]
    return (cover > 0).to(torch.uint8)[:, None]
