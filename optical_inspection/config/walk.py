"""The key index: the only walker of the config key tree (validation, CLI help, runner, AutoML, generators)."""
from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, TypeGuard

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from .actions import ACTION_SECTIONS, SHARED_SECTIONS
from .experiment import ExperimentConfig


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


class KeyIndex:
    """Every key of a config class by dotted path (only the top-level ``sections`` named, when given)."""

    def __init__(self, cls: type = ExperimentConfig, sections: Iterable[str] | None = None) -> None:
        self.root = cls
        self.top = tuple(fields_of(cls) if sections is None else sections)
        self.keys = {k.path: k for k in iter_keys(cls) if k.path.split(".")[0] in self.top}

    def __iter__(self) -> Iterator[KeySpec]:
        return iter(self.keys.values())

    def get(self, path: str) -> KeySpec | None:
        return self.keys.get(path)

    def annotation(self, path: str) -> Any:
        """The type of ``path`` (keys inside a free-form mapping included); :data:`UNKNOWN` when not a key here."""
        if path.split(".")[0] not in self.keys:
            return UNKNOWN
        ann: Any = self.root
        for part in path.split("."):
            ann = _child(ann, part)
            if ann is UNKNOWN:
                break
        return ann

    def allows(self, path: str) -> bool:
        return self.annotation(path) is not UNKNOWN

    def is_section(self, path: str) -> bool:
        """True for a nested section (declared keys), False for a leaf, a free-form mapping or an unknown key."""
        return is_section(unwrap_optional(self.annotation(path))[0])

    def leaves(self, path: str, value: Any) -> Iterator[tuple[str, Any]]:
        """(dotted key, value) of every leaf under ``path`` in ``value``, descending through sections only."""
        if isinstance(value, dict) and self.is_section(path):
            for name, child in value.items():
                if self.allows(f"{path}.{name}"):
                    yield from self.leaves(f"{path}.{name}", child)
        else:
            yield path, value

    def section_names(self, path: str) -> list[str]:
        """The key names of the section at ``path`` ("" = the root); [] when ``path`` is no section."""
        ann = self.root if not path else unwrap_optional(self.annotation(path))[0]
        return list(fields_of(ann)) if is_section(ann) else []


UNKNOWN: Any = object()


@functools.cache
def action_index(action: str) -> KeyIndex:
    """The keys of the sections ``action`` reads (the shared ones first)."""
    return KeyIndex(ExperimentConfig, SHARED_SECTIONS + ACTION_SECTIONS[action])


def _child(annotation: Any, name: str) -> Any:
    """The type of key ``name`` inside a value of type ``annotation`` (a section or a ``dict[str, X]``)."""
    ann = unwrap_optional(annotation)[0]
    if is_section(ann):
        info = fields_of(ann).get(name)
        return UNKNOWN if info is None else info.annotation
    if typing.get_origin(ann) is dict and len(typing.get_args(ann)) == 2:
        return typing.get_args(ann)[1]
    return UNKNOWN


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
