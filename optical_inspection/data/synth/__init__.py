"""Procedural PCB/AOI pairs: layouts, defects (with masks and boxes), misregistration and rendering.

``generate_pairs(n, size=..., style="binary" | "grey" | "rgb", ...)`` is the entry point; pretraining, synthetic
defects in training, the tests and the demo all use it.
"""
from .defects import AOI_KINDS, COPPER_KINDS
from .pairs import STYLES, PairBatch, generate_pairs

__all__ = ["AOI_KINDS", "COPPER_KINDS", "STYLES", "PairBatch", "generate_pairs"]
