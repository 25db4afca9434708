"""Which actions exist and which spec sections each one reads."""
from __future__ import annotations

ACTIONS: tuple[str, ...] = ("train", "evaluate", "inference", "export", "gen_trt_engine", "dataset_convert", "inspect")

# Sections every action's schema carries.
SHARED_SECTIONS: tuple[str, ...] = ("model_name", "encryption_key", "results_dir")

# Sections each action reads (beyond the shared ones).
ACTION_SECTIONS: dict[str, tuple[str, ...]] = {
    "train": ("wandb", "model", "dataset", "train", "automl"),
    "evaluate": ("model", "dataset", "evaluate"),
    "inference": ("model", "dataset", "inference"),
    "export": ("model", "dataset", "export"),
    "gen_trt_engine": ("model", "dataset", "gen_trt_engine"),
    "dataset_convert": ("dataset_convert",),
    "inspect": ("model", "dataset", "inspect"),
}


def uses_automl(action: str) -> bool:
    """An action is searched by AutoML iff it reads the `automl` section (only train)."""
    return "automl" in ACTION_SECTIONS[action]
