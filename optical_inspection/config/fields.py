"""Field and section helpers: one place that attaches type bounds, docs and AutoML metadata to a spec key.

Every spec key is declared with :func:`spec_field` inside a :func:`section` class. The metadata lands in
pydantic's ``FieldInfo`` (``description``, numeric bounds, ``json_schema_extra``) so that validation (pydantic)
and the generators (JSON Schema, templates, skill tables) read the same declaration.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Callable

from pydantic import AfterValidator, AllowInfNan, ConfigDict, Field, Strict
from pydantic.dataclasses import dataclass as pydantic_dataclass

from ..input_limits import INT64_MAX


def _int64(value: int) -> int:
    if not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise ValueError("Input should fit in a 64-bit integer")
    return value


# Strict scalar types: a quoted "16" is not an int, "true" is not a bool (TAO's Hydra merge is as strict).
# Numbers must be finite (no .inf/.nan: they train NaN weights) and integers must fit in 64 bits.
Int = Annotated[int, Strict(), AfterValidator(_int64)]
Float = Annotated[float, Strict(False), AllowInfNan(False)]  # an int literal such as `margin: 2` is a valid float
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]


@dataclass(frozen=True)
class AutoML:
    """How AutoML may search a key.

    enabled: searched by default (TAO's ``automl_enabled``).
    low/high: the search range when it differs from the validation bounds (e.g. an open bound).
    log: sample on a log scale (learning rates).
    option_weights: prior weights aligned with the key's allowed options.
    when: conditions ``{dotted_key: value}`` that must all hold for the key to be sampled (a list value: any of).
    math_cond: ``"power_of_two"`` or ``"multiple_of:<k>"`` for integers.
    """

    enabled: bool = False
    low: float | None = None
    high: float | None = None
    log: bool = False
    option_weights: tuple[float, ...] | None = None
    when: dict[str, Any] = field(default_factory=dict)
    math_cond: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"enabled": self.enabled, "log": self.log}
        if self.low is not None:
            out["low"] = self.low
        if self.high is not None:
            out["high"] = self.high
        if self.option_weights is not None:
            out["option_weights"] = list(self.option_weights)
        if self.when:
            out["when"] = dict(self.when)
        if self.math_cond:
            out["math_cond"] = self.math_cond
        return out


def spec_field(
    default: Any = None,
    *,
    description: str,
    factory: Callable[[], Any] | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    automl: AutoML | None = None,
    popular: bool = False,
    required_for: tuple[str, ...] = (),
    tao_default: Any = None,
) -> Any:
    """Declare a spec key.

    required_for: actions that need a value here (the spec template shows ``???``).
    tao_default: TAO's runtime default when ours differs on purpose (documented in the schema).
    """
    extra: dict[str, Any] = {}
    if automl is not None:
        extra["x-automl"] = automl.to_dict()
    if popular:
        extra["x-popular"] = True
    if required_for:
        extra["x-required-for"] = list(required_for)
    if tao_default is not None:
        extra["x-tao-default"] = tao_default
    kwargs: dict[str, Any] = {
        "description": description,
        "ge": ge,
        "gt": gt,
        "le": le,
        "lt": lt,
        "json_schema_extra": extra or None,
    }
    if factory is not None:
        return Field(default_factory=factory, **kwargs)
    return Field(default, **kwargs)


SECTION_CONFIG = ConfigDict(extra="forbid", validate_assignment=True, arbitrary_types_allowed=False)


def section(cls: type) -> type:
    """Turn a class with annotated ``spec_field`` attributes into a validated config section (unknown keys are
    refused)."""
    return pydantic_dataclass(config=SECTION_CONFIG)(cls)
