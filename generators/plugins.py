"""Agent plugin manifests at the repository root: Claude Code's ``.claude-plugin/`` (marketplace + plugin),
Codex's ``.codex-plugin/plugin.json`` and the ``.mcp.json`` both point to (the runner's MCP server).

Every skill folder under ``skills/`` is listed; names, descriptions and the version come from the skills'
frontmatter and the package, so the manifests cannot drift from them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from optical_inspection import __version__

from . import GeneratorError

PLUGIN = "optical-inspection"
DESCRIPTION = ("Train, tune, evaluate, export and deploy golden-image defect classifiers (AOI / PCB inspection), "
               "TAO Optical Inspection compatible; skills plus an MCP server over the same runner.")
KEYWORDS = ["aoi", "optical-inspection", "defect-detection", "pcb", "siamese", "tao", "mcp"]
MCP_SERVERS = {PLUGIN: {"command": "python", "args": ["-m", "runners", "mcp"]}}


def _skills(root: Path) -> list[dict[str, str]]:
    found = []
    for skill_md in sorted((root / "skills").glob("*/SKILL.md")):
        text = skill_md.read_text(encoding="utf-8")
        parts = text.split("---", 2)
        meta = yaml.safe_load(parts[1]) if text.startswith("---") and len(parts) == 3 else None
        if not isinstance(meta, dict) or "name" not in meta or "description" not in meta:
            raise GeneratorError(f"{skill_md}: needs YAML frontmatter with name and description")
        found.append({"name": str(meta["name"]), "path": f"./skills/{skill_md.parent.name}"})
    if not found:
        raise GeneratorError(f"{root / 'skills'} holds no skill folder with a SKILL.md")
    return found


def render_plugins(root: Path) -> dict[str, Any]:
    """relative path -> JSON data of each manifest."""
    skills = _skills(root)
    plugin: dict[str, Any] = {"name": PLUGIN, "version": __version__, "description": DESCRIPTION,
                              "license": "Apache-2.0", "keywords": KEYWORDS, "skills": "./skills/",
                              "mcpServers": "./.mcp.json"}
    marketplace = {"name": PLUGIN, "owner": {"name": "optical-inspection maintainers"},
                   "plugins": [{"name": PLUGIN, "source": "./", "version": __version__, "description": DESCRIPTION,
                                "skills": [s["path"] for s in skills]}]}
    return {".claude-plugin/plugin.json": plugin, ".claude-plugin/marketplace.json": marketplace,
            ".codex-plugin/plugin.json": plugin, ".mcp.json": {"mcpServers": MCP_SERVERS}}
