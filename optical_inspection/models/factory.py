"""Build a network from a spec (training) or from a checkpoint's metadata (evaluate, export, deploy)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from torch import nn

from ..config.model import MODEL_TYPES
from ..errors import OIError
from .compact import Compact
from .siamese import Siamese, Siamese3

if TYPE_CHECKING:
    from ..config.dataset import DatasetConfig
    from ..config.experiment import ExperimentConfig
    from ..config.model import ModelConfig

Network = Compact | Siamese | Siamese3  # every network has score(input_1, input_2) -> distances

MAX_STRIP_SIDE = 1 << 16  # pixels; a strip this long is already far beyond any real inspection tile


def dataset_geometry(dataset_cfg: DatasetConfig) -> dict[str, Any]:
    """What a model file must remember about its inputs: lights, tile size, layout, strip shape, mean/std."""
    from ..data.preprocess import Preprocessor

    return {**Preprocessor(dataset_cfg).geometry(), "image_ext": dataset_cfg.image_ext}


def model_settings(model_cfg: ModelConfig) -> dict[str, Any]:
    """The plain model section stored in checkpoints (enough to rebuild the network)."""
    return {
        "model_type": model_cfg.model_type,
        "margin": float(model_cfg.margin),
        "embedding_vectors": int(model_cfg.embedding_vectors),
        "base_channels": int(model_cfg.base_channels),
        "shift_tolerance": int(model_cfg.shift_tolerance),
        "model_backbone": model_cfg.model_backbone,
        **({"dense_map": True} if model_cfg.model_type == "Compact" and model_cfg.dense_map else {}),
    }


def build_network(model: Mapping[str, Any], strip_shape: tuple[int, int, int] | list[int]) -> Network:
    """The network named by ``model["model_type"]`` for strips of ``strip_shape`` (3, H', W')."""
    model_type = model.get("model_type")
    try:
        shape = tuple(int(v) for v in strip_shape)
    except (TypeError, ValueError):
        raise OIError(f"strip_shape {strip_shape!r} is not a list of 3 integers (3, height, width)") from None
    if len(shape) == 3 and not all(1 <= v <= MAX_STRIP_SIDE for v in shape[1:]):
        raise OIError(f"strip_shape {list(shape)}: height and width must be between 1 and {MAX_STRIP_SIDE}; the model "
                      "file's metadata is damaged or hand-edited: re-export it from its checkpoint")
    if len(shape) != 3 or shape[0] != 3:
        raise OIError(f"strip_shape {list(shape)} is not (3, height, width): every network takes RGB strips; "
                      "rebuild the model file from a spec whose dataset section describes the lights")
    if model_type == "Compact":
        return Compact(shape, base_channels=int(model.get("base_channels", 16)),
                       shift_tolerance=int(model.get("shift_tolerance", 1)),
                       num_types=len(model.get("defect_types") or ()), dense_map=bool(model.get("dense_map")),
                       box_typer=bool(model.get("box_typer")))
    if model_type in ("Siamese", "Siamese_3"):
        if model.get("model_backbone", "custom") != "custom":
            raise OIError(f"model.model_backbone '{model['model_backbone']}' does not exist; use 'custom'")
        cls = Siamese3 if model_type == "Siamese_3" else Siamese
        return cls(shape, embedding_vectors=int(model.get("embedding_vectors", 5)))
    raise OIError(f"unknown model.model_type {model_type!r}; use one of {', '.join(MODEL_TYPES)}")


def build_model(config: ExperimentConfig) -> Network:
    """The network of an ExperimentConfig (model section + dataset geometry)."""
    return build_network(model_settings(config.model), dataset_geometry(config.dataset)["strip_shape"])


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
