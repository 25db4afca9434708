"""`train.*`: how the network is fitted."""
from __future__ import annotations

from typing import Literal, Optional

from .fields import AutoML, Bool, Float, Int, Str, section, spec_field


@section
class CudnnConfig:
    benchmark: Bool = spec_field(False, description="cudnn.benchmark.")
    deterministic: Bool = spec_field(True, description="cudnn.deterministic.")


@section
class OptimConfig:
    type: Literal["Adam", "SGD", "AdamW"] = spec_field(
        "AdamW", description="Optimiser. TAO silently maps any unknown name to SGD; an unknown name is an error here.",
        automl=AutoML(enabled=False), tao_default="Adam",
    )
    lr: Float = spec_field(3e-3, description="Learning rate (the peak of the cosine schedule).", gt=0.0,
                           automl=AutoML(enabled=True, low=1e-4, high=1e-2, log=True), tao_default=5e-4)
    momentum: Float = spec_field(0.9, description="SGD momentum (unused by Adam/AdamW).", ge=0.0, lt=1.0,
                                 automl=AutoML(enabled=True, low=0.5, high=0.99, when={"train.optim.type": "SGD"}))
    weight_decay: Float = spec_field(
        1e-4, description="Weight decay (applied by every optimiser; TAO ignores it for Adam).", ge=0.0,
        automl=AutoML(enabled=False, low=1e-6, high=1e-2, log=True), tao_default=5e-4,
    )
    lr_scheduler: Literal["none", "cosine"] = spec_field(
        "cosine", description="Learning-rate schedule: cosine decay to 0 per step, ending after num_epochs or when "
        "train.max_time_minutes is spent, whichever comes first (our addition; TAO has none).", tao_default="none",
        automl=AutoML(enabled=False),
    )


@section
class TensorboardConfig:
    enabled: Bool = spec_field(False, description="Write TensorBoard events under <results>/lightning_logs.")
    infrequent_logging_frequency: Int = spec_field(2, description="Epochs between image/histogram logs.", ge=1)


@section
class TrainConfig:
    num_gpus: Int = spec_field(1, description="GPUs (or CPU processes when no GPU) per node.", ge=1, popular=True)
    gpu_ids: list[Int] = spec_field(description="GPU indices to use.", factory=lambda: [0], popular=True)
    num_nodes: Int = spec_field(1, description="Nodes for distributed training (started by torchrun or SLURM srun; "
                               "num_nodes x num_gpus must equal the launcher's processes).", ge=1, popular=True)
    accelerator: Literal["auto", "cpu", "gpu"] = spec_field(
        "auto", description="Device: auto picks a GPU when one exists (TAO requires a GPU)."
    )
    seed: Int = spec_field(
        1234, description="Random seed; negative disables seeding. Each epoch reseeds from (seed, epoch), so a run "
        "resumed from an epoch checkpoint replays an uninterrupted one (with dataset.workers: 0).",
    )
    cudnn: CudnnConfig = spec_field(description="cuDNN flags.", factory=CudnnConfig)
    num_epochs: Int = spec_field(10, description="Epochs to train.", ge=1, popular=True,
                                 automl=AutoML(enabled=False, low=2, high=50))
    max_time_minutes: Optional[Float] = spec_field(
        None, description="Stop training after this many minutes (our addition).", gt=0.0
    )
    box_typer_minutes: Float = spec_field(
        2.0, description="Minutes spent training the box typer (model.box_typer) before the pair network (our "
        "addition; not counted in max_time_minutes), or train.box_typer_epochs passes over the boxes, whichever "
        "ends first.", gt=0.0,
    )
    box_typer_epochs: Int = spec_field(
        30, description="Passes over the training boxes for the box typer (model.box_typer; our addition), or "
        "train.box_typer_minutes, whichever ends first.", ge=1,
    )
    checkpoint_interval: Int = spec_field(
        1, description="Save model_epoch_XXX_step_YYYYY.pth (and refresh oi_model_latest.pth) every N units; the "
        "last epoch is always saved.", ge=1, popular=True,
    )
    checkpoint_interval_unit: Literal["epoch", "step"] = spec_field("epoch", description="Unit of checkpoint_interval.")
    validation_interval: Int = spec_field(1, description="Validate every N epochs.", ge=1, popular=True)
    resume_training_checkpoint_path: Optional[Str] = spec_field(
        None, description="Resume from this checkpoint. Null: resume from <results>/oi_model_latest.pth if present."
    )
    pretrained_model_path: Optional[Str] = spec_field(
        "pretrained", description="Initialise weights (only) from this checkpoint; ignored when a run resumes. "
        "'pretrained': the bundled weights of the default Compact network (trained on synthetic pairs only; other "
        "model types or widths start from random weights, with a warning). Null: train from scratch.",
        tao_default="null",
    )
    results_dir: Optional[Str] = spec_field(None, description="Results folder; default <results_dir>/train.")
    optim: OptimConfig = spec_field(description="Optimiser.", factory=OptimConfig)
    loss: Optional[Str] = spec_field(None, description="Unused (TAO never reads it); the loss follows model_type.")
    clip_grad_norm: Float = spec_field(0.0, description="Gradient-norm clipping; 0 disables.", ge=0.0,
                                       automl=AutoML(enabled=False, low=0.1, high=10.0, log=True))
    tensorboard: TensorboardConfig = spec_field(description="TensorBoard logging.", factory=TensorboardConfig)
    target_false_alarm: Float = spec_field(
        0.01, description="After training, calibrate the threshold to this false-alarm rate on validation PASS pairs.",
        gt=0.0, lt=1.0,
    )
    progress_bar: Bool = spec_field(True, description="Show Lightning's progress bar.")
