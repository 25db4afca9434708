"""One results folder, one run: the trainer claims ``<results>/<action>`` before it writes anything there.

- A run holds the folder's lock (``.oi-lock``, see :mod:`.locks`) until it ends; a second run into a locked
  folder is refused (exit 2, nothing written).
- A folder holding another run's files (anything besides ``experiment.yaml``, ``status.json``, the lock and
  stale temps) is refused the same way, except by a train run that resumes the training kept there (the folder
  holds ``oi_model_latest.pth``: TAO's rerun-to-continue) and by a run whose spec asks to replace its output
  (``export.overwrite: true``).
- Once claimed, the stale temps of killed writes are removed. ``experiment.yaml`` is written at the start,
  except when the folder holds an earlier run's files (resume, overwrite): then it is replaced only when the new
  run succeeds (a failed rerun leaves the folder's experiment.yaml describing the files kept there).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import OIError
from .io_utils import TEMP_SUFFIX, remove_stale_temps
from .locks import RESULTS_LOCK, FolderLock

LATEST_NAME = "oi_model_latest.pth"
EXPERIMENT_NAME = "experiment.yaml"
STATUS_NAME = "status.json"
RUN_RECORDS = (EXPERIMENT_NAME, STATUS_NAME, RESULTS_LOCK)


class FolderRefused(OIError):
    """The results folder is in use by another run, or holds another run's files. Exit code 2."""

    exit_code = 2


@dataclass
class Claim:
    """A claimed results folder: its lock, and whether ``experiment.yaml`` waits for the run's success."""

    folder: Path
    lock: FolderLock
    defer_experiment: bool

    def release(self) -> None:
        self.lock.release()


def action_results_dir(results_dir: str, own: str | None, action: str) -> Path:
    """TAO's rule for the folder an action writes into: ``<action>.results_dir`` (``own``) if set, else
    ``<results_dir>/<action>``. The trainer applies it to its config, the runner to plain spec data."""
    return Path(own) if own else Path(results_dir) / action


def foreign_files(folder: Path) -> list[str]:
    """The names in ``folder`` that are a run's artefacts (not its records, lock or stale temps)."""
    if not folder.is_dir():
        return []
    return sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir()
                  if p.name not in RUN_RECORDS and not p.name.endswith(TEMP_SUFFIX))


def claim(folder: Path, action: str, replaces: bool = False) -> Claim:
    """Lock ``folder`` for this run (creating it); FolderRefused, with nothing written, when it is not free.
    ``replaces``: the spec asks to replace the folder's output (``<action>.overwrite``)."""
    lock = FolderLock(folder)
    if lock.path.is_file() and not lock.acquire():
        raise _busy(folder)
    try:
        rerun = replaces or (action == "train" and (folder / LATEST_NAME).is_file())
        found = foreign_files(folder)
        if found and not rerun:
            shown = ", ".join(found[:6]) + (f", ... ({len(found) - 6} more)" if len(found) > 6 else "")
            hint = {"train": " (a train run continues the training of a folder holding oi_model_latest.pth)",
                    "export": " (set export.overwrite=true to replace its ONNX file)"}.get(action, "")
            raise FolderRefused(
                f"results folder {folder} holds another run's files ({shown}); a results folder holds one run"
                f"{hint}. Give this {action} another folder ({action}.results_dir=... or results_dir=...), or "
                "delete this one to start over")
        if not lock.held:
            folder.mkdir(parents=True, exist_ok=True)
            if not lock.acquire():
                raise _busy(folder)
    except BaseException:
        lock.release()
        raise
    remove_stale_temps(folder)
    return Claim(folder, lock, bool(found) and (folder / EXPERIMENT_NAME).is_file())


def _busy(folder: Path) -> FolderRefused:
    return FolderRefused(f"results folder {folder} is in use by another run (it holds {folder / RESULTS_LOCK}); "
                         "wait for that run to end, or give this one another results folder")
