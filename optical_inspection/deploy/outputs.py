"""Turn a deployed model's raw outputs into scores, with the same semantics as the torch models."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .metadata import EMBEDDING_OUTPUTS, SCORE_OUTPUT

# torch.nn.functional.pairwise_distance adds eps to the difference before the norm (TAO's training distance).
PAIRWISE_EPS = 1e-6


def embedding_distance(emb_1: np.ndarray, emb_2: np.ndarray) -> np.ndarray:
    """``‖e1 − e2 + 1e-6‖₂`` per row, float32 (what the Siamese models' ``score`` computes)."""
    diff = np.asarray(emb_1, dtype=np.float32) - np.asarray(emb_2, dtype=np.float32) + np.float32(PAIRWISE_EPS)
    return np.sqrt(np.einsum("ij,ij->i", diff, diff, dtype=np.float32))


def scores_from_outputs(outputs: Mapping[str, np.ndarray], output_type: str) -> np.ndarray:
    """float32[B] scores from an ONNX/TensorRT run (embeddings → distance outside the graph)."""
    if output_type == "embeddings":
        return embedding_distance(outputs[EMBEDDING_OUTPUTS[0]], outputs[EMBEDDING_OUTPUTS[1]])
    return np.asarray(outputs[SCORE_OUTPUT], dtype=np.float32).reshape(-1)
