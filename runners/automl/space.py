"""The search space: which spec keys a trial samples, over which values, and when.

Built from the AutoML metadata of the train keys in the config key index (``x-automl`` in the generated schema;
the enabled keys are its ``automl_default_parameters``) plus the spec's ``automl.parameters`` /
``automl.parameter_ranges``. Sampling is define-by-run on an Optuna trial, so a conditional key is only suggested
(and only exists in the trial) when its ``when`` conditions hold.

How each kind is sampled:
- float / int: ``suggest_float`` / ``suggest_int`` over [low, high]; log scale where the metadata says
  (learning rate, margin). Ranges come from ``x-automl.low/high``, else the key's validation bounds; an open
  bound is an error asking for a range (TAO silently collapsed it to the default).
- ``math_cond: power_of_two``: a categorical choice among the powers of two in the range (each power equally
  likely). ``multiple_of:k``: ``suggest_int`` with step k.
- booleans and enums: ``suggest_categorical``. With non-uniform ``option_weights`` the choice is encoded as a
  float ``u`` in [0, 1) (Optuna parameter ``<key>#cdf``) mapped through the weights' cumulative distribution:
  the prior probability of each option equals its weight, and TPE/random samplers still learn over ``u``.
  The decoded value is what the trial's spec receives (trial user attribute ``config``).

Conditions: ``when: {dotted_key: value}`` holds when the key's current value (sampled in this trial, else the
base spec's value) equals ``value``; a list value means "any of". Keys are sampled after the keys their
conditions read. TAO's dead parameters are dropped this way: ``train.optim.momentum`` is only searched under
SGD (Adam/AdamW ignore it), the ``random_*`` augmentation sub-parameters only when ``augment`` (and their own
``enable``) are on, ``model.base_channels`` only for the Compact model and ``model.embedding_vectors`` only for
the Siamese types. ``train.num_epochs`` is only searched on request and never with hyperband/asha (it is their
budget).
"""
from __future__ import annotations

import bisect
import difflib
import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from optical_inspection.config.key_schema import property_schema
from optical_inspection.config.walk import KeyIndex, KeySpec
from optical_inspection.dotted import get_dotted

from ..errors import RequestError

CDF_SUFFIX = "#cdf"
EPOCHS_KEY = "train.num_epochs"
_SEARCHABLE_TYPES = ("number", "integer", "boolean", "string", "any")


@dataclass(frozen=True)
class LeafKey:
    """A searchable leaf: its JSON type, allowed options and bounds, and AutoML metadata (from the key index)."""

    path: str
    type: str                      # "number" | "integer" | "boolean" | "string" | "array" | "object" | "any"
    enum: tuple[Any, ...] | None
    minimum: float | None
    maximum: float | None
    exclusive_minimum: float | None
    exclusive_maximum: float | None
    default: Any
    automl: dict[str, Any] | None

    @classmethod
    def of(cls, key: KeySpec) -> LeafKey:
        schema = property_schema(key, with_extras=False, with_automl=False)
        enum = schema.get("enum")
        return cls(key.path, _json_type(schema), tuple(v for v in enum if v is not None) if enum else None,
                   schema.get("minimum"), schema.get("maximum"), schema.get("exclusiveMinimum"),
                   schema.get("exclusiveMaximum"), key.default(), key.automl)

    def options(self) -> tuple[Any, ...] | None:
        """The allowed values of a categorical key (enum or boolean), else None."""
        if self.enum is not None:
            return self.enum
        if self.type == "boolean":
            return (False, True)
        return None


