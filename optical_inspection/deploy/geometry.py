"""A deployed model's preprocessing, from its metadata: the spec only has to say where the pairs are.

The model file remembers the lights, tile size, layout and mean/std it was trained with (``dataset`` in its
metadata). :func:`model_dataset_config` returns the spec's dataset section with those keys taken from the model,
and names every key where the spec said otherwise, so no deploy path can silently preprocess differently.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from ..config.dataset import DatasetConfig

# image_ext is a property of the data files, not of the model: it stays as the spec says.
GEOMETRY_KEYS = ("lights", "image_height", "image_width", "concat_type", "grid_map", "rgb_input_mean",
                 "rgb_input_std")
_Section = TypeVar("_Section")


def model_dataset_config(dataset_cfg: DatasetConfig, geometry: dict[str, Any]) -> tuple[DatasetConfig, list[str]]:
    """(dataset section with the model's preprocessing, ["key: spec X -> model Y", ...] for each override)."""
    if not geometry:
        return dataset_cfg, []
    current = _geometry_of(dataset_cfg)
    changes = [f"{k}: spec {current[k]!r} -> model {geometry[k]!r}" for k in GEOMETRY_KEYS
               if k in geometry and _norm(geometry[k]) != _norm(current[k])]
    if not changes:
        return dataset_cfg, []
    aug = dataset_cfg.augmentation_config
    if "rgb_input_mean" in geometry or "rgb_input_std" in geometry:
        mean = geometry.get("rgb_input_mean", aug.rgb_input_mean)
        std = geometry.get("rgb_input_std", aug.rgb_input_std)
        aug = _replace(aug, rgb_input_mean=[float(v) for v in mean], rgb_input_std=[float(v) for v in std])
    updates: dict[str, Any] = {"augmentation_config": aug}
    if "lights" in geometry:
        lights = list(geometry["lights"])
        updates["input_map"] = {name: i for i, name in enumerate(lights)} if lights else None
        updates["num_input"] = None
    for key in ("image_height", "image_width", "concat_type"):
        if key in geometry:
            updates[key] = geometry[key]
    if "grid_map" in geometry:
        updates["grid_map"] = _replace(dataset_cfg.grid_map, x=int(geometry["grid_map"]["x"]),
                                       y=int(geometry["grid_map"]["y"]))
    return _replace(dataset_cfg, **updates), changes


def _replace(section: _Section, **changes: Any) -> _Section:
    """``dataclasses.replace`` typed for config sections (mypy does not see ``@section`` classes as dataclasses)."""
    return cast(_Section, dataclasses.replace(cast(Any, section), **changes))


def _geometry_of(dataset_cfg: DatasetConfig) -> dict[str, Any]:
    aug = dataset_cfg.augmentation_config
    return {
        "lights": list(dataset_cfg.input_map or {}),
        "image_height": dataset_cfg.image_height,
        "image_width": dataset_cfg.image_width,
        "concat_type": dataset_cfg.concat_type or "linear",
        "grid_map": {"x": dataset_cfg.grid_map.x, "y": dataset_cfg.grid_map.y},
        "rgb_input_mean": list(aug.rgb_input_mean),
        "rgb_input_std": list(aug.rgb_input_std),
    }


def _norm(value: Any) -> Any:
    """Compare numbers as rounded floats so 0.5 == 0.50000001 from JSON round trips."""
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    if isinstance(value, float):
        return round(value, 6)
    return value
