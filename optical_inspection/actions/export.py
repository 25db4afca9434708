"""export: a checkpoint → ONNX, on the CPU (no GPU needed, unlike TAO's).

* I/O: TAO's ``input_1``/``input_2`` → ``output_1``/``output_2`` embeddings for the Siamese types, or one ``score``
  output (``export.output_type: score``; the default for Compact, whose score is not an embedding distance).
* ``export.batch_size: -1`` gives a dynamic ``batch`` axis; any other value a static batch.
* An existing file is only replaced with ``export.overwrite: true``, and stays intact if the export fails.
* The model settings, threshold and preprocessing travel in the ONNX metadata (``optical_inspection`` key), so
  evaluate/inference/gen_trt_engine need no extra spec. The file passes ``onnx.checker`` with full check and,
  with ``export.verify``, ONNX Runtime must reproduce the torch scores before the file is written.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import OIError, SpecError
from ..status import StatusLogger
from ..strict_json import dumps

if TYPE_CHECKING:
    from ..config.experiment import ExperimentConfig
    from ..config.deploy import ExportConfig

DEFAULT_ONNX = "oi_model.onnx"
SIAMESE_TYPES = ("Siamese", "Siamese_3")


def run(config: ExperimentConfig, results_dir: Path, status: StatusLogger) -> dict[str, Any]:
    from ..deploy.metadata import build_meta
    from ..deploy.onnx_export import export_onnx
    from ..models.checkpoint import load_checkpoint

    cfg = config.export
    if not cfg.checkpoint:
        raise SpecError(["export.checkpoint is required: the .pth checkpoint to export"])
    target = Path(cfg.onnx_file) if cfg.onnx_file else results_dir / DEFAULT_ONNX
    if target.exists() and not cfg.overwrite:
        raise OIError(f"'{target}' already exists; set export.overwrite=true to replace it (the existing file is kept "
                      f"if the export fails) or choose another export.onnx_file")
    model, ckpt_meta = load_checkpoint(cfg.checkpoint, config)
    model_type = ckpt_meta["model"]["model_type"]
    output_type = resolve_output_type(cfg.output_type, model_type)
    channels, height, width = (int(v) for v in ckpt_meta["dataset"]["strip_shape"])
    strip_shape = (channels, height, width)
    check_input_size(cfg, strip_shape)
    if cfg.heatmaps and not (output_type == "score" and hasattr(model, "score_and_map")):
        raise SpecError([f"export.heatmaps needs a Compact checkpoint exported with output_type score; this one is "
                         f"{model_type} ({output_type}): set export.heatmaps: false"])
    # a type head travels with the score: the kinds are in the metadata's model.defect_types
    types = output_type == "score" and getattr(model, "type_classifier", None) is not None
    meta = build_meta(ckpt_meta, output_type=output_type, input_shape=strip_shape, batch_size=cfg.batch_size,
                      source=str(cfg.checkpoint), defect_map=cfg.heatmaps, defect_types=types)
    status.write("RUNNING", f"Exporting {model_type} ({output_type}) to {target}.")
    facts = export_onnx(model, target, output_type=output_type, strip_shape=strip_shape, batch_size=cfg.batch_size,
                        opset=cfg.opset_version, optimize=cfg.do_constant_folding,
                        meta_json=dumps(meta, sort_keys=True), verify=cfg.verify, defect_map=cfg.heatmaps,
                        defect_types=types)
    if facts["opset"] != cfg.opset_version:
        print(f"Note: export.opset_version {cfg.opset_version} was requested; the exporter wrote opset "
              f"{facts['opset']} (the torch.export-based exporter's lowest). ONNX Runtime and TensorRT 10/11 "
              f"read it.")
    data_file = target.with_name(target.name + ".data")
    artifacts = {"onnx_file": str(target)}
    if facts["external_data"]:
        artifacts["onnx_external_data"] = str(data_file)
    batch = "dynamic" if cfg.batch_size == -1 else str(cfg.batch_size)
    print(f"Exported {model_type} ({output_type}, batch {batch}, {facts['parameters']:,} parameters) -> {target}")
    kpi = {"onnx_mb": facts["onnx_bytes"] / 2 ** 20, "opset": facts["opset"]}
    if "max_abs_score_diff" in facts:
        kpi["max_abs_score_diff"] = facts["max_abs_score_diff"]
    return {"artifacts": artifacts, "kpi": kpi}


def resolve_output_type(requested: str, model_type: str) -> str:
    """``auto``: TAO's embeddings for the Siamese types, ``score`` for Compact (it has no embedding pair)."""
    if requested == "auto":
        return "embeddings" if model_type in SIAMESE_TYPES else "score"
    if requested == "embeddings" and model_type not in SIAMESE_TYPES:
        raise SpecError([f"export.output_type 'embeddings' needs a Siamese model; {model_type} has one score "
                         f"output: use output_type score or auto"])
    return requested


def check_input_size(cfg: ExportConfig, strip_shape: tuple[int, ...]) -> None:
    """export.input_* (TAO keys) must describe the strip the model was trained on, when given."""
    expected = {"input_channel": strip_shape[0], "input_height": strip_shape[1], "input_width": strip_shape[2]}
    problems = [f"export.{key} is {getattr(cfg, key)} but the checkpoint was trained on strips "
                f"{strip_shape[0]}x{strip_shape[1]}x{strip_shape[2]} (C x H' x W'); set {key}: {value} or null"
                for key, value in expected.items() if getattr(cfg, key) is not None and getattr(cfg, key) != value]
    if problems:
        raise SpecError(problems)
