"""One board pair → registered golden → dense defect map → boxes (the core of the inspect action)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..models import box_typer
from ..models.compact import Compact
from . import components
from .difference import box_max, difference_boxes
from .dense import STRIDE, board_cells, board_map
from .registration import Transform, estimate, is_negligible, warp


@dataclass
class BoardResult:
    boxes: np.ndarray  # float [K, 4] x1 y1 x2 y2 (pixel corners, test image frame)
    scores: np.ndarray  # float [K] probability (sigmoid of the map's peak in the box)
    transform: Transform
    defect_map: torch.Tensor  # float [H, W] logit units
    types: list[str] = field(default_factory=list)  # [K] defect kind of each box (the type head's), or "defect"
    type_probabilities: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # [K, kinds] (type head only)


DEFECT = "defect"  # the type of every box when the network has no type head
# the views of a box's crop whose kind probabilities are averaged (inspect.type_views first ones): the crop, its
# flips, then its quarter turns (training augments with all of them, so each is a fair look at the defect)
VIEWS: tuple[Callable[[torch.Tensor], torch.Tensor], ...] = (
    lambda x: x, lambda x: x.flip(-1), lambda x: x.flip(-2), lambda x: x.flip(-2, -1),
    lambda x: x.rot90(1, (-2, -1)), lambda x: x.rot90(-1, (-2, -1)),
    lambda x: x.rot90(1, (-2, -1)).flip(-1), lambda x: x.rot90(-1, (-2, -1)).flip(-1),
)


class BoardInspector:
    """Runs a Compact network over board pairs; ``mean``/``std`` [3] normalise uint8 images like its training."""

    def __init__(self, model: Compact, mean: list[float], std: list[float], crop: int, *, threshold: float,
                 register: bool, max_rotation: float, tile: int, min_area: int, device: torch.device,
                 boxes: str = "map", difference_threshold: float = 60.0, box_margin: int = 8,
                 types: list[str] | None = None, min_box_side: int = 0, nms_iou: float = 0.5,
                 type_views: int = 1) -> None:
        self.model, self.device = model.to(device).eval(), device
        self.scale = (1.0 / (255.0 * torch.tensor(std, dtype=torch.float32))).view(3, 1, 1)
        self.offset = (-torch.tensor(mean, dtype=torch.float32) / torch.tensor(std, dtype=torch.float32)).view(3, 1, 1)
        self.window = max(1, crop // STRIDE)
        self.crop = crop
        self.types = list(types or [])
        self.min_box_side = min_box_side
        self.nms_iou = nms_iou
        self.type_views = type_views
        self.threshold, self.register, self.max_rotation = threshold, register, max_rotation
        self.tile, self.min_area = tile, min_area
        self.boxes, self.difference_threshold, self.box_margin = boxes, difference_threshold, box_margin

    def _normalise(self, image: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.offset, image.float().expand(3, -1, -1), self.scale)

    @torch.inference_mode()
    def inspect(self, test: torch.Tensor, golden: torch.Tensor) -> BoardResult:
        """Boxes of uint8 boards ``test``/``golden`` [C, H, W] (C 1 or 3, same size)."""
        transform = estimate(test, golden, self.max_rotation) if self.register else Transform()
        if not is_negligible(transform):
            golden = warp(golden, transform)
        _, h, w = test.shape
        test_n, golden_n = self._normalise(test), self._normalise(golden)
        cells = board_cells(self.model, test_n, golden_n, self.window, self.tile, self.device)
        full = board_map(cells, h, w)
        if self.boxes == "difference":  # boxes from the pixel difference, scored by the network's map
            boxes, _ = difference_boxes(test, golden, self.difference_threshold, self.box_margin, self.min_area)
            peaks = box_max(full, boxes)
            keep = peaks > self.threshold
            return self._finish(boxes[keep], peaks[keep], transform, full, test_n, golden_n)
        labels, count = components.label(cells > self.threshold)
        if count == 0:
            return BoardResult(np.zeros((0, 4)), np.zeros(0), transform, full)
        # each pixel above the threshold joins the component of its nearest cell (cell i sits on pixel 8i)
        ys = torch.clamp(torch.round(torch.arange(h) / STRIDE).long(), max=cells.shape[0] - 1)
        xs = torch.clamp(torch.round(torch.arange(w) / STRIDE).long(), max=cells.shape[1] - 1)
        pixel_labels = labels[ys][:, xs] * (full > self.threshold)
        boxes, peaks = components.boxes_of(pixel_labels, count, full)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        keep = torch.isfinite(peaks) & (area >= self.min_area)
        return self._finish(boxes[keep], peaks[keep], transform, full, test_n, golden_n)

    def _finish(self, boxes: torch.Tensor, peaks: torch.Tensor, transform: Transform, full: torch.Tensor,
                test: torch.Tensor, golden: torch.Tensor) -> BoardResult:
        """Boxes grown to ``min_box_side`` (about their centre, inside the board), overlaps above ``nms_iou``
        suppressed, scored by the probability of their map peak (float64: strong defects stay ranked instead of all
        rounding to 1), typed."""
        _, h, w = test.shape
        boxes = grow_boxes(boxes, self.min_box_side, w, h)
        keep = suppress_overlaps(boxes, peaks, self.nms_iou)
        scores = torch.sigmoid(peaks[keep].double()).numpy()
        return self._typed(BoardResult(boxes[keep].numpy(), scores, transform, full), test, golden)

    def _typed(self, result: BoardResult, test: torch.Tensor, golden: torch.Tensor) -> BoardResult:
        """Name each box's kind ("defect" without kinds): the box typer on a patch centred on the box when the
        network has one, else the type head on a training-size crop centred on it; ``type_views`` averages their
        probabilities over flipped and turned views."""
        if not self.types or not len(result.boxes):
            result.types = [DEFECT] * len(result.boxes)
            return result
        centres = (result.boxes[:, :2] + result.boxes[:, 2:]) / 2
        typer = self.model.box_typer
        if typer is not None:
            probs = self._box_typer_probabilities(typer, test, golden, torch.from_numpy(centres))
        else:
            probs = self._type_head_probabilities(test, golden, centres)
        result.type_probabilities = probs.cpu().numpy()
        result.types = [self.types[i] for i in result.type_probabilities.argmax(1).tolist()]
        return result

    def _box_typer_probabilities(self, typer: box_typer.BoxTyper, test: torch.Tensor, golden: torch.Tensor,
                                 centres: torch.Tensor) -> torch.Tensor:
        index = torch.zeros(len(centres), dtype=torch.long)
        t, g = (box_typer.patches(side[None], index, centres).to(self.device) for side in (test, golden))
        views = VIEWS[:self.type_views]
        logits = typer(torch.cat([view(t) for view in views]), torch.cat([view(g) for view in views]))
        return torch.softmax(logits, 1).view(len(views), len(centres), -1).mean(0)

    def _type_head_probabilities(self, test: torch.Tensor, golden: torch.Tensor, centres: np.ndarray
                                 ) -> torch.Tensor:
        _, h, w = test.shape
        side_y, side_x = min(self.crop, h), min(self.crop, w)
        x0 = np.clip(np.round(centres[:, 0] - side_x / 2), 0, w - side_x).astype(int)
        y0 = np.clip(np.round(centres[:, 1] - side_y / 2), 0, h - side_y).astype(int)
        crops = [(test[:, y:y + side_y, x:x + side_x], golden[:, y:y + side_y, x:x + side_x]) for x, y in zip(x0, y0)]
        t, g = (torch.stack(side).to(self.device) for side in zip(*crops))  # a handful of boxes per board
        views = VIEWS[:self.type_views if side_x == side_y else min(self.type_views, 4)]  # turns need a square
        _, type_logits = self.model.score_and_types(torch.cat([view(t) for view in views]),
                                                    torch.cat([view(g) for view in views]))
        return torch.softmax(type_logits, 1).view(len(views), len(crops), -1).mean(0)


def typed_rows(result: BoardResult, kinds: list[str], per_box: int
               ) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """(boxes [R, 4], scores [R], types [R], type probabilities [R]; NaN without a type head) with each box once
    per kind among its ``per_box`` likeliest (most likely first); one row per box without a type head."""
    probs = result.type_probabilities
    if not probs.size or not len(result.boxes):
        return result.boxes, result.scores, list(result.types), np.full(len(result.boxes), np.nan)
    order = np.argsort(-probs, axis=1, kind="stable")[:, :per_box]
    k = order.shape[1]
    return (np.repeat(result.boxes, k, axis=0), np.repeat(result.scores, k),
            [kinds[i] for i in order.reshape(-1)], np.take_along_axis(probs, order, axis=1).reshape(-1))


def grow_boxes(boxes: torch.Tensor, side: int, width: int, height: int) -> torch.Tensor:
    """x1 y1 x2 y2 boxes [K, 4] widened/heightened to at least ``side`` px about their centre, clipped to the
    board (0: unchanged)."""
    if side <= 0 or not len(boxes):
        return boxes
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = torch.clamp(boxes[:, 2:] - boxes[:, :2], min=float(side)) / 2
    limit = torch.tensor([width, height], dtype=boxes.dtype)
    return torch.cat([torch.maximum(centre - half, torch.zeros(2, dtype=boxes.dtype)),
                      torch.minimum(centre + half, limit)], dim=1)


def suppress_overlaps(boxes: torch.Tensor, scores: torch.Tensor, iou: float) -> torch.Tensor:
    """Indices of the boxes kept by greedy non-maximum suppression (highest score first; a box overlapping a kept
    one by IoU > ``iou`` is dropped; ``iou`` >= 1 keeps all). Ours: torchvision's nms does not load beside our
    torch build; a board holds a handful of boxes, so the loop runs over boxes, not pixels."""
    order = torch.argsort(scores, descending=True)
    if iou >= 1.0 or len(boxes) < 2:
        return order
    b = boxes[order].double()
    area = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    wh = (torch.minimum(b[:, None, 2:], b[None, :, 2:]) - torch.maximum(b[:, None, :2], b[None, :, :2])).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    overlap = inter / (area[:, None] + area[None, :] - inter).clamp(min=1e-9)
    alive = torch.ones(len(b), dtype=torch.bool)
    for i in range(len(b)):
        if alive[i]:
            alive[i + 1:] &= overlap[i, i + 1:] <= iou
    return order[alive]