def _json_type(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    if kind is None and isinstance(schema.get("enum"), list):
        values = [v for v in schema["enum"] if v is not None]
        kind = "string" if all(isinstance(v, str) for v in values) else "any"
    return kind if isinstance(kind, str) else "any"


@dataclass(frozen=True)
class SearchParam:
    """One searched key and how to sample it."""

    key: str
    kind: str                                   # "float" | "int" | "categorical"
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: int | None = None
    options: tuple[Any, ...] = ()
    weights: tuple[float, ...] | None = None    # None: uniform
    when: dict[str, Any] = field(default_factory=dict)

    @property
    def optuna_name(self) -> str:
        """The Optuna parameter name (``<key>#cdf`` for a weighted choice)."""
        return self.key + CDF_SUFFIX if self.weights is not None else self.key

    def suggest(self, trial: Any) -> Any:
        """Sample this key on an Optuna trial."""
        if self.kind == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log)
        if self.kind == "int":
            assert self.low is not None and self.high is not None  # a numeric key always has both bounds here
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=self.step or 1, log=self.log)
        if self.weights is None:
            return trial.suggest_categorical(self.key, list(self.options))
        return self.decode(trial.suggest_float(self.optuna_name, 0.0, 1.0))

    def decode(self, u: float) -> Any:
        """The option whose cumulative-weight interval holds ``u``."""
        assert self.weights is not None
        total = sum(self.weights)
        cdf = [c / total for c in itertools.accumulate(self.weights)]
        return self.options[min(bisect.bisect_right(cdf, u), len(self.options) - 1)]

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "kind": self.kind}
        if self.kind == "categorical":
            out["options"] = list(self.options)
            if self.weights is not None:
                out["option_weights"] = list(self.weights)
        else:
            out.update(low=self.low, high=self.high, log=self.log)
            if self.step:
                out["step"] = self.step
        if self.when:
            out["when"] = dict(self.when)
        return out


@dataclass(frozen=True)
class SearchSpace:
    """The searched keys, ordered so that every key comes after the keys its conditions read."""

    params: tuple[SearchParam, ...]
    defaults: dict[str, Any]                    # schema default of every key a condition reads

    def sample(self, trial: Any, base_spec: dict[str, Any]) -> dict[str, Any]:
        """Sample a configuration ``{dotted_key: value}``; inactive keys are left out."""
        values: dict[str, Any] = {}
        for param in self.params:
            if self.active(param, values, base_spec):
                values[param.key] = param.suggest(trial)
        return values

    def active(self, param: SearchParam, sampled: dict[str, Any], base_spec: dict[str, Any]) -> bool:
        """True when every condition of ``param`` holds for this configuration."""
        return self._holds(param.when, sampled, base_spec)

    def _holds(self, when: dict[str, Any], sampled: dict[str, Any], base_spec: dict[str, Any]) -> bool:
        for key, expected in when.items():
            current = sampled[key] if key in sampled else get_dotted(base_spec, key, self.defaults.get(key))
            if not condition_holds(current, expected):
                return False
        return True

    def describe(self) -> list[dict[str, Any]]:
        return [p.describe() for p in self.params]

    def never_sampled(self, base_spec: dict[str, Any]) -> list[str]:
        """Keys whose conditions read only unsearched keys and fail on the base spec: they can never be sampled."""
        searched = {p.key for p in self.params}
        out = []
        for param in self.params:
            fixed = {k: v for k, v in param.when.items() if k not in searched}
            if fixed and not self._holds(fixed, {}, base_spec):
                out.append(param.key)
        return out


def condition_holds(current: Any, expected: Any) -> bool:
    """``current == expected`` without bool/int confusion; a list ``expected`` means any of its items."""
    if isinstance(expected, list):
        return any(condition_holds(current, item) for item in expected)
    if isinstance(expected, bool) or isinstance(current, bool):
        return isinstance(expected, bool) and isinstance(current, bool) and current == expected
    return current == expected


def build_search_space(index: KeyIndex, parameters: list[str] | None = None,
                       parameter_ranges: dict[str, dict[str, Any]] | None = None,
                       shorthands: dict[str, Any] | None = None) -> SearchSpace:
    """The search space of the train keys (``action_index("train")``) with the spec's ``automl.parameters`` /
    ``parameter_ranges``.

    Raises RequestError listing every problem (unknown keys, open ranges, bad overrides).
    """
    leaves = {k.path: LeafKey.of(k) for k in index if k.section is None}
    problems: list[str] = []
    keys = _select_keys(leaves, list(parameters or []), dict(shorthands or {}), problems)
    ranges = {_expand(k, shorthands or {}): v or {} for k, v in (parameter_ranges or {}).items()}
    for key in ranges:
        if key not in keys:
            problems.append(f"automl.parameter_ranges.{key}: '{key}' is not searched; add it to automl.parameters "
                            f"(searched: {', '.join(keys) or 'none'})")
    params = []
    for key in keys:
        param = _make_param(leaves[key], ranges.get(key, {}), leaves, problems)
        if param is not None:
            params.append(param)
    ordered = _order_by_conditions(params, problems)
    if not ordered and not problems:
        problems.append("automl: nothing to search; list keys in automl.parameters")
    if problems:
        raise RequestError(problems)
    condition_keys = {k for p in ordered for k in p.when}
    return SearchSpace(tuple(ordered), {k: leaves[k].default for k in condition_keys})


