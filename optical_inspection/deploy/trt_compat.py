"""Lazy TensorRT import, version branching and the GPU check, each failing with a message that says what to do."""
from __future__ import annotations

from typing import Any

from ..errors import OIError

MIN_MAJOR = 10
_INSTALL = ("install it with `pip install tensorrt` (or `pip install optical-inspection[trt]`) on a machine with an "
            "NVIDIA GPU and driver; without one, run evaluate/inference from the ONNX file with ONNX Runtime instead "
            "(<action>.onnx_file)")


def import_tensorrt() -> Any:
    """The ``tensorrt`` module (10.x or 11.x), or OIError saying how to get it."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise OIError(f"TensorRT is not available ({exc}): {_INSTALL}") from None
    major = trt_major(trt)
    if major < MIN_MAJOR:
        raise OIError(f"TensorRT {trt.__version__} is too old: {MIN_MAJOR}.x or newer is needed; upgrade with "
                      f"`pip install -U tensorrt`")
    return trt


def trt_major(trt: Any) -> int:
    """Major version: 10 uses builder precision flags and calibrators, 11+ builds strongly typed networks."""
    try:
        return int(str(trt.__version__).split(".")[0])
    except ValueError:
        raise OIError(f"cannot read the TensorRT version from {trt.__version__!r}") from None


def require_gpu(gpu_id: int) -> Any:
    """The torch CUDA device ``gpu_id`` (TensorRT buffers live in torch CUDA memory), or OIError."""
    import torch

    if not torch.cuda.is_available():
        raise OIError("TensorRT needs an NVIDIA GPU visible to a CUDA build of PyTorch, and none is "
                      f"(torch {torch.__version__}, torch.cuda.is_available() is False); run on a GPU machine, or use "
                      "ONNX Runtime on CPU (<action>.onnx_file)")
    count = torch.cuda.device_count()
    if gpu_id >= count:
        raise OIError(f"gpu_id {gpu_id} does not exist: {count} GPU(s) visible (ids 0..{count - 1})")
    torch.cuda.set_device(gpu_id)
    return torch.device("cuda", gpu_id)


def trt_logger(trt: Any, verbose: bool) -> Any:
    return trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
