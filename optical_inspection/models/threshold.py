"""The decision threshold a network has before any calibration (torch-free: ONNX and TensorRT scoring use it)."""
from __future__ import annotations

from typing import Any, Mapping


def natural_threshold(model: Mapping[str, Any]) -> float:
    """Threshold before any calibration: TAO's margin for the Siamese types, logit 0 (p = 0.5) for Compact."""
    return 0.0 if model.get("model_type") == "Compact" else float(model.get("margin", 2.0))
