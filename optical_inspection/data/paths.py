"""Where a pair's image files live: TAO's rule `images_dir/<dir>/<object_name>[_<Light>]<image_ext>`."""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config.dataset import DatasetConfig


def _plainly_relative(value: str) -> bool:
    """No separator of another system, drive, ``..`` or leading slash: safe without parsing (most cells; one
    pathlib parse per cell cost about a second per 10,000 pairs)."""
    return "\\" not in value and ":" not in value and ".." not in value and not value.startswith("/")


def unsafe_part(value: str) -> str | None:
    """Why a CSV path component would escape ``images_dir`` (absolute, drive, ``..``), or None when it is safe."""
    if _plainly_relative(value):
        return None
    text = value.replace("\\", "/")
    if text.startswith("/") or PureWindowsPath(value).drive or PurePosixPath(text).is_absolute():
        return "is absolute"
    if ".." in PurePosixPath(text).parts:
        return "contains '..'"
    return None


def csv_folder_problem(value: str) -> str | None:
    """Why an ``input_path``/``golden_path`` cell is unusable, or None. As in TAO, a POSIX absolute folder is used
    as it is (``images_dir`` does not apply to it); ``..`` and Windows drive paths are refused."""
    if _plainly_relative(value):
        return None
    text = value.replace("\\", "/")
    if PureWindowsPath(value).drive and not text.startswith("/"):
        return "is a Windows drive path; write it relative to images_dir, or as an absolute path of this machine"
    if ".." in PurePosixPath(text).parts:
        return "contains '..'; write it relative to images_dir, or absolute"
    return None


def image_paths(images_dir: str | Path, folder: str, object_name: str, lights: list[str], image_ext: str
                ) -> list[str]:
    """The normalised file path of each light (one file without a suffix when ``lights`` is empty)."""
    if "/" in object_name or "\\" in object_name or object_name in (".", ".."):
        stem = os.path.normpath(os.path.join(str(images_dir), folder.replace("\\", "/"), object_name))
    else:  # a plain file name: its folder's normalised path (computed once per folder) + the name
        base = _folder(str(images_dir), folder)
        stem = object_name if base == "." else os.path.join(base, object_name)
    if not lights:
        return [stem + image_ext]
    return [f"{stem}_{light}{image_ext}" for light in lights]


@lru_cache(maxsize=4096)
def _folder(images_dir: str, folder: str) -> str:
    return os.path.normpath(os.path.join(images_dir, folder.replace("\\", "/")))


def existing_files(paths: list[str]) -> set[str]:
    """The subset of (normalised) ``paths`` that are files, listing each folder once instead of one stat per file."""
    folders = {os.path.dirname(p) for p in paths}
    found: set[str] = set()
    for folder in folders:
        try:
            with os.scandir(folder or ".") as entries:
                found.update(os.path.join(folder, e.name) for e in entries if e.is_file())
        except OSError:
            continue
    return found.intersection(paths)


def light_names(dataset_cfg: DatasetConfig) -> list[str]:
    """The light suffixes: the keys of ``dataset.input_map`` in order; [] (one image per side) when it is empty."""
    return list(dataset_cfg.input_map or {})
