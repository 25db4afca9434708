"""`dataset.*`: where pairs come from and how images become tensors."""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from annotated_types import Ge
from pydantic import Strict

from .fields import AutoML, Bool, Float, Int, Str, section, spec_field
from .inspect import InspectSplit

_AUG = "dataset.augmentation_config.augment"
_FLIP = "dataset.augmentation_config.random_flip.enable"
_ROTATE = "dataset.augmentation_config.random_rotate.enable"


def _csv(action: str, what: str) -> Any:
    return spec_field(None, description=f"CSV of the {what} pairs (input_path, golden_path, object_name, label).",
                      required_for=(action,))


def _images(action: str, what: str) -> Any:
    return spec_field(None, description=f"Image root of the {what} pairs: a folder or an images.tar.gz archive.",
                      required_for=(action,))


@section
class TrainSplit:
    """The training pairs."""

    csv_path: Optional[Str] = _csv("train", "training")
    images_dir: Optional[Str] = _images("train", "training")
    boxes_path: Optional[Str] = spec_field(
        None, description="Optional CSV of defect boxes on the training pairs' test images (input_path, "
        "object_name, x1, y1, x2, y2 in pixels of the image file, optional type; dataset_convert writes one): the "
        "Compact model's dense map (model.dense_map) learns where the defects are. Null: it learns from PASS pairs "
        "and synthetic defects only.",
    )


@section
class ValidationSplit:
    """The validation pairs."""

    csv_path: Optional[Str] = _csv("train", "validation")
    images_dir: Optional[Str] = _images("train", "validation")


@section
class TestSplit:
    """The evaluation pairs."""

    csv_path: Optional[Str] = _csv("evaluate", "evaluation")
    images_dir: Optional[Str] = _images("evaluate", "evaluation")


@section
class InferSplit:
    """The inference pairs."""

    csv_path: Optional[Str] = _csv("inference", "inference")
    images_dir: Optional[Str] = _images("inference", "inference")


@section
class FlipConfig:
    enable: Bool = spec_field(True, description="Random horizontal/vertical flips.",
                              automl=AutoML(enabled=True, when={_AUG: True}))
    hflip_probability: Float = spec_field(0.5, description="Probability of a horizontal flip.", ge=0.0, le=1.0,
                                          automl=AutoML(enabled=True, when={_AUG: True, _FLIP: True}))
    vflip_probability: Float = spec_field(0.5, description="Probability of a vertical flip.", ge=0.0, le=1.0,
                                          automl=AutoML(enabled=True, when={_AUG: True, _FLIP: True}))


@section
class RotateConfig:
    enable: Bool = spec_field(True, description="Random rotation by one of angle_list.",
                              automl=AutoML(enabled=True, when={_AUG: True}))
    rotate_probability: Float = spec_field(0.5, description="Probability of a rotation.", ge=0.0, le=1.0,
                                           automl=AutoML(enabled=True, when={_AUG: True, _ROTATE: True}))
    angle_list: list[Float] = spec_field(
        description="Angles in degrees, counter-clockwise; all entries are used (TAO uses only the first 3).",
        factory=lambda: [90.0, 180.0, 270.0],
    )


_COLOR_ON = {_AUG: True, "dataset.augmentation_config.random_color.enable": True}


@section
class ColorConfig:
    enable: Bool = spec_field(True, description="Random colour jitter.", automl=AutoML(enabled=True, when={_AUG: True}))
    color_probability: Float = spec_field(
        0.5, description="Probability of jittering (TAO applies 1 - this value; we apply it as written).",
        ge=0.0, le=1.0, automl=AutoML(enabled=True, when=_COLOR_ON),
    )
    brightness: Float = spec_field(0.3, description="Brightness factor range 1±b.", ge=0.0, le=2.0,
                                   automl=AutoML(enabled=True, low=0.0, high=1.0, when=_COLOR_ON))
    contrast: Float = spec_field(0.3, description="Contrast factor range 1±c.", ge=0.0, le=2.0,
                                 automl=AutoML(enabled=True, low=0.0, high=1.0, when=_COLOR_ON))
    saturation: Float = spec_field(0.3, description="Saturation factor range 1±s.", ge=0.0, le=2.0,
                                   automl=AutoML(enabled=True, low=0.0, high=1.0, when=_COLOR_ON))
    hue: Float = spec_field(0.3, description="Hue shift range ±h (fraction of a turn).", ge=0.0, le=0.5,
                            automl=AutoML(enabled=True, when=_COLOR_ON))


@section
class ShiftConfig:
    enable: Bool = spec_field(True, description="Shift the test image against its golden by a few pixels "
                              "(teaches tolerance to misregistration; our addition).")
    max_pixels: Int = spec_field(3, description="Largest shift in pixels, per axis.", ge=0, le=32,
                                 automl=AutoML(enabled=True, low=0, high=4, when={
                                     _AUG: True, "dataset.augmentation_config.random_shift.enable": True}))


