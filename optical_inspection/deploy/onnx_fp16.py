"""Convert an fp32 ONNX model to fp16 compute with fp32 inputs and outputs.

TensorRT 11 builds strongly typed networks only: the precision comes from the ONNX tensor types, so an FP16
engine needs an FP16 ONNX. Weights and activations become float16; Cast nodes at the graph inputs and outputs
keep the model's interface (float32 ``input_1``/``input_2`` in, float32 outputs out), so the deploy code and
the preprocessing stay the same for every precision.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FP16_MAX = float(np.finfo(np.float16).max)
# Inputs that the ONNX spec requires to stay float32 whatever the data type (op_type, input index).
_FLOAT32_SLOTS = {("Resize", 1), ("Resize", 2), ("Upsample", 1)}


def convert_to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """A float16 copy of ``model`` whose graph inputs and outputs stay float32."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    keep_fp32 = _names_in_float32_slots(graph)
    for index, init in enumerate(graph.initializer):
        if init.data_type == TensorProto.FLOAT and init.name not in keep_fp32:
            graph.initializer[index].CopyFrom(_to_fp16_tensor(init))
    for node in graph.node:
        _convert_node(node, keep_fp32)
    _cast_graph_inputs(graph)
    _cast_graph_outputs(graph)
    del graph.value_info[:]
    return onnx.shape_inference.infer_shapes(out, strict_mode=True)


def _names_in_float32_slots(graph: onnx.GraphProto) -> set[str]:
    return {
        node.input[i] for node in graph.node for i in range(len(node.input))
        if (node.op_type, i) in _FLOAT32_SLOTS and node.input[i]
    }


def _to_fp16_tensor(tensor: TensorProto) -> TensorProto:
    values = numpy_helper.to_array(tensor).astype(np.float32)
    converted = np.clip(values, -FP16_MAX, FP16_MAX).astype(np.float16)
    return numpy_helper.from_array(converted, tensor.name)


def _convert_node(node: onnx.NodeProto, keep_fp32: set[str]) -> None:
    """Float constants and casts inside the graph switch to float16."""
    for attr in node.attribute:
        if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
            attr.i = TensorProto.FLOAT16
        elif attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == TensorProto.FLOAT:
            if node.op_type == "Constant" and any(o in keep_fp32 for o in node.output):
                continue
            name = attr.t.name
            attr.t.CopyFrom(_to_fp16_tensor(attr.t))
            attr.t.name = name


def _rename_tensor(graph: onnx.GraphProto, old: str, new: str, *, outputs: bool) -> None:
    """Point every node's uses of ``old`` (inputs, and outputs when ``outputs``) at ``new``."""
    for node in graph.node:
        fields = (node.input, node.output) if outputs else (node.input,)
        for names in fields:
            for i, name in enumerate(names):
                if name == old:
                    names[i] = new


def _cast_graph_inputs(graph: onnx.GraphProto) -> None:
    casts = []
    for value in graph.input:
        if value.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        half = f"{value.name}_fp16"
        _rename_tensor(graph, value.name, half, outputs=False)
        casts.append(helper.make_node("Cast", [value.name], [half], name=f"cast_{value.name}_to_fp16",
                                      to=TensorProto.FLOAT16))
    for cast in reversed(casts):
        graph.node.insert(0, cast)


def _cast_graph_outputs(graph: onnx.GraphProto) -> None:
    for value in graph.output:
        if value.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        half = f"{value.name}_fp16"
        _rename_tensor(graph, value.name, half, outputs=True)
        graph.node.append(helper.make_node("Cast", [half], [value.name], name=f"cast_{value.name}_to_fp32",
                                           to=TensorProto.FLOAT))
