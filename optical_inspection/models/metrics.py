"""Vectorised metrics: TAO's AOIMetrics (same definitions, at any threshold) plus threshold-free ones.

Positive = defect; predicted defect iff ``score > threshold`` (equality = PASS, as TAO). TAO 7.3's values
(``AOIMetrics.compute``) are percentages: ``total_accuracy = 100(TP+TN)/N`` over all pairs, and per-class rates
``defect_accuracy = 100·TP/#FAIL``, ``false_alarm = 100·FP/#PASS``, ``false_negative = 100·FN/#FAIL``
(= 100 − defect_accuracy); each per-class rate is 0 when its class is absent, as TAO. The extra metrics:
``auroc``, ``average_precision``, ``false_positive_rate`` (FP/#PASS as a fraction) and ``recall_at_fa_1pct`` /
``recall_at_fa_0_1pct`` (defect recall at the threshold that keeps FP/#PASS ≤ 1 % / 0.1 %).

Ours, not torchmetrics' (installed with Lightning): its binary AUROC/AP/ROC squash scores outside [0, 1] with a
sigmoid, which merges large distances into ties (AUROC off by up to 7e-3 on unbounded scores; measured);
scikit-learn would add scipy to every install.
"""
from __future__ import annotations

import math

import numpy as np

FALSE_ALARM_POINTS = {"recall_at_fa_1pct": 0.01, "recall_at_fa_0_1pct": 0.001}


def _arrays(scores: object, labels: object) -> tuple[np.ndarray, np.ndarray]:
    """float64 scores and int labels of the labelled pairs only (label -1 = unknown is dropped)."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1).astype(np.int64)
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores but {y.size} labels")
    keep = y >= 0
    return s[keep], y[keep]


def aoi_metrics(scores: object, labels: object, threshold: float) -> dict[str, float]:
    """TAO's four metrics (percent) at ``threshold``, plus the confusion counts and the true FPR."""
    s, y = _arrays(scores, labels)
    pred = s > threshold
    pos = y == 1
    return aoi_from_counts(int(np.count_nonzero(pred & pos)), int(np.count_nonzero(pred & ~pos)),
                           int(np.count_nonzero(~pred & pos)), int(np.count_nonzero(~pred & ~pos)))


def aoi_from_counts(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    """:func:`aoi_metrics` from confusion counts (training accumulates counts per step, not scores)."""
    n, n_fail, n_pass = max(tp + fp + fn + tn, 1), tp + fn, fp + tn
    return {
        "total_accuracy": 100.0 * (tp + tn) / n,
        "defect_accuracy": 100.0 * tp / n_fail if n_fail else 0.0,
        "false_alarm": 100.0 * fp / n_pass if n_pass else 0.0,
        "false_negative": 100.0 * fn / n_fail if n_fail else 0.0,
        "false_positive_rate": fp / n_pass if n_pass else 0.0,
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
    }


def auroc(scores: object, labels: object) -> float:
    """Area under the ROC curve (Mann-Whitney U with tied scores counted half); NaN without both classes."""
    s, y = _arrays(scores, labels)
    n_pos = int(np.count_nonzero(y == 1))
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    first_rank = np.cumsum(counts) - counts  # 0-based rank of the first member of each tie group
    mid_rank = first_rank + (counts - 1) / 2.0 + 1.0
    rank_sum = mid_rank[inverse][y == 1].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def average_precision(scores: object, labels: object) -> float:
    """Average precision (area under the step precision-recall curve; ties form one threshold)."""
    s, y = _arrays(scores, labels)
    n_pos = int(np.count_nonzero(y == 1))
    if n_pos == 0:
        return math.nan
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted == 1)
    fp = np.cumsum(y_sorted != 1)
    last_of_tie = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    tp, fp = tp[last_of_tie], fp[last_of_tie]
    precision = tp / (tp + fp)
    recall_gain = np.diff(np.r_[0, tp]) / n_pos
    return float((precision * recall_gain).sum())


def threshold_at_false_alarm(negative_scores: object, rate: float) -> float:
    """Smallest threshold t with (#negatives > t) / #negatives ≤ ``rate`` (−inf when there are none)."""
    neg = np.sort(np.asarray(negative_scores, dtype=np.float64).reshape(-1))[::-1]
    k = int(math.floor(rate * neg.size + 1e-9))
    if neg.size == 0 or k >= neg.size:
        return -math.inf
    return float(neg[k])


def recall_at_false_alarm(scores: object, labels: object, rate: float) -> float:
    """Defect recall at the threshold that keeps the false-positive rate ≤ ``rate``."""
    s, y = _arrays(scores, labels)
    if not (y == 1).any() or not (y == 0).any():
        return math.nan
    t = threshold_at_false_alarm(s[y == 0], rate)
    return float(np.mean(s[y == 1] > t))


def roc_curve(scores: object, labels: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false-positive rates, true-positive rates, thresholds), one point per distinct score, from (0, 0)."""
    s, y = _arrays(scores, labels)
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    last_of_tie = np.r_[s_sorted[1:] != s_sorted[:-1], True] if s.size else np.zeros(0, bool)
    tp = np.cumsum(y_sorted == 1)[last_of_tie]
    fp = np.cumsum(y_sorted == 0)[last_of_tie]
    n_pos, n_neg = max(int((y == 1).sum()), 1), max(int((y == 0).sum()), 1)
    return np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos], np.r_[math.inf, s_sorted[last_of_tie]]


def all_metrics(scores: object, labels: object, threshold: float) -> dict[str, float]:
    """Everything evaluate reports: TAO's four, confusion counts, AUROC, AP, recall at fixed false alarms."""
    s, y = _arrays(scores, labels)
    out: dict[str, float] = {"num_pairs": int(s.size), "num_defects": int((y == 1).sum()), "threshold": threshold}
    out.update(aoi_metrics(s, y, threshold))
    out["auroc"] = auroc(s, y)
    out["average_precision"] = average_precision(s, y)
    for name, rate in FALSE_ALARM_POINTS.items():
        out[name] = recall_at_false_alarm(s, y, rate)
    return out