@section
class AugmentationConfig:
    rgb_input_mean: list[Float] = spec_field(description="Per-channel mean for normalisation.",
                                             factory=lambda: [0.485, 0.456, 0.406])
    rgb_input_std: list[Float] = spec_field(description="Per-channel std for normalisation.",
                                            factory=lambda: [0.229, 0.224, 0.225])
    augment: Bool = spec_field(True, description="Master switch for the training augmentations below.",
                               automl=AutoML(enabled=True), tao_default=False)
    with_random_blur: Bool = spec_field(False, description="Random Gaussian blur (probability 0.5; TAO always blurs).",
                                        tao_default=True)
    with_random_crop: Bool = spec_field(False, description="Random resized crop (probability 0.5; TAO always crops).",
                                        tao_default=True)
    random_flip: FlipConfig = spec_field(description="Flip settings.", factory=FlipConfig)
    random_rotate: RotateConfig = spec_field(description="Rotation settings.", factory=RotateConfig)
    random_color: ColorConfig = spec_field(description="Colour jitter settings.", factory=ColorConfig)
    photometric_per_side: Bool = spec_field(
        True, description="Draw blur and colour jitter for the test image and its golden separately (as if taken by "
        "two cameras; our addition) instead of once per pair (TAO).", tao_default=False,
    )
    random_shift: ShiftConfig = spec_field(description="Test-vs-golden shift settings (our addition).",
                                           factory=ShiftConfig)


@section
class SyntheticDefectsConfig:
    """Defects painted on PASS training pairs on the fly (our addition; see optical_inspection/data/inject.py)."""
    enable: Bool = spec_field(True, description="Paint synthetic defects on the test image of PASS training pairs "
                              "and train on them as defects, so a split with few or no labelled defects still trains.",
                              tao_default=False)
    rate: Float = spec_field(0.25, description="Share of the PASS pairs of each training batch that get a defect.",
                             ge=0.0, le=1.0, automl=AutoML(enabled=False, low=0.05, high=0.5))
    kinds: list[Literal["spot", "edge", "cut", "smudge"]] = spec_field(
        description="Kinds drawn from, alike: spot (spurious copper / pin hole), edge (spur / mouse bite), cut "
        "(open / short), smudge (contamination).", factory=lambda: ["spot", "edge", "cut", "smudge"],
    )
    max_size: Float = spec_field(8.0, description="Largest defect extent in pixels (of the resized tile).",
                                 ge=1.0, le=64.0)


@section
class GridMap:
    x: Int = spec_field(2, description="Tiles per row (columns).", ge=1)
    y: Int = spec_field(2, description="Rows of tiles.", ge=1)


@section
class DatasetConfig:
    train_dataset: TrainSplit = spec_field(description="Training pairs.", factory=TrainSplit)
    validation_dataset: ValidationSplit = spec_field(description="Validation pairs (threshold calibration too).",
                                                     factory=ValidationSplit)
    test_dataset: TestSplit = spec_field(description="Pairs for evaluate.", factory=TestSplit)
    infer_dataset: InferSplit = spec_field(description="Pairs for inference (label column optional).",
                                           factory=InferSplit)
    inspect_dataset: InspectSplit = spec_field(description="Whole boards for inspect.", factory=InspectSplit)
    image_ext: Str = spec_field(".jpg", description="Image file extension, with the dot.", tao_default="null (crashes)")
    batch_size: Int = spec_field(32, description="Batch size: at least 2 for train (BatchNorm needs two pairs), "
                                 "at least 1 for evaluate, inference and export.", ge=1, popular=True,
                                 automl=AutoML(enabled=False, low=8, high=128, math_cond="power_of_two"))
    workers: Union[Annotated[int, Strict(), Ge(0)], Literal["auto"]] = spec_field(
        "auto", description="Data-loader worker processes: they decode a split streamed from its image files, and "
        "augment a decoded training split where processes fork (Linux). auto: 0 on 2 CPUs or fewer and for splits "
        "of under 100 batches (workers would only take cores from the training step), else half the CPUs, at "
        "most 8.", tao_default=8,
    )
    fpratio_sampling: Float = spec_field(
        0.5, description="Defect sampling weight: defects drawn with weight (n_pass/n_fail)*ratio (a share "
        "ratio/(1+ratio) of the draws); 0 = no reweighting.", ge=0.0, le=1.0,
        automl=AutoML(enabled=True, low=0.05, high=1.0), tao_default=0.1,
    )
    num_input: Optional[Int] = spec_field(
        None, description="Number of lights; must equal len(input_map). Null: derived from input_map.",
        ge=1, tao_default=8,
    )
    input_map: Optional[dict[Str, Int]] = spec_field(
        None, description="Lights: the keys are file-name suffixes in order (values unused). Null: one image per side."
    )
    grid_map: GridMap = spec_field(description="Grid layout for concat_type grid.", factory=GridMap)
    concat_type: Literal["linear", "grid"] = spec_field(
        "linear", description="How light tiles are joined: linear (stacked vertically) or grid.", tao_default="null"
    )
    image_width: Int = spec_field(128, description="Width of each light tile after resizing.", ge=8, popular=True)
    image_height: Int = spec_field(128, description="Height of each light tile after resizing.", ge=8, popular=True)
    augmentation_config: AugmentationConfig = spec_field(description="Training augmentation.",
                                                         factory=AugmentationConfig)
    synthetic_defects: SyntheticDefectsConfig = spec_field(description="Synthetic defects on PASS training pairs.",
                                                           factory=SyntheticDefectsConfig)
    cache_memory_mb: Int = spec_field(
        256, description="Each split is decoded once; its uint8 tiles stay in memory while the decoded splits fit this "
        "budget in MiB (grey images take a third), else they go to a temporary file in TMPDIR (memory-mapped, "
        "as fast from the page cache, never decoded again). 0 = no decoded copy: stream every epoch from the "
        "image files with dataset.workers processes.", ge=0,
    )
