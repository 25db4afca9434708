"""The spec's ``automl.*`` section as typed settings, with the metric's direction resolved from skill_info."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from optical_inspection.config.automl import AutoMLConfig
from optical_inspection.config.walk import to_plain

from ..errors import RequestError
from ..skill_info import SkillInfo

_ADAPTER = TypeAdapter(AutoMLConfig)


@dataclass(frozen=True)
class AutoMLSettings:
    algorithm: str
    max_trials: int
    max_time_s: float | None
    workers: int
    metric: str
    direction: str
    storage: str | None
    study_name: str | None
    seed: int
    reduction_factor: int
    parameters: list[str] = field(default_factory=list)
    parameter_ranges: dict[str, dict[str, Any]] = field(default_factory=dict)


def read_settings(spec: dict[str, Any], skill: SkillInfo) -> AutoMLSettings:
    """Validate ``spec['automl']`` (defaults from the config dataclass) and resolve the direction."""
    raw = spec.get("automl") or {}
    try:
        cfg = _ADAPTER.validate_python(raw)
    except ValidationError as exc:
        raise RequestError([f"automl.{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})"
                            for e in exc.errors()]) from None
    metric, direction = skill.metric_direction(cfg.metric)
    ranges = {key: {k: v for k, v in to_plain(r).items() if v is not None} for key, r in cfg.parameter_ranges.items()}
    return AutoMLSettings(
        algorithm=cfg.algorithm,
        max_trials=cfg.max_trials,
        max_time_s=cfg.max_time * 60.0 if cfg.max_time is not None else None,
        workers=cfg.workers,
        metric=metric,
        direction=cfg.direction or direction,
        storage=cfg.storage,
        study_name=cfg.study_name,
        seed=cfg.seed,
        reduction_factor=cfg.reduction_factor,
        parameters=list(cfg.parameters),
        parameter_ranges=ranges,
    )


def storage_problems(spec: dict[str, Any]) -> list[str]:
    """A storage URL written with its password would reach the job's spec.yaml: refused, with the fix."""
    from optical_inspection.redaction import redact

    value = (spec.get("automl") or {}).get("storage") if isinstance(spec.get("automl"), dict) else None
    if not isinstance(value, str) or "${" in value or redact(value) == value:
        return []
    return [f"automl.storage: '{redact(value)}' holds a password, which would be written to the job's spec.yaml; "
            "export the URL in an environment variable (export OI_OPTUNA_STORAGE='postgresql://...') and set "
            "automl.storage: ${oc.env:OI_OPTUNA_STORAGE}"]
