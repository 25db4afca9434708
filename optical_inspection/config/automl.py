"""`automl.*`: hyperparameter search settings (read by the runner's AutoML driver, not by train itself)."""
from __future__ import annotations

from typing import Literal, Optional

from .fields import Bool, Float, Int, Str, section, spec_field


@section
class ParamRange:
    low: Optional[Float] = spec_field(None, description="Lower bound of the search (numeric keys).")
    high: Optional[Float] = spec_field(None, description="Upper bound of the search (numeric keys).")
    options: Optional[list[object]] = spec_field(
        None, description="Values to choose among: a subset of an enum/boolean key's options, or numbers."
    )
    option_weights: Optional[list[Float]] = spec_field(
        None, description="Prior weight of each option (same order as options, or the key's own options)."
    )
    log: Optional[Bool] = spec_field(None, description="Sample on a log scale (numeric keys; null: the schema's).")


@section
class AutoMLConfig:
    algorithm: Literal["bayesian", "hyperband", "asha", "random"] = spec_field(
        "bayesian",
        description="bayesian: Optuna TPE; hyperband / asha: TPE with Optuna's Hyperband / successive-halving "
        "pruner fed the metric after every epoch; random: random sampling.",
    )
    max_trials: Int = spec_field(10, description="Trials in the whole study (interrupted trials are re-run and "
                                 "not counted).", ge=1)
    max_time: Optional[Float] = spec_field(
        None, description="Budget in minutes of search time (summed over restarts); running trials are stopped "
        "when it is spent. Null: no limit.", gt=0.0,
    )
    workers: Int = spec_field(1, description="Trials trained at once on this machine.", ge=1, le=64)
    metric: Literal["val_acc", "val_auroc", "val_loss"] = spec_field(
        "val_acc", description="Validation metric to optimise (read per epoch from each trial's status.json)."
    )
    direction: Optional[Literal["maximize", "minimize"]] = spec_field(
        None, description="Null: from skill_info monitoring (maximize val_acc/val_auroc, minimize val_loss)."
    )
    storage: Optional[Str] = spec_field(
        None, description="Optuna storage URL (e.g. postgresql://... to share one study between machines). "
        "Null: sqlite file study.db in the AutoML job folder.",
    )
    study_name: Optional[Str] = spec_field(
        None, description="Study name in the storage; null: the AutoML job id. Give the same name on every "
        "machine that shares a storage.",
    )
    seed: Int = spec_field(42, description="Sampler seed: the same seed gives the same configurations "
                           "(with workers: 1).")
    reduction_factor: Int = spec_field(3, description="hyperband/asha: keep 1/reduction_factor of trials per rung.",
                                       ge=2, le=10)
    parameters: list[Str] = spec_field(
        description="Keys to search (dotted, or a shorthand such as lr); empty: the schema's "
        "automl_default_parameters.", factory=list,
    )
    parameter_ranges: dict[Str, ParamRange] = spec_field(
        description="Per-key overrides of the search range/options, e.g. {train.optim.lr: {low: 1e-5, high: 1e-3}}.",
        factory=dict,
    )
