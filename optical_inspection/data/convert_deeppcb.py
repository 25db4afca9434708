"""DeepPCB -> TAO pair split: crops of the template (golden) and test images around each defect box (labelled
with the defect type) and crops touching no box (PASS).

DeepPCB layout: ``PCBData/groupG/G/<id>_temp.jpg`` (template) and ``<id>_test.jpg``, boxes in
``PCBData/groupG/G_not/<id>.txt`` as ``x1 y1 x2 y2 type`` lines, and a split list of ``<image> <annotation>``
lines (e.g. ``trainval.txt``). Output: ``dataset.csv`` (input_path, golden_path, label, object_name, group, and
the crop's top-left corner crop_x, crop_y in the source image) and
``images/<group>/{test,golden}/<id>_<k>.jpg``; use it with ``input_map: null`` (one image per side) and
``image_height = image_width = window_size``. Each image's crops come from a generator seeded by
(seed, image id), so the output does not depend on threading or on which groups are converted.
"""
from __future__ import annotations

import csv
import io
import os
import re
import shutil
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError
from ..io_utils import write_text_atomic
from .images import decode_image, to_rgb

DEFECT_TYPES = {1: "open", 2: "short", 3: "mousebite", 4: "spur", 5: "copper", 6: "pin-hole"}
FIELDS = ["input_path", "golden_path", "label", "object_name", "group", "crop_x", "crop_y"]
PASS_TRIES = 50  # random positions tried per PASS crop before giving up on it
JPEG_QUALITY = 95


@dataclass(frozen=True)
class Listing:
    """One DeepPCB image pair of the split list."""

    group: str
    stem: str
    test: Path
    template: Path
    boxes: Path


