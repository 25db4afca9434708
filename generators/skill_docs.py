"""Generated tables inside the hand-written skill docs.

A doc under ``skills/`` marks each table with ``<!-- BEGIN GENERATED: name -->`` / ``<!-- END GENERATED: name -->``
lines; only the text between them is rewritten (from ``templates/<name>.md.j2``), the prose around is kept.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from optical_inspection.config import ACTIONS
from optical_inspection.config.key_schema import action_leaves

from . import GeneratorError

try:
    import jinja2
except ModuleNotFoundError:  # only the generators use it: the `generate` extra
    raise SystemExit("python -m generators needs jinja2: pip install 'optical-inspection[generate]'") from None

TEMPLATES = Path(__file__).parent / "templates"
SKILL_INFO = "references/skill_info.yaml"
_MARKER = re.compile(r"^<!-- (BEGIN|END) GENERATED: ([a-z0-9_]+) -->$")
_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined, trim_blocks=True,
    lstrip_blocks=True, keep_trailing_newline=True, autoescape=False,
)


def render_skill_docs(root: Path, manifest: dict[str, Any]) -> dict[str, str]:
    """relative path -> new text of every skill doc holding generated blocks."""
    info = load_skill_info(root)
    out = {}
    for doc in sorted((root / "skills").rglob("*.md")):
        rel = doc.relative_to(root).as_posix()
        text = doc.read_text(encoding="utf-8")
        if "GENERATED:" not in text:
            continue
        context = {"info": info, "actions": ACTIONS, "manifest": manifest,
                   "link": lambda target, _doc=rel: _relative(_doc, target)}
        out[rel] = fill_blocks(rel, text, context)
    return out


def load_skill_info(root: Path) -> dict[str, Any]:
    path = root / SKILL_INFO
    if not path.is_file():
        raise GeneratorError(f"{path}: missing (the skill docs are rendered from it)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise GeneratorError(f"{path}: YAML error: {exc}") from None
    if not isinstance(data, dict):
        raise GeneratorError(f"{path}: must be a mapping")
    return data


def fill_blocks(rel: str, text: str, context: dict[str, Any]) -> str:
    """Replace the body of every generated block in ``text``; bad or unbalanced markers name the line."""
    out = []
    for piece in split_blocks(rel, text):
        if isinstance(piece, str):
            out.append(piece)
        else:
            begin, end, name, line = piece
            out += [begin, render_block(rel, line, name, context), end]
    return "".join(out)


def split_blocks(rel: str, text: str) -> list[str | tuple[str, str, str, int]]:
    """Prose pieces and (BEGIN line, END line, name, line number) per block; the old block bodies are dropped."""
    pieces: list[str | tuple[str, str, str, int]] = []
    open_block: tuple[str, str, int] | None = None  # (BEGIN line, name, line number)
    for number, line in enumerate(text.splitlines(keepends=True), 1):
        match = _MARKER.match(line.rstrip("\n"))
        if "GENERATED:" in line and not match:
            raise GeneratorError(f"{rel}:{number}: malformed marker {line.strip()!r} "
                                 "(write '<!-- BEGIN GENERATED: name -->' or '<!-- END GENERATED: name -->')")
        if match is None:
            if open_block is None:
                pieces.append(line)
            continue
        kind, name = match.groups()
        if kind == "BEGIN":
            if open_block is not None:
                raise GeneratorError(f"{rel}:{number}: BEGIN '{name}' inside block '{open_block[1]}' opened on "
                                     f"line {open_block[2]}")
            open_block = (line, name, number)
        else:
            if open_block is None or open_block[1] != name:
                opened = f"block '{open_block[1]}' (line {open_block[2]})" if open_block else "any open block"
                raise GeneratorError(f"{rel}:{number}: END '{name}' does not close {opened}")
            pieces.append((open_block[0], line if line.endswith("\n") else line + "\n", name, open_block[2]))
            open_block = None
    if open_block is not None:
        raise GeneratorError(f"{rel}:{open_block[2]}: block '{open_block[1]}' is never closed")
    return pieces


def render_block(rel: str, line: int, name: str, context: dict[str, Any]) -> str:
    try:
        template = _ENV.get_template(f"{name}.md.j2")
    except jinja2.TemplateNotFound:
        known = sorted(p.name.removesuffix(".md.j2") for p in TEMPLATES.glob("*.md.j2"))
        raise GeneratorError(f"{rel}:{line}: unknown generated block '{name}'; known: {', '.join(known)}") from None
    text = template.render(**context, **TABLE_HELPERS)
    return text if text.endswith("\n") else text + "\n"


def _relative(doc: str, target: str) -> str:
    return Path(os.path.relpath(target, Path(doc).parent)).as_posix()


# ---------------------------------------------------------------- helpers the templates call

def cell(value: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(str(value).split()).replace("|", "\\|").replace("<", "\\<")


def code(value: Any) -> str:
    """A JSON value as inline code."""
    return "`" + json.dumps(value, ensure_ascii=False).replace("|", "\\|") + "`"


def type_name(prop: dict[str, Any]) -> str:
    names = prop.get("type", "any")
    names = names if isinstance(names, list) else [names]
    text = " or ".join(n for n in names if n != "null")
    if "items" in prop and prop["items"].get("type"):
        text += f" of {prop['items']['type']}"
    return text + (" or null" if "null" in names else "")


def allowed(prop: dict[str, Any]) -> str:
    """Enum values or numeric bounds in words."""
    if "enum" in prop:
        return ", ".join(code(v) for v in prop["enum"] if v is not None)
    parts = []
    for keyword, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
        if keyword in prop:
            parts.append(f"{sign} {prop[keyword]}")
    return ", ".join(parts)


def search_range(meta: dict[str, Any], prop: dict[str, Any]) -> str:
    """The AutoML search range of a key: its own low/high, else the validation bounds or options."""
    if "enum" in prop:
        return allowed(prop)
    if prop.get("type") == "boolean":
        return "`true`, `false`"
    low = meta.get("low", prop.get("minimum", prop.get("exclusiveMinimum")))
    high = meta.get("high", prop.get("maximum", prop.get("exclusiveMaximum")))
    text = f"{low} – {high}"
    if meta.get("log"):
        text += " (log)"
    if meta.get("math_cond"):
        text += f" ({meta['math_cond'].replace('_', ' ')})"
    return text


def conditions(meta: dict[str, Any]) -> str:
    return ", ".join(f"`{k}` = {code(v)}" for k, v in sorted(meta.get("when", {}).items()))


TABLE_HELPERS = {"leaves": action_leaves, "cell": cell, "code": code, "type_name": type_name, "allowed": allowed,
                 "search_range": search_range, "conditions": conditions}
