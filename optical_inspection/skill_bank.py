"""Where the skill bank (``skills/``, ``schemas/``, ``references/``) lives: the checkout, or inside the wheel.

In a checkout the three folders sit at the repository root beside this package; a built wheel carries copies of
them as package data under ``optical_inspection/_bank/`` (see setup.py), found with ``importlib.resources``.
Torch-free: the runner and the generators use it.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

_MARKER = Path("references") / "skill_info.yaml"


def bank_root() -> Path:
    """The folder holding skills/, schemas/ and references/ (the checkout first, then the installed package)."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / _MARKER).is_file():
        return checkout
    return Path(str(resources.files("optical_inspection") / "_bank"))
