"""Dotted keys (`train.optim.lr`) on nested dicts, and the placeholder of a key the user must give;
dependency-free so the runner, the generators and the trainer share them cheaply."""
from __future__ import annotations

from typing import Any

PLACEHOLDER = "???"  # OmegaConf's MISSING, spelled here so the runner's plan path need not import omegaconf


def get_dotted(data: dict[str, Any], key: str, default: Any = None) -> Any:
    """The value at ``key``, or ``default`` when a part of the path is missing."""
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` to ``value``, creating (or replacing non-dict) intermediate levels."""
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            node[part] = nxt
        node = nxt
    node[parts[-1]] = value


def placeholders_in(data: Any, prefix: str = "") -> list[str]:
    """Dotted keys (through nested dicts) still holding the placeholder ``???``."""
    found = []
    if isinstance(data, dict):
        for k, v in data.items():
            found += placeholders_in(v, f"{prefix}{k}.")
    elif data == PLACEHOLDER:
        found.append(prefix[:-1])
    return found
