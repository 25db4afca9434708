"""automl_policy: whether a train request runs as an AutoML search or as one plain training job.

Order: an explicit value (``--automl-policy``) wins; else one of the documented phrases in the user's request
means off; else on for train when the skill enables AutoML and the train schema and template exist. Non-train
actions never use AutoML. The phrases (any case; "AutoML" also as "auto-ml"/"auto ml", "hyperparameter" also
as "hyper-parameter(s)"): "turn off / switch off / disable / no / without / w/o / skip / don't use / do not use /
don't run / do not run" + [the/any] AutoML | HPO | hyperparameter search|tuning|optimization|sweep; "AutoML off"
(also "turn/switch AutoML off", "AutoML: off", "AutoML=off"); "plain training". Nothing else counts: "no sweeps of
my data folder" names no AutoML topic, so it keeps the default. A phrase preceded by a negation ("don't disable
AutoML") does not count. The decision records the phrase that decided (``phrase``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import RequestError
from .skill_info import SkillInfo

_TOPIC = (r"(?:auto[\s-]?ml|hpo|hyper[\s-]?param(?:eter)?s?[\s-]+"
          r"(?:search|tuning|optimi[sz]ation|sweeps?))")
_VERBS = r"(?:turn\s+off|switch\s+off|disable|no|without|w/o|skip|(?:don'?t|do\s+not)\s+(?:use|run))"
_OFF = [re.compile(p, re.IGNORECASE) for p in (
    rf"\b{_VERBS}\s+(?:(?:the|any)\s+)?{_TOPIC}\b",
    rf"\b(?:(?:turn|switch)\s+)?{_TOPIC}\s*[:=]?\s*off\b",
    r"\bplain\s+training\b",
)]
_NEGATED = re.compile(r"(?:\bdon'?t|\bdo\s+not|\bnever|\bno\s+need\s+to|\bnot)\s+$", re.IGNORECASE)


@dataclass(frozen=True)
class PolicyDecision:
    value: str    # "on" | "off"
    reason: str
    phrase: str | None = None  # the words of the request that decided, when they did

    def as_dict(self) -> dict[str, str]:
        out = {"value": self.value, "reason": self.reason}
        if self.phrase is not None:
            out["phrase"] = self.phrase
        return out


def off_phrase(request: str | None) -> str | None:
    """The first documented phrase in ``request`` that asks for no AutoML (as written there), or None."""
    if not request:
        return None
    found = [m for pattern in _OFF for m in pattern.finditer(request)
             if not _NEGATED.search(request[: m.start()])]
    return min(found, key=lambda m: m.start()).group(0) if found else None


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
            return PolicyDecision("off", f"the request says '{phrase}'", phrase)
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
