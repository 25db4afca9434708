"""Every generated file as text, and writing or checking them against the tree."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from optical_inspection.config import ACTIONS
from optical_inspection.io_utils import write_text_atomic

from . import GeneratorError
from .json_schema import action_schema
from .manifest import build_manifest, schema_path, template_path
from .plugins import render_plugins
from .requirements import PLACEHOLDER
from .skill_docs import render_skill_docs
from .spec_template import DEPLOY_OVERLAYS, render_template

# Files matching these patterns belong to the generator: one that it no longer produces is stale.
OWNED_PATTERNS = ("schemas/*.schema.json", "schemas/manifest.json", "references/spec_template_*.yaml",
                  ".claude-plugin/*.json", ".codex-plugin/*.json", ".mcp.json")
EXAMPLE_VALUE = "/data/example"


def dump_json(data: Any) -> str:
    """Byte-stable strict JSON: sorted keys, repr floats, no NaN/Infinity, trailing newline."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def render_all(root: Path) -> dict[str, str]:
    """relative path -> text of every generated file (skill docs are read from ``root``)."""
    schemas = {action: action_schema(action) for action in ACTIONS}
    files: dict[str, str] = {}
    for action, schema in schemas.items():
        jsonschema.Draft202012Validator.check_schema(schema)
        files[schema_path(action)] = dump_json(schema)
        files[template_path(action)] = render_template(action)
        if action in DEPLOY_OVERLAYS:
            files[template_path(action, deploy=True)] = render_template(action, deploy=True)
    manifest = build_manifest(schemas)
    files["schemas/manifest.json"] = dump_json(manifest)
    for path, text in files.items():
        if path.startswith("references/"):
            _check_template(path, text, schemas[_template_action(path)])
    files.update(render_skill_docs(root, manifest))
    files.update({path: dump_json(data) for path, data in render_plugins(root).items()})
    return files


def _template_action(path: str) -> str:
    name = Path(path).stem.removeprefix("spec_template_").removeprefix("deploy_")
    return name


def _check_template(path: str, text: str, schema: dict[str, Any]) -> None:
    """A template with its `???` filled must validate against its own schema (catches contradictions)."""
    data = fill_placeholders(yaml.safe_load(text), EXAMPLE_VALUE)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.path))
    if errors:
        detail = "; ".join(f"{'.'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors)
        raise GeneratorError(f"{path}: the generated template does not validate against its schema: {detail}")


def fill_placeholders(data: Any, value: Any) -> Any:
    """A copy of ``data`` with every `???` replaced by ``value``."""
    if isinstance(data, dict):
        return {k: fill_placeholders(v, value) for k, v in data.items()}
    if isinstance(data, list):
        return [fill_placeholders(v, value) for v in data]
    return value if data == PLACEHOLDER else data


@dataclass(frozen=True)
class Drift:
    path: str
    reason: str  # "differs", "missing" or "unexpected"


def find_drift(root: Path, files: dict[str, str]) -> list[Drift]:
    """Generated files whose text on disk differs, that are missing, or that the generator no longer makes."""
    drift = []
    for rel, text in sorted(files.items()):
        target = root / rel
        if not target.is_file():
            drift.append(Drift(rel, "missing"))
        elif target.read_text(encoding="utf-8") != text:
            drift.append(Drift(rel, "differs"))
    for pattern in OWNED_PATTERNS:
        for path in sorted(root.glob(pattern)):
            rel = path.relative_to(root).as_posix()
            if rel not in files:
                drift.append(Drift(rel, "unexpected"))
    return drift


def apply(root: Path, files: dict[str, str], drift: list[Drift]) -> None:
    """Write what differs or is missing (atomically) and remove what the generator no longer makes."""
    for item in drift:
        target = root / item.path
        if item.reason == "unexpected":
            target.unlink()
        else:
            write_text_atomic(target, files[item.path])
