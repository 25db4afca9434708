"""gen_trt_engine: build a TensorRT engine (fp32 / fp16 / int8) from an exported ONNX file.

The spec is checked first (profile order, layers_precision entries, ONNX inputs, INT8 calibration source), then
TensorRT and the GPU; without either the action fails with exit 1 and says what to install or where to run.
The engine gets a ``<engine>.json`` sidecar with the ONNX's metadata so evaluate/inference need no extra spec.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SpecError
from ..status import StatusLogger

if TYPE_CHECKING:
    from ..config.deploy import GenTrtEngineConfig
    from ..config.experiment import ExperimentConfig
    from ..deploy.calibration import CalibrationPairs
    from ..deploy.trt_build import BuildSettings

log = logging.getLogger(__name__)

DEFAULT_ENGINE = "oi_model.engine"


def run(config: ExperimentConfig, results_dir: Path, status: StatusLogger) -> dict[str, Any]:
    from ..deploy.trt_build import build_engine, onnx_batch
    from ..deploy.trt_compat import import_tensorrt, require_gpu
    from ..sidecar import write_sidecar

    cfg = config.gen_trt_engine
    settings, onnx_path, engine_path = _settings(cfg, results_dir)
    batch = onnx_batch(onnx_path)
    if batch > 0 and (settings.min_batch, settings.max_batch) != (batch, batch):
        log.warning("%s has a static batch of %d: the engine profile is fixed at %d (tensorrt.*_batch_size ignored)",
                    onnx_path, batch, batch)
    meta = _onnx_meta(onnx_path)
    import_tensorrt()
    require_gpu(cfg.gpu_id)
    pairs = _calibration_pairs(config, settings, meta)
    status.write("RUNNING", f"Building a {settings.data_type} TensorRT engine from {onnx_path}.")
    info = build_engine(onnx_path, engine_path, settings, pairs)
    artifacts = {"trt_engine": str(engine_path)}
    if meta:
        meta = {**meta, "engine": info, "onnx_file": str(onnx_path)}
        artifacts["trt_engine_meta"] = str(write_sidecar(engine_path, meta))
    if settings.timing_cache is not None:
        artifacts["timing_cache"] = str(settings.timing_cache)
    if settings.cal_cache is not None and settings.cal_cache.exists():
        artifacts["cal_cache_file"] = str(settings.cal_cache)
    print(f"TensorRT {info['tensorrt_version']} {settings.data_type} engine (batch {info['profile']}) -> {engine_path}")
    return {"artifacts": artifacts, "kpi": {}}


def _settings(cfg: GenTrtEngineConfig, results_dir: Path) -> tuple[BuildSettings, Path, Path]:
    """BuildSettings from the spec, or SpecError listing every problem."""
    from ..deploy.trt_build import BuildSettings, check_settings

    trt_cfg = cfg.tensorrt
    cal = trt_cfg.calibration
    if not cfg.onnx_file:
        raise SpecError(["gen_trt_engine.onnx_file is required: the ONNX written by export"])
    onnx_path = Path(cfg.onnx_file)
    engine_path = Path(cfg.trt_engine) if cfg.trt_engine else results_dir / DEFAULT_ENGINE
    settings = BuildSettings(
        data_type=trt_cfg.data_type, workspace_mb=trt_cfg.workspace_size, min_batch=trt_cfg.min_batch_size,
        opt_batch=trt_cfg.opt_batch_size, max_batch=trt_cfg.max_batch_size,
        layers_precision=list(trt_cfg.layers_precision),
        timing_cache=Path(cfg.timing_cache) if cfg.timing_cache else None,
        cal_cache=Path(cal.cal_cache_file) if cal.cal_cache_file else None,
        verbose=cfg.verbose, gpu_id=cfg.gpu_id,
    )
    problems = check_settings(settings, onnx_path)
    cached = settings.cal_cache is not None and settings.cal_cache.is_file()
    if settings.data_type == "int8" and not cal.cal_image_dir and not cached:
        problems.append("gen_trt_engine.tensorrt.data_type int8 needs calibration pairs: set "
                        "tensorrt.calibration.cal_image_dir (split folders with dataset.csv) or an existing "
                        "cal_cache_file")
    if engine_path.resolve() == onnx_path.resolve():
        problems.append("gen_trt_engine.trt_engine must differ from onnx_file")
    if problems:
        raise SpecError(problems)
    return settings, onnx_path, engine_path


def _onnx_meta(onnx_path: Path) -> dict[str, Any]:
    """Our metadata from the ONNX (empty for a TAO export)."""
    from ..deploy.metadata import from_props
    from ..deploy.trt_build import read_onnx_graph

    model = read_onnx_graph(onnx_path)
    return from_props({p.key: p.value for p in model.metadata_props}, str(onnx_path))


def _calibration_pairs(config: ExperimentConfig, settings: BuildSettings, meta: dict[str, Any]
                       ) -> CalibrationPairs | None:
    """Real pairs for INT8 calibration, preprocessed with the model's own geometry."""
    cal = config.gen_trt_engine.tensorrt.calibration
    if settings.data_type != "int8" or not cal.cal_image_dir:
        return None
    if settings.cal_cache is not None and settings.cal_cache.is_file():
        log.info("reusing calibration cache %s", settings.cal_cache)
    from ..deploy.calibration import CalibrationPairs
    from ..deploy.geometry import model_dataset_config

    dataset_cfg, changes = model_dataset_config(config.dataset, meta.get("dataset", {}))
    for change in changes:
        log.warning("calibration preprocessing follows the model: %s", change)
    return CalibrationPairs(list(cal.cal_image_dir), dataset_cfg, cal.cal_batch_size, cal.cal_batches)
