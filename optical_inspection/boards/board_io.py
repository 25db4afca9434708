"""The whole-board list (``dataset.inspect_dataset``): every row checked before any board is inspected."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from ..data.paths import csv_folder_problem
from ..errors import DataError

COLUMNS = ("input_path", "golden_path")


@dataclass(frozen=True)
class Board:
    row: int  # 1-based data row of the CSV (the header is line 1, so this row is on line row + 1)
    input_path: str
    test: Path
    golden: Path
    size: tuple[int, int]  # (height, width)


def _size(path: Path, where: str) -> tuple[int, int]:
    """(height, width) from the file header, without decoding the pixels."""
    try:
        with Image.open(path) as img:
            return img.height, img.width
    except FileNotFoundError:
        raise DataError(f"{where}: image file not found: {path}; fix the path (relative to "
                        f"dataset.inspect_dataset.images_dir) or add the file") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{where}: cannot read image {path}: {exc}") from None


def read_boards(split: Any, max_pixels: int) -> list[Board]:
    """The boards of ``split`` (csv_path, images_dir), each test and golden present, readable and of one size."""
    if not split.csv_path or not split.images_dir:
        raise DataError("inspect needs dataset.inspect_dataset.csv_path and .images_dir")
    csv_path, root = Path(split.csv_path), Path(split.images_dir)
    if not csv_path.is_file():
        raise DataError(f"dataset.inspect_dataset.csv_path '{csv_path}' does not exist")
    if not root.is_dir():
        raise DataError(f"dataset.inspect_dataset.images_dir '{root}' is not a folder (archives are not read here: "
                        f"extract it)")
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{csv_path}: missing column(s) {missing}; a board list has columns "
                            f"{', '.join(COLUMNS)} (paths relative to images_dir)")
        rows = list(reader)
    if not rows:
        raise DataError(f"{csv_path} has a header but no boards; add one row per test/golden board pair")
    boards = []
    for n, row in enumerate(rows, start=1):
        where = f"{csv_path} row {n}"
        paths = []
        for column in COLUMNS:
            value = (row.get(column) or "").strip()
            problem = "is empty" if not value else csv_folder_problem(value)
            if problem:
                raise DataError(f"{where}: {column} {value!r} {problem}")
            paths.append(root / value)
        test_size, golden_size = _size(paths[0], where), _size(paths[1], where)
        if test_size != golden_size:
            raise DataError(f"{where}: golden {paths[1]} is {golden_size[1]}x{golden_size[0]} but test {paths[0]} is "
                            f"{test_size[1]}x{test_size[0]} (width x height); a golden must show the same board at "
                            f"the same size: crop or resize one of them")
        if test_size[0] * test_size[1] > max_pixels:
            raise DataError(f"{where}: board {paths[0]} has {test_size[0] * test_size[1]:,} pixels, over "
                            f"inspect.max_board_pixels ({max_pixels:,}); split it into smaller boards or raise the "
                            f"limit if this machine has the memory (about 20 bytes per pixel)")
        boards.append(Board(n, row["input_path"].strip(), paths[0], paths[1], test_size))
    return boards
