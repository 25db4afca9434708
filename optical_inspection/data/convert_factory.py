"""TAO's raw "factory PCB" AOI export -> ``train_combined.csv`` / ``valid_combined.csv`` pair CSVs.

Inputs under ``root_dataset_dir`` (paths joined properly, no trailing slashes needed):
board summary CSVs in ``train_pcb_dataset_dir`` / ``val_pcb_dataset_dir`` (their *names* select the boards of each
split: ``<prefix>_<Project>~<TOP|BOT>_<Board>...csv`` or ``<prefix>_<Project>_<TOP|BOT>_<Board>...csv``), the
per-board component CSVs of the same names in ``all_pcb_dataset_dir`` (one row per component x light), and golden
indexes ``<Project><TOP|BOT>.csv`` in ``golden_csv_dir``.

Fixes over TAO: the top/bottom filter works, the output folder is created, ``object_name`` is the image name
without its light suffix (component names may contain ``_``), the lights are those found in the data (not 4
hard-coded), the directory rewrite is decided per row, and only rows lacking a golden are dropped.
"""
from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import DataError
from ..io_utils import write_text_atomic

log = logging.getLogger(__name__)

BOARD_COLUMNS = ("Project", "TOP_BOT", "BoardSN", "CompName", "TB_Panel", "directory", "LightingCondition",
                 "ConfirmDefect", "image_name")
GOLDEN_COLUMNS = ("CompName", "TOP_BOT", "TB_Panel", "directory")
OUTPUT_FIELDS = ["input_path", "golden_path", "label", "object_name"]
SPLIT_FILES = {"train": "train_combined.csv", "val": "valid_combined.csv"}


@dataclass(frozen=True)
class BoardFile:
    """A board CSV selected by its name."""

    name: str
    project: str
    side: str
    board: str


def parse_board_name(name: str) -> BoardFile:
    """Project, side and board of a summary CSV name (TAO's naming rule)."""
    fields = name[:-4].split("_")
    try:
        if "~" in fields[1]:
            project, side = fields[1].split("~", 1)
            board = fields[2]
        else:
            project, side, board = fields[1], fields[2], fields[3]
    except IndexError:
        raise DataError(f"board CSV name '{name}' does not follow '<prefix>_<Project>~<TOP|BOT>_<Board>...csv' or "
                        f"'<prefix>_<Project>_<TOP|BOT>_<Board>...csv'") from None
    return BoardFile(name, project, side.upper(), board)


def list_boards(folder: Path, project_name: str, bot_top: str) -> list[BoardFile]:
    """Board CSVs of a split folder, filtered by project and side."""
    if not folder.is_dir():
        raise DataError(f"board list folder '{folder}' does not exist")
    boards = [parse_board_name(p.name) for p in sorted(folder.iterdir()) if p.suffix.lower() == ".csv"]
    return [b for b in boards if (project_name == "all" or b.project == project_name)
            and (bot_top == "all" or b.side == bot_top)]


def read_csv_rows(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    if not path.is_file():
        raise DataError(f"CSV '{path}' does not exist")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"CSV '{path}' lacks column(s) {missing}; header is {reader.fieldnames}")
        return [{k: (v or "").strip() for k, v in row.items() if k is not None} for row in reader]


def golden_index(path: Path) -> dict[tuple[str, str, str], str]:
    """(CompName, TOP_BOT, TB_Panel) -> golden folder, trimmed to start at its ``golden`` component."""
    index = {}
    for row in read_csv_rows(path, GOLDEN_COLUMNS):
        parts = PurePosixPath(row["directory"].replace("\\", "/")).parts
        if "golden" in parts:
            parts = parts[parts.index("golden"):]
        index[(row["CompName"], row["TOP_BOT"], row["TB_Panel"])] = str(PurePosixPath(*parts))
    return index


