"""Run a trained model from any file format through one :class:`~.base.Scorer` interface.

``load_scorer(path, config)`` picks the backend module by suffix and calls its ``load(path, config) -> Scorer``.
Backends are imported lazily, so the ONNX Runtime and TensorRT packages are only needed when such a file is used.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import OIError
from .base import Scorer

if TYPE_CHECKING:
    from ..config.experiment import ExperimentConfig

# suffix -> backend module under optical_inspection.deploy (each defines ``load(path, config) -> Scorer``)
BACKENDS: dict[str, str] = {
    ".pth": "torch_backend",
    ".ckpt": "torch_backend",
    ".onnx": "onnx_backend",
    ".engine": "trt_backend",
    ".trt": "trt_backend",
    ".plan": "trt_backend",
}


def load_scorer(model_path: str | Path, config: ExperimentConfig | None = None) -> Scorer:
    """A Scorer for ``model_path`` (.pth/.ckpt: PyTorch, .onnx: ONNX Runtime, .engine/.trt/.plan: TensorRT;
    ``pretrained``: the bundled weights, with the PyTorch backend)."""
    from ..models.bundled import is_keyword

    if is_keyword(model_path):
        from . import torch_backend

        return torch_backend.load(str(model_path).strip().lower(), config)
    path = Path(model_path)
    suffix = path.suffix.lower()
    if suffix not in BACKENDS:
        raise OIError(f"model file '{path}' has an unknown suffix '{suffix}'; use one of {', '.join(BACKENDS)}")
    if not path.is_file():
        raise OIError(f"model file '{path}' does not exist")
    module = importlib.import_module(f"{__name__}.{BACKENDS[suffix]}")
    return module.load(path, config)


__all__ = ["BACKENDS", "Scorer", "load_scorer"]
