"""Torch network → ONNX file, on the CPU, with TAO's I/O names and our metadata.

``embeddings``: inputs ``input_1`` (test strip), ``input_2`` (golden strip) → ``output_1``, ``output_2`` (TAO).
``score``: the same inputs → one ``score`` output (the whole decision value, any model type).
Batch: a static size, or -1 for a dynamic ``batch`` axis on every input and output.
"""
from __future__ import annotations

import os
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, cast

import numpy as np
import onnx
import torch
from torch import nn

from ..errors import OIError
from ..io_utils import make_temp_dir
from .metadata import EMBEDDING_OUTPUTS, INPUT_NAMES, META_KEY, score_outputs

if TYPE_CHECKING:
    from ..models.compact import Compact
    from ..models.factory import Network

PROTOBUF_LIMIT = 2 ** 31 - 2 ** 26  # stay clear of protobuf's 2 GiB: bigger models keep weights in <file>.data
VERIFY_TOLERANCE = 1e-4
DUMMY_DYNAMIC_BATCH = 2  # torch.export specialises size-1 dimensions, so trace a dynamic batch with 2
MIN_OPSET = 18  # the torch.export-based exporter cannot down-convert Pad/Reduce* below opset 18


class ScoreGraph(nn.Module):
    """Exports ``model.score`` (one value per pair) instead of the embeddings."""

    def __init__(self, model: Network) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_1: torch.Tensor, input_2: torch.Tensor) -> torch.Tensor:
        return self.model.score(input_1, input_2)


