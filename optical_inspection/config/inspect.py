"""`dataset.inspect_dataset.*` and `inspect.*`: whole-board inspection (boxes on boards of any size)."""
from __future__ import annotations

from typing import Literal, Optional

from .fields import Bool, Float, Int, Str, section, spec_field


@section
class InspectSplit:
    """The whole boards to inspect."""

    csv_path: Optional[Str] = spec_field(
        None, description="CSV with input_path and golden_path columns: the whole test and golden image files, "
        "relative to images_dir (other columns are kept in detections.csv's order only).", required_for=("inspect",),
    )
    images_dir: Optional[Str] = spec_field(
        None, description="Folder the CSV's paths are relative to.", required_for=("inspect",)
    )


@section
class InspectConfig:
    results_dir: Optional[Str] = spec_field(None, description="Results folder; default <results_dir>/inspect.")
    checkpoint: Optional[Str] = spec_field(
        None, description="Compact checkpoint (.pth) or 'pretrained'; its dense defect map is cut into boxes.",
        required_for=("inspect",),
    )
    threshold: Optional[Float] = spec_field(
        None, description="Map threshold in logit units; null: 0 (probability 0.5) for a network with a dense map "
        "(model.dense_map), else model.threshold, else the model file's own."
    )
    register: Bool = spec_field(True, description="Register each golden onto its test board first (phase "
                                "correlation: translation, and rotation up to max_rotation).")
    max_rotation: Float = spec_field(1.5, description="Largest rotation searched, in degrees (0: translation only).",
                                     ge=0.0, le=10.0)
    tile_size: Int = spec_field(
        1024, description="Boards larger than this (pixels per side) go through the network in tiles of this size "
        "(plus a 128-px margin), one at a time; a multiple of 8.", ge=64, le=16384,
    )
    boxes: Literal["map", "difference"] = spec_field(
        "map", description="map: boxes are the connected regions of the defect map above the threshold; "
        "difference: boxes are the regions where the registered grey images differ by more than "
        "difference_threshold (tighter on binary boards such as DeepPCB), kept when the map's peak inside them "
        "exceeds the threshold and scored by it.",
    )
    difference_threshold: Float = spec_field(60.0, description="Grey-level difference (0-255) for boxes: difference.",
                                             ge=1.0, le=255.0)
    box_margin: Int = spec_field(8, description="Pixels added on each side of a box for boxes: difference.", ge=0)
    min_area: Int = spec_field(16, description="Drop boxes smaller than this many pixels.", ge=0)
    min_box_side: Int = spec_field(
        0, description="Grow every box to at least this many pixels per side about its centre (inside the board): "
        "for annotations that frame a defect with context, e.g. DeepPCB's (its benchmark picks 40 on a validation "
        "group); 0 keeps the tight boxes.", ge=0,
    )
    nms_iou: Float = spec_field(
        0.5, description="Drop a box that overlaps a higher-scoring one by more than this IoU (after min_box_side); "
        "1 keeps every box.", ge=0.0, le=1.0,
    )
    kinds_per_box: Int = spec_field(
        1, description="Rows per box in detections.csv for a network with a defect-type head: its likeliest kinds, "
        "most likely first, each with its type_probability (the form detection benchmarks such as DeepPCB's take, "
        "ranked by score x type_probability: a box whose likeliest kind is wrong still counts under the next); "
        "1: one row per box.", ge=1, le=16,
    )
    type_views: Int = spec_field(
        1, description="Views of each box's crop whose defect-kind probabilities are averaged (network with a type "
        "head): 1 the crop; 2-4 also its flips; up to 8 also its quarter turns (square crops). More views type "
        "better and cost a type-head pass each.", ge=1, le=8,
    )
    max_board_pixels: Int = spec_field(
        64_000_000, description="Refuse boards over this many pixels (their map and image would not fit in memory).",
        ge=1,
    )
    overlays: Bool = spec_field(True, description="Write overlays/<board>.png: the test board with map and boxes.")
    gpu_id: Int = spec_field(0, description="GPU index when CUDA is available (tiles go there one at a time).", ge=0)
