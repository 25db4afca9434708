"""One module per action, each exposing ``run(config, results_dir, status) -> dict``.

The result dict lists what the action wrote (``artifacts``) and what it measured (``metrics``).
Modules are imported lazily so the CLI's planning path stays torch-free.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

from ..config import ACTIONS


def get_action(name: str) -> Callable[..., dict[str, Any]]:
    """The ``run`` function of an action; NotImplementedError when its module does not exist yet."""
    if name not in ACTIONS:
        raise KeyError(name)
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"{__name__}.{name}":
            raise NotImplementedError(f"action '{name}' is not implemented yet") from None
        raise
    return module.run
