"""Vectorised metrics against slow, obviously-correct references."""
from __future__ import annotations

import math

import numpy as np
import pytest

from optical_inspection.models.metrics import (all_metrics, aoi_metrics, auroc, average_precision,
                                               recall_at_false_alarm, roc_curve, threshold_at_false_alarm)


def _reference_auroc(s: np.ndarray, y: np.ndarray) -> float:
    pos, neg = s[y == 1], s[y == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def _reference_ap(s: np.ndarray, y: np.ndarray) -> float:
    total, prev_recall = 0.0, 0.0
    for t in sorted(set(s.tolist()), reverse=True):
        pred = s >= t
        tp = (pred & (y == 1)).sum()
        precision = tp / pred.sum()
        recall = tp / (y == 1).sum()
        total += precision * (recall - prev_recall)
        prev_recall = recall
    return total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_and_ap_match_references_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.normal(y * 1.0, 1.0), 1)  # rounding creates ties
    assert auroc(s, y) == pytest.approx(_reference_auroc(s, y), abs=1e-12)
    assert average_precision(s, y) == pytest.approx(_reference_ap(s, y), abs=1e-12)


def test_tao_metrics_use_tao_definitions_and_equality_is_pass() -> None:
    s = np.array([0.1, 2.0, 2.5, 3.0, 1.0, 5.0, 0.5, 0.7])
    y = np.array([0, 0, 0, 1, 1, 1, 0, 0])
    m = aoi_metrics(s, y, threshold=2.0)
    # predicted defect: 2.5, 3.0, 5.0 (2.0 == threshold is PASS); 5 PASS pairs, 3 defects
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 1, 1, 4)
    assert m["total_accuracy"] == pytest.approx(100 * 6 / 8)
    assert m["defect_accuracy"] == pytest.approx(100 * 2 / 3)
    assert m["false_alarm"] == pytest.approx(100 * 1 / 5)      # TAO 7.3: FP over the PASS pairs
    assert m["false_negative"] == pytest.approx(100 * 1 / 3)   # FN over the defects = 100 - defect_accuracy
    assert m["false_negative"] == pytest.approx(100 - m["defect_accuracy"])
    assert m["false_positive_rate"] == pytest.approx(1 / 5)


def test_tao_metrics_without_defects_or_without_pass_pairs() -> None:
    no_defects = aoi_metrics([0.5, 3.0, 1.0, 2.5], [0, 0, 0, 0], threshold=2.0)
    assert no_defects["total_accuracy"] == pytest.approx(50.0)
    assert no_defects["false_alarm"] == pytest.approx(50.0)
    assert no_defects["defect_accuracy"] == 0.0 and no_defects["false_negative"] == 0.0   # TAO: 0 when absent
    no_pass = aoi_metrics([0.5, 3.0, 1.0, 2.5], [1, 1, 1, 1], threshold=2.0)
    assert no_pass["total_accuracy"] == pytest.approx(50.0)
    assert no_pass["defect_accuracy"] == pytest.approx(50.0) and no_pass["false_negative"] == pytest.approx(50.0)
    assert no_pass["false_alarm"] == 0.0 and no_pass["false_positive_rate"] == 0.0
    empty = aoi_metrics([], [], threshold=2.0)
    assert all(empty[k] == 0.0 for k in ("total_accuracy", "defect_accuracy", "false_alarm", "false_negative"))


def test_issue_example_all_pass_predictions_give_taos_line_values() -> None:
    """TAO 7.3 on 300 pairs, 92 defects, nothing above the margin: FN 100.0, FA 0.0, accuracy 69.33."""
    y = np.r_[np.zeros(208, int), np.ones(92, int)]
    m = aoi_metrics(np.zeros(300), y, threshold=2.0)
    assert round(m["total_accuracy"], 2) == 69.33
    assert (m["false_negative"], m["false_alarm"], m["defect_accuracy"]) == (100.0, 0.0, 0.0)


def test_threshold_at_false_alarm_and_recall() -> None:
    neg = np.arange(1000, dtype=float)  # 0..999
    t = threshold_at_false_alarm(neg, 0.01)
    assert (neg > t).sum() == 10
    assert (neg > threshold_at_false_alarm(neg, 0.001)).sum() == 1
    assert threshold_at_false_alarm(neg[:50], 0.001) == 49.0  # fewer than 1000 negatives: no false alarm allowed
    assert threshold_at_false_alarm([], 0.01) == -math.inf
    s = np.r_[neg, [995.5, 990.0, 2000.0, 10.0]]
    y = np.r_[np.zeros(1000), np.ones(4)]
    assert recall_at_false_alarm(s, y, 0.01) == pytest.approx(3 / 4)  # 990 > t=989
    assert recall_at_false_alarm(s, y, 0.001) == pytest.approx(1 / 4)  # only 2000 > 998


def test_unlabelled_rows_are_ignored_and_single_class_gives_nan() -> None:
    s = np.array([0.1, 0.9, 0.5])
    y = np.array([0, 1, -1])
    assert auroc(s, y) == 1.0
    m = all_metrics(s, np.array([0, 0, 0]), 0.5)
    assert math.isnan(m["auroc"]) and math.isnan(m["recall_at_fa_1pct"])
    assert m["defect_accuracy"] == 0.0 and m["num_pairs"] == 3


def test_roc_curve_ends_at_one_one() -> None:
    fpr, tpr, thr = roc_curve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert math.isinf(thr[0])
