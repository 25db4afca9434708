"""Reading and validating a split CSV (TAO columns `input_path, golden_path, object_name, label`)."""
from __future__ import annotations

import csv
import difflib
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError
from .archives import prepare_images_dir
from .paths import csv_folder_problem, existing_files, image_paths, light_names, unsafe_part

if TYPE_CHECKING:
    from ..config.dataset import DatasetConfig

log = logging.getLogger(__name__)

PATH_COLUMNS = ("input_path", "golden_path", "object_name")
LABEL_COLUMN = "label"
PASS = "PASS"
_BLANK_LABELS = {"", "nan", "none", "null", "na", "n/a"}
_SHOWN = 10  # problems listed in one message before "... and N more"
SPLITS = {"train": "train_dataset", "val": "validation_dataset", "test": "test_dataset", "predict": "infer_dataset"}


@dataclass
class PairTable:
    """One split: the CSV rows in file order and where each pair's images are."""

    csv_path: Path
    images_dir: Path
    image_ext: str
    lights: list[str]
    fieldnames: list[str]
    rows: list[dict[str, str]]
    labels: np.ndarray  # int8: 1 defect, 0 pass, -1 unknown
    raw_labels: list[str]
    lines: list[int] = field(default_factory=list)  # CSV line of each row (header = line 1)
    _test: list[list[str]] = field(default_factory=list, repr=False)
    _golden: list[list[str]] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return len(self.rows)

    def test_paths(self, i: int) -> list[Path]:
        """Files of the test image of row ``i`` (one per light)."""
        return [Path(p) for p in self._test[i]]

    def golden_paths(self, i: int) -> list[Path]:
        """Files of the golden image of row ``i`` (one per light)."""
        return [Path(p) for p in self._golden[i]]

    def test_keys(self) -> list[tuple[str, ...]]:
        """Per row, the tuple of test files (a hashable key for de-duplication)."""
        return [tuple(p) for p in self._test]

    def golden_keys(self) -> list[tuple[str, ...]]:
        """Per row, the tuple of golden files (rows sharing a golden share a key)."""
        return [tuple(p) for p in self._golden]

    @property
    def has_labels(self) -> bool:
        return bool(len(self.labels)) and bool((self.labels >= 0).all())


def split_table(dataset_cfg: DatasetConfig, split: str) -> PairTable:
    """The checked PairTable of split ``train``/``val``/``test``/``predict`` of a dataset config."""
    if split not in SPLITS:
        raise KeyError(f"unknown split {split!r}; one of {list(SPLITS)}")
    key = SPLITS[split]
    split_cfg = getattr(dataset_cfg, key)
    if not split_cfg.csv_path or not split_cfg.images_dir:
        raise DataError(f"dataset.{key}.csv_path and dataset.{key}.images_dir must be set for the {split} split")
    return read_split(split_cfg.csv_path, split_cfg.images_dir, dataset_cfg, require_label=split != "predict")


def read_split(csv_path: str | Path, images_dir: str | Path, dataset_cfg: DatasetConfig, require_label: bool = True,
               check_files: bool = True) -> PairTable:
    """Read ``csv_path`` and check it against ``images_dir``; raise one DataError listing every problem found.

    ``images_dir`` may be the folder holding the CSV's paths, a folder wrapping it (``images/``,
    ``images/images/``), or an ``images.tar.gz`` (or a folder holding one), extracted safely once
    (:func:`optical_inspection.data.archives.prepare_images_dir`); ``PairTable.images_dir`` is the folder used.
    Labels: ``PASS`` (case and surrounding spaces ignored) = 0, anything else = 1 (defect), -1 when the CSV has
    no label column (only allowed with ``require_label=False``, e.g. inference).
    """
    csv_path = Path(csv_path)
    images_dir = Path(images_dir)
    fieldnames, rows, lines = _read_csv(csv_path, require_label)
    _check_cells(csv_path, rows, lines, fieldnames)
    images_dir = prepare_images_dir(images_dir, csv_path)
    lights = light_names(dataset_cfg)
    ext = dataset_cfg.image_ext
    test = [image_paths(images_dir, r["input_path"], r["object_name"], lights, ext) for r in rows]
    golden = [image_paths(images_dir, r["golden_path"], r["object_name"], lights, ext) for r in rows]
    if check_files:
        _check_files(csv_path, images_dir, test, golden, lines)
    labels, raw = _labels(csv_path, rows, fieldnames)
    return PairTable(csv_path, images_dir, ext, lights, fieldnames, rows, labels, raw, lines, test, golden)


