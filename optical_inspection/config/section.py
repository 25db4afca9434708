"""The decorator every config section uses: a pydantic dataclass that rejects unknown keys."""
from __future__ import annotations

from pydantic import ConfigDict
from pydantic.dataclasses import dataclass

SECTION_CONFIG = ConfigDict(extra="forbid", validate_assignment=True, arbitrary_types_allowed=False)


def section(cls: type) -> type:
    """Turn a class with annotated ``spec_field`` attributes into a validated config section."""
    return dataclass(config=SECTION_CONFIG)(cls)
