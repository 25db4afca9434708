"""JSON metadata beside a model file: ``<file>.json``, written atomically, read without torch.

Checkpoints (``.pth``) carry one so the runner reads their epoch, step and metrics as plain JSON; TensorRT
engines, which have no room for metadata, carry one too (see :mod:`optical_inspection.deploy.metadata`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import OIError
from .io_utils import write_text_atomic
from .strict_json import dumps


def sidecar_path(path: str | Path) -> Path:
    """Where a file's metadata lives: ``<file>.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def write_sidecar(path: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``meta`` beside ``path`` atomically (strict JSON, secrets redacted)."""
    return write_text_atomic(sidecar_path(path), dumps(meta, indent=2, sort_keys=True) + "\n")


def read_sidecar(path: str | Path) -> dict[str, Any] | None:
    """The metadata beside ``path``; None when there is none (a file made elsewhere, e.g. by TAO)."""
    side = sidecar_path(path)
    try:
        text = side.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise OIError(f"{side}: cannot read this metadata file ({exc}); delete it or rewrite the model file") from None
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OIError(f"{side}: not valid JSON ({exc}); delete it or rewrite the model file") from None
    if not isinstance(meta, dict):
        raise OIError(f"{side}: holds a {type(meta).__name__}, not a JSON object; delete it or rewrite the model file")
    return meta