def _read_csv(csv_path: Path, require_label: bool) -> tuple[list[str], list[dict[str, str]], list[int]]:
    """Header, rows and each row's line number; errors for a missing/empty file, wrong delimiter, bad columns."""
    if not csv_path.is_file():
        raise DataError(f"CSV '{csv_path}' does not exist (check the split's csv_path)")
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"CSV '{csv_path}' is not UTF-8 text ({exc}); save it as UTF-8 CSV") from None
    if not text.strip():
        raise DataError(f"CSV '{csv_path}' is empty; it needs a header line "
                        f"'input_path,golden_path,label,object_name' and one row per pair")
    header = text.splitlines()[0]
    if "," not in header:
        for sep, name in ((";", "semicolons"), ("\t", "tabs")):
            if sep in header:
                raise DataError(f"CSV '{csv_path}' separates columns with {name}; TAO splits use commas. "
                                f"Re-save it comma-separated (header now: {header[:120]!r})")
    reader = csv.DictReader(io.StringIO(text))
    fieldnames = list(reader.fieldnames or [])
    required = list(PATH_COLUMNS) + ([LABEL_COLUMN] if require_label else [])
    missing = [c for c in required if c not in fieldnames]
    if missing:
        hints = []
        for col in missing:
            close = [f for f in fieldnames if f.strip().lower() == col] or difflib.get_close_matches(col, fieldnames, 1)
            hints.append(f"'{col}'" + (f" (found '{close[0]}': rename it)" if close else ""))
        raise DataError(f"CSV '{csv_path}' lacks column(s) {', '.join(hints)}; header is {fieldnames}. "
                        f"A split needs input_path, golden_path, object_name" + (", label" if require_label else ""))
    rows, lines = [], []
    try:
        for row in reader:
            if None in row:
                raise DataError(f"CSV '{csv_path}' line {reader.line_num}: more cells than header columns "
                                f"(unquoted comma in a value?)")
            if not any((v or "").strip() for v in row.values()):
                continue
            rows.append({k: (v if v is not None else "") for k, v in row.items()})
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise DataError(f"CSV '{csv_path}' line {reader.line_num}: {exc}") from None
    if not rows:
        raise DataError(f"CSV '{csv_path}' has a header but no rows; add one row per pair")
    return fieldnames, rows, lines


def _check_cells(csv_path: Path, rows: list[dict[str, str]], lines: list[int], fieldnames: list[str]) -> None:
    """Blank or escaping paths, blank labels and duplicate pairs, all reported at once."""
    problems: list[str] = []
    has_label = LABEL_COLUMN in fieldnames
    seen: dict[tuple[str, str, str], int] = {}
    absolute = 0
    for row, line in zip(rows, lines):
        for col in PATH_COLUMNS:
            value = row[col].strip()
            if not value:
                problems.append(f"line {line}: '{col}' is blank")
            elif col == "object_name":
                if (why := unsafe_part(value)) is not None:
                    problems.append(f"line {line}: 'object_name' {value!r} {why}; it is a file stem, not a path")
            elif (why := csv_folder_problem(value)) is not None:
                problems.append(f"line {line}: '{col}' {value!r} {why}")
            elif value.replace("\\", "/").startswith("/"):
                absolute += 1
        if has_label and row[LABEL_COLUMN].strip().lower() in _BLANK_LABELS:
            problems.append(f"line {line}: 'label' is blank/NaN; write PASS or the defect type")
        key = (row["input_path"], row["golden_path"], row["object_name"])
        if key in seen:
            problems.append(f"line {line}: duplicate of line {seen[key]} (same input_path, golden_path, object_name)")
        else:
            seen[key] = line
    if problems:
        raise DataError(_listing(f"CSV '{csv_path}' has {len(problems)} problem(s)", problems))
    if absolute:
        log.info("%s: %d input_path/golden_path cell(s) are absolute folders, used as they are (images_dir does not "
                 "apply to them, as in TAO)", csv_path, absolute)


def _check_files(csv_path: Path, images_dir: Path, test: list[list[str]], golden: list[list[str]],
                 lines: list[int]) -> None:
    """Every referenced image exists, checked once per run with one folder listing per folder."""
    wanted = [p for files in test + golden for p in files]
    found = existing_files(wanted)
    if len(found) == len(set(wanted)):
        return
    hint = (" - none of them exists: is images_dir the folder holding the input_path/golden_path folders?"
            if not found else "")
    missing = sorted((line, column, p) for column, table in (("input_path", test), ("golden_path", golden))
                     for files, line in zip(table, lines) for p in files if p not in found)
    raise DataError(_listing(f"{len(missing)} image file(s) referenced by '{csv_path}' are missing under "
                             f"'{images_dir}' (check images_dir, image_ext and input_map){hint}",
                             [f"line {line}, {column}: {p}" for line, column, p in missing]))


def _labels(csv_path: Path, rows: list[dict[str, str]], fieldnames: list[str]) -> tuple[np.ndarray, list[str]]:
    if LABEL_COLUMN not in fieldnames:
        return np.full(len(rows), -1, dtype=np.int8), [""] * len(rows)
    raw = [r[LABEL_COLUMN] for r in rows]
    normalised = np.array([v.strip().upper() for v in raw])
    labels = (normalised != PASS).astype(np.int8)
    variants = sorted({v for v, n in zip(raw, normalised) if n == PASS and v != PASS})
    if variants:
        log.warning("%s: labels %s read as PASS (TAO would count them as defects)", csv_path, variants)
    return labels, raw


def _listing(head: str, items: list[str]) -> str:
    shown = "\n".join(f"  - {m}" for m in items[:_SHOWN])
    more = f"\n  ... and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return f"{head}:\n{shown}{more}"
