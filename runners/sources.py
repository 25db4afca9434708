"""Data sources: `--data SOURCE=LOCATION` → the spec keys that skill_info's data_sources table names.

A LOCATION is a split folder holding ``dataset.csv`` and ``images/`` (or ``images.tar.gz``), or an
``s3://bucket/prefix`` URI of such a folder. Archives are extracted once into the content-addressed cache, loose
S3 objects under ``images/`` are mirrored into it once, and the image root is found by the data package's wrapper
detection (``images/``, ``images/images/``...).
``plan`` (materialize=False) checks that everything exists but downloads and extracts nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cache import ContentCache
from .errors import DataSourceError, RequestError
from .skill_info import SkillInfo

CSV_NAME = "dataset.csv"
BOXES_NAME = "boxes.csv"  # optional defect boxes beside a local split's CSV (dataset_convert writes them)
ARCHIVE_NAMES = ("images.tar.gz", "images.tgz", "images.tar")
IMAGES_FOLDER = "images/"


@dataclass(frozen=True)
class Split:
    """One resolved location: where its CSV and image root are (or will be, once materialized)."""

    location: str
    folder: str
    csv_path: str
    images_dir: str
    how: str
    boxes_path: str | None = None

    def as_dict(self) -> dict[str, str]:
        out = {"location": self.location, "csv_path": self.csv_path, "images_dir": self.images_dir, "how": self.how}
        return {**out, "boxes_path": self.boxes_path} if self.boxes_path else out


def parse_data_args(items: list[str] | None) -> dict[str, list[str]]:
    """`SOURCE=LOCATION` items (repeatable) → {source: [locations]}."""
    data: dict[str, list[str]] = {}
    for item in items or []:
        source, sep, location = item.partition("=")
        if not sep or not source.strip() or not location.strip():
            raise RequestError(f"--data '{item}' is not SOURCE=LOCATION (e.g. train_datasets=/data/train "
                               "or eval_dataset=s3://bucket/val)")
        data.setdefault(source.strip(), []).append(location.strip())
    return data


def resolve_sources(action: str, data: dict[str, list[str]], skill: SkillInfo, cache: ContentCache,
                    materialize: bool) -> tuple[list[tuple[str, Any, str]], dict[str, list[dict[str, str]]]]:
    """The (key, value, source) assignments for the spec, and the resolved splits per source; a DataSourceError
    lists every location that cannot be read."""
    assignments, resolved, problems = collect_sources(action, data, skill, cache, materialize)
    if problems:
        raise DataSourceError(problems)
    return assignments, resolved


def collect_sources(action: str, data: dict[str, list[str]], skill: SkillInfo, cache: ContentCache,
                    materialize: bool
                    ) -> tuple[list[tuple[str, Any, str]], dict[str, list[dict[str, str]]], list[str]]:
    """Like :func:`resolve_sources`, but unreadable locations come back as problems, and their source's keys get
    a stand-in value, so a plan can still check (and report at once) everything else."""
    table = skill.data_sources(action)
    unknown = [s for s in data if s not in table]
    if unknown:
        allowed = ", ".join(table) or "none"
        raise RequestError([f"--data {s}: {action} reads no data source '{s}' (its sources: {allowed})"
                            for s in unknown])
    assignments: list[tuple[str, Any, str]] = []
    resolved: dict[str, list[dict[str, str]]] = {}
    problems: list[str] = []
    for source, locations in data.items():
        splits = []
        for location in locations:  # every unreadable location is reported, not only the first
            try:
                splits.append(resolve_split(location, cache, materialize))
            except DataSourceError as exc:
                problems += exc.problems
        if len(splits) < len(locations):
            unreadable = f"<data source {source} could not be read>"
            assignments += [(key, [unreadable] if kind == "folder_list" else unreadable,
                             f"data source {source} (unreadable)")
                            for mapping in table[source] for kind, key in mapping.items()]
            continue
        resolved[source] = [s.as_dict() for s in splits]
        for mapping in table[source]:
            if "folder_list" in mapping:
                folders = [split_folder(s, cache, materialize) for s in splits]
                assignments.append((mapping["folder_list"], folders, f"data source {source}"))
                continue
            if len(splits) > 1:
                raise RequestError(f"--data {source}: {action} takes one location for this source "
                                   f"(got {len(splits)}: {', '.join(s.location for s in splits)})")
            split = splits[0]
            assignments.append((mapping["csv"], split.csv_path, f"data source {source} ({split.location})"))
            assignments.append((mapping["images"], split.images_dir, f"data source {source} ({split.location})"))
            if "boxes" in mapping and split.boxes_path:
                assignments.append((mapping["boxes"], split.boxes_path, f"data source {source} ({split.location})"))
    return assignments, resolved, problems


def resolve_split(location: str, cache: ContentCache, materialize: bool) -> Split:
    if location.startswith(("s3://", "aws://")):
        from .s3 import split_credentials

        uri, credentials = split_credentials("s3://" + location.split("://", 1)[1])
        return _s3_split(uri, cache, materialize, credentials)
    return _local_split(location, cache, materialize)


def _local_split(location: str, cache: ContentCache, materialize: bool) -> Split:
    folder = Path(location).expanduser().resolve()
    if not folder.exists():
        raise DataSourceError(f"data location '{location}' does not exist (expected a split folder holding "
                              f"{CSV_NAME} and images/ or images.tar.gz, or an s3:// URI)")
    if not folder.is_dir():
        raise DataSourceError(f"data location '{location}' is a file; give the split folder that holds {CSV_NAME} "
                              "and images/ (or images.tar.gz)")
    csv_path = folder / CSV_NAME
    if not csv_path.is_file():
        raise DataSourceError(f"{folder}: no {CSV_NAME} here (found: {_listing(folder)})")
    archive = next((folder / n for n in ARCHIVE_NAMES if (folder / n).is_file()), None)
    boxes = str(folder / BOXES_NAME) if (folder / BOXES_NAME).is_file() else None
    if archive is None or (folder / "images").is_dir():
        images = _images_dir(folder, csv_path, location)
        return Split(location, str(folder), str(csv_path), images, "local folder", boxes)
    if not materialize:
        return Split(location, str(folder), str(csv_path), f"<extracted at run time from {archive}>",
                     f"local archive {archive.name} (extracted into the cache by run)", boxes)
    root = cache.extracted(archive)
    return Split(location, str(folder), str(csv_path), _images_dir(root, csv_path, location),
                 f"local archive {archive.name} extracted into {root}", boxes)


def _s3_split(uri: str, cache: ContentCache, materialize: bool, credentials: tuple[str, str] | None) -> Split:
    """``uri`` holds no credentials (they come apart in ``credentials``, used for this location only)."""
    from optical_inspection.data.archives import DEFAULT_MAX_BYTES

    from . import s3

    client = s3.make_client(credentials)
    found = s3.list_split(client, uri)
    csv_object = found.get(CSV_NAME)
    if csv_object is None:
        raise DataSourceError(f"{uri}/{CSV_NAME} does not exist (found under {uri}/: "
                              f"{', '.join(sorted(found)) or 'nothing'})")
    archive_name = next((n for n in ARCHIVE_NAMES if found.get(n) is not None), None)
    if archive_name is None and IMAGES_FOLDER not in found:
        raise DataSourceError(f"{uri}: no images archive ({' / '.join(ARCHIVE_NAMES)}) and no {IMAGES_FOLDER} "
                              f"folder next to {CSV_NAME} (found: {', '.join(sorted(found))})")
    images = archive_name or IMAGES_FOLDER
    if not materialize:
        pending = f"<downloaded at run time from {uri}>"
        return Split(uri, pending, pending, pending, f"s3 {CSV_NAME} + {images} (downloaded by run)")
    csv_path = s3.download(client, csv_object, cache)
    if archive_name is None:
        root = s3.mirror(client, f"{uri}/{IMAGES_FOLDER.rstrip('/')}", cache, DEFAULT_MAX_BYTES)
        how = f"s3 {CSV_NAME} + {IMAGES_FOLDER} downloaded into the cache at {root}"
    else:
        archive = s3.download(client, found[archive_name], cache)  # type: ignore[arg-type]
        root = cache.extracted(archive)
        how = f"s3 {CSV_NAME} + {archive_name} downloaded into the cache, extracted into {root}"
    return Split(uri, str(csv_path.parent), str(csv_path), _images_dir(root, csv_path, uri), how)


def split_folder(split: Split, cache: ContentCache, materialize: bool) -> str:
    """A folder holding dataset.csv and images/ for keys that take split folders (calibration)."""
    if split.how == "local folder":
        return split.folder
    if not materialize:
        return split.images_dir
    return str(cache.split_folder(Path(split.csv_path), Path(split.images_dir)))


def _images_dir(root: Path, csv_path: Path, location: str) -> str:
    """The folder under ``root`` that holds the CSV's image paths (the data package's wrapper detection: root,
    images/, images/images/...). None found is a data-source error; a CSV that cannot be read is left to the
    trainer's CSV checks, which name the row and column."""
    from optical_inspection.data.archives import find_images_dir, sample_folders

    found = find_images_dir(root, csv_path)
    if found is not None:
        return str(found)
    named = sorted(sample_folders(csv_path))
    if named:
        raise DataSourceError(f"{location}: the image folders {CSV_NAME} names (e.g. '{named[0]}') are not in "
                              f"{root} nor in a folder inside it (images/, images/images/, ...); put the images "
                              f"under {root}/images/<input_path>/ and <golden_path>/")
    return str(root)


def _listing(folder: Path, limit: int = 20) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return (", ".join(names[:limit]) + more) or "an empty folder"
