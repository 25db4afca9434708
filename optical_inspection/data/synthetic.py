"""Synthetic multi-light AOI splits on disk (TAO layout) for tests and the demo: no download needed.

Pairs come from :mod:`optical_inspection.data.synth` (procedural boards with components under each light, one
or two defects of the AOI kinds on the defective pairs, misregistration and photometric differences).
"""
from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from ..io_utils import write_text_atomic
from .synth import AOI_KINDS, generate_pairs

DEFAULT_LIGHTS = ("LowAngleLight", "SolderLight", "UniformLight", "WhiteLight")
DEFECT_KINDS = AOI_KINDS
PAIRS_PER_COMPONENT = 3  # each component (one golden) is inspected on this many boards


def make_synthetic_split(out_dir: str | Path, n_pairs: int, *, lights: tuple[str, ...] | list[str] = DEFAULT_LIGHTS,
                         size: int = 64, defect_rate: float = 0.3, seed: int = 0, style: str = "rgb",
                         max_shift: float = 3.0) -> tuple[Path, Path]:
    """Write ``out_dir/dataset.csv``, ``out_dir/boxes.csv`` (each defect's box, ``dataset.train_dataset.boxes_path``)
    and ``out_dir/images/`` (TAO layout); return (csv_path, images_dir).

    ``round(n_pairs * defect_rate)`` pairs are defective (at least one and one PASS when the rate is above 0 and
    there are two pairs or more). ``lights=()`` writes one image per side without a light suffix.
    ``style``: rgb or grey AOI tiles, or binary bare boards (one light). ``max_shift``: largest test-vs-golden
    misregistration in pixels per axis (3 by default; about 1 for a well-registered AOI line). Same arguments,
    same bytes.
    """
    if n_pairs < 1 or size < 16:
        raise ValueError(f"need n_pairs >= 1 and size >= 16 (got {n_pairs}, {size})")
    if max_shift < 0:
        raise ValueError(f"max_shift is a misregistration in pixels: use 0 or more (got {max_shift})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_defects = int(round(n_pairs * defect_rate))
    if 0 < defect_rate and n_pairs >= 2:
        n_defects = min(max(n_defects, 1), n_pairs - 1)
    defective = np.zeros(n_pairs, dtype=bool)
    defective[np.random.default_rng(seed).permutation(n_pairs)[:n_defects]] = True
    batch = generate_pairs(n_pairs, size=size, style=style, n_lights=max(1, len(lights)), defective=defective,
                           use_jpeg=False, pairs_per_layout=PAIRS_PER_COMPONENT, max_shift=max_shift,
                           seed=seed)

    tmp = out / ".images.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    rows, box_rows = [], []
    seen: dict[int, int] = {}  # component -> boards written so far
    for i in range(n_pairs):
        component = int(batch.layout[i])
        name = f"C{component}@1"
        if component not in seen:
            _write_views(tmp / "golden", name, batch.golden[i], lights)
        board = f"boards/board{seen.get(component, 0):03d}"
        seen[component] = seen.get(component, 0) + 1
        _write_views(tmp / board, name, batch.test[i], lights)
        rows.append({"input_path": board, "golden_path": "golden", "label": batch.labels[i], "object_name": name})
        box_rows += [{"input_path": board, "object_name": name, "x1": int(x0), "y1": int(y0), "x2": int(x1) + 1,
                      "y2": int(y1) + 1, "type": kind}  # the generator's boxes are inclusive
                     for (x0, y0, x1, y1), kind in zip(batch.boxes[i], batch.kinds[i])]
    images = out / "images"
    shutil.rmtree(images, ignore_errors=True)
    os.replace(tmp, images)
    csv_path = write_text_atomic(out / "dataset.csv", _csv_text(rows, ["input_path", "golden_path", "label",
                                                                       "object_name"]))
    write_text_atomic(out / "boxes.csv", _csv_text(box_rows, ["input_path", "object_name", "x1", "y1", "x2", "y2",
                                                              "type"]))
    return csv_path, images


def _csv_text(rows: list[dict], fieldnames: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fieldnames, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _write_views(folder: Path, object_name: str, views: np.ndarray, lights) -> None:
    """Tiles [L, S, S, C] as one JPEG per light."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{object_name}_{light}.jpg" for light in lights] if lights else [f"{object_name}.jpg"]
    for name, view in zip(names, views):
        Image.fromarray(view[..., 0] if view.shape[-1] == 1 else view).save(folder / name, quality=95)
