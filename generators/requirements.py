"""What each action needs a value for, as the generators use it (the rules live in
`optical_inspection.config.requirements`, shared with the trainer's own spec check).
"""
from __future__ import annotations

from typing import Any

from optical_inspection.config.requirements import ALTERNATIVES, CONDITIONAL, Requirement, requirements
from optical_inspection.dotted import PLACEHOLDER

__all__ = ["ALTERNATIVES", "CONDITIONAL", "FILLED", "PLACEHOLDER", "Requirement", "placeholder_keys", "requirements"]

# A given value: neither null nor the `???` placeholder.
FILLED: dict[str, Any] = {"not": {"enum": [None, PLACEHOLDER]}}


def placeholder_keys(action: str) -> list[str]:
    """Keys the spec template shows as `???`: the first choice of every requirement that applies by default."""
    return [req.keys[0] for req in requirements(action) if req.applies_by_default()]