def space_problems(spec: dict[str, Any], index: KeyIndex, shorthands: dict[str, Any]) -> list[str]:
    """Every problem of the spec's ``automl.parameters`` / ``parameter_ranges`` (the plan's check when AutoML is
    on; types and bounds of the ``automl`` keys themselves are the schema validation's job)."""
    automl: dict[str, Any] = spec["automl"] if isinstance(spec.get("automl"), dict) else {}
    parameters = automl.get("parameters") or []
    ranges = automl.get("parameter_ranges") or {}
    if not isinstance(parameters, list) or not isinstance(ranges, dict):
        return []
    try:
        space = build_search_space(index, [str(p) for p in parameters],
                                   {str(k): v if isinstance(v, dict) else {} for k, v in ranges.items()}, shorthands)
    except RequestError as exc:
        return list(exc.problems)
    by_key = {p.key: p for p in space.params}
    problems = []
    if automl.get("algorithm") in ("hyperband", "asha") and EPOCHS_KEY in by_key:
        problems.append(f"automl.parameters: {automl['algorithm']} spends {EPOCHS_KEY} as its budget (trials are "
                        f"stopped early per epoch); drop {EPOCHS_KEY} from the search or use bayesian/random")
    if parameters:  # with the schema's defaults a dead key (momentum under Adam) is simply not sampled
        problems += [f"automl.parameters: '{key}' is only searched when {by_key[key].when}, which the spec never "
                     "meets (those keys are not searched); set them in the spec, search them too, or drop the key"
                     for key in space.never_sampled(spec)]
    return problems


# ---------------------------------------------------------------- key selection

def _expand(key: str, shorthands: dict[str, Any]) -> str:
    """A shorthand naming exactly one key (``lr``) becomes that key."""
    target = shorthands.get(key)
    return target if isinstance(target, str) else key


def _select_keys(leaves: dict[str, LeafKey], requested: list[str], shorthands: dict[str, Any],
                 problems: list[str]) -> list[str]:
    if requested:
        source, raw = "automl.parameters", requested
    else:  # the schema's automl_default_parameters: sorted
        source = "automl_default_parameters (train schema)"
        raw = sorted(k for k, leaf in leaves.items() if leaf.automl and leaf.automl.get("enabled"))
    keys: list[str] = []
    for item in raw:
        key = _expand(str(item), shorthands)
        if key in keys:
            continue
        problem = _unsearchable(key, leaves)
        if problem:
            problems.append(f"{source}: {problem}")
            continue
        keys.append(key)
    return keys


def _unsearchable(key: str, leaves: dict[str, LeafKey]) -> str | None:
    if key.startswith("automl."):
        return f"'{key}' is an AutoML setting, not a training parameter"
    leaf = leaves.get(key)
    if leaf is None:
        hint = difflib.get_close_matches(key, list(leaves), n=1, cutoff=0.6)
        return f"'{key}' is not a train spec key" + (f"; did you mean '{hint[0]}'?" if hint else "")
    if leaf.type not in _SEARCHABLE_TYPES or (leaf.type in ("string", "any") and leaf.options() is None):
        return f"'{key}' ({leaf.type}) cannot be searched; only numbers, booleans and keys with fixed options can"
    return None


# ---------------------------------------------------------------- one parameter

