"""`optical_inspection <action> -e spec.yaml [key=value ...] [--dry-run]` (TAO's CLI spelling).

Exit codes: 0 success, 2 bad spec or usage, or a results folder in use or holding another run's files (nothing
written), 1 runtime failure, 130 interrupted (SIGINT, SIGTERM). Every run writes STARTED and then SUCCESS or
FAILURE to `<results>/status.json`, whatever goes wrong (exceptions, Ctrl-C, SIGTERM). Every failure prints one
`ERROR: ...` message on stderr, never a traceback; an unexpected error (a bug) also leaves its traceback in
`<results>/traceback.txt`. Nothing it writes or prints holds a secret value (see :mod:`.redaction`).
"""
from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from .config import ACTIONS, ExperimentConfig
from .config.walk import KeyIndex
from .errors import OIError, SpecError
from .results_folder import action_results_dir

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
TRACEBACK_NAME = "traceback.txt"  # an unexpected error's traceback, in the results folder
_TITLES = {
    "train": "Train", "evaluate": "Evaluate", "inference": "Inference", "export": "Export",
    "gen_trt_engine": "Gen_trt_engine", "dataset_convert": "Dataset_convert",
    "inspect": "Inspect",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optical_inspection",
        description="Siamese golden-image defect inspection (TAO Optical Inspection compatible).",
        epilog="Run 'optical_inspection <action> --help' to list every spec key with its default, and "
               "'optical_inspection skills install --help' to install the agent skills.",
    )
    sub = parser.add_subparsers(dest="action", metavar="action", required=True,
                                help="one of: " + ", ".join(ACTIONS))
    for action in ACTIONS:
        p = sub.add_parser(action, help=f"{action} action", description=f"optical_inspection {action}",
                           formatter_class=argparse.RawDescriptionHelpFormatter, epilog=keys_help())
        p.add_argument("-e", "--experiment_spec_file", "--experiment-spec-file", dest="spec", required=True,
                       help="experiment spec YAML")
        p.add_argument("--dry-run", action="store_true", help="validate and print the resolved spec, run nothing")
        p.add_argument("overrides", nargs="*", help="spec overrides as dotted key=value, e.g. train.num_epochs=5")
    return parser


def keys_help() -> str:
    lines = ["spec keys (key: default - description):"]
    for spec in KeyIndex(ExperimentConfig):
        if spec.section is None:
            lines.append(f"  {spec.path}: {json.dumps(spec.default())} - {spec.info.description}")
    return "\n".join(lines)


def results_dir_for(config: ExperimentConfig, action: str) -> Path:
    """The folder ``action`` writes into (:func:`~optical_inspection.results_folder.action_results_dir`)."""
    block = getattr(config, action, None)
    return action_results_dir(config.results_dir, getattr(block, "results_dir", None), action)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["skills"]:  # `optical_inspection skills install|uninstall|list`: no spec involved
        from .skill_install import main as skills_main

        return skills_main(argv[1:])
    from .redaction import redacted_output

    with redacted_output():  # stdout/stderr are the job's log: no secret value reaches them
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    from .spec import load_spec, to_yaml

    try:
        config = load_spec(args.spec, args.overrides, action=args.action)
    except SpecError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - the edge: a message, never a traceback
        print(f"ERROR: cannot load the spec '{args.spec}': {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if args.dry_run:
        sys.stdout.write(to_yaml(config))
        return EXIT_OK
    return run_action(args.action, config)


def run_action(action: str, config: ExperimentConfig) -> int:
    """Run one action with TAO's results layout and status records; return the exit code.

    Rank 0 first claims the results folder (see :mod:`.results_folder`): a folder in use by another run, or
    holding another run's files, is refused with exit 2 and nothing written."""
    from .results_folder import FolderRefused, claim
    from .status import is_rank_zero

    results = results_dir_for(config, action)
    if not is_rank_zero():  # the other ranks of a distributed run write no records of their own
        return _run(action, config, results, experiment="never")
    try:
        replaces = bool(getattr(getattr(config, action, None), "overwrite", False))  # export.overwrite
        folder = claim(results, action, replaces)
    except FolderRefused as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        return _folder_error(results, action, exc)
    try:
        return _run(action, config, results, experiment="on success" if folder.defer_experiment else "now")
    finally:
        folder.release()


def _run(action: str, config: ExperimentConfig, results: Path, experiment: str) -> int:
    """experiment.yaml (``experiment``: now, on success or never), STARTED, the action, then SUCCESS/FAILURE."""
    from .io_utils import write_text_atomic
    from .results_folder import EXPERIMENT_NAME, STATUS_NAME
    from .spec import to_yaml
    from .status import StatusLogger

    try:
        results.mkdir(parents=True, exist_ok=True)
        if experiment == "now":
            write_text_atomic(results / EXPERIMENT_NAME, to_yaml(config))
    except OSError as exc:
        return _folder_error(results, action, exc)
    status = StatusLogger(results / STATUS_NAME)
    title = _TITLES[action]
    status.write("STARTED", f"Starting Optical Inspection {action}.")
    interrupted: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        interrupted.append(signum)
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = importlib.import_module(f"{__package__}.actions.{action}").run(config, results, status)
    except BaseException as exc:  # noqa: BLE001 - every failure must leave a FAILURE record
        return _record_failure(action, status, exc, interrupted)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if experiment == "on success":
        write_text_atomic(results / EXPERIMENT_NAME, to_yaml(config))
    status.write("SUCCESS", f"{title} finished successfully.", **_summary(result))
    return EXIT_OK


def _folder_error(results: Path, action: str, exc: OSError) -> int:
    """The message for a results folder that cannot be created or written."""
    blocked = isinstance(exc, (FileExistsError, NotADirectoryError))
    why = "a file is in the way (results_dir or a folder above it is a file)" if blocked else exc.strerror
    print(f"ERROR: cannot create the results folder '{results}': {why}; set results_dir (or {action}.results_dir) "
          f"to a folder you can write", file=sys.stderr)
    return EXIT_FAILURE


def _record_failure(action: str, status: Any, exc: BaseException, interrupted: list[int]) -> int:
    """Write the FAILURE record and the message for ``exc``; return the exit code (called while handling it)."""
    title = _TITLES[action]
    if isinstance(exc, KeyboardInterrupt) or interrupted:  # Lightning turns an interrupt into SystemExit(1)
        how = f" (signal {interrupted[0]})" if interrupted else ""
        status.write("FAILURE", f"{title} interrupted{how}.", verbosity="ERROR")
        print(f"ERROR: {action} interrupted", file=sys.stderr)
        return 130
    if isinstance(exc, (OIError, NotImplementedError)):
        status.write("FAILURE", str(exc), verbosity="ERROR")
        print(f"ERROR: {exc}", file=sys.stderr)
        return exc.exit_code if isinstance(exc, OIError) else EXIT_FAILURE
    status.write("FAILURE", f"{type(exc).__name__}: {exc}", verbosity="ERROR")
    trace = status.path.parent / TRACEBACK_NAME
    try:
        trace.write_text(traceback.format_exc(), encoding="utf-8")
        where = f"; the traceback is in {trace}"
    except OSError:
        where = ""
    print(f"ERROR: {action} failed unexpectedly: {type(exc).__name__}: {exc}{where}", file=sys.stderr)
    return EXIT_FAILURE


def _summary(result: dict[str, Any] | None) -> dict[str, Any]:
    if not result:
        return {}
    return {k: v for k, v in result.items() if k in ("kpi", "artifacts")}


def entrypoint() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()
