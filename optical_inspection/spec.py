"""Spec loading: YAML file + `key=value` overrides + `${a.b}` interpolation + `???` + validation.

Every problem of a spec is collected and reported at once (:class:`SpecError`), each naming the key,
the bad value and what is allowed.
"""
from __future__ import annotations

import copy
import difflib
import functools
import typing
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import TypeAdapter, ValidationError

from .config import ACTIONS, ExperimentConfig
from .config.requirements import requirements
from .config.walk import KeyIndex, to_plain, unwrap_optional
from .cross_checks import cross_key_problems
from .dotted import PLACEHOLDER, get_dotted, set_dotted
from .errors import SpecError
from .input_limits import MAX_DEPTH, MAX_SPEC_BYTES, structure_problem

_UNKNOWN_KEY = ("unexpected_keyword_argument", "extra_forbidden")
_ADAPTER = TypeAdapter(ExperimentConfig)
_INDEX = KeyIndex(ExperimentConfig)
_KEYS = _INDEX.keys


def load_spec(path: str | Path | None, overrides: list[str] | tuple[str, ...] = (), action: str | None = None
              ) -> ExperimentConfig:
    """Load, override, interpolate and validate a spec for ``action`` (None: no action checks)."""
    data = read_yaml(path) if path is not None else {}
    apply_overrides(data, overrides)
    return validate_dict(data, action, source=str(path) if path else None)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Parse a spec file; a missing file, a syntax error or a duplicate key names the file and line. Files over
    :data:`MAX_SPEC_BYTES`, nesting deeper than :data:`MAX_DEPTH` and alias bombs are refused."""
    p = Path(path)
    if p.is_dir():
        raise SpecError(f"spec file '{p}' is a directory; pass the experiment spec YAML file with -e PATH")
    if not p.is_file():
        raise SpecError(f"spec file '{p}' does not exist (pass the experiment spec with -e PATH)")
    try:
        size = p.stat().st_size
        if size > MAX_SPEC_BYTES:
            raise SpecError(f"{p}: {size:,} bytes is too large for a spec (limit {MAX_SPEC_BYTES:,} bytes; a spec is "
                            "a few KiB): is this the right file?")
        data = parse_yaml(p.read_bytes().decode("utf-8"), str(p))
    except UnicodeDecodeError:
        raise SpecError(f"{p}: not a UTF-8 text file") from None
    except OSError as exc:
        raise SpecError(f"spec file '{p}' cannot be read: {exc.strerror or exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError(f"{p}: the spec must be a mapping of sections (got {type(data).__name__})")
    return data


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (plain YAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`: merged keys may be overridden
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.setdefault(key, line)
            except TypeError:  # an unhashable key: the base class reports it
                break
            if first != line:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}' (first given on line {first}); give each key once",
                    key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, where: str) -> Any:
    """YAML text -> data (safe types, unique keys); SpecError naming ``where``, the line and the problem."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        kind = "YAML error" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error"
        raise SpecError(f"{where}: {kind} at {at}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{where}: YAML syntax error: {exc}") from None
    except RecursionError:
        raise SpecError(f"{where}: nested too deeply (limit {MAX_DEPTH} levels)") from None
    shape = structure_problem(data, where)
    if shape:
        raise SpecError(shape)
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
        if len(raw) > MAX_SPEC_BYTES:
            problems.append(f"override '{key}': the value is {len(raw):,} characters (limit {MAX_SPEC_BYTES:,})")
            continue
        try:
            value = parse_yaml(raw, f"override '{key}'") if raw.strip() else None
        except SpecError as exc:
            if "YAML syntax error" not in str(exc):
                problems += exc.problems
                continue
            value = raw  # not YAML: the text itself (e.g. a path holding ': ')
        set_dotted(data, key, value)
    shape = structure_problem(data, "the spec with its overrides")
    if shape:
        problems.append(shape)
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
        problems += [_format_error(err) for err in _merge_union_errors(exc.errors())  # an unknown key is reported
                     if err.get("type") in _UNKNOWN_KEY                 # even when its interpolation failed too
                     or ".".join(str(p) for p in err.get("loc", ())) not in bad_refs]
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
    """The config as YAML for experiment.yaml and --dry-run: a secret key is written as the ``${oc.env:NAME}``
    reference it came from, or ``***`` (see :mod:`.redaction`), never as its value; nor is a URL's password."""
    from .redaction import mask_secret_keys, redact

    return redact(yaml.safe_dump(mask_secret_keys(to_dict(config)), sort_keys=False, default_flow_style=False))


# ---------------------------------------------------------------- interpolation and placeholders

def _backfill_results_dirs(data: dict[str, Any]) -> None:
    """TAO's rule, applied before interpolation: an unset `<action>.results_dir` is `<results_dir>/<action>`.

    So `${export.results_dir}/oi_model.onnx` resolves as it does in TAO.
    """
    if data.get("results_dir") in (None, PLACEHOLDER):
        data["results_dir"] = _KEYS["results_dir"].default()
    for action in ACTIONS:
        if "results_dir" not in _INDEX.section_names(action):
            continue
        block = data.get(action)
        if block is None:
            block = data[action] = {}
        if isinstance(block, dict) and block.get("results_dir") in (None, PLACEHOLDER):
            block["results_dir"] = f"${{results_dir}}/{action}"


