"""`model.*`: which network compares a test image with its golden image."""
from __future__ import annotations

from typing import Literal, Optional, get_args

from .fields import AutoML, Bool, Float, Int, Str, section, spec_field

ModelType = Literal["Siamese", "Siamese_3", "Compact"]
MODEL_TYPES: tuple[str, ...] = get_args(ModelType)


@section
class ModelConfig:
    model_type: ModelType = spec_field(
        "Compact",
        description=(
            "Network. 'Compact': our pooled comparison network (~15k parameters, tolerant to misregistration). "
            "'Siamese' / 'Siamese_3': TAO's networks (embedding heads, tens of millions of parameters)."
        ),
        tao_default="Siamese_3",
        automl=AutoML(enabled=False),
        popular=True,
    )
    margin: Float = spec_field(
        2.0,
        description="Siamese types: contrastive-loss margin, also their decision threshold before calibration.",
        gt=0.0,
        automl=AutoML(enabled=True, low=0.5, high=10.0, log=True,
                      when={"model.model_type": ["Siamese", "Siamese_3"]}),
    )
    model_backbone: Literal["custom"] = spec_field(
        "custom", description="Trunk of the Siamese types. Only 'custom' exists (as in TAO)."
    )
    embedding_vectors: Int = spec_field(
        5, description="Embedding size of the Siamese types (TAO's E).", ge=1,
        automl=AutoML(enabled=False, low=2, high=64, math_cond="power_of_two",
                      when={"model.model_type": ["Siamese", "Siamese_3"]}),
    )
    imagenet_pretrained: Bool = spec_field(
        False, description="Kept for TAO spec compatibility; there are no pretrained weights for these networks."
    )
    base_channels: Int = spec_field(
        16, description="Compact model: width c (encoder c/2, c, c channels; head 2c; ~57·c² parameters).",
        ge=4, le=128,
        automl=AutoML(enabled=True, low=8, high=32, math_cond="power_of_two", when={"model.model_type": "Compact"}),
    )
    shift_tolerance: Int = spec_field(
        1, description="Compact model: misregistration tolerated by the feature comparison, in feature cells "
        "(1 cell = 4 input pixels); 0 compares aligned cells only.", ge=0, le=4,
        automl=AutoML(enabled=True, low=0, high=2, when={"model.model_type": "Compact"}),
    )
    type_head: Bool = spec_field(
        True, description="Compact model: also learn the defect kind when the training labels name two or more "
        "(label values other than PASS, e.g. DeepPCB's open, short, mousebite, spur, copper, pin-hole); "
        "inference.csv then gets defect_type and defect_type_probability. False: PASS/FAIL only.",
    )
    dense_map: Bool = spec_field(
        True, description="Compact model: also learn a defect map (one logit per 8x8-pixel cell) from the pixels "
        "known to hold a defect (dataset.train_dataset.boxes_path, "
        "synthetic defects) and those known clean (PASS pairs); heat maps and inspect's boxes then come from it. "
        "False: the map is read off the pair classifier.",
    )
    box_typer: Bool = spec_field(
        True, description="Compact model with defect kinds and a dense map: when dataset.train_dataset.boxes_path "
        "is given (one light per side), also train a small classifier of each box's kind from a 64-px patch centred on "
        "it (the box's type column, else its row's label), before the pair network, for "
        "train.box_typer_minutes; inspect names its boxes' kinds with it. False: inspect uses the type head.",
    )
    threshold: Optional[Float] = spec_field(
        None,
        description="Fixed decision threshold on the score (defect iff score > threshold), used in validation "
        "metrics, evaluate and inference. Null: the threshold calibrated after training (stored in the "
        "checkpoint); before calibration the margin (Siamese types) or 0 (Compact's logit, probability 0.5).",
    )
    loss: Optional[Str] = spec_field(
        None, description="Unused; kept so TAO specs load. The loss follows the model type (contrastive for the "
        "Siamese types, binary cross-entropy on the logit for Compact).",
    )
