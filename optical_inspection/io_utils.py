"""Atomic writes: every artefact is written to a temp file in the same folder, then renamed.

Temps are created with mode ``0666 & ~umask`` (what a plain ``open()`` would give, so the final files respect the
umask) and are named ``.<target name>.<random>.oi-tmp``, so the temps a killed process left behind are recognised
and removed (:func:`remove_stale_temps`) at the start of the next run into that folder and by a runner resume.
Text files go through :func:`optical_inspection.redaction.redact`: no secret value is ever written.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path
from typing import Iterator

TEMP_SUFFIX = ".oi-tmp"


def temp_sibling(target: str | Path) -> Path:
    """A fresh, recognisable temp name next to ``target`` (nothing is created)."""
    target = Path(target)
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


def make_temp_dir(target: str | Path) -> Path:
    """Create a recognisable temp folder next to ``target`` (mode 0777 & ~umask)."""
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    while True:
        path = temp_sibling(target)
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue


def make_temp_file(target: str | Path) -> Path:
    """Create an empty, recognisable temp file next to ``target`` (mode 0666 & ~umask)."""
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    while True:
        path = temp_sibling(target)
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies
            return path
        except FileExistsError:
            continue


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temp path next to ``target``; rename it onto ``target`` only if the block succeeds."""
    target = Path(target)
    tmp_path = make_temp_file(target)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(target: str | Path, text: str) -> Path:
    """Write text to ``target`` atomically, secrets redacted."""
    from .redaction import redact

    with atomic_path(target) as tmp:
        tmp.write_text(redact(text), encoding="utf-8")
    return Path(target)


def stale_temps(folder: str | Path) -> list[Path]:
    """The temps (files and folders) left in ``folder`` by writes that never finished."""
    folder = Path(folder)
    return sorted(folder.glob(f".*{TEMP_SUFFIX}")) if folder.is_dir() else []


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Remove the stale temps of ``folder`` (call it only while no other process writes there); returns them."""
    found = stale_temps(folder)
    for path in found:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return found
