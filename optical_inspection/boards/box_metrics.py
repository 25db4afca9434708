"""Detection metrics on boxes: DeepPCB's protocol and COCO-style AP.

DeepPCB (README): a detection is correct when it overlaps a not yet matched ground-truth box of the same class
with IoU > 0.33; each image's detections are matched greedily in decreasing confidence. From the matches:
AP per class (detections of all images pooled, all-point interpolated precision envelope), mAP = their mean,
the class-free AP (classes ignored), and the F-score of the submitted detections (precision and recall of all
of them). COCO-style mAP@0.5: IoU >= 0.5, 101-point interpolation. Our own code: DeepPCB's script does not run
(Python 2, a broken regex, class names where its files hold numbers) and pycocotools is not in the lock.

Boxes are ``x1 y1 x2 y2`` pixel corners; a table of boxes is columns ``image`` (int id), ``x1..y2``, ``score``
(detections only) and ``cls`` (any hashable label), as numpy arrays of equal length.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

DEEPPCB_IOU = 0.33


@dataclass
class Boxes:
    """A table of boxes: ``image`` [N] ids, ``xyxy`` [N, 4], ``cls`` [N] labels, ``score`` [N] (1 for truth)."""

    image: np.ndarray
    xyxy: np.ndarray
    cls: np.ndarray
    score: np.ndarray

    @classmethod
    def make(cls, image: Any, xyxy: Any, classes: Any, score: Any = None) -> "Boxes":
        image = np.asarray(image, dtype=np.int64).reshape(-1)
        xyxy = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
        labels = np.asarray(classes).reshape(-1)
        score = np.ones(len(image)) if score is None else np.asarray(score, dtype=np.float64).reshape(-1)
        if not len(image) == len(xyxy) == len(labels) == len(score):
            raise ValueError(f"box table columns differ in length: {len(image)}, {len(xyxy)}, {len(labels)}, "
                             f"{len(score)}")
        return cls(image, xyxy, labels, score)

    def __len__(self) -> int:
        return len(self.image)

    def where(self, keep: np.ndarray) -> "Boxes":
        return Boxes(self.image[keep], self.xyxy[keep], self.cls[keep], self.score[keep])


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes ``a`` [..., N, 4] against ``b`` [..., M, 4] → [..., N, M] (pixel-corner boxes)."""
    lt = np.maximum(a[..., :, None, :2], b[..., None, :, :2])
    rb = np.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[..., 2:] - a[..., :2], 0, None).prod(-1)
    area_b = np.clip(b[..., 2:] - b[..., :2], 0, None).prod(-1)
    union = area_a[..., :, None] + area_b[..., None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match(dets: Boxes, truth: Boxes, iou_min: float, strict: bool = True, class_aware: bool = True) -> np.ndarray:
    """Bool [len(dets)]: which detections match a truth box (greedy per image in decreasing score; a truth box
    matches once; ``strict``: IoU > iou_min, else >=). Vectorised over images: one step per detection rank."""
    matched = np.zeros(len(dets), dtype=bool)
    if not len(dets) or not len(truth):
        return matched
    images = np.union1d(dets.image, truth.image)
    det_img, truth_img = np.searchsorted(images, dets.image), np.searchsorted(images, truth.image)
    _, codes = np.unique(np.r_[dets.cls.astype(str), truth.cls.astype(str)], return_inverse=True)
    det_cls, truth_cls = codes[:len(dets)], codes[len(dets):]
    if not class_aware:
        det_cls, truth_cls = np.zeros_like(det_cls), np.zeros_like(truth_cls)
    order = np.lexsort((-dets.score, det_img))  # by image, then by decreasing score
    rank = np.arange(len(dets)) - np.searchsorted(det_img[order], det_img[order])
    truth_order = np.argsort(truth_img, kind="stable")
    slot = np.arange(len(truth)) - np.searchsorted(truth_img[truth_order], truth_img[truth_order])
    n_img, n_slot = len(images), int(slot.max()) + 1
    gt_box = np.zeros((n_img, n_slot, 4))
    gt_cls = np.full((n_img, n_slot), -1)
    gt_box[truth_img[truth_order], slot] = truth.xyxy[truth_order]
    gt_cls[truth_img[truth_order], slot] = truth_cls[truth_order]
    free = gt_cls >= 0
    for r in range(int(rank.max()) + 1):
        pick = order[rank == r]  # the r-th most confident detection of each image that has one
        img = det_img[pick]
        iou = iou_matrix(dets.xyxy[pick][:, None], gt_box[img])[:, 0]  # [P, n_slot]
        ok = free[img] & (gt_cls[img] == det_cls[pick][:, None]) & ((iou > iou_min) if strict else (iou >= iou_min))
        iou = np.where(ok, iou, -1.0)
        best = iou.argmax(1)
        hit = iou[np.arange(len(pick)), best] >= 0
        matched[pick[hit]] = True
        free[img[hit], best[hit]] = False
    return matched


def average_precision(scores: np.ndarray, correct: np.ndarray, n_truth: int, points: int | None = None) -> float:
    """AP of detections (``scores``, ``correct``) against ``n_truth`` boxes: all-point interpolation of the
    precision envelope (``points`` None) or COCO's ``points``-point interpolation; NaN without truth boxes."""
    if n_truth == 0:
        return float("nan")
    if not len(scores):
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(correct[order])
    fp = np.cumsum(~correct[order])
    recall = tp / n_truth
    precision = tp / np.maximum(tp + fp, 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    if points is None:
        steps = np.diff(np.r_[0.0, recall])
        return float((steps * envelope).sum())
    grid = np.linspace(0, 1, points)
    at = np.searchsorted(recall, grid, side="left")
    return float(np.where(at < len(envelope), envelope[np.minimum(at, len(envelope) - 1)], 0.0).mean())


def detection_report(dets: Boxes, truth: Boxes) -> dict[str, Any]:
    """DeepPCB-protocol mAP, per-class AP, class-free AP, precision/recall/F-score; COCO-style mAP@0.5."""
    classes = sorted({str(c) for c in truth.cls.tolist()})
    det_cls, truth_cls = dets.cls.astype(str), truth.cls.astype(str)
    deeppcb = match(dets, truth, DEEPPCB_IOU, strict=True)
    coco = match(dets, truth, 0.5, strict=False)
    free = match(dets, truth, DEEPPCB_IOU, strict=True, class_aware=False)
    per_class = {c: average_precision(dets.score[det_cls == c], deeppcb[det_cls == c], int((truth_cls == c).sum()))
                 for c in classes}
    coco_class = [average_precision(dets.score[det_cls == c], coco[det_cls == c], int((truth_cls == c).sum()), 101)
                  for c in classes]
    tp = int(deeppcb.sum())
    return {
        "map": float(np.nanmean(list(per_class.values()))) if classes else float("nan"),
        "ap_per_class": per_class,
        "class_free_ap": average_precision(dets.score, free, len(truth)),
        "precision": tp / len(dets) if len(dets) else float("nan"),
        "recall": tp / len(truth) if len(truth) else float("nan"),
        "f_score": _f(tp, len(dets), len(truth)),
        "class_free_f_score": _f(int(free.sum()), len(dets), len(truth)),
        "coco_map50": float(np.nanmean(coco_class)) if classes else float("nan"),
        "num_detections": len(dets), "num_truth": len(truth),
    }


def _f(tp: int, n_det: int, n_truth: int) -> float:
    """F-score 2PR/(P+R) = 2TP/(detections + truth boxes)."""
    return 2 * tp / (n_det + n_truth) if n_det + n_truth else float("nan")
