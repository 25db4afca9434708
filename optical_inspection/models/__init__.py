"""Networks (TAO's Siamese types and our Compact default), losses, metrics, checkpoints, Lightning module."""
from __future__ import annotations

from .factory import MODEL_TYPES, build_model, build_network, count_parameters, dataset_geometry, natural_threshold

__all__ = ["MODEL_TYPES", "build_model", "build_network", "count_parameters", "dataset_geometry",
           "natural_threshold"]
