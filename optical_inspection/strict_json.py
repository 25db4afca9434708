"""Strict JSON out: every JSON file or stdout answer the runner and the trainer write goes through :func:`dumps`.

JSON has no NaN or Infinity, so non-finite numbers become ``null`` (``allow_nan=False`` then guarantees that
nothing else slips through). Dependency-free, so the runner can use it without importing torch.
"""
from __future__ import annotations

import json
import math
from typing import Any


def finite_or_none(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, inf, numpy/torch scalars included) replaced by None, recursively;
    numpy/torch scalars become plain numbers, tuples become lists."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", 0) == 0:
        try:
            return finite_or_none(item())
        except (TypeError, ValueError, RuntimeError):
            return value
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` that writes strict JSON: non-finite numbers as null, never a bare NaN/Infinity."""
    return json.dumps(finite_or_none(value), allow_nan=False, **kwargs)
