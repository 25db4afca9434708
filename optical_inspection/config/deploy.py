"""`evaluate.*`, `inference.*`, `export.*`, `gen_trt_engine.*`: using a trained model."""
from __future__ import annotations

from typing import Literal, Optional

from .fields import Bool, Float, Int, Str, section, spec_field

_MODEL_DOC = "Model file: a .pth checkpoint, or an .onnx file (ONNX Runtime) or TensorRT engine picked by suffix."


def _heatmaps_doc(what_else: str) -> str:
    """The ``<action>.heatmaps`` description; ``what_else`` is what the action adds."""
    return ("Also write a defect map per pair (maps/row_<i>.png, the strip's size; grey = probability) and an overlay "
            f"(overlays/row_<i>.png: test, golden, map); {what_else}. Compact checkpoints, or ONNX files exported "
            "with export.heatmaps.")


@section
class _RunConfig:
    """The keys evaluate and inference share; each names its action in ``checkpoint`` and ``results_dir``."""

    num_gpus: Int = spec_field(1, description="GPUs to use (one is used).", ge=1, popular=True)
    gpu_ids: list[Int] = spec_field(description="GPU indices.", factory=lambda: [0], popular=True)
    num_nodes: Int = spec_field(1, description="Nodes (one is used).", ge=1, popular=True)
    checkpoint: Optional[Str] = spec_field(None, description=_MODEL_DOC)
    onnx_file: Optional[Str] = spec_field(
        None, description="Run from this ONNX file with ONNX Runtime instead of checkpoint.")
    trt_engine: Optional[Str] = spec_field(None, description="Run from this TensorRT engine instead of checkpoint.")
    results_dir: Optional[Str] = spec_field(None, description="Results folder.")
    batch_size: Int = spec_field(
        -1, description="Batch size (-1: dataset.batch_size). TAO's PyTorch path ignores it.", ge=-1
    )
    threshold: Optional[Float] = spec_field(
        None, description="Decision threshold; null: model.threshold, else the calibrated one, else the margin."
    )
    provider: Literal["auto", "cpu", "cuda", "tensorrt"] = spec_field(
        "auto", description="ONNX Runtime execution provider; auto prefers GPU providers.")


@section
class EvaluateConfig(_RunConfig):
    """Settings of evaluate."""

    checkpoint: Optional[Str] = spec_field(None, description=_MODEL_DOC, required_for=("evaluate",))
    results_dir: Optional[Str] = spec_field(None, description="Results folder; default <results_dir>/evaluate.")
    heatmaps: Bool = spec_field(False, description=_heatmaps_doc("worst_pairs.png shows the maps"))


@section
class InferenceConfig(_RunConfig):
    """Settings of inference."""

    checkpoint: Optional[Str] = spec_field(None, description=_MODEL_DOC, required_for=("inference",))
    results_dir: Optional[Str] = spec_field(None, description="Results folder; default <results_dir>/inference.")
    heatmaps: Bool = spec_field(False, description=_heatmaps_doc(
        "inference.csv gets defect_map, peak_x, peak_y and defect_area (pixels above the threshold)"))


