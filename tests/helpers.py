"""Small helpers shared by tests (no fixtures here; see conftest.py)."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, TypeVar

import pytest

import yaml

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")
TAO_SPEC = REPO / "tests" / "specs" / "tao_experiment.yaml"


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None
            ) -> subprocess.CompletedProcess:
    """Run `python -m optical_inspection ...` in a subprocess."""
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "optical_inspection", *args], cwd=cwd or REPO,
                          capture_output=True, text=True, timeout=timeout, env=full_env)


def write_spec(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def tao_spec() -> dict:
    return yaml.safe_load(TAO_SPEC.read_text())


def folder_digest(folder: Path) -> str:
    """sha256 over every file's relative path and bytes, in sorted order (same tree, same digest)."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + p.read_bytes())
    return h.hexdigest()


def wait_until(condition: Callable[[], T], what: str, timeout: float = 300.0, interval: float = 0.05) -> T:
    """Poll ``condition`` until it returns something truthy and return that; fail the test naming ``what`` after
    ``timeout`` seconds. The bound only stops a hung test: it is generous so that a loaded machine never trips it."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
