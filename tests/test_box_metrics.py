"""DeepPCB-protocol and COCO-style box metrics on hand-made boxes."""
from __future__ import annotations

import numpy as np
import pytest

from optical_inspection.boards.box_metrics import Boxes, average_precision, detection_report, iou_matrix, match


def test_iou_of_hand_made_boxes() -> None:
    a = np.array([[0, 0, 10, 10]], dtype=float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 5, 5]], dtype=float)
    np.testing.assert_allclose(iou_matrix(a, b)[0], [1.0, 50 / 150, 0.0, 0.25])


def test_greedy_matching_in_confidence_order_same_class_and_iou_above_one_third() -> None:
    truth = Boxes.make([0, 0, 1], [[0, 0, 10, 10], [40, 40, 50, 50], [0, 0, 10, 10]], ["open", "short", "open"])
    dets = Boxes.make(
        [0, 0, 0, 0, 1, 1],
        [[0, 0, 10, 10],    # best: takes truth 0
         [1, 1, 11, 11],    # lower score, same box: truth 0 already taken -> false positive
         [40, 40, 50, 50],  # right place, wrong class -> false positive
         [5, 0, 15, 10],    # IoU exactly 1/3 with truth 0: not > 0.33? 50/150 = 0.333.. > 0.33 but taken
         [0, 0, 10, 7],     # IoU 0.7 with image 1's truth
         [0, 0, 10, 3]],    # IoU 0.3: too small
        ["open", "open", "open", "open", "open", "open"], [0.9, 0.8, 0.7, 0.6, 0.5, 0.95])
    np.testing.assert_array_equal(match(dets, truth, 0.33), [True, False, False, False, True, False])
    free = match(dets, truth, 0.33, class_aware=False)
    np.testing.assert_array_equal(free, [True, False, True, False, True, False])


def test_the_more_confident_detection_wins_the_box() -> None:
    truth = Boxes.make([3], [[0, 0, 10, 10]], [1])
    dets = Boxes.make([3, 3], [[0, 0, 10, 6], [0, 0, 10, 10]], [1, 1], [0.9, 0.1])
    np.testing.assert_array_equal(match(dets, truth, 0.33), [True, False])


def test_average_precision_all_point_and_coco_interpolation() -> None:
    # ranks: TP, FP, TP of 3 truth boxes: recall 1/3 at P=1, 2/3 at P=2/3; AP = 1/3*1 + 1/3*2/3
    scores, correct = np.array([0.9, 0.8, 0.7]), np.array([True, False, True])
    assert average_precision(scores, correct, 3) == pytest.approx(1 / 3 + 2 / 9)
    coco = average_precision(scores, correct, 3, points=101)
    grid = np.linspace(0, 1, 101)
    assert coco == pytest.approx(np.where(grid <= 1 / 3, 1.0, np.where(grid <= 2 / 3, 2 / 3, 0.0)).mean())
    assert np.isnan(average_precision(scores, correct, 0))


def test_report_perfect_and_half_right() -> None:
    truth = Boxes.make([0, 1], [[0, 0, 10, 10], [0, 0, 20, 20]], ["open", "short"])
    perfect = detection_report(Boxes.make([0, 1], truth.xyxy, ["open", "short"], [0.5, 0.6]), truth)
    assert perfect["map"] == perfect["class_free_ap"] == perfect["f_score"] == perfect["coco_map50"] == 1.0
    wrong_class = detection_report(Boxes.make([0, 1], truth.xyxy, ["open", "open"], [0.5, 0.6]), truth)
    assert wrong_class["ap_per_class"] == {"open": 0.5, "short": 0.0}  # its false positive ranks first
    assert wrong_class["class_free_ap"] == 1.0 and wrong_class["f_score"] == 0.5
    # IoU 0.4: a DeepPCB match, not a COCO@0.5 one
    loose = detection_report(Boxes.make([0], [[0, 0, 10, 4]], ["open"]), truth.where(np.array([True, False])))
    assert loose["map"] == 1.0 and loose["coco_map50"] == 0.0
    empty = detection_report(Boxes.make([], np.zeros((0, 4)), []), truth)
    assert empty["map"] == 0.0 and empty["f_score"] == 0.0
