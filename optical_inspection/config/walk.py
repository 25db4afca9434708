"""Walk the config tree: one record per key, used by validation, the CLI help and the generators."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Iterator, TypeGuard

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined


@dataclass(frozen=True)
class KeySpec:
    """A spec key: dotted path, its pydantic FieldInfo and whether it is a nested section."""

    path: str
    annotation: Any
    info: FieldInfo
    section: type | None

    @property
    def extra(self) -> dict[str, Any]:
        extra = self.info.json_schema_extra
        return dict(extra) if isinstance(extra, dict) else {}

    @property
    def required_for(self) -> tuple[str, ...]:
        return tuple(self.extra.get("x-required-for", ()))

    @property
    def automl(self) -> dict[str, Any] | None:
        return self.extra.get("x-automl")

    def default(self) -> Any:
        """The runtime default as plain data (sections become dicts)."""
        if self.info.default_factory is not None:
            value = self.info.default_factory()  # type: ignore[call-arg]
        elif self.info.default is PydanticUndefined:
            return None
        else:
            value = self.info.default
        return to_plain(value)


def is_section(annotation: Any) -> TypeGuard[type]:
    return isinstance(annotation, type) and hasattr(annotation, "__pydantic_fields__")


def fields_of(cls: type) -> dict[str, FieldInfo]:
    """The declared fields of a section, in declaration order."""
    return dict(cls.__pydantic_fields__)  # type: ignore[attr-defined]


def iter_keys(cls: type, prefix: str = "") -> Iterator[KeySpec]:
    """Every key under ``cls`` depth-first (sections first, then their children)."""
    for name, info in fields_of(cls).items():
        path = f"{prefix}{name}"
        ann = info.annotation
        section = ann if is_section(ann) else None
        yield KeySpec(path, ann, info, section)
        if section is not None:
            yield from iter_keys(section, prefix=path + ".")


def key_index(cls: type) -> dict[str, KeySpec]:
    return {k.path: k for k in iter_keys(cls)}


def to_plain(value: Any) -> Any:
    """Dataclass instances → dicts, tuples → lists; scalars unchanged."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """(inner type, is_optional) for ``Optional[X]``."""
    if typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0], True
    return annotation, False
