"""Shared fixtures: the session-wide synthetic split (from splits.py), data configs for it, a PostgreSQL server."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from optical_inspection.data.synthetic import DEFAULT_LIGHTS
from optical_inspection.spec import validate_dict
from splits import synthetic_split  # noqa: F401  (the session-wide split fixture)

FOUR_LIGHTS = {name: i for i, name in enumerate(DEFAULT_LIGHTS)}


def dataset_spec(csv_path: Path | str, images_dir: Path | str, **dataset: Any) -> dict[str, Any]:
    """A spec dict whose four splits all use one CSV, 4 lights, 32x32 tiles, batch 4, no workers."""
    split = {"csv_path": str(csv_path), "images_dir": str(images_dir)}
    base = {"train_dataset": split, "validation_dataset": dict(split), "test_dataset": dict(split),
            "infer_dataset": dict(split), "input_map": dict(FOUR_LIGHTS), "image_height": 32, "image_width": 32,
            "batch_size": 4, "workers": 0}
    base.update(dataset)
    return {"dataset": base}


@pytest.fixture
def make_config() -> Callable[..., Any]:
    """``make_config(csv_path, images_dir, **dataset_keys) -> ExperimentConfig``."""
    def build(csv_path: Path | str, images_dir: Path | str, **dataset: Any) -> Any:
        return validate_dict(dataset_spec(csv_path, images_dir, **dataset), None)
    return build


@pytest.fixture(scope="module")
def postgres() -> Any:
    """A real PostgreSQL server on 127.0.0.1 with a password (see postgres_server.py); skips or fails when it
    cannot start."""
    from postgres_server import start_server

    yield from start_server()
