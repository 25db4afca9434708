"""Flatten a generated JSON Schema (``schemas/train.schema.json``) into one record per dotted leaf key.

Handles what the generators and pydantic emit: nested ``properties``, ``$ref`` into ``$defs``/``definitions``,
``anyOf``/``oneOf`` with ``null`` (optional keys), ``type`` lists. Keys set on the property itself (``x-automl``,
``description``, ``default``) win over those of the referenced definition.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import RequestError


@dataclass(frozen=True)
class LeafKey:
    """One leaf of the schema: its dotted path, JSON type, allowed options and bounds, and AutoML metadata."""

    path: str
    type: str                      # "number" | "integer" | "boolean" | "string" | "array" | "object" | "any"
    enum: tuple[Any, ...] | None
    minimum: float | None
    maximum: float | None
    exclusive_minimum: float | None
    exclusive_maximum: float | None
    default: Any
    automl: dict[str, Any] | None

    def options(self) -> tuple[Any, ...] | None:
        """The allowed values of a categorical key (enum or boolean), else None."""
        if self.enum is not None:
            return self.enum
        if self.type == "boolean":
            return (False, True)
        return None


def flatten_schema(schema: dict[str, Any]) -> dict[str, LeafKey]:
    """Every leaf key of ``schema`` in declaration order (sections are walked, not listed)."""
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        raise RequestError("the train schema has no 'properties'; regenerate it with `python -m generators`")
    defs = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    out: dict[str, LeafKey] = {}
    _walk(schema["properties"], "", defs, out)
    return out


def _walk(properties: dict[str, Any], prefix: str, defs: dict[str, Any], out: dict[str, LeafKey]) -> None:
    for name, node in properties.items():
        path = prefix + name
        merged = _resolve(node, defs)
        if isinstance(merged.get("properties"), dict):
            _walk(merged["properties"], path + ".", defs, out)
            continue
        out[path] = LeafKey(
            path=path,
            type=_json_type(merged),
            enum=tuple(v for v in merged["enum"] if v is not None) if isinstance(merged.get("enum"), list) else None,
            minimum=merged.get("minimum"),
            maximum=merged.get("maximum"),
            exclusive_minimum=merged.get("exclusiveMinimum"),
            exclusive_maximum=merged.get("exclusiveMaximum"),
            default=merged.get("default"),
            automl=merged.get("x-automl") if isinstance(merged.get("x-automl"), dict) else None,
        )


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Merge a property with what it references; drop the ``null`` branch of an optional key."""
    if not isinstance(node, dict):
        return {}
    merged: dict[str, Any] = {}
    ref = node.get("$ref")
    if isinstance(ref, str):
        merged.update(_resolve(defs.get(ref.rsplit("/", 1)[-1], {}), defs))
    for combo in ("anyOf", "oneOf", "allOf"):
        branches = [b for b in node.get(combo, []) if isinstance(b, dict) and b.get("type") != "null"]
        if len(branches) == 1:
            merged.update(_resolve(branches[0], defs))
    merged.update({k: v for k, v in node.items() if k not in ("$ref", "anyOf", "oneOf", "allOf")})
    return merged


def _json_type(node: dict[str, Any]) -> str:
    kind = node.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    if kind is None and isinstance(node.get("enum"), list):
        values = [v for v in node["enum"] if v is not None]
        kind = "string" if all(isinstance(v, str) for v in values) else "any"
    return kind if isinstance(kind, str) else "any"
