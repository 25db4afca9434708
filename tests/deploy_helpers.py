"""Small models for the export/deploy tests: configs and seeded checkpoints (their split: splits.deploy_split)."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from optical_inspection.actions import export
from optical_inspection.config import ExperimentConfig
from optical_inspection.data.preprocess import Preprocessor
from optical_inspection.data.table import read_split
from optical_inspection.models.checkpoint import save_checkpoint
from optical_inspection.models.factory import build_model, dataset_geometry, model_settings
from optical_inspection.models.losses import pair_losses
from optical_inspection.status import StatusLogger
from splits import DEPLOY_SIZE, LIGHTS

def small_config(model_type: str, csv_path: Path | None = None, images_dir: Path | None = None) -> ExperimentConfig:
    """A spec for tiny strips of two lights; the split (if given) is used for test and inference."""
    cfg = ExperimentConfig()
    cfg.model.model_type = model_type
    cfg.model.embedding_vectors = 5
    cfg.model.base_channels = 8
    cfg.dataset.input_map = {name: i for i, name in enumerate(LIGHTS)}
    cfg.dataset.image_height = DEPLOY_SIZE
    cfg.dataset.image_width = DEPLOY_SIZE
    cfg.dataset.image_ext = ".jpg"
    cfg.dataset.batch_size = 8
    cfg.dataset.workers = 0
    if csv_path is not None:
        for split in (cfg.dataset.test_dataset, cfg.dataset.infer_dataset):
            split.csv_path = str(csv_path)
            split.images_dir = str(images_dir)
    return cfg


def load_split_pairs(cfg: ExperimentConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Every pair of the spec's test split, preprocessed exactly as training does."""
    split = cfg.dataset.test_dataset
    table = read_split(split.csv_path, split.images_dir, cfg.dataset)
    return Preprocessor(cfg.dataset).load_pairs(table, range(len(table)))


def train_briefly(model: torch.nn.Module, cfg: ExperimentConfig, split: tuple[Path, Path], steps: int) -> None:
    """``steps`` seeded AdamW steps of 16 pairs of ``split`` with the model's own loss: a trained network whose
    scores follow the data (a random one's barely vary, so any rounding noise dominates comparisons of them)."""
    table = read_split(split[0], split[1], cfg.dataset)
    test, golden = Preprocessor(cfg.dataset).load_pairs(table, range(len(table)))
    labels = torch.as_tensor(table.labels, dtype=torch.float32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(table), (16,), generator=generator)
        loss = pair_losses(cfg.model.model_type, model.score(test[idx], golden[idx]), labels[idx],
                           cfg.model.margin).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def make_checkpoint(folder: Path, cfg: ExperimentConfig, seed: int = 0,
                    train_on: tuple[Path, Path] | None = None, steps: int = 0) -> Path:
    """A seeded checkpoint with non-trivial BatchNorm statistics (or trained ``steps`` steps on ``train_on``)
    and a threshold that splits the split's scores in two halves, midway between two scores (so decisions are
    well defined)."""
    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    if train_on is not None:
        train_briefly(model, cfg, train_on, steps)
    threshold = None
    if cfg.dataset.test_dataset.csv_path:
        test, golden = load_split_pairs(cfg)
        with torch.no_grad():
            scores = np.sort(model.score(test, golden).numpy())
        mid = len(scores) // 2
        threshold = float((scores[mid - 1] + scores[mid]) / 2)
    meta = {"model": model_settings(cfg.model), "dataset": dataset_geometry(cfg.dataset), "epoch": 1, "step": 5,
            "metrics": {}, "threshold": threshold, "threshold_source": "test fixture"}
    return save_checkpoint(folder / f"{cfg.model.model_type}.pth", model, meta)


def export_models(root: Path, csv_path: Path, images_dir: Path,
                  model_types: tuple[str, ...] = ("Compact", "Siamese_3"),
                  train_on: tuple[Path, Path] | None = None, steps: int = 0,
                  ) -> dict[str, tuple[Path, Path, ExperimentConfig]]:
    """{model_type: (checkpoint, onnx, cfg)}: a seeded (or briefly trained) checkpoint per type, exported with
    the real export action."""
    out = {}
    for model_type in model_types:
        cfg = small_config(model_type, csv_path, images_dir)
        checkpoint = make_checkpoint(root, cfg, train_on=train_on, steps=steps)
        spec = copy.deepcopy(cfg)
        spec.export.checkpoint = str(checkpoint)
        spec.export.onnx_file = str(root / f"{model_type}.onnx")
        export.run(spec, root, StatusLogger(root / "status.json"))
        out[model_type] = (checkpoint, root / f"{model_type}.onnx", cfg)
    return out
