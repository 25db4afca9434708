"""Limits on what a spec or an override may hold, checked without recursion (so hostile input cannot overflow the
stack or expand an alias bomb): file size, nesting depth, expanded size, finite numbers. Dependency-free, shared by
the trainer's spec loader and the runner."""
from __future__ import annotations

import math
from typing import Any

MAX_SPEC_BYTES = 1 << 20      # a spec is a few KiB; 1 MiB leaves room for long path lists
MAX_DEPTH = 32                # the deepest spec key is 4 levels down
MAX_NODES = 100_000           # values after YAML aliases are expanded
INT64_MAX = 2**63 - 1


def structure_problem(data: Any, what: str) -> str | None:
    """Why ``data`` is too deep or too large once expanded (aliases count each time they are used), or None."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    nodes = 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            return (f"{what} expands to more than {MAX_NODES:,} values (YAML aliases/anchors repeated?); a spec "
                    "holds a few hundred")
        if depth > MAX_DEPTH:
            return f"{what} is nested more than {MAX_DEPTH} levels deep; spec keys are at most a few levels deep"
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend((v, depth + 1) for v in value)
    return None


def number_problems(data: Any, prefix: str = "") -> list[str]:
    """'<key>: ...' for every NaN/infinite float and every integer beyond 64 bits in ``data`` (dotted keys)."""
    problems = []
    stack: list[tuple[str, Any]] = [(prefix, data)]
    while stack:
        key, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((f"{key}.{k}" if key else str(k), v) for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            stack.extend((f"{key}.{i}" if key else str(i), v) for i, v in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{key or '<value>'}: {value} is not a finite number; give a finite value")
        elif isinstance(value, int) and not isinstance(value, bool) and not -INT64_MAX - 1 <= value <= INT64_MAX:
            problems.append(f"{key or '<value>'}: {value} does not fit in a 64-bit integer")
    return sorted(problems)
