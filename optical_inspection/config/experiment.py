"""The root of a spec: every section, plus the shared top-level keys."""
from __future__ import annotations

from typing import Optional

from .automl import AutoMLConfig
from .dataset import DatasetConfig
from .dataset_convert import DatasetConvertConfig
from .deploy import EvaluateConfig, ExportConfig, GenTrtEngineConfig, InferenceConfig
from .fields import Bool, Str, section, spec_field
from .inspect import InspectConfig
from .model import ModelConfig
from .train import TrainConfig


@section
class WandbConfig:
    """TAO's Weights & Biases keys, accepted so TAO specs load, and ignored: train logs a warning when
    ``enable`` is true (metrics go to status.json and, with train.tensorboard.enabled, TensorBoard)."""

    enable: Bool = spec_field(False, description="Ignored (TAO compatibility; a warning when true): no W&B logging.",
                              tao_default=True)
    project: Str = spec_field("TAO Toolkit", description="W&B project.")
    entity: Str = spec_field("", description="W&B entity.")
    tags: list[Str] = spec_field(description="W&B tags.", factory=lambda: ["training", "tao-toolkit"])
    reinit: Bool = spec_field(False, description="W&B reinit.")
    sync_tensorboard: Bool = spec_field(False, description="W&B sync_tensorboard.")
    save_code: Bool = spec_field(False, description="W&B save_code.")
    name: Str = spec_field("TAO Toolkit training experiment", description="W&B run name.")
    run_id: Str = spec_field("", description="W&B run id.")
    group: Str = spec_field("", description="W&B group.")


@section
class ExperimentConfig:
    model_name: Str = spec_field("optical_inspection", description="Model family name.")
    encryption_key: Optional[Str] = spec_field(
        None, description="Only for TAO-encrypted legacy checkpoints; never needed for ours."
    )
    results_dir: Str = spec_field("results", description="Root of results; each action writes <results_dir>/<action>.",
                                  tao_default="/results")
    wandb: WandbConfig = spec_field(description="Weights & Biases: TAO's keys, accepted and ignored (no W&B logging).",
                                    factory=WandbConfig)
    model: ModelConfig = spec_field(description="Network.", factory=ModelConfig)
    dataset: DatasetConfig = spec_field(description="Data.", factory=DatasetConfig)
    train: TrainConfig = spec_field(description="Training.", factory=TrainConfig)
    evaluate: EvaluateConfig = spec_field(description="Evaluation.", factory=EvaluateConfig)
    inference: InferenceConfig = spec_field(description="Inference.", factory=InferenceConfig)
    export: ExportConfig = spec_field(description="ONNX export.", factory=ExportConfig)
    gen_trt_engine: GenTrtEngineConfig = spec_field(description="TensorRT engine build.", factory=GenTrtEngineConfig)
    inspect: InspectConfig = spec_field(description="Whole-board inspection.", factory=InspectConfig)
    dataset_convert: DatasetConvertConfig = spec_field(description="Dataset conversion.", factory=DatasetConvertConfig)
    automl: AutoMLConfig = spec_field(description="Hyperparameter search (used by the runner's AutoML).",
                                      factory=AutoMLConfig)
