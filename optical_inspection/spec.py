"""Spec loading: YAML file + `key=value` overrides + `${a.b}` interpolation + `???` + validation.

Every problem of a spec is collected and reported at once (:class:`SpecError`), each naming the key,
the bad value and what is allowed.
"""
from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import TypeAdapter, ValidationError

from .config import ACTIONS, ExperimentConfig
from .config.requirements import requirements
from .config.walk import fields_of, is_section, key_index, to_plain, unwrap_optional
from .dotted import get_dotted, set_dotted
from .errors import SpecError

MISSING = "???"
_ADAPTER = TypeAdapter(ExperimentConfig)
_KEYS = key_index(ExperimentConfig)


def load_spec(path: str | Path | None, overrides: list[str] | tuple[str, ...] = (), action: str | None = None
              ) -> ExperimentConfig:
    """Load, override, interpolate and validate a spec for ``action`` (None: no action checks)."""
    data = read_yaml(path) if path is not None else {}
    apply_overrides(data, overrides)
    return validate_dict(data, action, source=str(path) if path else None)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Parse a spec file; a missing file or a syntax error names the file and line."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"spec file '{p}' does not exist (pass the experiment spec with -e PATH)")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise SpecError(f"{p}: YAML syntax error at {where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{p}: YAML error: {exc}") from None
    except UnicodeDecodeError:
        raise SpecError(f"{p}: not a UTF-8 text file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError(f"{p}: the spec must be a mapping of sections (got {type(data).__name__})")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> None:
    """Apply `a.b.c=value` overrides in place; values are parsed as YAML scalars or lists."""
    problems = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"override '{item}' is not key=value (e.g. train.num_epochs=5)")
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        set_dotted(data, key, value)
    if problems:
        raise SpecError(problems, source="overrides")


def validate_dict(data: dict[str, Any], action: str | None = None, source: str | None = None) -> ExperimentConfig:
    """Interpolate and validate plain spec data; raise SpecError with every problem."""
    if action is not None and action not in ACTIONS:
        raise SpecError(f"unknown action '{action}'; choose one of {', '.join(ACTIONS)}")
    data = copy.deepcopy(data)
    _backfill_results_dirs(data)
    resolved, bad_refs = _interpolate(data)
    problems = list(bad_refs.values())
    placeholders = _strip_placeholders(resolved)
    problems += _check_placeholders_allowed(placeholders)
    config = None
    try:
        config = _ADAPTER.validate_python(resolved)
    except ValidationError as exc:
        problems += [_format_error(err) for err in exc.errors()
                     if ".".join(str(p) for p in err.get("loc", ())) not in bad_refs]
    if action is not None:
        problems += check_action(resolved, action)
    if problems:
        raise SpecError(_dedupe(problems), source=source)
    assert config is not None
    return config


def to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """The config as plain data (for experiment.yaml and --dry-run)."""
    return to_plain(config)


def to_yaml(config: ExperimentConfig) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False, default_flow_style=False)


# ---------------------------------------------------------------- interpolation and placeholders

def _backfill_results_dirs(data: dict[str, Any]) -> None:
    """TAO's rule, applied before interpolation: an unset `<action>.results_dir` is `<results_dir>/<action>`.

    So `${export.results_dir}/oi_model.onnx` resolves as it does in TAO.
    """
    sections = fields_of(ExperimentConfig)
    if data.get("results_dir") in (None, MISSING):
        data["results_dir"] = sections["results_dir"].default
    for action in ACTIONS:
        info = sections.get(action)
        if info is None or "results_dir" not in fields_of(info.annotation):
            continue
        block = data.get(action)
        if block is None:
            block = data[action] = {}
        if isinstance(block, dict) and block.get("results_dir") in (None, MISSING):
            block["results_dir"] = f"${{results_dir}}/{action}"


