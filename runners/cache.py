"""The content-addressed cache under the jobs root: downloaded objects and extracted archives.

Layout: ``objects/<sha256>/<file name>``, ``index/<sha256 of an origin key>.json`` (origin -> object, so an S3
object is downloaded once per ETag), ``extracted/<sha256 of the archive>/`` and ``mirrors/<sha256 of an S3
listing>/`` (loose objects). Entries appear by atomic rename, so two runners filling the same entry at once never
see a half-written one.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable, Iterator

from .errors import DataSourceError
from optical_inspection.io_utils import make_temp_dir, make_temp_file
from optical_inspection.locks import file_lock

_CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ContentCache:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def lookup(self, origin: str) -> Path | None:
        """The cached object recorded for ``origin``, if it is still there."""
        entry = self._index_path(origin)
        try:
            info = json.loads(entry.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        path = self.root / "objects" / info["sha256"] / info["name"]
        return path if path.is_file() else None

    @contextlib.contextmanager
    def incoming(self, name: str) -> Iterator[Path]:
        """A temp path to download into; removed unless :meth:`store` moved it into the cache."""
        path = make_temp_file(self.root / "tmp" / name)
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)

    def store(self, tmp: Path, name: str, origin: str) -> Path:
        """Move a downloaded file to ``objects/<sha256>/<name>`` and record where it came from."""
        from optical_inspection.io_utils import write_text_atomic

        sha = sha256_of(tmp)
        folder = self.root / "objects" / sha
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
        os.replace(tmp, target)
        write_text_atomic(self._index_path(origin), json.dumps({"sha256": sha, "name": name}))
        return target

    def extracted(self, archive: Path) -> Path:
        """The folder holding ``archive`` extracted (safely, once per content)."""
        from optical_inspection.data.archives import safe_extract
        from optical_inspection.errors import OIError

        sha = self._sha_of_object(archive)
        target = self.root / "extracted" / sha
        if target.is_dir():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(target.parent / f"{sha}.lock"):
            if not target.is_dir():
                try:
                    safe_extract(archive, target)
                except OIError as exc:
                    raise DataSourceError(str(exc)) from None
        return target

    def mirrored(self, origin: str, fill: Callable[[Path], None]) -> Path:
        """``mirrors/<sha256 of origin>/``, filled once by ``fill(folder)`` into a temp folder then renamed, so a
        failed or interrupted download leaves nothing behind and a finished one is never filled again."""
        target = self.root / "mirrors" / hashlib.sha256(origin.encode()).hexdigest()
        if target.is_dir():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(target.parent / f"{target.name}.lock"):
            if not target.is_dir():
                work = make_temp_dir(target)
                try:
                    fill(work)
                    os.replace(work, target)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
        return target

    def split_folder(self, csv_path: Path, images_dir: Path) -> Path:
        """A folder linking ``dataset.csv`` and ``images`` to cached files, for keys that take split folders."""
        key = hashlib.sha256(f"{csv_path}\n{images_dir}".encode()).hexdigest()[:32]
        folder = self.root / "splits" / key
        if folder.is_dir():
            return folder
        folder.parent.mkdir(parents=True, exist_ok=True)
        work = make_temp_dir(folder)
        os.symlink(csv_path, work / "dataset.csv")
        os.symlink(images_dir, work / "images")
        try:
            os.replace(work, folder)
        except OSError:  # another runner made it first
            shutil.rmtree(work, ignore_errors=True)
        return folder

    def _sha_of_object(self, path: Path) -> str:
        """Objects already in the cache are named by their hash; other files are hashed."""
        path = Path(path).resolve()
        objects = (self.root / "objects").resolve()
        if path.parent.parent == objects and len(path.parent.name) == 64:
            return path.parent.name
        return sha256_of(path)

    def _index_path(self, origin: str) -> Path:
        return self.root / "index" / f"{hashlib.sha256(origin.encode()).hexdigest()}.json"
