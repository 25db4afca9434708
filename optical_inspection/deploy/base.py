"""The one interface evaluate and inference use, whatever runs the model (PyTorch, ONNX Runtime, TensorRT)."""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Scorer(Protocol):
    """Scores pairs of preprocessed strips; larger = more defective.

    threshold: the decision threshold stored with the model (calibrated after training), or the model's natural
        one (TAO's margin for the Siamese types, 0 for Compact's logit); None when the file stores none.
    meta: plain metadata of the model file (model settings, dataset geometry, metrics...).
    max_batch: the largest batch one ``score`` call accepts (None = any).
    """

    threshold: float | None
    meta: dict[str, Any]
    max_batch: int | None

    def score(self, test: Any, golden: Any) -> np.ndarray:
        """float32[B] scores of ``test`` vs ``golden`` (float32[B, 3, H', W'] arrays or tensors)."""
        ...


@runtime_checkable
class MapScorer(Scorer, Protocol):
    """A scorer that also gives the defect map (``supports_maps`` true: Compact checkpoints, ONNX files exported
    with ``export.heatmaps``)."""

    supports_maps: bool

    def score_maps(self, test: Any, golden: Any) -> tuple[np.ndarray, np.ndarray]:
        """(float32[B] scores, float32[B, H', W'] defect maps) of ``test`` vs ``golden``."""
        ...


@runtime_checkable
class TypeScorer(Scorer, Protocol):
    """A scorer that also names the defect kind (PyTorch checkpoints trained with kinds: ``defect_types``)."""

    defect_types: list[str]

    def score_types(self, test: Any, golden: Any) -> tuple[np.ndarray, np.ndarray]:
        """(float32[B] scores, float32[B, K] probabilities of the kinds in ``defect_types``)."""
        ...


def defect_types_of(scorer: Scorer) -> list[str]:
    """The kinds ``scorer`` can name ([] for backends and models without a type head)."""
    return list(getattr(scorer, "defect_types", None) or [])