def _make_param(leaf: LeafKey, override: dict[str, Any], leaves: dict[str, LeafKey],
                problems: list[str]) -> SearchParam | None:
    meta = leaf.automl or {}
    where = f"automl.parameter_ranges.{leaf.path}"
    unknown = set(override) - {"low", "high", "options", "log", "option_weights"}
    if unknown:
        problems.append(f"{where}: unknown field(s) {sorted(unknown)}; use low, high, log, options, option_weights")
        return None
    when = dict(meta.get("when") or {})
    for cond_key in when:
        if cond_key not in leaves:
            problems.append(f"{leaf.path}: x-automl.when names '{cond_key}', which is not a train spec key "
                            "(fix the AutoML metadata in optical_inspection/config and regenerate the schemas)")
            return None
    options = override.get("options")
    if leaf.options() is not None or options is not None:
        return _categorical(leaf, meta, override, options, when, where, problems)
    return _numeric(leaf, meta, override, when, where, problems)


def _categorical(leaf: LeafKey, meta: dict[str, Any], override: dict[str, Any], options: list[Any] | None,
                 when: dict[str, Any], where: str, problems: list[str]) -> SearchParam | None:
    allowed = leaf.options()
    if override.get("low") is not None or override.get("high") is not None:
        problems.append(f"{where}: '{leaf.path}' is a choice among options; give options, not low/high")
        return None
    if options is None:
        chosen = list(allowed or ())
    else:
        bad = [o for o in options if not _value_allowed(leaf, o) or not _meets_math_cond(meta, o)]
        if bad:
            shown = list(allowed) if allowed is not None else _bounds_text(leaf)
            shown = f"{shown}, {meta['math_cond']}" if meta.get("math_cond") else shown
            problems.append(f"{where}.options: {bad} not allowed for '{leaf.path}' (allowed: {shown})")
            return None
        chosen = list(dict.fromkeys(options))
    if len(chosen) < 2:
        problems.append(f"{where}: '{leaf.path}' needs at least 2 options to search; to fix a value, set it in "
                        "the spec and leave the key out of automl.parameters")
        return None
    weights = override.get("option_weights")
    if weights is None and meta.get("option_weights") is not None and allowed is not None:
        by_option = dict(zip(allowed, meta["option_weights"]))
        weights = [by_option.get(o, 0.0) for o in chosen]
    if weights is not None:
        if (len(weights) != len(chosen) or any(not isinstance(w, (int, float)) or w < 0 for w in weights)
                or sum(weights) <= 0):
            problems.append(f"{where}.option_weights: need {len(chosen)} non-negative weights (one per option "
                            f"{chosen}) with a positive sum, got {weights}")
            return None
        if len(set(weights)) == 1:
            weights = None
    return SearchParam(leaf.path, "categorical", options=tuple(chosen),
                       weights=tuple(float(w) for w in weights) if weights is not None else None, when=when)


def _numeric(leaf: LeafKey, meta: dict[str, Any], override: dict[str, Any], when: dict[str, Any], where: str,
             problems: list[str]) -> SearchParam | None:
    if override.get("option_weights") is not None:
        problems.append(f"{where}.option_weights: only meaningful with options")
        return None
    low = _first(override.get("low"), meta.get("low"), leaf.minimum)
    high = _first(override.get("high"), meta.get("high"), leaf.maximum)
    log = bool(_first(override.get("log"), meta.get("log"), False))
    if low is None or high is None:
        problems.append(f"{where}: '{leaf.path}' has an open search range; set {where}.low and .high")
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high)):
        problems.append(f"{where}: low/high must be finite numbers (got {low!r}, {high!r})")
        return None
    bad = [f"{name} {v} is outside the key's allowed range {_bounds_text(leaf)}"
           for name, v in (("low", low), ("high", high)) if not _value_allowed(leaf, v)]
    if low >= high:
        bad.append(f"low {low} must be below high {high}")
    if log and low <= 0:
        bad.append(f"a log-scale range needs low > 0 (got {low})")
    if bad:
        problems.append(f"{where}: " + "; ".join(bad))
        return None
    if leaf.type != "integer":
        return SearchParam(leaf.path, "float", low=float(low), high=float(high), log=log, when=when)
    return _integer(leaf, meta, int(math.ceil(low)), int(math.floor(high)), log, when, where, problems)