@section
class ExportConfig:
    results_dir: Optional[Str] = spec_field(None, description="Results folder; default <results_dir>/export.")
    gpu_id: Int = spec_field(0, description="Unused: export always runs on CPU.", ge=0)
    checkpoint: Optional[Str] = spec_field(None, description="Checkpoint to export.", required_for=("export",))
    onnx_file: Optional[Str] = spec_field(None, description="Output ONNX path; null: <results>/oi_model.onnx.")
    opset_version: Int = spec_field(
        18, description="ONNX opset. The torch.export-based exporter writes opset 18 at least (a lower value is "
        "raised to 18 with a note).", ge=11, le=23, tao_default=17,
    )
    on_cpu: Bool = spec_field(True, description="Kept for TAO specs; export always runs on CPU.")
    input_height: Optional[Int] = spec_field(
        None, description="Strip height; must match training (null: derived).", ge=1
    )
    input_width: Optional[Int] = spec_field(None, description="Strip width; must match training (null: derived).", ge=1)
    input_channel: Int = spec_field(3, description="Input channels (3).", ge=3, le=3)
    batch_size: Int = spec_field(-1, description="Static batch, or -1 for a dynamic 'batch' axis.", ge=-1)
    do_constant_folding: Bool = spec_field(True, description="Fold constants during export.", tao_default=False)
    output_type: Literal["auto", "embeddings", "score"] = spec_field(
        "auto", description="embeddings: TAO's output_1/output_2; score: one 'score' output; auto: TAO I/O for "
        "Siamese types, score for Compact.",
    )
    overwrite: Bool = spec_field(
        False, description="Replace an existing onnx_file (TAO refuses); the old file stays if the export fails."
    )
    heatmaps: Bool = spec_field(
        False, description="Also output the defect map (output 'defect_map', [batch, H', W'] in logit units) beside "
        "'score'; Compact models only (output_type score).",
    )
    verify: Bool = spec_field(
        True, description="Before writing, check that ONNX Runtime reproduces the torch scores on random pairs "
        "(max |difference| <= 1e-4, relative above 1); refuse the export otherwise.",
    )


@section
class CalibrationConfig:
    cal_image_dir: list[Str] = spec_field(
        description="Folders of calibration pairs (each a split folder with dataset.csv + images).", factory=list
    )
    cal_cache_file: Optional[Str] = spec_field(
        None, description="INT8 calibration cache, reused when present (TensorRT 10: its calibration table; "
        "TensorRT 11: the ONNX Runtime ranges used for the QDQ nodes).",
    )
    cal_batch_size: Int = spec_field(1, description="Pairs per calibration batch.", ge=1)
    cal_batches: Int = spec_field(1, description="Calibration batches.", ge=1)


@section
class TensorRTConfig:
    data_type: Literal["fp32", "fp16", "int8"] = spec_field(
        "fp32", description="Engine precision. TensorRT 10: builder flags (int8: a calibrator fed with real pairs). "
        "TensorRT 11 (strongly typed): fp16 builds from an fp16 copy of the ONNX, int8 from a QDQ copy calibrated "
        "on real pairs. fp32 disables TF32.",
    )
    workspace_size: Int = spec_field(1024, description="Builder workspace in MB (TAO applies GB).", ge=1)
    min_batch_size: Int = spec_field(1, description="Optimisation profile: minimum batch.", ge=1, popular=True)
    opt_batch_size: Int = spec_field(1, description="Optimisation profile: optimal batch.", ge=1, popular=True)
    max_batch_size: Int = spec_field(1, description="Optimisation profile: maximum batch.", ge=1, popular=True)
    layers_precision: list[Str] = spec_field(
        description="'layer:precision' entries, precision fp32/fp16/int32/int8, '*' for every other layer "
        "(TensorRT 10 only; refused by TensorRT 11).", factory=list,
    )
    calibration: CalibrationConfig = spec_field(description="INT8 calibration.", factory=CalibrationConfig)


@section
class GenTrtEngineConfig:
    results_dir: Optional[Str] = spec_field(None, description="Results folder; default <results_dir>/gen_trt_engine.")
    gpu_id: Int = spec_field(0, description="GPU index.", ge=0)
    onnx_file: Optional[Str] = spec_field(
        None, description="ONNX model to build from.", required_for=("gen_trt_engine",)
    )
    trt_engine: Optional[Str] = spec_field(
        None, description="Engine output path; null: <results>/oi_model.engine. A <engine>.json sidecar carries "
        "the ONNX's metadata (threshold, preprocessing).",
    )
    timing_cache: Optional[Str] = spec_field(None, description="Timing cache file (read, merged, written back).")
    batch_size: Int = spec_field(-1, description="Unused for ONNX (the ONNX batch axis decides).", ge=-1)
    verbose: Bool = spec_field(False, description="Verbose builder log.")
    tensorrt: TensorRTConfig = spec_field(description="Builder settings.", factory=TensorRTConfig)
