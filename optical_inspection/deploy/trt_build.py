"""Build a TensorRT engine from one of our ONNX files (TensorRT 10 and 11).

* Profile: ``tensorrt.min/opt/max_batch_size`` on the dynamic ``batch`` axis of both inputs (a static ONNX batch
  fixes the profile at that batch).
* Workspace: ``workspace_size`` in MB, as documented (TAO multiplies by 2^30).
* Timing cache: read when the file exists, used for the build, written back with the new entries (merged).
* Precision. TensorRT 10: builder flags (FP16; INT8 + FP16 with a calibrator that feeds both inputs from real
  pairs, cache in ``cal_cache_file``), ``layers_precision`` constraints. TensorRT 11 (strongly typed only): FP16 by
  converting the ONNX to float16, INT8 through QDQ nodes calibrated with ONNX Runtime on the same pairs.
"""
from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from ..errors import OIError
from ..io_utils import atomic_path
from .calibration import CalibrationPairs, trt10_calibrator
from .metadata import INPUT_NAMES
from .trt_compat import import_tensorrt, require_gpu, trt_logger, trt_major

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int32", "int8")


@dataclass
class BuildSettings:
    """What gen_trt_engine asks for (validated by :func:`check_settings` before TensorRT is touched)."""

    data_type: str = "fp32"
    workspace_mb: int = 1024
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 1
    layers_precision: list[str] = field(default_factory=list)
    timing_cache: Path | None = None
    cal_cache: Path | None = None
    verbose: bool = False
    gpu_id: int = 0


def check_settings(settings: BuildSettings, onnx_path: Path) -> list[str]:
    """Every problem with the settings that can be found without TensorRT (empty when all is well)."""
    problems = []
    if not (settings.min_batch <= settings.opt_batch <= settings.max_batch):
        problems.append(f"gen_trt_engine.tensorrt: min_batch_size {settings.min_batch} <= opt_batch_size "
                        f"{settings.opt_batch} <= max_batch_size {settings.max_batch} must hold")
    for entry in settings.layers_precision:
        name, sep, precision = entry.rpartition(":")
        if not sep or not name or precision not in PRECISIONS:
            problems.append(f"gen_trt_engine.tensorrt.layers_precision entry {entry!r} must be 'layer_name:precision' "
                            f"with precision one of {PRECISIONS} ('*:fp16' sets every other layer)")
    if not onnx_path.is_file():
        problems.append(f"gen_trt_engine.onnx_file '{onnx_path}' does not exist; run export first")
    return problems


def read_onnx_graph(onnx_path: Path) -> onnx.ModelProto:
    """The ONNX model without its external weights; OIError when the file is not an ONNX model."""
    try:
        return onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and friends for corrupt files
        raise OIError(f"'{onnx_path}' is not a readable ONNX model ({type(exc).__name__}: {exc}); "
                      f"export it again with optical_inspection export") from None


def onnx_batch(onnx_path: Path) -> int:
    """The batch dimension of ``input_1`` (-1 when dynamic); OIError when the inputs are not OI's."""
    model = read_onnx_graph(onnx_path)
    dims = {}
    for value in model.graph.input:
        shape = value.type.tensor_type.shape.dim
        dims[value.name] = [d.dim_value if d.HasField("dim_value") else -1 for d in shape]
    if set(INPUT_NAMES) - set(dims) or any(len(dims[n]) != 4 for n in INPUT_NAMES):
        raise OIError(f"{onnx_path}: inputs {sorted(dims)} are not OI's input_1/input_2 [batch, 3, H, W]; "
                      f"export it with optical_inspection export")
    return dims[INPUT_NAMES[0]][0]


def build_engine(onnx_path: Path, engine_path: Path, settings: BuildSettings,
                 pairs: CalibrationPairs | None) -> dict[str, Any]:
    """Build and write the engine atomically; returns facts about the build (TensorRT version, profile...)."""
    trt = import_tensorrt()
    require_gpu(settings.gpu_id)
    major = trt_major(trt)
    logger = trt_logger(trt, settings.verbose)
    with tempfile.TemporaryDirectory(prefix="oi_trt_") as work:
        source = _typed_onnx(major, onnx_path, Path(work), settings, pairs)
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = _parse(trt, network, logger, source)  # the parser owns the weights: keep it until the build ends
        builder_config = builder.create_builder_config()
        builder_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_mb << 20)
        builder_config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
        profile = _profile(builder, network, settings)
        builder_config.add_optimization_profile(profile["profile"])
        if settings.data_type == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
            builder_config.clear_flag(trt.BuilderFlag.TF32)  # fp32 means fp32: TF32 would cost the 1e-4 parity
        if major == 10:
            _weak_typing(trt, builder, network, builder_config, settings, pairs, profile["shape"])
        cache = _load_timing_cache(builder_config, settings.timing_cache)
        serialized = builder.build_serialized_network(network, builder_config)
        del parser
        if serialized is None:
            raise OIError(f"TensorRT {trt.__version__} could not build an engine from {onnx_path}; rerun with "
                          f"gen_trt_engine.verbose=true to see the builder log")
        with atomic_path(engine_path) as tmp:
            tmp.write_bytes(bytes(serialized))
        if settings.timing_cache is not None:
            _save_timing_cache(builder_config.get_timing_cache() or cache, settings.timing_cache)
    return {"tensorrt_version": trt.__version__, "strongly_typed": major >= 11, "data_type": settings.data_type,
            "profile": profile["batches"], "workspace_mb": settings.workspace_mb}


