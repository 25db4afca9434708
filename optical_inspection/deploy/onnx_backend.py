"""ONNX Runtime backend: scores pairs from an exported ONNX file (ours or TAO's).

CPU provider by default; ``provider`` picks CUDA or TensorRT execution providers when onnxruntime-gpu offers them.
For embedding exports (TAO's ``output_1``/``output_2``) the distance is computed outside the graph with the same
formula as the torch models, so decisions match training and evaluation.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import OIError
from .metadata import (DEFECT_MAP_OUTPUT, DEFECT_TYPES_OUTPUT, INPUT_NAMES, from_props, output_type_from_names,
                       run_options, stored_threshold)
from .outputs import scores_from_outputs

if TYPE_CHECKING:
    from ..config.experiment import ExperimentConfig

CPU, CUDA, TENSORRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"
# On the CPU, a convolutional net with small weights runs fastest in micro-batches whose inputs fit the L2 cache
# (measured on 2 AMD EPYC cores, Compact at 4 lights x 128 px, one thread: 519 pairs/s in calls of 1 pair,
# 450 in calls of 5, 339 in one call of 32). Nets whose weights exceed the budget (TAO's Siamese heads: ~1 GB)
# take the whole batch in one call, which amortises the weight reads.
MICRO_BATCH_BYTES = 2 << 20


def choose_providers(provider: str, available: list[str], gpu_id: int = 0) -> list[Any]:
    """Execution providers for ``provider`` (auto | cpu | cuda | tensorrt), best first, CPU always last."""
    gpu = {"device_id": gpu_id}
    if provider == "cpu":
        return [CPU]
    if provider == "auto":
        return [(CUDA, gpu), CPU] if CUDA in available else [CPU]
    wanted = {"cuda": [CUDA], "tensorrt": [TENSORRT, CUDA]}.get(provider)
    if wanted is None:
        raise OIError(f"unknown ONNX Runtime provider {provider!r}; use auto, cpu, cuda or tensorrt")
    missing = [p for p in wanted if p not in available]
    if missing:
        raise OIError(f"provider '{provider}' needs {missing}, but this onnxruntime offers {available}; install "
                      f"onnxruntime-gpu (with CUDA/TensorRT libraries) or use provider: cpu")
    return [(p, gpu) for p in wanted] + [CPU]


class OnnxScorer:
    """Scores (test, golden) strips with an ONNX Runtime session; ``max_batch`` is the static batch or None."""

    backend = "onnxruntime"

    def __init__(self, path: str | Path, provider: str = "auto", gpu_id: int = 0,
                 config: ExperimentConfig | None = None,
                 threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise OIError(f"ONNX file '{self.path}' does not exist; run export first or fix the path")
        options = session_options(ort, threads)
        providers = choose_providers(provider, ort.get_available_providers(), gpu_id)
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors for bad files
            raise OIError(f"ONNX Runtime cannot load '{self.path}': {exc}") from None
        self.providers = self.session.get_providers()
        self.meta = from_props(self.session.get_modelmeta().custom_metadata_map, str(self.path))
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        if set(inputs) != set(INPUT_NAMES):
            raise OIError(f"'{self.path}' has inputs {sorted(inputs)}; an OI model takes {list(INPUT_NAMES)}")
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.supports_maps = DEFECT_MAP_OUTPUT in self.output_names
        extra = (DEFECT_MAP_OUTPUT, DEFECT_TYPES_OUTPUT)
        self.score_names = [n for n in self.output_names if n not in extra]  # plain scoring skips map and kinds
        kinds = (self.meta.get("model") or {}).get("defect_types") or []
        self.defect_types: list[str] = list(kinds) if DEFECT_TYPES_OUTPUT in self.output_names else []
        self.output_type = self.meta.get("output_type") or output_type_from_names(self.output_names, str(self.path))
        shape = inputs[INPUT_NAMES[0]]
        self.input_shape = tuple(d if isinstance(d, int) else None for d in shape[1:])
        self.max_batch: int | None = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        self.micro_batch = micro_batch(self.path, self.input_shape, self.providers) if self.max_batch is None else None
        self.threshold = stored_threshold(self.meta, config)

    def score(self, test: Any, golden: Any) -> np.ndarray:
        """float32[B] scores of float32 strips ``[B, 3, H', W']`` (numpy arrays or torch tensors)."""
        test_np, golden_np = _as_array(test), _as_array(golden)
        if not len(test_np):
            self._check(test_np, golden_np)
            return np.zeros(0, dtype=np.float32)
        return scores_from_outputs(self.run_outputs(self.score_names, test_np, golden_np), self.output_type)

    def score_maps(self, test: Any, golden: Any) -> tuple[np.ndarray, np.ndarray]:
        """(float32[B] scores, float32[B, H', W'] defect maps) from a file exported with export.heatmaps."""
        if not self.supports_maps:
            raise OIError(f"'{self.path}' has no '{DEFECT_MAP_OUTPUT}' output; re-export with export.heatmaps: true")
        values = self.run_outputs(self.score_names + [DEFECT_MAP_OUTPUT], test, golden)
        return scores_from_outputs(values, self.output_type), values[DEFECT_MAP_OUTPUT]

    def score_types(self, test: Any, golden: Any) -> tuple[np.ndarray, np.ndarray]:
        """(float32[B] scores, float32[B, K] defect-kind probabilities) from a file exported from a Compact
        checkpoint with a type head (kinds in ``defect_types``)."""
        if not self.defect_types:
            raise OIError(f"'{self.path}' has no '{DEFECT_TYPES_OUTPUT}' output; export a checkpoint trained with "
                          f"defect kinds")
        values = self.run_outputs(self.score_names + [DEFECT_TYPES_OUTPUT], test, golden)
        return scores_from_outputs(values, self.output_type), values[DEFECT_TYPES_OUTPUT]

    def run_outputs(self, names: list[str], test: Any, golden: Any) -> dict[str, np.ndarray]:
        """The outputs ``names`` (float32, rows in order) of the whole batch, run in steps the file accepts
        (static-batch files: zero-padded)."""
        test_np, golden_np = _as_array(test), _as_array(golden)
        self._check(test_np, golden_np)
        step = self.max_batch or self.micro_batch or max(1, len(test_np))
        parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
        for i in range(0, len(test_np), step):
            t, g = test_np[i:i + step], golden_np[i:i + step]
            n = len(t)
            if self.max_batch is not None and n < self.max_batch:
                pad = [(0, self.max_batch - n)] + [(0, 0)] * 3
                t, g = np.pad(t, pad), np.pad(g, pad)
            for name, value in zip(names, self.session.run(names, {INPUT_NAMES[0]: t, INPUT_NAMES[1]: g})):
                parts[name].append(np.asarray(value, dtype=np.float32)[:n])
        return {name: np.concatenate(chunks) for name, chunks in parts.items()}

    def _check(self, test: np.ndarray, golden: np.ndarray) -> None:
        if test.shape != golden.shape or test.ndim != 4:
            raise OIError(f"test and golden batches must both be [B, 3, H', W'], got {test.shape} and {golden.shape}")
        expected = tuple(e if e is not None else g for e, g in zip(self.input_shape, test.shape[1:]))
        if test.shape[1:] != expected:
            raise OIError(f"'{self.path}' takes strips {expected} (C, H', W') but the data gives {test.shape[1:]}; "
                          f"the dataset geometry (lights, image_height/width, concat_type) must match training")


def session_options(ort: Any, threads: int | None = None) -> Any:
    """All graph optimisations; one intra-op thread per usable CPU (``threads`` when given), which sleep instead
    of spinning between calls: the images of the next batches are decoded on the same cores meanwhile."""
    from ..data.cpus import usable_cpus

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or usable_cpus()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def micro_batch(path: Path, strip_shape: tuple, providers: list[str]) -> int | None:
    """Pairs per ONNX Runtime call on the CPU (None: the whole batch); see MICRO_BATCH_BYTES."""
    data = path.with_name(path.name + ".data")
    weight_bytes = path.stat().st_size + (data.stat().st_size if data.exists() else 0)
    if providers[0] != CPU or weight_bytes > MICRO_BATCH_BYTES or None in strip_shape:
        return None
    pair_bytes = 2 * 4 * int(np.prod(strip_shape))
    return max(1, MICRO_BATCH_BYTES // pair_bytes)


def _as_array(batch: Any) -> np.ndarray:
    if hasattr(batch, "detach"):
        batch = batch.detach().cpu().numpy()
    return np.ascontiguousarray(batch, dtype=np.float32)


def load(path: str | Path, config: ExperimentConfig | None = None, provider: str | None = None,
         gpu_id: int | None = None) -> OnnxScorer:
    """The backend entry point of :func:`optical_inspection.deploy.load_scorer`."""
    default_provider, default_gpu = run_options(config)
    return OnnxScorer(path, provider or default_provider, default_gpu if gpu_id is None else gpu_id, config)
