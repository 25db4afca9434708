"""Cross-key spec rules, on plain spec data. Dependency-free, so the runner checks them at plan time without
loading the trainer's config stack; the trainer's spec loader applies the same function."""
from __future__ import annotations

from typing import Any

from .dotted import get_dotted


def _num(data: dict[str, Any], key: str, default: Any) -> Any:
    value = get_dotted(data, key, default)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def cross_key_problems(data: dict[str, Any], action: str) -> list[str]:
    """Rules between keys that a JSON Schema cannot state (lights vs num_input and grid, train batch > 1,
    the TensorRT batch profile), each a problem naming the key."""
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
        synthetic = get_dotted(data, "dataset.synthetic_defects", None) or {}
        if isinstance(synthetic, dict) and synthetic.get("enable", True) and synthetic.get("kinds", None) == []:
            problems.append("dataset.synthetic_defects.kinds: empty while synthetic_defects.enable is true; name at "
                            "least one of spot, edge, cut, smudge, or set enable: false")
        bs = _num(data, "dataset.batch_size", 32)
        if bs is not None and bs < 2:
            problems.append(f"dataset.batch_size: training needs a batch size > 1 (got {bs})")
    if action == "gen_trt_engine":
        lo, opt, hi = (_num(data, f"gen_trt_engine.tensorrt.{k}_batch_size", 1) for k in ("min", "opt", "max"))
        if None not in (lo, opt, hi) and not lo <= opt <= hi:
            problems.append(f"gen_trt_engine.tensorrt: need min_batch_size <= opt_batch_size <= max_batch_size "
                            f"(got {lo}, {opt}, {hi})")
    return problems
