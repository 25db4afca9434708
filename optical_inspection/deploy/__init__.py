"""Run a trained model from any file format through one :class:`~.base.Scorer` interface.

``load_scorer(path, config)`` picks the backend module by suffix and calls its ``load(path, config) -> Scorer``.
Backends are imported lazily, so the ONNX Runtime and TensorRT packages are only needed when such a file is used.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from ..errors import OIError
from .base import Scorer

# suffix -> backend module under optical_inspection.deploy (each defines ``load(path, config) -> Scorer``)
BACKENDS: dict[str, str] = {
    ".pth": "torch_backend",
    ".ckpt": "torch_backend",
    ".onnx": "onnx_backend",
    ".engine": "trt_backend",
    ".trt": "trt_backend",
    ".plan": "trt_backend",
}


def load_scorer(model_path: str | Path, config: Any = None) -> Scorer:
    """A Scorer for ``model_path`` (.pth/.ckpt: PyTorch, .onnx: ONNX Runtime, .engine/.trt/.plan: TensorRT)."""
    path = Path(model_path)
    suffix = path.suffix.lower()
    if suffix not in BACKENDS:
        raise OIError(f"model file '{path}' has an unknown suffix '{suffix}'; use one of {', '.join(BACKENDS)}")
    if not path.is_file():
        raise OIError(f"model file '{path}' does not exist")
    module_name = BACKENDS[suffix]
    try:
        module = importlib.import_module(f"{__name__}.{module_name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"{__name__}.{module_name}":
            raise NotImplementedError(f"the {suffix} backend ({module_name}) is not implemented yet") from None
        raise
    if not hasattr(module, "load"):
        raise NotImplementedError(f"the {suffix} backend ({module_name}) has no load(path, config) yet")
    return module.load(path, config)


__all__ = ["BACKENDS", "Scorer", "load_scorer"]