class CompactGraph(nn.Module):
    """Exports a Compact network's score plus, as asked, its defect map and defect-kind probabilities."""

    def __init__(self, model: Compact, defect_map: bool, defect_types: bool) -> None:
        super().__init__()
        self.model, self.defect_map, self.defect_types = model, defect_map, defect_types

    def forward(self, input_1: torch.Tensor, input_2: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return compact_outputs(self.model, input_1, input_2, self.defect_map, self.defect_types)


def compact_outputs(model: Compact, input_1: torch.Tensor, input_2: torch.Tensor, defect_map: bool,
                    defect_types: bool) -> tuple[torch.Tensor, ...]:
    """(score, [defect map], [defect-kind probabilities]) from one pass of the network."""
    mixed = model.mixed(input_1, input_2)
    outputs = [model.score_from_mixed(mixed)]
    if defect_map:
        outputs.append(model.map_from_mixed(mixed, input_1.shape[2], input_1.shape[3]))
    if defect_types:
        outputs.append(model.types_from_mixed(mixed).softmax(1))
    return tuple(outputs)


class EmbeddingGraph(nn.Module):
    """Exports the Siamese embeddings (TAO's ``output_1``, ``output_2``)."""

    def __init__(self, model: Network) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_1: torch.Tensor, input_2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model(input_1, input_2)


def export_onnx(model: Network, target: Path, *, output_type: str, strip_shape: tuple[int, int, int],
                batch_size: int, opset: int, optimize: bool, meta_json: str, verify: bool,
                defect_map: bool = False, defect_types: bool = False) -> dict[str, Any]:
    """Write ``target`` (and ``target.data`` for models over 2 GiB) only once it passes the full ONNX check
    and, with ``verify``, reproduces the torch scores under ONNX Runtime (see :func:`verify_scores`).

    Returns facts for the action's result: file size, external data flag, parameter count, max score difference.
    """
    if output_type == "embeddings":
        graph: nn.Module = EmbeddingGraph(model)
    else:
        extra = defect_map or defect_types
        graph = CompactGraph(cast("Compact", model), defect_map, defect_types) if extra else ScoreGraph(model)
    graph.eval()
    dynamic = batch_size == -1
    batch = DUMMY_DYNAMIC_BATCH if dynamic else batch_size
    generator = torch.Generator().manual_seed(0)
    dummy = tuple(torch.randn(batch, *strip_shape, generator=generator) for _ in INPUT_NAMES)
    outputs = list(EMBEDDING_OUTPUTS) if output_type == "embeddings" else score_outputs(defect_map, defect_types)
    dynamic_shapes = None
    if dynamic:
        dim = torch.export.Dim("batch", min=1, max=2 ** 20)
        dynamic_shapes = {name: {0: dim} for name in INPUT_NAMES}
    n_bytes = sum(p.numel() * p.element_size() for p in graph.parameters())
    external = n_bytes > PROTOBUF_LIMIT
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(graph, dummy, None, dynamo=True, input_names=list(INPUT_NAMES),
                                        output_names=outputs, opset_version=max(opset, MIN_OPSET),
                                        dynamic_shapes=dynamic_shapes, optimize=optimize, verbose=False)
        except Exception as exc:  # noqa: BLE001 - the exporter raises many internal error types
            raise OIError(f"ONNX export failed: {type(exc).__name__}: {str(exc).splitlines()[0][:500]}") from None
    if program is None:  # the dynamo exporter returns its program; None is the legacy exporter's answer
        raise OIError("ONNX export produced no program (the torch.export-based exporter did not run)")
    program.model.metadata_props[META_KEY] = meta_json
    facts: dict[str, Any] = {"external_data": external, "parameters": int(sum(p.numel() for p in graph.parameters()))}
    with staged_files(target) as staged:
        program.save(str(staged), external_data=external)
        onnx.checker.check_model(str(staged), full_check=True)
        facts["opset"] = _check_io(staged, outputs, dynamic)
        if verify:
            facts["max_abs_score_diff"] = verify_scores(model, staged, strip_shape, batch, defect_map, defect_types)
    facts["onnx_bytes"] = target.stat().st_size
    return facts


def _check_io(path: Path, outputs: list[str], dynamic: bool) -> int:
    """Check the I/O names and the batch axis; returns the file's opset."""
    model = onnx.load(str(path), load_external_data=False)
    names_in = [i.name for i in model.graph.input]
    names_out = [o.name for o in model.graph.output]
    if names_in != list(INPUT_NAMES) or names_out != outputs:
        raise OIError(f"exported I/O {names_in} -> {names_out} differs from {list(INPUT_NAMES)} -> {outputs}")
    if dynamic:
        dims = [v.type.tensor_type.shape.dim[0] for v in list(model.graph.input) + list(model.graph.output)]
        if any(d.HasField("dim_value") for d in dims):
            raise OIError("the exporter fixed the batch axis; export with a static export.batch_size instead")
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


@contextmanager
def staged_files(target: Path) -> Iterator[Path]:
    """Yield ``<tmpdir>/<target name>`` next to ``target``; on success move it (and its ``.data``) into place.

    The final names are used inside the temp folder because an ONNX file refers to its external data by name.
    The old file stays intact when the block fails.
    """
    stage = make_temp_dir(target)
    try:
        staged = stage / target.name
        yield staged
        data = stage / (target.name + ".data")
        if data.exists():
            os.replace(data, target.with_name(target.name + ".data"))
        with open(staged, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(staged, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def verify_scores(model: Network, onnx_path: Path, strip_shape: tuple[int, int, int], batch: int,
                  defect_map: bool = False, defect_types: bool = False) -> float:
    """Max |torch − ONNX Runtime| of the score (and of the defect map, the defect-kind probabilities when
    exported) on random pairs; OIError above ``VERIFY_TOLERANCE`` (relative to the score scale when scores
    exceed 1)."""
    from .onnx_backend import OnnxScorer

    generator = torch.Generator().manual_seed(1)
    test, golden = (torch.randn(batch, *strip_shape, generator=generator) for _ in range(2))
    scorer = OnnxScorer(onnx_path, provider="cpu")
    with torch.no_grad():
        if defect_map or defect_types:
            compact = cast("Compact", model).eval()
            expected = np.concatenate([v.float().numpy().ravel() for v in
                                       compact_outputs(compact, test, golden, defect_map, defect_types)])
            outputs = scorer.run_outputs(scorer.output_names, test.numpy(), golden.numpy())
            got = np.concatenate([outputs[name].ravel() for name in scorer.output_names])
        else:
            expected = model.eval().score(test, golden).float().numpy()
            got = scorer.score(test.numpy(), golden.numpy())
    diff = float(np.max(np.abs(got - expected)))
    allowed = VERIFY_TOLERANCE * max(1.0, float(np.max(np.abs(expected))))
    if not diff <= allowed:
        raise OIError(f"the exported ONNX does not reproduce the torch scores: max |difference| {diff:.3g} > "
                      f"{allowed:.3g} on random pairs; the file was not written (report this with the checkpoint)")
    return diff
