"""inspect: whole boards (any size) → registered golden → dense defect map → boxes.

Writes ``detections.csv`` (input_path, x1, y1, x2, y2, score, type, type_probability; pixel corners of the test
image, score = defect probability, type_probability = the kind's probability given a defect, blank without a type
head; ``inspect.kinds_per_box`` rows per box), ``boards.csv`` (per board: the registration found and the number
of boxes) and, with ``inspect.overlays``, ``overlays/<row>_<name>.png``. Every board row is checked (files
present, readable, golden the test's size, under ``inspect.max_board_pixels``) before any is inspected, and the
outputs are moved into the results folder only when every board is done: a failure leaves nothing half-written.
"""
from __future__ import annotations

import csv
import io
import math
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..boards.board_io import read_boards
from ..boards.detect import BoardInspector, typed_rows
from ..data.images import decode_image, to_rgb
from ..errors import OIError
from ..io_utils import make_temp_dir
from ..status import StatusLogger, is_rank_zero

if TYPE_CHECKING:
    from ..config.experiment import ExperimentConfig

DETECTION_COLUMNS = ("input_path", "x1", "y1", "x2", "y2", "score", "type", "type_probability")
BOARD_COLUMNS = ("input_path", "dx", "dy", "angle", "num_detections")


def run(config: ExperimentConfig, results_dir: Path, status: StatusLogger) -> dict[str, Any]:
    if not is_rank_zero():
        return {}
    cfg = config.inspect
    if not cfg.checkpoint:
        raise OIError("set inspect.checkpoint: a Compact checkpoint (.pth) or 'pretrained'")
    boards = read_boards(config.dataset.inspect_dataset, cfg.max_board_pixels)
    inspector = load_inspector(config)
    stage = make_temp_dir(results_dir / "detections.csv")
    try:
        outputs = _inspect_all(inspector, boards, stage, cfg.overlays, status, cfg.kinds_per_box)
        artifacts = _commit(stage, results_dir, cfg.overlays)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    print(f"Inspected {len(boards)} boards: {outputs['detections']} boxes, {outputs['boards_per_s']:.2f} boards/s; "
          f"wrote {artifacts['detections_csv']}")
    return {"artifacts": artifacts, "kpi": {"num_boards": len(boards), "num_detections": outputs["detections"],
                                            "boards_per_s": outputs["boards_per_s"]}}


def map_threshold(inspect_threshold: float | None, model_threshold: float | None, meta: dict) -> float:
    """inspect.threshold; else, for a dense-map network, 0 (its cells' own probability 0.5: the pair threshold
    belongs to another score); else model.threshold, then the model file's calibrated or natural threshold."""
    from ..models.threshold import natural_threshold

    if inspect_threshold is not None:
        return float(inspect_threshold)
    if meta["model"].get("dense_map"):
        return 0.0
    if model_threshold is not None:
        return float(model_threshold)
    stored = meta.get("threshold")
    return float(stored) if stored is not None else natural_threshold(meta["model"])


def load_inspector(config: ExperimentConfig) -> BoardInspector:
    """The BoardInspector of ``inspect.checkpoint`` with the spec's threshold and registration settings."""
    from ..models.checkpoint import load_checkpoint
    from ..models.compact import Compact

    cfg = config.inspect
    if not cfg.checkpoint:
        raise OIError("set inspect.checkpoint (a Compact .pth, or pretrained for the bundled weights)")
    model, meta = load_checkpoint(cfg.checkpoint, config)
    if not isinstance(model, Compact):
        raise OIError(f"inspect.checkpoint '{cfg.checkpoint}' is a {meta['model'].get('model_type')} network; "
                      f"inspect needs a Compact one (its map before pooling gives the boxes)")
    threshold = map_threshold(cfg.threshold, config.model.threshold, meta)
    dataset = meta["dataset"]
    device = torch.device(f"cuda:{cfg.gpu_id}" if torch.cuda.is_available() else "cpu")
    return BoardInspector(model, dataset["rgb_input_mean"], dataset["rgb_input_std"],
                          int(dataset.get("image_height", dataset["strip_shape"][1])), threshold=threshold,
                          register=cfg.register, max_rotation=cfg.max_rotation, tile=cfg.tile_size,
                          min_area=cfg.min_area, device=device, boxes=cfg.boxes,
                          difference_threshold=cfg.difference_threshold, box_margin=cfg.box_margin,
                          types=list(meta["model"].get("defect_types") or []), min_box_side=cfg.min_box_side,
                          nms_iou=cfg.nms_iou, type_views=cfg.type_views)


def load_pair(board: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [C, H, W] test and golden (both RGB when one of them is)."""
    where = f"row {board.row}: "
    test, _ = decode_image(str(board.test), where=where)
    golden, _ = decode_image(str(board.golden), where=where)
    if test.shape[-1] != golden.shape[-1]:
        test, golden = to_rgb(test), to_rgb(golden)
    return (torch.from_numpy(a.transpose(2, 0, 1).copy()) for a in (test, golden))  # type: ignore


def _inspect_all(inspector: BoardInspector, boards: list, stage: Path, overlays: bool,
                 status: StatusLogger, kinds_per_box: int = 1) -> dict[str, Any]:
    detections, per_board = [], []
    if overlays:
        (stage / "overlays").mkdir()
    start = time.perf_counter()
    for k, board in enumerate(boards):
        test, golden = load_pair(board)
        result = inspector.inspect(test, golden)
        boxes, scores, kinds, kind_probs = typed_rows(result, inspector.types, kinds_per_box)
        detections += [[board.input_path, *(str(int(round(v))) for v in box), f"{score:.12g}", kind,
                        "" if math.isnan(p) else f"{p:.6g}"]  # NaN: no type head
                       for box, score, kind, p in zip(boxes.tolist(), scores.tolist(), kinds, kind_probs.tolist())]
        t = result.transform
        per_board.append([board.input_path, f"{t.dx:.3f}", f"{t.dy:.3f}", f"{t.angle:.3f}", str(len(result.boxes))])
        if overlays:
            from ..boards.overlay import write_overlay

            write_overlay(stage / "overlays" / overlay_name(board), test, result)
        if k % 10 == 0:
            status.write("RUNNING", f"Inspected {k + 1}/{len(boards)} boards.")
    seconds = time.perf_counter() - start
    _write_csv(stage / "detections.csv", DETECTION_COLUMNS, detections)
    _write_csv(stage / "boards.csv", BOARD_COLUMNS, per_board)
    return {"detections": len(detections), "boards_per_s": len(boards) / max(seconds, 1e-9)}


def overlay_name(board: Any) -> str:
    return f"{board.row:05d}_{board.test.stem}.png"


def _write_csv(path: Path, header: tuple[str, ...], rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")


def _commit(stage: Path, results_dir: Path, overlays: bool) -> dict[str, str]:
    """Move the finished outputs into ``results_dir`` (overlays first, the CSVs last)."""
    artifacts = {}
    if overlays:
        target = results_dir / "overlays"
        shutil.rmtree(target, ignore_errors=True)
        os.replace(stage / "overlays", target)
        artifacts["overlays"] = str(target)
    for name in ("boards.csv", "detections.csv"):
        os.replace(stage / name, results_dir / name)
        artifacts[name.replace(".", "_")] = str(results_dir / name)
    return artifacts

