"""Training specs and seeded checkpoints for the model/train/evaluate/inference tests (splits: splits.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from optical_inspection.spec import set_dotted, validate_dict
from splits import LIGHTS, MODEL_SIZE


def train_spec(splits: dict[str, tuple[Path, Path]], results_dir: Path, **dotted: Any) -> dict[str, Any]:
    """A complete spec dict: Compact (8 channels), 2 epochs, batch 8, no workers, no progress bar."""
    def split(name: str) -> dict[str, str]:
        csv_path, images = splits[name]
        return {"csv_path": str(csv_path), "images_dir": str(images)}

    spec: dict[str, Any] = {
        "results_dir": str(results_dir),
        "model": {"model_type": "Compact", "base_channels": 8},
        "dataset": {"train_dataset": split("train"), "validation_dataset": split("val"), "test_dataset": split("val"),
                    "infer_dataset": split("val"), "input_map": {name: i for i, name in enumerate(LIGHTS)},
                    "image_height": MODEL_SIZE, "image_width": MODEL_SIZE, "batch_size": 8, "workers": 0},
        "train": {"num_epochs": 2, "progress_bar": False, "optim": {"lr": 0.003}},
    }
    for key, value in dotted.items():
        set_dotted(spec, key.replace("__", "."), value)
    return spec


def config_of(spec: dict[str, Any], action: str | None = None) -> Any:
    return validate_dict(spec, action)


def seeded_checkpoint(path: Path, splits: dict[str, tuple[Path, Path]], seed: int, **meta: Any) -> Path:
    """An untrained Compact checkpoint of ``train_spec(splits)`` (weights drawn with ``seed``); ``meta`` adds to or
    replaces its metadata (threshold None unless given)."""
    import torch

    from optical_inspection.models.checkpoint import save_checkpoint
    from optical_inspection.models.factory import build_model, dataset_geometry, model_settings

    config = config_of(train_spec(splits, path.parent / "results"))
    torch.manual_seed(seed)
    model = build_model(config)
    base = {"model": model_settings(config.model), "dataset": dataset_geometry(config.dataset), "epoch": 0,
            "step": 0, "metrics": {}, "threshold": None}
    return save_checkpoint(path, model, {**base, **meta})


def run_inference(splits: dict[str, tuple[Path, Path]], checkpoint: Path | str, results: Path,
                  **dotted: Any) -> list[dict[str, str]]:
    """``inference.run`` of ``checkpoint`` on the val split into ``results``; the rows of its inference.csv."""
    import csv

    from optical_inspection.actions import inference
    from optical_inspection.status import StatusLogger

    spec = train_spec(splits, results.parent, inference__checkpoint=str(checkpoint), **dotted)
    results.mkdir(parents=True, exist_ok=True)
    inference.run(config_of(spec, "inference"), results, StatusLogger(results / "status.json"))
    with open(results / "inference.csv", newline="") as fh:
        return list(csv.DictReader(fh))
