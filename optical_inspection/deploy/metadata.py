"""The facts a deployed model carries with it: model config, threshold, preprocessing, output layout.

ONNX files hold them in ``metadata_props`` (key ``optical_inspection``, a JSON document); TensorRT engines,
which have no room for metadata, get a JSON sidecar ``<engine>.json`` written next to them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import sidecar
from ..errors import OIError
from ..strict_json import dumps

if TYPE_CHECKING:
    from ..config.experiment import ExperimentConfig

META_KEY = "optical_inspection"
FORMAT_VERSION = 1
OUTPUT_TYPES = ("embeddings", "score")
EMBEDDING_OUTPUTS = ("output_1", "output_2")
SCORE_OUTPUT = "score"
DEFECT_MAP_OUTPUT = "defect_map"
DEFECT_TYPES_OUTPUT = "defect_type_probabilities"  # Compact with a type head: [B, K], kinds in model.defect_types
INPUT_NAMES = ("input_1", "input_2")


def build_meta(checkpoint_meta: dict[str, Any], *, output_type: str, input_shape: tuple[int, int, int],
               batch_size: int, source: str, defect_map: bool = False, defect_types: bool = False) -> dict[str, Any]:
    """The metadata document of an export, from the checkpoint's plain metadata (``defect_map``: the export
    also outputs the defect map; ``defect_types``: the defect-kind probabilities)."""
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
    return {
        "format_version": FORMAT_VERSION,
        "output_type": output_type,
        "outputs": list(EMBEDDING_OUTPUTS) if output_type == "embeddings" else score_outputs(defect_map, defect_types),
        "score": "euclidean distance of output_1 and output_2" if output_type == "embeddings" else "score output",
        "input_shape": list(input_shape),
        "batch_size": batch_size,
        "model": checkpoint_meta.get("model", {}),
        "dataset": checkpoint_meta.get("dataset", {}),
        "threshold": checkpoint_meta.get("threshold"),
        "threshold_source": checkpoint_meta.get("threshold_source"),
        "epoch": checkpoint_meta.get("epoch"),
        "step": checkpoint_meta.get("step"),
        "source": source,
    }


def score_outputs(defect_map: bool, defect_types: bool) -> list[str]:
    """The output names of a ``score`` export, in graph order."""
    extra = [(DEFECT_MAP_OUTPUT, defect_map), (DEFECT_TYPES_OUTPUT, defect_types)]
    return [SCORE_OUTPUT] + [name for name, wanted in extra if wanted]


def attach_to_onnx(model_proto: Any, meta: dict[str, Any]) -> None:
    """Store ``meta`` in the ONNX model's metadata_props (replacing an earlier entry)."""
    kept = [p for p in model_proto.metadata_props if p.key != META_KEY]
    del model_proto.metadata_props[:]
    model_proto.metadata_props.extend(kept)
    entry = model_proto.metadata_props.add()
    entry.key = META_KEY
    entry.value = dumps(meta, sort_keys=True)


def from_props(props: dict[str, str], where: str) -> dict[str, Any]:
    """Parse the metadata from a ``{key: value}`` mapping (ONNX Runtime's ``custom_metadata_map``)."""
    raw = props.get(META_KEY)
    if raw is None:
        return {}
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise OIError(f"{where}: metadata '{META_KEY}' is not valid JSON ({exc}); re-export the model.") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        raise OIError(f"{where}: metadata '{META_KEY}' has an unknown format; re-export with this version.")
    return meta


def read_sidecar(engine_path: str | Path) -> dict[str, Any]:
    """An engine's metadata (its ``<engine>.json``, written by :func:`optical_inspection.sidecar.write_sidecar`),
    or {} when the engine was built elsewhere (e.g. by TAO Deploy)."""
    meta = sidecar.read_sidecar(engine_path)
    if meta is None:
        return {}
    return from_props({META_KEY: json.dumps(meta)}, str(sidecar.sidecar_path(engine_path)))


def output_type_from_names(output_names: list[str], where: str) -> str:
    """Recognise the output layout of a model without our metadata (TAO's exports have output_1/output_2)."""
    if set(EMBEDDING_OUTPUTS) <= set(output_names):
        return "embeddings"
    if SCORE_OUTPUT in output_names:
        return "score"
    raise OIError(
        f"{where}: outputs {output_names} are neither TAO's embeddings (output_1, output_2) nor a 'score' output."
    )


def stored_threshold(meta: dict[str, Any], config: ExperimentConfig | None = None) -> float | None:
    """The threshold a model file carries, else the model's natural one (margin / logit 0), else None."""
    from ..models.threshold import natural_threshold

    if meta.get("threshold") is not None:
        return float(meta["threshold"])
    if meta.get("model"):
        return natural_threshold(meta["model"])
    if config is not None:
        return natural_threshold({"model_type": config.model.model_type, "margin": config.model.margin})
    return None


def run_options(config: ExperimentConfig | None) -> tuple[str, int]:
    """(ONNX Runtime provider, GPU id) from the evaluate/inference sections: the one that is not left at default."""
    if config is None:
        return "auto", 0
    sections = [config.evaluate, config.inference]
    provider = next((s.provider for s in sections if s.provider != "auto"), "auto")
    gpu_ids = next((s.gpu_ids for s in sections if list(s.gpu_ids) != [0]), [0])
    return provider, int(gpu_ids[0]) if gpu_ids else 0
