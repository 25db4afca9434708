"""Image folders given as archives (``images.tar.gz``): safe extraction, re-use, and wrapper detection."""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from ..errors import DataError
from .paths import unsafe_part

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")
DEFAULT_MAX_BYTES = 64 * 2**30
STAMP = ".oi_extracted.json"
_SAMPLE_ROWS = 20
_MAX_DEPTH = 3


def is_archive(path: str | Path) -> bool:
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def safe_extract(archive: str | Path, target_dir: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> Path:
    """Extract ``archive`` into ``target_dir`` (replaced as a whole, via a temp folder and a rename).

    Refuses, before writing anything, archives holding absolute paths, ``..``, symbolic or hard links, device
    or FIFO entries, or more than ``max_bytes`` of content; extraction also runs tarfile's ``data`` filter.
    """
    archive, target = Path(archive), Path(target_dir)
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise DataError(f"cannot open archive '{archive}': {exc}") from None
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"archive '{archive}' is corrupt or truncated: {exc}") from None
        _check_members(archive, members, max_bytes)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        try:
            tar.extractall(tmp, members=members, filter="data")
            _write_stamp(tmp, archive)
            _replace_dir(tmp, target)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"extracting '{archive}' failed: {exc}") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _check_members(archive: Path, members: list[tarfile.TarInfo], max_bytes: int) -> None:
    problems = []
    total = 0
    for m in members:
        why = unsafe_part(m.name)
        if why:
            problems.append(f"'{m.name}' {why}")
        elif m.issym() or m.islnk():
            problems.append(f"'{m.name}' is a link (to '{m.linkname}')")
        elif m.isdev():
            problems.append(f"'{m.name}' is a device or FIFO entry")
        elif not (m.isfile() or m.isdir()):
            problems.append(f"'{m.name}' is not a regular file or folder")
        total += max(0, m.size)
    if total > max_bytes:
        problems.append(f"content is {total / 2**20:.1f} MiB, over the {max_bytes / 2**20:.1f} MiB cap")
    if problems:
        shown = "\n".join(f"  - {p}" for p in problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise DataError(f"refusing to extract '{archive}': {len(problems)} unsafe entr(y/ies); nothing was "
                        f"written:\n{shown}{more}")


def _stamp(archive: Path) -> dict:
    st = archive.stat()
    return {"archive": str(archive.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _write_stamp(folder: Path, archive: Path) -> None:
    (folder / STAMP).write_text(json.dumps(_stamp(archive)), encoding="utf-8")


def is_extracted(archive: str | Path, target_dir: str | Path) -> bool:
    """True when ``target_dir`` holds an extraction of the unchanged ``archive`` (same path, size, mtime)."""
    stamp = Path(target_dir) / STAMP
    try:
        return json.loads(stamp.read_text(encoding="utf-8")) == _stamp(Path(archive))
    except (OSError, ValueError):
        return False


def _replace_dir(new: Path, target: Path) -> None:
    """Put ``new`` at ``target``; an older ``target`` is moved aside first and deleted after."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def extraction_dir(archive: Path) -> Path:
    """Where ``archive`` is extracted: next to it, else (read-only folder) in the user cache."""
    if os.access(archive.parent, os.W_OK):
        return archive.parent / f".{archive.name}.extracted"
    digest = hashlib.sha256(str(archive.resolve()).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "optical_inspection" / "extracted" / digest


def prepare_images_dir(images_dir: str | Path, csv_path: str | Path) -> Path:
    """The folder holding the CSV's image paths: ``images_dir`` itself, a wrapper inside it, or the extraction
    of ``images_dir`` (or of the ``images.tar.gz`` it holds) when it is an archive. Extracts only when the archive
    changed since the last extraction."""
    root = Path(images_dir)
    if root.is_dir():
        found = find_images_dir(root, csv_path)
        archives = sorted(p for p in root.iterdir() if p.is_file() and is_archive(p))
        if found is not None or not archives:
            return found or root
        archive = next((a for a in archives if a.name.startswith("images.")), archives[0])
    elif root.is_file() and is_archive(root):
        archive = root
    else:
        raise DataError(f"images_dir '{root}' does not exist (a folder, or an images.tar.gz archive)")
    target = extraction_dir(archive)
    if not is_extracted(archive, target):
        safe_extract(archive, target)
    return resolve_images_dir(target, csv_path)


def resolve_images_dir(root: str | Path, csv_path: str | Path) -> Path:
    """The folder under ``root`` (itself, ``images/``, ``images/images/`` or another folder up to 3 levels deep)
    where the CSV's ``input_path``/``golden_path`` folders exist; ``root`` when none does (the file check then
    lists what is missing)."""
    return find_images_dir(Path(root), csv_path) or Path(root)


def find_images_dir(root: Path, csv_path: str | Path) -> Path | None:
    """The folder under ``root`` holding the CSV's image folders (or image files: inspect's board lists), or None
    (also when the CSV cannot be read)."""
    folders = sample_folders(csv_path)
    if not folders:
        return None
    frontier = [root]
    for _ in range(_MAX_DEPTH + 1):
        preferred = sorted(frontier, key=lambda p: (p.name != "images", str(p)))
        for candidate in preferred:
            if all((candidate / f).exists() for f in folders):
                return candidate
        frontier = [c for p in preferred for c in _subdirs(p)]
    return None


def _subdirs(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:
        return []


def sample_folders(csv_path: str | Path) -> set[str]:
    """input_path/golden_path folders of the first rows (empty when the CSV cannot be read: read_split reports)."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            folders = set()
            for i, row in enumerate(reader):
                if i >= _SAMPLE_ROWS:
                    break
                for col in ("input_path", "golden_path"):
                    value = (row.get(col) or "").strip()
                    if value and unsafe_part(value) is None:
                        folders.add(str(PurePosixPath(value.replace("\\", "/"))))
            return folders
    except (OSError, UnicodeDecodeError, csv.Error):
        return set()
