"""Building a spec: template → shorthand keys → overrides → data sources → parent mappings → validation.

Every key the runner sets is recorded with where its value came from (:class:`SpecDraft.sources`).
Validation runs the action's JSON Schema (Draft 2020-12) and reports every problem at once, each with its key.
"""
from __future__ import annotations

import copy
import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from optical_inspection.config.walk import KeyIndex
from optical_inspection.dotted import PLACEHOLDER, get_dotted, placeholders_in, set_dotted
from optical_inspection.input_limits import MAX_DEPTH, MAX_SPEC_BYTES, number_problems, structure_problem
from optical_inspection.redaction import MASK, SECRET_SPEC_KEYS

from .errors import RequestError
from .skill_info import SkillInfo

SECRET_KEYS = tuple(SECRET_SPEC_KEYS)


@dataclass
class SpecDraft:
    """A spec being built, with the source of every value the runner set."""

    data: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return get_dotted(self.data, key, default)

    def set(self, key: str, value: Any, source: str) -> None:
        set_dotted(self.data, key, value)
        self.sources[key] = source

    def provenance(self) -> dict[str, dict[str, Any]]:
        """{key: {"value", "source"}} for every key not left at the template value; secrets masked."""
        out = {}
        for key, source in self.sources.items():
            value = self.get(key)
            out[key] = {"value": MASK if key in SECRET_KEYS and value else value, "source": source}
        return out

    def masked(self) -> dict[str, Any]:
        """The spec with secret values replaced by ***, for printing and records."""
        data = copy.deepcopy(self.data)
        for key in SECRET_KEYS:
            if data.get(key):
                data[key] = MASK
        return data


# ---------------------------------------------------------------- schema and template

def load_schema(skill: SkillInfo, action: str) -> dict[str, Any]:
    path = skill.schema_path(action)
    if not path.is_file():
        raise RequestError(f"{path} does not exist; generate the schemas first with `python -m generators`")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RequestError(f"{path}: not valid JSON ({exc}); regenerate it with `python -m generators`") from None


def load_template(skill: SkillInfo, action: str) -> dict[str, Any]:
    path = skill.template_path(action)
    if not path.is_file():
        raise RequestError(f"{path} does not exist; generate the templates first with `python -m generators`")
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    if not isinstance(data, dict):
        raise RequestError(f"{path}: a spec template must be a mapping of sections")
    return data


# ---------------------------------------------------------------- overrides

def parse_overrides(text: str | None) -> dict[str, Any]:
    """The --overrides JSON object (strict JSON: NaN/Infinity are refused; size and nesting are capped)."""
    if not text:
        return {}
    if len(text) > MAX_SPEC_BYTES:
        raise RequestError(f"--overrides is {len(text):,} characters; the limit is {MAX_SPEC_BYTES:,} "
                           "(a request sets a few keys)")
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise RequestError(f"--overrides is not valid JSON: {exc.msg} at character {exc.pos} "
                           "(example: '{\"epochs\": 5, \"train.optim.lr\": 0.001}')") from None
    except RecursionError:
        raise RequestError(f"--overrides is nested too deeply (limit {MAX_DEPTH} levels)") from None
    except ValueError as exc:
        raise RequestError(f"--overrides: {exc}") from None
    shape = structure_problem(value, "--overrides")
    if shape:
        raise RequestError(shape)
    if not isinstance(value, dict):
        raise RequestError("--overrides must be a JSON object of key: value "
                           "(example: '{\"epochs\": 5, \"train.optim.lr\": 0.001}')")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a finite number (JSON has no NaN/Infinity); give a finite value")


def apply_overrides(draft: SpecDraft, overrides: dict[str, Any], skill: SkillInfo, keys: KeyIndex,
                    action: str) -> list[str]:
    """Shorthand keys first, then dotted keys (which win); returns the problems (unknown keys)."""
    shorthand = skill.shorthand_keys
    problems = []
    short_items = [(k, v) for k, v in overrides.items() if k in shorthand]
    dotted_items = [(k, v) for k, v in overrides.items() if k not in shorthand]
    for name, value in short_items:
        targets = shorthand[name]
        targets = [targets] if isinstance(targets, str) else list(targets)
        usable = [t for t in targets if keys.allows(t)]
        if not usable:
            problems.append(f"{name}: shorthand for {', '.join(targets)}, which {action} does not read")
            continue
        for target in usable:
            draft.set(target, value, f"override (shorthand '{name}')")
    known: list[str] | None = None
    for key, value in dotted_items:
        if not keys.allows(key):
            known = known if known is not None else list(keys.keys) + list(shorthand)
            problems.append(_unknown_key(key, known, action))
            continue
        draft.set(key, value, "override")
    return problems


def _unknown_key(key: str, known: list[str], action: str) -> str:
    hint = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if hint:
        return f"{key}: unknown key for {action}; did you mean '{hint[0]}'?"
    return f"{key}: unknown key for {action} (see schemas/{action}.schema.json, or a shorthand key of skill_info.yaml)"


# ---------------------------------------------------------------- validation

def validate(draft: SpecDraft, schema: dict[str, Any], action: str, hints: dict[str, str]) -> list[str]:
    """Every problem of the built spec by key (JSON Schema Draft 2020-12, whose conditional rules say which
    '???' placeholders this spec needs); placeholders it does not need become null.

    hints: key -> how to fill it (e.g. "give --data train_datasets=LOCATION").
    """
    from jsonschema import Draft202012Validator

    problems: list[str] = number_problems(draft.data)
    errors = Draft202012Validator(schema).iter_errors(draft.data)
    for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        key = ".".join(str(p) for p in error.absolute_path)
        problems += _describe(error, key, action, hints)
    if not problems:
        for key in placeholders_in(draft.data):
            draft.set(key, None, draft.sources.get(key, "template placeholder not needed by this spec"))
    return list(dict.fromkeys(problems))


def _describe(error: Any, key: str, action: str, hints: dict[str, str]) -> list[str]:
    """One jsonschema error as problems naming the key (and, for a missing value, how to give it)."""
    def required(k: str) -> str:
        how = hints.get(k, f"set it with --overrides '{{\"{k}\": ...}}'")
        return f"{k}: a value is required for {action}; {how}"

    def join(*parts: str) -> str:
        return ".".join(p for p in parts if p)

    if error.validator == "required":
        missing = [n for n in error.validator_value if not isinstance(error.instance, dict) or n not in error.instance]
        return [required(join(key, n)) for n in missing]
    if error.validator == "anyOf" and error.context:
        options = sorted({join(key, ".".join(str(p) for p in e.relative_path)) for e in error.context
                          if e.relative_path})
        if options:
            how = "; ".join(dict.fromkeys(hints[o] for o in options if o in hints)) or "set one with --overrides"
            return [f"{key}: {action} needs a value for one of {', '.join(options)}; {how}"]
    if error.instance in (PLACEHOLDER, None) and error.validator in ("not", "type", "const", "enum"):
        return [required(key)]
    shown = "invalid value (not shown)" if key in SECRET_KEYS else error.message
    return [f"{key or '<spec>'}: {shown}"]


def write_spec(draft: SpecDraft, path: Path) -> Path:
    """The spec file the trainer reads, written atomically (secret values redacted: a secret reaches the
    trainer only as an ``${oc.env:NAME}`` reference)."""
    from optical_inspection.io_utils import write_text_atomic

    return write_text_atomic(path, yaml.safe_dump(draft.data, sort_keys=False, default_flow_style=False))