def read_listing(root: Path, split_list: str, groups: list[str]) -> list[Listing]:
    """Entries of the split list (in file order), limited to ``groups``; errors for missing files."""
    list_path = root / split_list
    if not list_path.is_file():
        raise DataError(f"DeepPCB split list '{list_path}' does not exist (dataset_convert.deeppcb.split_list)")
    entries, problems = [], []
    for n, line in enumerate(list_path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            problems.append(f"line {n}: expected '<image> <annotation>', got {line!r}")
            continue
        image, boxes = (root / "PCBData" / p for p in parts)
        stem = image.stem
        entries.append(Listing(image.parent.parent.name.removeprefix("group"), stem,
                               image.with_name(f"{stem}_test{image.suffix}"),
                               image.with_name(f"{stem}_temp{image.suffix}"), boxes))
    known = sorted({e.group for e in entries})
    unknown = [g for g in groups if g not in known]
    if unknown:
        problems.append(f"groups {unknown} are not in the split list; available: {known}")
    if groups:
        entries = [e for e in entries if e.group in groups]
    missing = [str(p) for e in entries for p in (e.test, e.template, e.boxes) if not p.is_file()]
    if missing:
        problems.append(f"{len(missing)} listed file(s) missing, first: " + ", ".join(missing[:5]))
    if problems:
        raise DataError(f"DeepPCB at '{root}': " + "; ".join(problems))
    if not entries:
        raise DataError(f"DeepPCB split list '{list_path}' lists no images")
    return entries


def read_boxes(path: Path) -> np.ndarray:
    """``[K, 5]`` int boxes ``x1 y1 x2 y2 type`` (spaces or commas)."""
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        values = [v for v in re.split(r"[,\s]+", line.strip()) if v]
        if not values:
            continue
        if len(values) != 5 or not all(v.lstrip("-").isdigit() for v in values) or int(values[4]) not in DEFECT_TYPES:
            raise DataError(f"{path} line {n}: expected 'x1 y1 x2 y2 type' with type 1-6, got {line!r}")
        rows.append([int(v) for v in values])
    return np.asarray(rows, dtype=np.int64).reshape(-1, 5)


BOX_FIELDS = ["input_path", "object_name", "x1", "y1", "x2", "y2", "type"]


def crop_windows(boxes: np.ndarray, shape: tuple[int, int], window: int, jitter: int, pass_per_fail: float,
                 rng: np.random.Generator) -> list[tuple[int, int, str]]:
    """Top-left corners and labels of the crops of one image: one per defect box, then the PASS crops."""
    h, w = shape
    out = []
    for x1, y1, x2, y2, kind in boxes:
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        room_x = max(0, (window - (x2 - x1)) // 2)  # jitter keeps a box that fits inside its window
        room_y = max(0, (window - (y2 - y1)) // 2)
        dx, dy = (int(rng.integers(-min(jitter, r), min(jitter, r) + 1)) for r in (room_x, room_y))
        left = int(np.clip(round(cx - window / 2) + dx, 0, w - window))
        top = int(np.clip(round(cy - window / 2) + dy, 0, h - window))
        out.append((left, top, DEFECT_TYPES[int(kind)]))
    n_pass = int(round(pass_per_fail * max(1, len(boxes))))
    lefts = rng.integers(0, w - window + 1, size=(n_pass, PASS_TRIES))
    tops = rng.integers(0, h - window + 1, size=(n_pass, PASS_TRIES))
    if len(boxes):  # a window touches a box when their closed extents overlap: vectorised over every try
        touch = np.asarray(((lefts[..., None] <= boxes[:, 2]) & (lefts[..., None] + window >= boxes[:, 0]) &
                            (tops[..., None] <= boxes[:, 3]) & (tops[..., None] + window >= boxes[:, 1])).any(-1))
    else:
        touch = np.zeros(lefts.shape, dtype=bool)
    for i in range(n_pass):
        free = np.flatnonzero(~touch[i])
        if len(free):
            out.append((int(lefts[i, free[0]]), int(tops[i, free[0]]), "PASS"))
    return out


def convert_deeppcb(root: str | Path, output_dir: str | Path, *, split_list: str = "trainval.txt",
                    groups: list[str] | None = None, window_size: int = 128, jitter: int = 16,
                    pass_per_fail: float = 3.0, seed: int = 0, threads: int | None = None, boards: bool = False
                    ) -> dict:
    """Write ``output_dir/dataset.csv``, ``boxes.csv`` and ``images/``; with ``boards`` also ``output_dir/boards/``,
    the whole boards as an inspect split (:func:`write_board_split`); return counts and paths."""
    root, out = Path(root), Path(output_dir)
    if not (root / "PCBData").is_dir():
        raise DataError(f"'{root}' is not a DeepPCB folder (no PCBData/ inside); set dataset_convert.deeppcb.root_dir")
    entries = read_listing(root, split_list, list(groups or []))
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".images.tmp"
    shutil.rmtree(tmp, ignore_errors=True)

    def one(entry: Listing) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
        return _convert_image(entry, tmp, window_size, jitter, pass_per_fail, seed)

    try:
        with ThreadPoolExecutor(max_workers=threads or min(8, os.cpu_count() or 1)) as pool:
            converted = list(pool.map(one, entries))
        rows = [row for rows, _ in converted for row in rows]
        box_rows = [row for _, boxes in converted for row in boxes]
    except BaseException:
        shutil.rmtree(out if created else tmp, ignore_errors=True)  # nothing half-written stays
        raise
    if boards:
        try:
            write_board_split(entries, out / "boards")
        except BaseException:
            shutil.rmtree(out if created else tmp, ignore_errors=True)
            raise
    images = out / "images"
    shutil.rmtree(images, ignore_errors=True)
    os.replace(tmp, images)
    csv_path = write_text_atomic(out / "dataset.csv", _csv_text(rows, FIELDS))
    boxes_path = write_text_atomic(out / "boxes.csv", _csv_text(box_rows, BOX_FIELDS))
    n_fail = sum(r["label"] != "PASS" for r in rows)
    return {"csv_path": csv_path, "images_dir": images, "boxes_path": boxes_path,
            "boards_dir": out / "boards" if boards else None, "pairs": len(rows), "fail": n_fail,
            "pass": len(rows) - n_fail, "source_images": len(entries)}


BOARD_FIELDS = ["input_path", "golden_path", "group"]
BOARD_BOX_FIELDS = ["input_path", "x1", "y1", "x2", "y2", "type"]


def write_board_split(entries: list[Listing], folder: Path) -> Path:
    """``folder/dataset.csv`` (``input_path, golden_path`` of each whole test board and its template, relative to
    ``folder/images``: the inspect action's split), ``folder/boxes.csv`` (every defect box in board pixels, the
    layout of inspect's detections.csv, to score them) and ``folder/images/<group>/`` (the files, hard-linked when
    the file system allows, else copied); written beside, then moved in whole."""
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    rows, box_rows = [], []
    for e in entries:
        for source, kind in ((e.test, "test"), (e.template, "temp")):
            target = tmp / "images" / e.group / f"{e.stem}_{kind}{source.suffix}"
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except OSError:  # another file system, or links not allowed
                shutil.copyfile(source, target)
        test = f"{e.group}/{e.stem}_test{e.test.suffix}"
        rows.append({"input_path": test, "golden_path": f"{e.group}/{e.stem}_temp{e.template.suffix}",
                     "group": e.group})
        box_rows += [{"input_path": test, "x1": str(x1), "y1": str(y1), "x2": str(x2), "y2": str(y2),
                      "type": DEFECT_TYPES[int(k)]} for x1, y1, x2, y2, k in read_boxes(e.boxes).tolist()]
    (tmp / "dataset.csv").write_text(_csv_text(rows, BOARD_FIELDS))
    (tmp / "boxes.csv").write_text(_csv_text(box_rows, BOARD_BOX_FIELDS))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return folder


def _csv_text(rows: list[dict[str, str]], fields: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _convert_image(entry: Listing, images: Path, window: int, jitter: int, pass_per_fail: float, seed: int
                   ) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The image's crops as dataset.csv rows, and the boxes.csv rows of every box inside each FAIL crop (clipped to
    it, in crop pixels)."""
    where = f"DeepPCB {entry.group}/{entry.stem}: "
    test, _ = decode_image(str(entry.test), where=where)
    golden, _ = decode_image(str(entry.template), where=where)
    if test.shape[-1] != golden.shape[-1]:  # one grey, one colour file: keep both in colour
        test, golden = to_rgb(test), to_rgb(golden)
    if test.shape != golden.shape:
        raise DataError(f"{where}test {test.shape[:2]} and template {golden.shape[:2]} differ in size")
    if min(test.shape[:2]) < window:
        raise DataError(f"{where}image {test.shape[:2]} is smaller than window_size {window}")
    boxes = read_boxes(entry.boxes)
    rng = np.random.default_rng([seed, zlib.crc32(entry.stem.encode())])
    windows = crop_windows(boxes, test.shape[:2], window, jitter, pass_per_fail, rng)
    rows, box_rows = [], []
    test_dir, golden_dir = f"{entry.group}/test", f"{entry.group}/golden"
    for d in (test_dir, golden_dir):
        (images / d).mkdir(parents=True, exist_ok=True)
    for k, (left, top, label) in enumerate(windows):
        name = f"{entry.stem}_{k:02d}"
        for d, img in ((test_dir, test), (golden_dir, golden)):
            crop = np.ascontiguousarray(img[top:top + window, left:left + window].squeeze(-1)
                                        if img.shape[-1] == 1 else img[top:top + window, left:left + window])
            Image.fromarray(crop).save(images / d / f"{name}.jpg", quality=JPEG_QUALITY)
        rows.append({"input_path": test_dir, "golden_path": golden_dir, "label": label, "object_name": name,
                     "group": entry.group, "crop_x": str(left), "crop_y": str(top)})
        if label != "PASS":
            inside = np.clip(boxes[:, :4] - [left, top, left, top], 0, window)
            keep = (inside[:, 2] > inside[:, 0]) & (inside[:, 3] > inside[:, 1])
            box_rows += [{"input_path": test_dir, "object_name": name, "x1": str(x1), "y1": str(y1), "x2": str(x2),
                          "y2": str(y2), "type": DEFECT_TYPES[int(kind)]}
                         for (x1, y1, x2, y2), kind in zip(inside[keep].tolist(), boxes[keep, 4])]
    return rows, box_rows

