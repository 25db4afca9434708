"""`dataset.*`: where pairs come from and how images become tensors."""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from annotated_types import Ge
from pydantic import Strict

from .fields import AutoML, Bool, Float, Int, Str, spec_field
from .inspect import InspectSplit
from .section import section

_AUG = "dataset.augmentation_config.augment"


def _split(name: str, actions: tuple[str, ...], what: str) -> type:
    """A split section (`csv_path` + `images_dir`) whose keys are required by ``actions``."""
    namespace = {
        "__annotations__": {"csv_path": Optional[Str], "images_dir": Optional[Str]},
        "__module__": __name__,
        "__doc__": f"The {what} pairs.",
        "csv_path": spec_field(
            None, description=f"CSV of the {what} pairs (input_path, golden_path, object_name, label).",
            required_for=actions,
        ),
        "images_dir": spec_field(
            None, description=f"Image root of the {what} pairs: a folder or an images.tar.gz archive.",
            required_for=actions,
        ),
    }
    return section(type(name, (), namespace))


TrainSplit = _split("TrainSplit", ("train",), "training")
ValidationSplit = _split("ValidationSplit", ("train",), "validation")
TestSplit = _split("TestSplit", ("evaluate",), "evaluation")
InferSplit = _split("InferSplit", ("inference",), "inference")


@section
class FlipConfig:
    enable: Bool = spec_field(True, description="Random horizontal/vertical flips.",
                              automl=AutoML(enabled=True, when={_AUG: True}))
    hflip_probability: Float = spec_field(0.5, description="Probability of a horizontal flip.", ge=0.0, le=1.0,
                                          automl=AutoML(enabled=True, when={_AUG: True, "dataset.augmentation_config.random_flip.enable": True}))
    vflip_probability: Float = spec_field(0.5, description="Probability of a vertical flip.", ge=0.0, le=1.0,
                                          automl=AutoML(enabled=True, when={_AUG: True, "dataset.augmentation_config.random_flip.enable": True}))


@section
class RotateConfig:
    enable: Bool = spec_field(True, description="Random rotation by one of angle_list.",
                              automl=AutoML(enabled=True, when={_AUG: True}))
    rotate_probability: Float = spec_field(0.5, description="Probability of a rotation.", ge=0.0, le=1.0,
                                           automl=AutoML(enabled=True, when={_AUG: True, "dataset.augmentation_config.random_rotate.enable": True}))
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
    max_pixels: Int = spec_field(2, description="Largest shift in pixels, per axis.", ge=0, le=32,
                                 automl=AutoML(enabled=True, low=0, high=4, when={
                                     _AUG: True, "dataset.augmentation_config.random_shift.enable": True}))


@section
class AugmentationConfig:
    rgb_input_mean: list[Float] = spec_field(description="Per-channel mean for normalisation.",
                                             factory=lambda: [0.485, 0.456, 0.406])
    rgb_input_std: list[Float] = spec_field(description="Per-channel std for normalisation.",
                                            factory=lambda: [0.229, 0.224, 0.225])
    augment: Bool = spec_field(False, description="Master switch for the training augmentations below.",
                               automl=AutoML(enabled=True))
    with_random_blur: Bool = spec_field(True, description="Random Gaussian blur (probability 0.5; TAO always blurs).")
    with_random_crop: Bool = spec_field(True, description="Random resized crop (probability 0.5; TAO always crops).")
    random_flip: FlipConfig = spec_field(description="Flip settings.", factory=FlipConfig)
    random_rotate: RotateConfig = spec_field(description="Rotation settings.", factory=RotateConfig)
    random_color: ColorConfig = spec_field(description="Colour jitter settings.", factory=ColorConfig)
    random_shift: ShiftConfig = spec_field(description="Test-vs-golden shift settings (our addition).", factory=ShiftConfig)


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
        0.1, description="Defect sampling weight: defects drawn with weight (n_pass/n_fail)*ratio; 0 = no reweighting.",
        ge=0.0, le=1.0, automl=AutoML(enabled=True, low=0.05, high=1.0),
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
    cache_memory_mb: Int = spec_field(
        256, description="Each split is decoded once; its uint8 tiles stay in memory while the decoded splits fit this "
        "budget in MiB (grey images take a third), else they go to a temporary file in TMPDIR (memory-mapped, "
        "as fast from the page cache, never decoded again). 0 = no decoded copy: stream every epoch from the "
        "image files with dataset.workers processes.", ge=0,
    )
