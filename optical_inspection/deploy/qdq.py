"""Explicit INT8 quantisation: insert QuantizeLinear/DequantizeLinear (QDQ) nodes calibrated on real pairs.

TensorRT 11 has no INT8 builder flag or calibrator; it builds INT8 layers from a QDQ ONNX. The scales come from
ONNX Runtime's static quantiser fed by :class:`CalibrationPairs`; symmetric int8 (zero point 0) as TensorRT needs.
"""
from __future__ import annotations

import inspect
from pathlib import Path

from ..errors import OIError
from .calibration import CalibrationPairs, ort_reader

QUANTIZED_OPS = ["Conv", "Gemm", "MatMul"]


def quantize_to_qdq(onnx_in: Path, onnx_out: Path, pairs: CalibrationPairs | None, cache_file: Path | None) -> None:
    """Write a QDQ-quantised copy of ``onnx_in`` to ``onnx_out``; ranges cached in ``cache_file`` when given."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    kwargs = {}
    if cache_file is not None:
        if "calibration_cache_path" not in inspect.signature(quantize_static).parameters:
            raise OIError("cal_cache_file with TensorRT 11 needs onnxruntime >= 1.24 (calibration cache support); "
                          "upgrade onnxruntime or unset gen_trt_engine.tensorrt.calibration.cal_cache_file")
        kwargs["calibration_cache_path"] = str(cache_file)
    if pairs is None and (cache_file is None or not cache_file.is_file()):
        raise OIError("INT8 needs calibration pairs (calibration.cal_image_dir) or an existing cal_cache_file")
    try:
        quantize_static(
            str(onnx_in), str(onnx_out), ort_reader(pairs) if pairs is not None else None,
            quant_format=QuantFormat.QDQ, op_types_to_quantize=QUANTIZED_OPS, per_channel=True,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
            **kwargs,
        )
    except ValueError as exc:
        raise OIError(f"INT8 quantisation of {onnx_in} failed: {exc}") from None
