"""`schemas/manifest.json`: every action with its schema, templates, requirements and AutoML support."""
from __future__ import annotations

from typing import Any

from optical_inspection import __version__
from optical_inspection.config import ACTIONS
from optical_inspection.config.actions import uses_automl

from .json_schema import SCHEMA_FORMAT_VERSION, action_sections
from .requirements import requirements
from .spec_template import DEPLOY_OVERLAYS


def schema_path(action: str) -> str:
    return f"schemas/{action}.schema.json"


def template_path(action: str, deploy: bool = False) -> str:
    return f"references/spec_template_{'deploy_' if deploy else ''}{action}.yaml"


def build_manifest(schemas: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The manifest, given the generated schema of every action."""
    actions = {}
    for action in ACTIONS:
        schema = schemas[action]
        actions[action] = {
            "schema": schema_path(action),
            "spec_template": template_path(action),
            "deploy_spec_template": template_path(action, deploy=True) if action in DEPLOY_OVERLAYS else None,
            "sections": list(action_sections(action)),
            "required": [req.describe() for req in requirements(action)],
            "automl": uses_automl(action),
            "automl_default_parameters": schema["automl_default_parameters"],
            "automl_disabled_parameters": schema["automl_disabled_parameters"],
        }
    return {
        "schema_version": SCHEMA_FORMAT_VERSION,
        "package_version": __version__,
        "source": "optical_inspection.config (python -m generators)",
        "actions": actions,
    }
