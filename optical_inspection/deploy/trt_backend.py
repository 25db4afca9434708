"""TensorRT backend: scores pairs with a serialized engine (TensorRT 10 or 11, name-based I/O API).

Buffers are torch CUDA tensors (no pycuda needed). The engine's optimisation profile bounds the batch: a batch above
its maximum is refused with a message saying how to rebuild, a short batch below its minimum is zero-padded.
Engines from TAO (no metadata sidecar) work too: their output layout is recognised from the tensor names.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import OIError
from .metadata import INPUT_NAMES, output_type_from_names, read_sidecar, run_options, stored_threshold
from .outputs import scores_from_outputs
from .trt_compat import import_tensorrt, require_gpu, trt_logger

if TYPE_CHECKING:
    from ..config.experiment import ExperimentConfig


def check_batch(batch: int, min_batch: int, max_batch: int, where: str) -> None:
    """Refuse a batch outside the engine's profile, saying which setting to change."""
    if not 1 <= min_batch <= batch <= max_batch:
        raise OIError(f"{where}: a batch of {batch} pair(s) is outside the engine's profile [{min_batch}, "
                      f"{max_batch}]; use a batch_size in that range or rebuild the engine with gen_trt_engine "
                      f"tensorrt.min_batch_size/max_batch_size covering {batch}")


class TrtScorer:
    """Scores (test, golden) strips with a TensorRT engine on GPU ``gpu_id``."""

    backend = "tensorrt"

    def __init__(self, path: str | Path, gpu_id: int = 0, config: ExperimentConfig | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise OIError(f"TensorRT engine '{self.path}' does not exist; build it with gen_trt_engine")
        trt = import_tensorrt()
        self.device = require_gpu(gpu_id)
        self._trt = trt
        self._runtime = trt.Runtime(trt_logger(trt, False))
        self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise OIError(f"'{self.path}' is not an engine this TensorRT ({trt.__version__}) and GPU can load; engines "
                          f"are tied to the TensorRT version and GPU that built them: rebuild with gen_trt_engine")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        inputs = [n for n in names if is_input[n]]
        if sorted(inputs) != sorted(INPUT_NAMES):
            raise OIError(f"'{self.path}' has inputs {inputs}; an OI engine takes {list(INPUT_NAMES)}")
        self.output_names = [n for n in names if not is_input[n]]
        self.meta = read_sidecar(self.path)
        self.output_type = self.meta.get("output_type") or output_type_from_names(self.output_names, str(self.path))
        shape = tuple(self.engine.get_tensor_shape(INPUT_NAMES[0]))
        self.input_shape = shape[1:]
        if shape[0] > 0:
            self.min_batch = self.max_batch = int(shape[0])
        else:
            low, _, high = self.engine.get_tensor_profile_shape(INPUT_NAMES[0], 0)
            self.min_batch, self.max_batch = int(low[0]), int(high[0])
        self.threshold = stored_threshold(self.meta, config)

    def score(self, test: Any, golden: Any) -> np.ndarray:
        """float32[B] scores of float32 strips ``[B, 3, H', W']`` (numpy arrays or torch tensors)."""
        import torch

        test_t = torch.as_tensor(test, dtype=torch.float32).to(self.device).contiguous()
        golden_t = torch.as_tensor(golden, dtype=torch.float32).to(self.device).contiguous()
        if test_t.shape != golden_t.shape or test_t.dim() != 4 or tuple(test_t.shape[1:]) != self.input_shape:
            raise OIError(f"'{self.path}' takes strips [B, {', '.join(map(str, self.input_shape))}] but got "
                          f"{tuple(test_t.shape)} and {tuple(golden_t.shape)}; the dataset geometry must match "
                          f"training")
        n = int(test_t.shape[0])
        if 0 < n < self.min_batch:  # a short last batch: pad with zeros up to the profile minimum, drop the padding
            pad = self.min_batch - n
            padding = (0, 0, 0, 0, 0, 0, 0, pad)
            test_t, golden_t = (torch.nn.functional.pad(t, padding) for t in (test_t, golden_t))
        check_batch(int(test_t.shape[0]), self.min_batch, self.max_batch, str(self.path))
        feeds = {INPUT_NAMES[0]: test_t, INPUT_NAMES[1]: golden_t}
        for name, tensor in feeds.items():
            tensor = tensor.to(_torch_dtype(self._trt, self.engine.get_tensor_dtype(name))).contiguous()
            feeds[name] = tensor
            self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, tensor.data_ptr())
        outputs = {}
        for name in self.output_names:
            dtype = _torch_dtype(self._trt, self.engine.get_tensor_dtype(name))
            outputs[name] = torch.empty(tuple(self.context.get_tensor_shape(name)), dtype=dtype, device=self.device)
            self.context.set_tensor_address(name, outputs[name].data_ptr())
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise OIError(f"TensorRT failed to run '{self.path}' on a batch of {test_t.shape[0]}")
        stream.synchronize()
        scores = scores_from_outputs({k: t.float().cpu().numpy() for k, t in outputs.items()}, self.output_type)
        return scores[:n]


def load(path: str | Path, config: ExperimentConfig | None = None, gpu_id: int | None = None) -> TrtScorer:
    """The backend entry point of :func:`optical_inspection.deploy.load_scorer`."""
    return TrtScorer(path, run_options(config)[1] if gpu_id is None else gpu_id, config)


def _torch_dtype(trt: Any, dtype: Any) -> Any:
    import torch

    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32, trt.int8: torch.int8}
    if dtype not in table:
        raise OIError(f"unsupported TensorRT I/O type {dtype}; OI engines use float32 or float16 I/O")
    return table[dtype]
