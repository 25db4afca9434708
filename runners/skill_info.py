"""The skill's hand-kept facts (`references/skill_info.yaml`) and where its generated files live."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from optical_inspection.skill_bank import bank_root

from .errors import RequestError

SKILL_DIR = bank_root()


@dataclass(frozen=True)
class SkillInfo:
    """Read-only view of skill_info.yaml plus the paths of the schemas and templates next to it."""

    raw: dict[str, Any]
    skill_dir: Path

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(self.raw.get("actions", {}))

    @property
    def automl_enabled(self) -> bool:
        return bool(self.raw.get("automl_enabled", False))

    def action_uses_automl(self, action: str) -> bool:
        return bool(self.raw["actions"][action].get("automl", False))

    def data_sources(self, action: str) -> dict[str, list[dict[str, str]]]:
        return dict(self.raw.get("data_sources", {}).get(action) or {})

    def spec_params(self, action: str) -> dict[str, str]:
        return dict(self.raw.get("spec_params", {}).get(action) or {})

    @property
    def shorthand_keys(self) -> dict[str, str | list[str]]:
        return dict(self.raw.get("shorthand_keys") or {})

    @property
    def parent_spec_keys(self) -> tuple[str, ...]:
        return tuple(self.raw.get("parent_spec_keys") or ())

    def metric_direction(self, metric: str | None = None) -> tuple[str, str]:
        """(metric, 'maximize'|'minimize'); the monitored metric when none is named."""
        mon = self.raw.get("monitoring") or {}
        name = metric or mon.get("metric", "val_acc")
        if name == mon.get("metric"):
            return name, mon.get("direction", "maximize")
        alternatives = mon.get("alternatives") or {}
        if name not in alternatives:
            known = [mon.get("metric"), *alternatives]
            raise RequestError(f"metric '{name}' has no direction in skill_info.yaml monitoring; use one of {known}")
        return name, alternatives[name]

    def schema_path(self, action: str) -> Path:
        return self.skill_dir / "schemas" / f"{action}.schema.json"

    def template_path(self, action: str) -> Path:
        return self.skill_dir / "references" / f"spec_template_{action}.yaml"

    def check_action(self, action: str) -> None:
        if action not in self.actions:
            raise RequestError(f"unknown action '{action}'; choose one of: {', '.join(self.actions)}")


@lru_cache(maxsize=4)
def load_skill_info(skill_dir: Path = SKILL_DIR) -> SkillInfo:
    """Parse `<skill_dir>/references/skill_info.yaml`."""
    path = Path(skill_dir) / "references" / "skill_info.yaml"
    if not path.is_file():
        raise RequestError(f"{path} does not exist; the runner needs the skill's references/skill_info.yaml")
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    if not isinstance(data, dict) or "actions" not in data:
        raise RequestError(f"{path}: expected a mapping with an 'actions' table")
    return SkillInfo(raw=data, skill_dir=Path(skill_dir))
