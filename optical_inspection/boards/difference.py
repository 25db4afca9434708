"""Boxes from the pixel difference of a registered pair: |grey test − grey golden| > threshold, an opening
(drops the thin slivers misregistration and JPEG leave along edges), a closing (joins a defect's pieces),
connected components on a 1/2 grid, each box grown by ``margin`` px per side."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.compact import window_reduce
from . import components


def _open_close(mask: torch.Tensor, opening: int, closing: int) -> torch.Tensor:
    """Opening, then closing, of a 0/1 float mask by odd square windows (separable shifted min/max: several
    times faster than max_pool2d on one channel)."""
    o, c = opening // 2, closing // 2
    mask = window_reduce(window_reduce(mask, o, torch.minimum, 1.0), o, torch.maximum, 0.0)
    return window_reduce(window_reduce(mask, c, torch.maximum, 0.0), c, torch.minimum, 1.0)


def difference_boxes(test: torch.Tensor, golden: torch.Tensor, threshold: float = 60.0, margin: int = 8,
                     min_area: int = 16, opening: int = 3, closing: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """(float [K, 4] x1 y1 x2 y2 boxes, float [K] mean difference in 0..1 inside each component) of uint8 boards
    ``test``/``golden`` [C, H, W] (golden already registered onto test)."""
    _, h, w = test.shape
    diff = (test.float().mean(0) - golden.float().mean(0)).abs()[None, None]
    mask = _open_close((diff > threshold).float(), opening, closing)
    labels, count = components.label(F.max_pool2d(mask, 2)[0, 0] > 0)
    if count == 0:
        return torch.zeros(0, 4), torch.zeros(0)
    half = F.avg_pool2d(diff, 2, ceil_mode=True)[0, 0]
    boxes, _ = components.boxes_of(labels, count, half)
    boxes = (boxes * 2 + torch.tensor([-margin, -margin, margin, margin])).clamp(min=0)
    boxes = torch.minimum(boxes, torch.tensor([w, h, w, h], dtype=boxes.dtype))
    flat = labels.reshape(-1)
    index = (flat - 1).clamp(min=0)
    inside = (flat > 0).float()
    sums = torch.zeros(count).scatter_add(0, index, half.reshape(-1) * inside)
    sizes = torch.zeros(count).scatter_add(0, index, inside)
    keep = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) >= min_area
    return boxes[keep], (sums / sizes.clamp(min=1))[keep] / 255.0


def box_max(values: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """float [K]: the max of ``values`` [H, W] inside each box (pixel corners; -inf for an empty box). One
    reduction per box: a board has a handful."""
    out = torch.full((len(boxes),), float("-inf"))
    for k, (x1, y1, x2, y2) in enumerate(boxes.round().long().tolist()):
        if x2 > x1 and y2 > y1:
            out[k] = values[y1:y2, x1:x2].max()
    return out
