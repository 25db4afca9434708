"""Generators: JSON Schemas, spec templates, the manifest and the skill-doc tables, all from the config dataclasses.

Run ``python -m generators`` to regenerate and ``python -m generators --check`` to fail on drift.
Nothing here imports torch.
"""
from __future__ import annotations


class GeneratorError(Exception):
    """A generator input is unusable (unknown type, bad marker, missing file); the message says where."""
