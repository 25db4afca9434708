"""What each action needs a value for: `x-required-for` from the config, plus the two rules of
`optical_inspection.spec.check_action` that the key metadata cannot express (tests keep them in step).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from optical_inspection.config import ExperimentConfig
from optical_inspection.config.walk import iter_keys, key_index

PLACEHOLDER = "???"
# A given value: neither null nor the `???` placeholder.
FILLED: dict[str, Any] = {"not": {"enum": [None, PLACEHOLDER]}}

# evaluate/inference may run from an ONNX file or a TensorRT engine instead of a checkpoint.
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


def requirements(action: str) -> list[Requirement]:
    """Every requirement of ``action``, in config declaration order."""
    out = [Requirement((key.path, *ALTERNATIVES.get(key.path, ())))
           for key in iter_keys(ExperimentConfig) if action in key.required_for]
    if action in CONDITIONAL:
        selector, table = CONDITIONAL[action]
        default = key_index(ExperimentConfig)[selector].default()
        for value, keys in table.items():
            out += [Requirement((k,), (selector, value, value == default)) for k in keys]
    return out


def placeholder_keys(action: str) -> list[str]:
    """Keys the spec template shows as `???`: the first choice of every requirement that applies by default."""
    return [req.keys[0] for req in requirements(action) if req.applies_by_default()]