def _typed_onnx(major: int, onnx_path: Path, work: Path, settings: BuildSettings,
                pairs: CalibrationPairs | None) -> Path:
    """TensorRT 11 takes precision from the ONNX types: convert to fp16 or insert QDQ nodes first."""
    if major == 10 or settings.data_type == "fp32":
        return onnx_path
    if settings.layers_precision:
        raise OIError("gen_trt_engine.tensorrt.layers_precision needs TensorRT 10: TensorRT 11 builds strongly "
                      "typed networks only (precision comes from the ONNX); remove layers_precision")
    if settings.data_type == "fp16":
        from .onnx_fp16 import convert_to_fp16

        converted = work / "model_fp16.onnx"
        onnx.save(convert_to_fp16(onnx.load(str(onnx_path))), str(converted), save_as_external_data=True,
                  location=converted.name + ".data")  # any size: protobuf alone stops at 2 GiB
        return converted
    from .qdq import quantize_to_qdq

    quantized = work / "model_int8_qdq.onnx"
    quantize_to_qdq(onnx_path, quantized, pairs, settings.cal_cache)
    return quantized


def _parse(trt: Any, network: Any, logger: Any, source: Path) -> Any:
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(source)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise OIError(f"TensorRT cannot parse {source}:\n" + "\n".join(f"  - {e}" for e in errors))
    return parser


def _profile(builder: Any, network: Any, settings: BuildSettings) -> dict[str, Any]:
    """One optimisation profile for both inputs; a static ONNX batch pins it."""
    shapes = {}
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shapes[tensor.name] = tuple(tensor.shape)
    missing = [n for n in INPUT_NAMES if n not in shapes]
    if missing:
        raise OIError(f"the ONNX has inputs {sorted(shapes)}, not OI's {INPUT_NAMES}")
    batch = shapes[INPUT_NAMES[0]][0]
    asked = (settings.min_batch, settings.opt_batch, settings.max_batch)
    batches = asked if batch < 0 else (batch, batch, batch)
    if batches != asked:
        log.warning("the ONNX has a static batch of %d, so the engine takes exactly %d pairs per call; "
                    "tensorrt.min/opt/max_batch_size %s do not apply (export with export.batch_size: -1 for a "
                    "dynamic batch)", batch, batch, list(asked))
    profile = builder.create_optimization_profile()
    for name in INPUT_NAMES:
        rest = shapes[name][1:]
        profile.set_shape(name, *[(b, *rest) for b in batches])
    return {"profile": profile, "batches": list(batches), "shape": {n: shapes[n][1:] for n in INPUT_NAMES}}


def _weak_typing(trt: Any, builder: Any, network: Any, builder_config: Any, settings: BuildSettings,
                 pairs: CalibrationPairs | None, sample_shape: dict[str, tuple]) -> None:
    """TensorRT 10: precision flags, INT8 calibrator, per-layer precision constraints."""
    fast_fp16 = getattr(builder, "platform_has_fast_fp16", True)
    if settings.data_type in ("fp16", "int8") and fast_fp16:
        builder_config.set_flag(trt.BuilderFlag.FP16)
    if settings.data_type == "int8":
        builder_config.set_flag(trt.BuilderFlag.INT8)
        cal_batch = pairs.batch_size if pairs is not None else 1
        cal_profile = builder.create_optimization_profile()
        for name in INPUT_NAMES:
            cal_profile.set_shape(name, *[(cal_batch, *sample_shape[name])] * 3)
        builder_config.set_calibration_profile(cal_profile)
        builder_config.int8_calibrator = trt10_calibrator(trt, pairs, settings.cal_cache)
    if settings.layers_precision and settings.data_type != "fp32":
        _layer_precisions(trt, network, settings.layers_precision)
        builder_config.set_flag(trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)


def _layer_precisions(trt: Any, network: Any, entries: list[str]) -> None:
    types = {"fp32": trt.float32, "fp16": trt.float16, "int32": trt.int32, "int8": trt.int8}
    wanted = {name: types[p] for name, _, p in (e.rpartition(":") for e in entries)}
    default = wanted.pop("*", None)
    names = {network.get_layer(i).name for i in range(network.num_layers)}
    unknown = sorted(set(wanted) - names)
    if unknown:
        raise OIError(f"gen_trt_engine.tensorrt.layers_precision names layers {unknown} that the network lacks; "
                      f"layers are: {sorted(names)[:20]}")
    floats = (trt.float32, trt.float16)
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.name in wanted:
            layer.precision = wanted[layer.name]
        elif default is not None and all(layer.get_output(k).dtype in floats for k in range(layer.num_outputs)):
            layer.precision = default


def _load_timing_cache(builder_config: Any, path: Path | None) -> Any:
    data = path.read_bytes() if path is not None and path.is_file() else b""
    cache = builder_config.create_timing_cache(data)
    if cache is None or not builder_config.set_timing_cache(cache, False):
        raise OIError(f"timing cache '{path}' is unreadable or was made by another GPU/TensorRT version; delete it "
                      f"or point gen_trt_engine.timing_cache at a new file")
    return cache


def _save_timing_cache(cache: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(bytes(cache.serialize()))
