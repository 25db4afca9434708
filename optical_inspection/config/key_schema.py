"""JSON Schema (draft 2020-12) of one spec key, from its annotation and field metadata.

The generators nest these into ``schemas/<action>.schema.json``; the runner reads them per key (MCP tool
arguments, the AutoML search space) from the key index, never from the generated files.
"""
from __future__ import annotations

import math
import types
import typing
from typing import Any, Iterable

import annotated_types as at

from ..dotted import PLACEHOLDER
from .actions import uses_automl
from .requirements import requirements
from .walk import KeySpec, action_index, is_section, iter_keys

_SCALARS: dict[type, str] = {bool: "boolean", int: "integer", float: "number", str: "string"}
_BOUNDS: dict[type, tuple[str, str]] = {
    at.Ge: ("minimum", "ge"), at.Gt: ("exclusiveMinimum", "gt"),
    at.Le: ("maximum", "le"), at.Lt: ("exclusiveMaximum", "lt"),
}


class KeySchemaError(ValueError):
    """A key's annotation has no JSON Schema mapping; the message names the key."""


def action_property(action: str, key: KeySpec) -> dict[str, Any]:
    """The schema of ``key`` as ``schemas/<action>.schema.json`` holds it (a key the action requires has no
    default and no null)."""
    schema = property_schema(key, with_extras=True, with_automl=uses_automl(action))
    return required_schema(schema) if key.path in single_required(action) else schema


def single_required(action: str) -> set[str]:
    """Keys ``action`` always needs, with no alternative (the others become conditional clauses)."""
    return {req.keys[0] for req in requirements(action) if len(req.keys) == 1 and req.when is None}


def required_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A leaf schema that refuses null and the placeholder (a required key)."""
    names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    kept = [t for t in names if t != "null"]
    out = {k: v for k, v in schema.items() if k != "default"}
    out["type"] = kept[0] if len(kept) == 1 else kept
    if "string" in kept:
        out["not"] = {"const": PLACEHOLDER}
    return out


def action_leaves(action: str) -> list[tuple[str, dict[str, Any]]]:
    """(dotted key, schema) of every leaf ``action`` reads, sorted by key."""
    leaves = [k for k in action_index(action) if k.section is None]
    return [(k.path, action_property(action, k)) for k in sorted(leaves, key=lambda k: k.path.split("."))]


def object_schema(keys: Iterable[KeySpec], *, with_extras: bool, with_automl: bool) -> dict[str, Any]:
    """Nest the flat, depth-first ``keys`` into one object schema (unknown keys rejected at every level)."""
    root: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": {}}
    nodes = {"": root}
    for key in keys:
        parent, _, name = key.path.rpartition(".")
        if parent not in nodes:
            raise KeySchemaError(f"{key.path}: its parent section '{parent}' was not walked first")
        schema = property_schema(key, with_extras=with_extras, with_automl=with_automl)
        nodes[parent]["properties"][name] = schema
        if key.section is not None:
            nodes[key.path] = schema
    return root


def property_schema(key: KeySpec, *, with_extras: bool, with_automl: bool) -> dict[str, Any]:
    """Schema of one key: type, bounds, default, description and the x- extension keys."""
    if key.section is not None:
        schema: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": {}}
    else:
        schema = type_schema(key.annotation, key.path)
        schema.update(bounds(key.info.metadata, key.path))
        schema["default"] = key.default()
    if key.info.description:
        schema["description"] = key.info.description
    if with_extras:
        extra = key.extra
        for name in ("x-popular", "x-required-for", "x-tao-default"):
            if name in extra:
                schema[name] = extra[name]
        if with_automl and "x-automl" in extra:
            schema["x-automl"] = extra["x-automl"]
    return schema


def type_schema(annotation: Any, where: str) -> dict[str, Any]:
    """JSON Schema of a Python annotation: scalars, Optional, Literal, list, dict[str, X], sections."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        schema = type_schema(args[0], where)
        schema.update(bounds(args[1:], where))
        return schema
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1 and len(args) == 2:
            return nullable(type_schema(inner[0], where))
        if len(inner) != len(args):
            raise KeySchemaError(f"{where}: Optional unions of several types are not supported, got {annotation!r}")
        branches = [type_schema(a, where) for a in inner]  # e.g. an integer or the string "auto"
        names = sorted({n for b in branches for n in (b["type"] if isinstance(b["type"], list) else [b["type"]])})
        return {"type": names, "anyOf": branches}
    if origin is typing.Literal:
        names = sorted({json_type(v, where) for v in args})
        return {"type": names[0] if len(names) == 1 else names, "enum": list(args)}
    if origin is list:
        return {"type": "array", "items": type_schema(args[0], where) if args else {}}
    if origin is dict:
        if not args or _unannotated(args[0]) is not str:
            raise KeySchemaError(f"{where}: dict keys must be str, got {annotation!r}")
        return {"type": "object", "additionalProperties": type_schema(args[1], where)}
    if is_section(annotation):
        return object_schema(iter_keys(annotation), with_extras=False, with_automl=False)
    if annotation is object or annotation is typing.Any:
        return {}
    if annotation in _SCALARS:
        return {"type": _SCALARS[annotation]}
    raise KeySchemaError(f"{where}: no JSON Schema mapping for annotation {annotation!r}")


def _unannotated(annotation: Any) -> Any:
    return typing.get_args(annotation)[0] if typing.get_origin(annotation) is typing.Annotated else annotation


def json_type(value: Any, where: str) -> str:
    """JSON type name of a literal value (bool before int: bool is an int subclass)."""
    for cls, name in _SCALARS.items():
        if isinstance(value, cls):
            return name
    if value is None:
        return "null"
    raise KeySchemaError(f"{where}: literal {value!r} has no JSON type")


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """Also allow null (Optional[X])."""
    if "type" not in schema:
        return schema
    names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    schema = dict(schema, type=sorted(set(names) | {"null"}))
    if "enum" in schema:
        schema["enum"] = [*schema["enum"], None]
    return schema


def bounds(metadata: Iterable[Any], where: str) -> dict[str, Any]:
    """minimum / exclusiveMinimum / maximum / exclusiveMaximum from pydantic's ge/gt/le/lt (finite only)."""
    out: dict[str, Any] = {}
    for item in metadata:
        for cls, (keyword, attr) in _BOUNDS.items():
            if isinstance(item, cls):
                value = getattr(item, attr)
                if isinstance(value, float) and not math.isfinite(value):
                    continue
                out[keyword] = value
    return out
