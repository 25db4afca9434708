"""Whole-board inspection: registration, dense defect maps over any board size, boxes, and box metrics."""
