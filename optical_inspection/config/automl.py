"""`automl.*`: hyperparameter search settings (read by the AutoML driver, not by train itself)."""
from __future__ import annotations

from typing import Literal, Optional

from .fields import Float, Int, Str, spec_field
from .section import section


@section
class ParamRange:
    low: Optional[Float] = spec_field(None, description="Lower bound of the search.")
    high: Optional[Float] = spec_field(None, description="Upper bound of the search.")
    options: Optional[list[object]] = spec_field(None, description="Allowed options (categorical keys).")
    log: Optional[bool] = spec_field(None, description="Sample on a log scale.")


@section
class AutoMLConfig:
    algorithm: Literal["bayesian", "hyperband", "asha", "random"] = spec_field(
        "bayesian", description="Search algorithm (Optuna TPE, Hyperband / successive-halving pruners, random)."
    )
    max_trials: Int = spec_field(10, description="Trials to run in the study.", ge=1)
    max_time: Optional[Float] = spec_field(None, description="Budget in minutes for the whole study.", gt=0.0)
    workers: Int = spec_field(1, description="Trials run at once on this machine.", ge=1)
    metric: Literal["val_acc", "val_auroc", "val_loss"] = spec_field("val_acc", description="Monitored metric.")
    direction: Optional[Literal["maximize", "minimize"]] = spec_field(
        None, description="Null: from skill_info (maximize for val_acc/val_auroc, minimize for val_loss)."
    )
    storage: Optional[Str] = spec_field(
        None, description="Optuna storage URL; null: a SQLite file in the AutoML job folder."
    )
    seed: Int = spec_field(42, description="Sampler seed (same seed, same configurations).")
    parameters: list[Str] = spec_field(description="Keys to search; empty: the schema's defaults.", factory=list)
    parameter_ranges: dict[Str, ParamRange] = spec_field(
        description="Per-key overrides of the search range/options.", factory=dict
    )