def _integer(leaf: LeafKey, meta: dict[str, Any], low: int, high: int, log: bool, when: dict[str, Any],
             where: str, problems: list[str]) -> SearchParam | None:
    cond = meta.get("math_cond")
    if cond == "power_of_two":
        powers = [2 ** k for k in range(0, 63) if low <= 2 ** k <= high]
        if len(powers) < 2:
            problems.append(f"{where}: '{leaf.path}' must be a power of two and [{low}, {high}] holds "
                            f"{len(powers)}; widen the range")
            return None
        return SearchParam(leaf.path, "categorical", options=tuple(powers), when=when)
    step = 1
    if isinstance(cond, str) and cond.startswith("multiple_of:"):
        try:
            step = int(cond.split(":", 1)[1])
        except ValueError:
            step = 0
        if step < 1:
            problems.append(f"{leaf.path}: bad x-automl.math_cond '{cond}' (use multiple_of:<k>, k >= 1)")
            return None
        low, high = -(-low // step) * step, (high // step) * step
        log = False  # Optuna cannot combine a step with a log scale; multiples are sampled uniformly
    elif cond is not None:
        problems.append(f"{leaf.path}: unknown x-automl.math_cond '{cond}' (use power_of_two or multiple_of:<k>)")
        return None
    if low >= high:
        problems.append(f"{where}: no two allowed values of '{leaf.path}' in the range (step {step}); widen it")
        return None
    if log and low < 1:
        problems.append(f"{where}: a log-scale integer range needs low >= 1 (got {low})")
        return None
    return SearchParam(leaf.path, "int", low=low, high=high, log=log, step=step if step > 1 else None, when=when)


def _first(*values: Any) -> Any:
    for value in values:
        if value is not None:
            return value
    return None


def _value_allowed(leaf: LeafKey, value: Any) -> bool:
    """Whether ``value`` passes the key's validation (options, type, bounds)."""
    allowed = leaf.options()
    if allowed is not None:
        return any(condition_holds(value, a) for a in allowed)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if leaf.type == "integer" and float(value) != int(value):
        return False
    return ((leaf.minimum is None or value >= leaf.minimum) and (leaf.maximum is None or value <= leaf.maximum)
            and (leaf.exclusive_minimum is None or value > leaf.exclusive_minimum)
            and (leaf.exclusive_maximum is None or value < leaf.exclusive_maximum))


def _meets_math_cond(meta: dict[str, Any], value: Any) -> bool:
    cond = meta.get("math_cond")
    if not isinstance(value, int) or isinstance(value, bool) or not isinstance(cond, str):
        return True
    if cond == "power_of_two":
        return value > 0 and value & (value - 1) == 0
    if cond.startswith("multiple_of:") and cond.split(":", 1)[1].isdigit():
        return value % max(1, int(cond.split(":", 1)[1])) == 0
    return True


def _bounds_text(leaf: LeafKey) -> str:
    lo = f"[{leaf.minimum}" if leaf.minimum is not None else (
        f"({leaf.exclusive_minimum}" if leaf.exclusive_minimum is not None else "(-inf")
    hi = f"{leaf.maximum}]" if leaf.maximum is not None else (
        f"{leaf.exclusive_maximum})" if leaf.exclusive_maximum is not None else "inf)")
    return f"{lo}, {hi}"


# ---------------------------------------------------------------- ordering

def _order_by_conditions(params: list[SearchParam], problems: list[str]) -> list[SearchParam]:
    """Stable topological order: a key comes after the searched keys its conditions read."""
    by_key = {p.key: p for p in params}
    ordered: list[SearchParam] = []
    placed: set[str] = set()
    visiting: set[str] = set()

    def place(param: SearchParam) -> bool:
        if param.key in placed:
            return True
        if param.key in visiting:
            problems.append(f"automl: conditions of '{param.key}' form a cycle ({' -> '.join(sorted(visiting))})")
            return False
        visiting.add(param.key)
        for dep in param.when:
            if dep in by_key and not place(by_key[dep]):
                return False
        visiting.discard(param.key)
        placed.add(param.key)
        ordered.append(param)
        return True

    for param in params:
        if not place(param):
            return []
    return ordered


