"""``--spec FILE``: a user's (or TAO's) spec YAML as the base of a job instead of the template.

The file is read like the trainer reads it (same YAML rules and errors), laid over the action's template (so keys
it leaves out keep their template values) and its ``${a.b}`` references are resolved there, against the merged
spec, before overrides, data sources and parent artefacts are applied; ``${oc.env:...}`` references stay as they
are (the trainer resolves them, so a secret is never written). Every value of the file that the runner then
replaces (this job's results folder, data from --data, a parent's artefact) is returned as a warning.
"""
from __future__ import annotations

import copy
from typing import Any

from optical_inspection.config.walk import KeyIndex
from optical_inspection.dotted import PLACEHOLDER, get_dotted

from .errors import RequestError
from .specbuild import SpecDraft

_ENV_REF = "${oc.env:"


def spec_file_base(path: str, template: dict[str, Any], keys: KeyIndex, action: str
                   ) -> tuple[dict[str, Any], list[str]]:
    """The template with the file's values laid over it, references resolved (environment ones kept), and the
    warnings: top-level sections the action does not read (a TAO experiment.yaml holds every action's) are left
    out, and an ``<action>.results_dir`` gives way to this job's folder (a job owns its results folder)."""
    from optical_inspection.errors import SpecError
    from optical_inspection.spec import read_yaml

    try:
        data = read_yaml(path)
    except SpecError as exc:
        raise RequestError(f"--spec: {exc}") from None
    resolved = _resolve(_merge(copy.deepcopy(template), data), path)
    read = set(keys.top)
    unread = sorted(k for k in resolved if k not in read and k in data)
    warnings = [f"{path}: sections {', '.join(unread)} are not read by {action}; left out of this job's spec"
                ] if unread else []
    own = (resolved.get(action) or {}).get("results_dir") if isinstance(resolved.get(action), dict) else None
    if own:
        resolved[action]["results_dir"] = None
        warnings.append(f"{action}.results_dir: {path} sets {own!r}; replaced by this job's results folder "
                        f"(runner: a job writes only into its own folder)")
    return {k: v for k, v in resolved.items() if k not in unread}, warnings


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _resolve(data: dict[str, Any], path: str) -> dict[str, Any]:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    kept: dict[str, str] = {}

    def park(node: Any) -> Any:  # environment references are left for the trainer
        if isinstance(node, dict):
            return {k: park(v) for k, v in node.items()}
        if isinstance(node, list):
            return [park(v) for v in node]
        if isinstance(node, str) and _ENV_REF in node:
            token = f"__oi_env_ref_{len(kept)}__"
            kept[token] = node
            return token
        return node

    def unpark(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: unpark(v) for k, v in node.items()}
        if isinstance(node, list):
            return [unpark(v) for v in node]
        return kept.get(node, node) if isinstance(node, str) else node

    try:
        resolved = OmegaConf.to_container(OmegaConf.create(park(data)), resolve=True, throw_on_missing=False)
    except OmegaConfBaseException as exc:
        raise RequestError(f"--spec {path}: cannot resolve its ${{...}} references: {str(exc).splitlines()[0]}"
                           ) from None
    return unpark(resolved)


def replaced_spec_values(before: dict[str, Any], draft: SpecDraft, path: str | None) -> list[str]:
    """One warning per value of the spec file that the runner replaced, with the reason."""
    absent = object()
    warnings = []
    for key, source in draft.sources.items():
        if source.startswith("override"):
            continue  # the user asked for it
        old = get_dotted(before, key, absent)
        if old is absent or old in (None, PLACEHOLDER) or old == draft.get(key):
            continue
        warnings.append(f"{key}: {path} sets {old!r}; replaced by {draft.get(key)!r} ({source})")
    return warnings