@functools.cache
def _default_tree() -> dict[str, Any]:
    return to_plain(ExperimentConfig())


@functools.cache
def _default_conf() -> Any:
    """The defaults as an OmegaConf tree, built once (``OmegaConf.merge`` copies it, never changes it)."""
    return OmegaConf.create(_default_tree())


def _interpolate(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Resolve `${a.b}` references (OmegaConf, no custom resolvers); a bad one is reported by key, the good ones
    are still resolved.

    A reference may name any key, written in the spec or not (then it is the key's default), as in TAO where the
    spec is merged onto its config classes first. Only the spec's own keys come back.
    """
    refs = [key for key, value in _leaves(data) if isinstance(value, str) and "${" in value]
    if not refs:
        return data, {}
    values, refs = _resolve_within(data, refs)  # most references name keys of the spec itself: no merge needed
    if not refs:
        return _replace_leaves(data, values), {}
    try:
        conf = OmegaConf.merge(_default_conf(), OmegaConf.create(data))
    except (OmegaConfBaseException, TypeError, ValueError):  # e.g. a scalar or list where a section belongs:
        try:                                                   # validation reports it by key
            conf = OmegaConf.create(data)
        except (OmegaConfBaseException, TypeError, ValueError) as exc:
            key = getattr(exc, "full_key", None) or ""
            value = get_dotted(data, key) if key else None
            return data, {key: f"{key}: cannot resolve '{value}': {str(exc).splitlines()[0]}"}
    problems: dict[str, str] = {}
    for key in refs:
        try:
            node = OmegaConf.select(conf, key, throw_on_missing=False, throw_on_resolution_failure=True)
            values[key] = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
        except OmegaConfBaseException as exc:
            problems[key] = f"{key}: cannot resolve '{get_dotted(data, key)}': {str(exc).splitlines()[0]}"
    return _replace_leaves(data, values), problems


def _resolve_within(data: dict[str, Any], refs: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The references that resolve to a plain value from the spec alone (cheap: no merge onto the defaults), and
    the others, left to :func:`_interpolate`'s full resolution."""
    try:
        conf = OmegaConf.create(data)
    except (OmegaConfBaseException, TypeError, ValueError):
        return {}, refs
    values: dict[str, Any] = {}
    rest = []
    for key in refs:
        try:
            node = OmegaConf.select(conf, key, throw_on_missing=False, throw_on_resolution_failure=True)
        except OmegaConfBaseException:
            rest.append(key)
            continue
        if OmegaConf.is_config(node) or node == PLACEHOLDER:
            rest.append(key)
        else:
            values[key] = node
    return values, rest


def _replace_leaves(data: Any, values: dict[str, Any], prefix: str = "") -> Any:
    """A copy of ``data`` whose leaves named in ``values`` (dotted keys, list indices as numbers) are replaced."""
    if isinstance(data, dict):
        return {k: _replace_leaves(v, values, f"{prefix}{k}.") for k, v in data.items()}
    if isinstance(data, list):
        return [_replace_leaves(v, values, f"{prefix}{i}.") for i, v in enumerate(data)]
    return values.get(prefix[:-1], data)


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
        if v == PLACEHOLDER:
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

def _merge_union_errors(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One error per key of a union type (e.g. ``dataset.workers``: an integer or ``auto``) instead of one per
    alternative, whose location pydantic ends with the alternative's tag."""
    merged: dict[tuple, dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for raw in errors:
        err = dict(raw)
        loc = tuple(err.get("loc", ()))
        spec = _KEYS.get(".".join(map(str, loc[:-1])))
        if spec is not None and typing.get_origin(spec.annotation) is typing.Union \
                and not unwrap_optional(spec.annotation)[1]:
            if loc[:-1] in merged:
                merged[loc[:-1]]["msg"] += f", or {err.get('msg', '')[0].lower()}{err.get('msg', '')[1:]}"
                continue
            err = dict(err, loc=loc[:-1], type="union")
            merged[loc[:-1]] = err
        out.append(err)
    return out


def _format_error(err: dict[str, Any]) -> str:
    loc = [str(p) for p in err.get("loc", ())]
    key = ".".join(loc)
    kind = err.get("type", "")
    value = err.get("input")
    if kind in _UNKNOWN_KEY:
        parent, name = loc[:-1], loc[-1]
        siblings = _INDEX.section_names(".".join(parent))
        hint = difflib.get_close_matches(name, siblings, n=1, cutoff=0.6)
        suggestion = f"; did you mean '{'.'.join(parent + [hint[0]])}'?" if hint else ""
        allowed = f"; allowed keys here: {', '.join(siblings)}" if siblings and not hint else ""
        return f"{key}: unknown key{suggestion}{allowed}"
    if kind == "missing":
        return f"{key}: a value is required"
    shown = "null" if value is None else repr(value)
    if kind.startswith("dataclass_type") or kind in ("dict_type", "model_type"):
        return f"{key}: expected a mapping of keys, got {shown}"
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{key}: {msg} (got {shown})"


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
    problems += cross_key_problems(data, action)
    return problems
