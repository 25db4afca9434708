"""Networks (TAO's Siamese types and our Compact default), losses, metrics, checkpoints, Lightning module.

The names below load on first use, so torch-free submodules (``bundled``, ``threshold``) import without torch."""
from __future__ import annotations

from typing import Any

_FACTORY = ("MODEL_TYPES", "build_model", "build_network", "count_parameters", "dataset_geometry")
__all__ = [*_FACTORY, "natural_threshold"]


def __getattr__(name: str) -> Any:
    if name in _FACTORY:
        from . import factory

        return getattr(factory, name)
    if name == "natural_threshold":
        from .threshold import natural_threshold

        return natural_threshold
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