def board_pairs(rows: list[dict[str, str]], lights: set[str], goldens: dict[tuple[str, str, str], str]
                ) -> tuple[list[dict[str, str]], int, int]:
    """One output row per component with every light and a golden; also (dropped light rows, rows lacking golden)."""
    groups: dict[tuple[str, ...], list[dict[str, str]]] = {}
    for row in rows:
        directory = row["directory"].replace("\\", "/").strip("/")
        if PurePosixPath(directory).parts[:1] != (row["Project"],):
            directory = f"{row['Project']}/{'AOI_B' if row['TOP_BOT'].upper() == 'BOT' else 'AOI_T'}/{directory}"
        key = (row["Project"], row["BoardSN"], row["TOP_BOT"], row["CompName"], row["TB_Panel"], directory)
        groups.setdefault(key, []).append(row)
    out, dropped, no_golden = [], 0, 0
    for (_, _, side, comp, panel, directory), group in groups.items():
        if {r["LightingCondition"] for r in group} != lights or len(group) != len(lights):
            dropped += len(group)
            continue
        golden = goldens.get((comp, side, panel))
        if golden is None:
            no_golden += 1
            continue
        defects = sorted({r["ConfirmDefect"] for r in group if r["ConfirmDefect"] not in ("", "PASS", "nan", "NaN")})
        out.append({"input_path": directory, "golden_path": golden, "label": "_".join(defects) or "PASS",
                    "object_name": _object_name(group[0], comp, panel)})
    return out, dropped, no_golden


def _object_name(row: dict[str, str], comp: str, panel: str) -> str:
    """The image name without extension and light suffix (TAO cut it at the first '_')."""
    stem = PurePosixPath(row["image_name"]).stem
    suffix = "_" + row["LightingCondition"]
    if stem.endswith(suffix):
        return stem[: -len(suffix)]
    return f"{comp}@{panel}"


def convert_factory(cfg) -> dict:
    """Run the conversion for a ``dataset_convert`` config; return written CSVs and counts."""
    root = Path(cfg.root_dataset_dir or ".")
    needed = {k: getattr(cfg, k) for k in ("train_pcb_dataset_dir", "val_pcb_dataset_dir", "all_pcb_dataset_dir",
                                            "golden_csv_dir")}
    unset = [k for k, v in needed.items() if not v]
    if unset:
        raise DataError("format factory_pcb needs " + ", ".join(f"dataset_convert.{k}" for k in unset))
    out_dir = Path(cfg.data_convert_output_dir)
    splits = {"train": list_boards(root / cfg.train_pcb_dataset_dir, cfg.project_name, cfg.bot_top),
              "val": list_boards(root / cfg.val_pcb_dataset_dir, cfg.project_name, cfg.bot_top)}
    if not any(splits.values()):
        raise DataError(f"no board CSVs match project_name={cfg.project_name!r} and bot_top={cfg.bot_top!r} in "
                        f"{root / cfg.train_pcb_dataset_dir} or {root / cfg.val_pcb_dataset_dir}")
    board_rows = {b.name: read_csv_rows(root / cfg.all_pcb_dataset_dir / b.name, BOARD_COLUMNS)
                  for boards in splits.values() for b in boards}
    lights = _lights_per_side(splits, board_rows)
    goldens: dict[tuple[str, str], dict] = {}
    result: dict = {"artifacts": {}, "counts": {}}
    texts = {}
    for split, boards in splits.items():
        rows, dropped, no_golden = [], 0, 0
        for b in boards:
            side_key = (b.project, b.side)
            if side_key not in goldens:
                goldens[side_key] = golden_index(root / cfg.golden_csv_dir / f"{b.project}{b.side}.csv")
            pairs, d, g = board_pairs(board_rows[b.name], lights[side_key], goldens[side_key])
            rows += pairs
            dropped += d
            no_golden += g
        if dropped:
            log.warning("%s: dropped %d row(s) of components lacking some of the lights", split, dropped)
        if no_golden:
            log.warning("%s: dropped %d component(s) without a golden image in the golden index", split, no_golden)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=OUTPUT_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        texts[split] = buf.getvalue()
        result["counts"][split] = {"pairs": len(rows), "fail": sum(r["label"] != "PASS" for r in rows),
                                   "dropped_light_rows": dropped, "no_golden": no_golden}
    for split, text in texts.items():  # written only once every split converted
        result["artifacts"][f"{split}_csv"] = str(write_text_atomic(out_dir / SPLIT_FILES[split], text))
    return result


def _lights_per_side(splits: dict[str, list[BoardFile]], board_rows: dict[str, list[dict[str, str]]]
                     ) -> dict[tuple[str, str], set[str]]:
    """The lights of each (project, side): every LightingCondition found in its board CSVs."""
    lights: dict[tuple[str, str], set[str]] = {}
    for boards in splits.values():
        for b in boards:
            lights.setdefault((b.project, b.side), set()).update(r["LightingCondition"] for r in board_rows[b.name])
    return lights
