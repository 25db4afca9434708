"""automl_policy: whether a train request runs as an AutoML search or as one plain training job.

Order: an explicit value wins; else phrases in the user's request that ask for no AutoML ("turn off AutoML",
"disable AutoML", "no HPO", "without automl", "plain training", ...) mean off; else on for train when the skill
enables AutoML and the train schema and template exist. Non-train actions never use AutoML.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import RequestError
from .skill_info import SkillInfo

_TOPIC = (r"(?:auto[\s-]?ml|hpo|hyper[\s-]?param(?:eter)?s?[\s-]*(?:search|tuning|optimi[sz]ation|sweep)?"
          r"|(?:parameter\s+)?(?:tuning|sweeps?))")
_OFF_PATTERNS = [
    rf"\b(?:turn(?:ing)?|switch(?:ing)?|shut(?:ting)?|toggle)\s+off\s+(?:the\s+|any\s+)?{_TOPIC}",
    rf"\b(?:turn|switch|shut|toggle)\s+(?:the\s+)?{_TOPIC}\s+off\b",
    rf"\b(?:disable[sd]?|disabling|skip(?:ping|ped)?|avoid(?:ing)?|bypass(?:ing)?|no|without|w/o|"
    rf"(?:do\s+not|don'?t|dont)\s+(?:use|run|do|want)|not\s+using|without\s+using)\s+(?:any\s+|the\s+|an?\s+)?{_TOPIC}",
    rf"\b{_TOPIC}\s*(?:[:=]\s*|\s+)(?:off|false|disabled|no)\b",
    r"\b(?:plain|vanilla)\s+(?:single\s+)?(?:training|train|run|single[\s-]+run)\b",
    r"\b(?:single|one)\s+plain\s+(?:training|train|run)\b",
]
_NEGATED = re.compile(r"(?:\bdon'?t|\bdo\s+not|\bnever|\bno\s+need\s+to|\bnot)\s+$", re.IGNORECASE)
_OFF = [re.compile(p, re.IGNORECASE) for p in _OFF_PATTERNS]


@dataclass(frozen=True)
class PolicyDecision:
    value: str    # "on" | "off"
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"value": self.value, "reason": self.reason}


def off_phrase(request: str | None) -> str | None:
    """The phrase in ``request`` that asks for no AutoML, or None (a negated phrase such as
    "don't disable AutoML" does not count)."""
    if not request:
        return None
    for pattern in _OFF:
        for match in pattern.finditer(request):
            if not _NEGATED.search(request[: match.start()]):
                return match.group(0)
    return None


def resolve_policy(action: str, explicit: str | None, request: str | None, skill: SkillInfo) -> PolicyDecision:
    """Decide on/off for this run, with the reason shown to the user."""
    if explicit is not None and explicit not in ("on", "off"):
        raise RequestError(f"--automl-policy must be 'on' or 'off' (got '{explicit}')")
    if action != "train" or not skill.action_uses_automl(action):
        note = " (the requested 'on' does not apply)" if explicit == "on" else ""
        return PolicyDecision("off", f"{action} never uses AutoML; it runs as a single job{note}")
    if explicit == "off":
        return PolicyDecision("off", "explicit automl_policy=off")
    if explicit is None:
        phrase = off_phrase(request)
        if phrase is not None:
            return PolicyDecision("off", f"the request says '{phrase}'")
    if not skill.automl_enabled:
        return PolicyDecision("off", "skill_info.yaml has automl_enabled: false")
    missing = [p for p in (skill.schema_path(action), skill.template_path(action)) if not p.is_file()]
    if missing:
        return PolicyDecision("off", "AutoML enabled but not runnable until schemas are generated "
                              f"(missing {', '.join(str(p) for p in missing)})")
    if explicit == "on":
        return PolicyDecision("on", "explicit automl_policy=on")
    return PolicyDecision("on", "default for train: skill_info.yaml enables AutoML and the train schema and "
                          "template exist; say 'turn off AutoML' or pass --automl-policy off for one plain job")