def _interpolate(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Resolve `${a.b}` references (OmegaConf, no custom resolvers); a bad one is reported by key."""
    try:
        conf = OmegaConf.create(data)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or ""
        value = get_dotted(data, key) if key else None
        return data, {key: f"{key}: cannot resolve '{value}': {str(exc).splitlines()[0]}"}
    problems: dict[str, str] = {}
    for key, value in _leaves(data):
        if isinstance(value, str) and "${" in value:
            try:
                OmegaConf.select(conf, key, throw_on_missing=False, throw_on_resolution_failure=True)
            except OmegaConfBaseException as exc:
                msg = str(exc).splitlines()[0]
                problems[key] = f"{key}: cannot resolve '{value}': {msg}"
    if problems:
        return data, problems
    try:
        return OmegaConf.to_container(conf, resolve=True, throw_on_missing=False), {}  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        return data, {"": f"cannot resolve interpolations: {str(exc).splitlines()[0]}"}


def _leaves(data: Any, prefix: str = ""):
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _leaves(v, f"{prefix}{k}.")
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _leaves(v, f"{prefix}{i}.")
    else:
        yield prefix[:-1], data


def _strip_placeholders(data: dict[str, Any], prefix: str = "") -> list[str]:
    """Replace `???` by None (in place) and return the keys that held it."""
    found = []
    for k, v in list(data.items()):
        if v == MISSING:
            data[k] = None
            found.append(prefix + str(k))
        elif isinstance(v, dict):
            found += _strip_placeholders(v, f"{prefix}{k}.")
    return found


def _check_placeholders_allowed(keys: list[str]) -> list[str]:
    """`???` is only meaningful where a key may be left empty (optional keys)."""
    problems = []
    for key in keys:
        spec = _KEYS.get(key)
        if spec is not None and not unwrap_optional(spec.annotation)[1]:
            problems.append(f"{key}: '???' left in the spec; give a value (default: {spec.default()!r})")
    return problems


# ---------------------------------------------------------------- error formatting

def _format_error(err: dict[str, Any]) -> str:
    loc = [str(p) for p in err.get("loc", ())]
    key = ".".join(loc)
    kind = err.get("type", "")
    value = err.get("input")
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        parent, name = loc[:-1], loc[-1]
        siblings = _sibling_names(parent)
        hint = difflib.get_close_matches(name, siblings, n=1, cutoff=0.6)
        suggestion = f"; did you mean '{'.'.join(parent + [hint[0]])}'?" if hint else ""
        allowed = f"; allowed keys here: {', '.join(siblings)}" if siblings and not hint else ""
        return f"{key}: unknown key{suggestion}{allowed}"
    if kind == "missing":
        return f"{key}: a value is required"
    shown = "null" if value is None else repr(value)
    if kind.startswith("dataclass_type") or kind in ("dict_type", "model_type"):
        return f"{key}: expected a mapping of keys, got {shown}"
    return f"{key}: {err.get('msg', 'invalid value')} (got {shown})"


def _sibling_names(parent: list[str]) -> list[str]:
    cls: Any = ExperimentConfig
    for part in parent:
        fields = fields_of(cls)
        if part not in fields:
            return []
        ann, _ = unwrap_optional(fields[part].annotation)
        if not is_section(ann):
            return []
        cls = ann
    return list(fields_of(cls))


def _dedupe(items: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)


# ---------------------------------------------------------------- action requirements

def check_action(data: dict[str, Any], action: str) -> list[str]:
    """Problems that depend on the action being run: required values and cross-key rules."""
    problems = []
    for req in requirements(action):
        selected = get_dotted(data, req.when[0], _KEYS[req.when[0]].default()) if req.when else None
        if not req.applies(selected) or any(get_dotted(data, key) is not None for key in req.keys):
            continue
        key, others = req.keys[0], req.keys[1:]
        if others:
            problems.append(f"{key}: missing required value for {action} (give a {key.rsplit('.', 1)[-1]}, or "
                            f"{' / '.join(others)})")
        elif req.when:
            problems.append(f"{key}: missing required value for {action} with {req.when[0].rsplit('.', 1)[-1]} "
                            f"'{req.when[1]}'")
        else:
            problems.append(f"{key}: missing required value for {action} (set it in the spec or pass {key}=...)")
    problems += _cross_checks(data, action)
    return problems


def _num(data: dict[str, Any], key: str, default: Any) -> Any:
    value = get_dotted(data, key, default)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _cross_checks(data: dict[str, Any], action: str) -> list[str]:
    problems = []
    input_map = get_dotted(data, "dataset.input_map")
    n_lights = len(input_map) if isinstance(input_map, dict) and input_map else 1
    num_input = get_dotted(data, "dataset.num_input")
    if isinstance(num_input, int) and not isinstance(num_input, bool) and num_input != n_lights:
        problems.append(f"dataset.num_input: {num_input} does not match dataset.input_map, which names "
                        f"{n_lights} light(s); set num_input: {n_lights} or null")
    if get_dotted(data, "dataset.concat_type") == "grid":
        x, y = _num(data, "dataset.grid_map.x", 2), _num(data, "dataset.grid_map.y", 2)
        if x is not None and y is not None and x * y != n_lights:
            problems.append(f"dataset.grid_map: a {x}x{y} grid needs {x * y} lights but input_map has {n_lights}; "
                            f"fix grid_map or use concat_type: linear")
    if action == "train":
        bs = _num(data, "dataset.batch_size", 32)
        if bs is not None and bs < 2:
            problems.append(f"dataset.batch_size: training needs a batch size > 1 (got {bs})")
    if action == "gen_trt_engine":
        lo, opt, hi = (_num(data, f"gen_trt_engine.tensorrt.{k}_batch_size", 1) for k in ("min", "opt", "max"))
        if None not in (lo, opt, hi) and not lo <= opt <= hi:
            problems.append(f"gen_trt_engine.tensorrt: need min_batch_size <= opt_batch_size <= max_batch_size "
                            f"(got {lo}, {opt}, {hi})")
    return problems
