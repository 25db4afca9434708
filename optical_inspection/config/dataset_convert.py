"""`dataset_convert.*`: turn raw AOI exports (TAO's factory-PCB layout) or DeepPCB into pair CSVs + images."""
from __future__ import annotations

from typing import Literal, Optional

from .fields import Bool, Float, Int, Str, section, spec_field


@section
class DeepPCBConfig:
    root_dir: Optional[Str] = spec_field(None, description="DeepPCB folder holding PCBData/ and the split list.")
    split_list: Str = spec_field("trainval.txt",
                                 description="List of '<image> <annotation>' lines, relative to root_dir.")
    groups: list[Str] = spec_field(description="Only these board groups (e.g. ['44000']); empty = all.", factory=list)
    window_size: Int = spec_field(128, description="Side of the square crops, in pixels.", ge=16)
    jitter: Int = spec_field(16, description="Random offset of a defect crop around its box centre, in pixels.", ge=0)
    pass_per_fail: Float = spec_field(3.0, description="PASS crops per FAIL crop.", ge=0.0)
    seed: Int = spec_field(0, description="Seed of the crop positions (same seed, same output).")
    boards: Bool = spec_field(
        False, description="Also write boards/: the whole boards as an inspect split (dataset.csv with input_path, "
        "golden_path; images/), with boxes.csv holding every defect box in board pixels (detections.csv's layout).",
    )


@section
class DatasetConvertConfig:
    format: Literal["factory_pcb", "deeppcb"] = spec_field(
        "factory_pcb", description="Input layout: TAO's raw factory-PCB export, or DeepPCB."
    )
    root_dataset_dir: Optional[Str] = spec_field(None, description="factory_pcb: root of the raw export.")
    data_convert_output_dir: Optional[Str] = spec_field(
        None, description="Output folder (created). Receives the CSVs (and, for deeppcb, images/).",
        required_for=("dataset_convert",),
    )
    train_pcb_dataset_dir: Optional[Str] = spec_field(None, description="factory_pcb: folder of training board CSVs.")
    val_pcb_dataset_dir: Optional[Str] = spec_field(None, description="factory_pcb: folder of validation board CSVs.")
    all_pcb_dataset_dir: Optional[Str] = spec_field(
        None, description="factory_pcb: folder the board CSVs are read from.")
    golden_csv_dir: Optional[Str] = spec_field(
        None, description="factory_pcb: folder of <project><TOP|BOT>.csv golden indexes.")
    project_name: Str = spec_field("all", description="factory_pcb: 'all' or one project name.")
    bot_top: Literal["all", "TOP", "BOT"] = spec_field("all", description="factory_pcb: board side filter.")
    deeppcb: DeepPCBConfig = spec_field(description="deeppcb settings.", factory=DeepPCBConfig)
