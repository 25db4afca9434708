"""What each action needs a value for — one definition, read by the trainer's spec check and the generators.

Most requirements are the keys' own ``required_for`` metadata; two rules cannot be said per key and live here:
evaluate/inference may run from an ONNX file or a TensorRT engine instead of a checkpoint, and dataset_convert's
required folders depend on its ``format``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .experiment import ExperimentConfig
from .walk import KeyIndex

# key -> keys that may be given instead of it.
ALTERNATIVES: dict[str, tuple[str, ...]] = {
    "evaluate.checkpoint": ("evaluate.onnx_file", "evaluate.trt_engine"),
    "inference.checkpoint": ("inference.onnx_file", "inference.trt_engine"),
}

# action -> (selector key, {selector value: keys required when it holds}).
CONDITIONAL: dict[str, tuple[str, dict[str, tuple[str, ...]]]] = {
    "dataset_convert": ("dataset_convert.format", {
        "factory_pcb": ("dataset_convert.root_dataset_dir", "dataset_convert.all_pcb_dataset_dir",
                        "dataset_convert.golden_csv_dir"),
        "deeppcb": ("dataset_convert.deeppcb.root_dir",),
    }),
}


@dataclass(frozen=True)
class Requirement:
    """At least one of ``keys`` must be given; ``when`` = (selector, value, value is the selector's default)."""

    keys: tuple[str, ...]
    when: tuple[str, Any, bool] | None = None

    def describe(self) -> str:
        text = " | ".join(self.keys)
        if self.when is not None:
            text += f" (when {self.when[0]} = {self.when[1]})"
        return text

    def applies_by_default(self) -> bool:
        return self.when is None or self.when[2]

    def applies(self, selected: Any) -> bool:
        """Whether it holds for a spec whose selector key has the value ``selected``."""
        return self.when is None or selected == self.when[1]


def requirements(action: str) -> list[Requirement]:
    """Every requirement of ``action``, in config declaration order."""
    out = [Requirement((key.path, *ALTERNATIVES.get(key.path, ())))
           for key in KeyIndex(ExperimentConfig) if action in key.required_for]
    if action in CONDITIONAL:
        selector, table = CONDITIONAL[action]
        default = KeyIndex(ExperimentConfig).keys[selector].default()
        for value, keys in table.items():
            out += [Requirement((k,), (selector, value, value == default)) for k in keys]
    return out
