"""`python -m runners <verb> ...`: the agent-facing front door. JSON on stdout, diagnostics on stderr.

Verbs:
  plan ACTION [options]    resolve the spec and every decision; launch nothing, write nothing
  run ACTION [options]     the same, then record the job, fetch the data and launch the trainer; waits for the
                           end unless --detach
  status JOB | show JOB | list | cancel JOB | logs JOB [--tail N]
  mcp [--jobs-root DIR]    serve these verbs as MCP tools over stdio (needs the mcp extra)
  supervise JOB            (internal) the detached process that runs and records a job started with --detach
Options of plan/run: --request TEXT, --automl-policy on|off, --overrides JSON, --data SOURCE=LOCATION
(repeatable), --parent-job JOB, --checkpoint best|latest|epoch=N (N counts epochs from 1)|pretrained, --spec FILE (a
spec YAML as the base instead of the template; what the runner replaces is listed in "warnings"), --jobs-root DIR
(default $OI_JOBS_ROOT or ./oi_jobs), --detach (run only).

Exit codes:
  0    done (plan resolved; the job succeeded; the verb worked; a detached job was started)
  1    the job failed or was cancelled, or AutoML was asked for and is not available
  2    bad request: usage, a malformed job id, unknown or conflicting keys, invalid spec (every problem listed)
  3    not found: unknown job, unusable parent job, missing or ambiguous checkpoint
  4    data source unreadable: missing folder or dataset.csv, bad archive, S3 bucket/key/credentials
  130  interrupted
An unexpected error (a bug) prints `internal error: ...` as the JSON `error` and exits 1, without a traceback
(`supervise` writes it to the job's log).
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections import deque
from pathlib import Path
from typing import Any

from .errors import EXIT_INTERRUPTED, EXIT_JOB_FAILED, EXIT_OK, RequestError, RunnerError
from optical_inspection.strict_json import dumps

_SUMMARY_FIELDS = ("id", "action", "status", "parent_id", "created", "started", "finished", "exit_code",
                   "message", "metrics")


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so usage errors get the JSON error output too."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise RequestError(f"{self.prog}: {message} (see python -m runners --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m runners", description=__doc__.split("\n\n")[0],
                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 1)[1])
    sub = parser.add_subparsers(dest="verb", required=True, metavar="verb", parser_class=_Parser)
    jobs_root = os.environ.get("OI_JOBS_ROOT", "oi_jobs")
    for verb in ("plan", "run"):
        p = sub.add_parser(verb, help=f"{verb} an action")
        p.add_argument("action")
        p.add_argument("--request", help="the user's words (read for automl_policy phrases)")
        p.add_argument("--automl-policy", choices=("on", "off"))
        p.add_argument("--overrides", help='JSON object of dotted or shorthand keys, e.g. \'{"epochs": 5}\'')
        p.add_argument("--data", action="append", default=[], metavar="SOURCE=LOCATION")
        p.add_argument("--parent-job")
        p.add_argument("--checkpoint", help="best | latest | epoch=N (N counts epochs from 1) | pretrained "
                       "(the bundled weights, no --parent-job)")
        p.add_argument("--spec", metavar="FILE",
                       help="a spec YAML (yours or TAO's) as the base instead of the template")
        p.add_argument("--jobs-root", default=jobs_root)
        if verb == "run":
            p.add_argument("--detach", action="store_true", help="return once the job is started")
    for verb in ("status", "show", "cancel", "logs", "supervise"):
        p = sub.add_parser(verb, help=f"{verb} a job")
        p.add_argument("job_id")
        p.add_argument("--jobs-root", default=jobs_root)
        if verb == "logs":
            p.add_argument("--tail", type=int, default=200, help="last N lines (0: all)")
    p = sub.add_parser("list", help="list jobs")
    p.add_argument("--jobs-root", default=jobs_root)
    p.add_argument("--status", help="only jobs in this status")
    p.add_argument("--action", help="only jobs of this action")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["mcp"]:  # the same verbs as MCP tools over stdio (stdout carries the protocol)
        from .mcp_server import main as mcp_main

        return mcp_main(argv[1:])
    from optical_inspection.redaction import redacted_output

    with redacted_output():  # no secret value is printed (nor reaches a detached job's log)
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
        result, code = _dispatch(args)
    except RunnerError as exc:
        code = exc.exit_code
        print(f"ERROR: {exc}", file=sys.stderr)
        _emit({"error": exc.problems[0] if len(exc.problems) == 1 else f"{len(exc.problems)} problems",
               "problems": exc.problems, "exit_code": code})
        return code
    except KeyboardInterrupt:
        print("ERROR: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the edge: JSON and a message, never a bare traceback
        message = f"internal error: {type(exc).__name__}: {exc}"
        print(f"ERROR: {message}", file=sys.stderr)
        if argv_verb(argv) == "supervise":  # its stderr is the job's log: keep the traceback there
            traceback.print_exc()
        _emit({"error": message, "problems": [message], "exit_code": EXIT_JOB_FAILED})
        return EXIT_JOB_FAILED
    _emit(result)
    return code


def argv_verb(argv: list[str] | None) -> str | None:
    args = sys.argv[1:] if argv is None else argv
    return args[0] if args else None


def _dispatch(args: argparse.Namespace) -> tuple[Any, int]:
    from . import api

    if args.verb in ("plan", "run"):
        from .sources import parse_data_args
        from .specbuild import parse_overrides

        kwargs = dict(request=args.request, automl_policy=args.automl_policy,
                      overrides=parse_overrides(args.overrides), data=parse_data_args(args.data),
                      parent_job=args.parent_job, checkpoint=args.checkpoint, spec_file=args.spec)
        if args.verb == "plan":
            return api.plan_job(args.action, jobs_root=args.jobs_root, **kwargs).as_dict(), EXIT_OK
        record = api.run_job(args.action, jobs_root=args.jobs_root, detach=args.detach, **kwargs)
        ok = record.status == "success" or (args.detach and record.status in ("pending", "running"))
        return record.as_dict(), EXIT_OK if ok else EXIT_JOB_FAILED
    if args.verb == "supervise":
        from .launch import supervise
        from .records import JobStore

        record = supervise(JobStore(args.jobs_root), args.job_id)
        return record_summary(record.as_dict()), EXIT_OK if record.status == "success" else EXIT_JOB_FAILED
    if args.verb == "status":
        return record_summary(api.job_status(args.job_id, args.jobs_root).as_dict()), EXIT_OK
    if args.verb == "show":
        shown = api.job_status(args.job_id, args.jobs_root).as_dict()
        shown["spec"] = _read_spec(Path(shown["spec_path"]))
        return shown, EXIT_OK
    if args.verb == "list":
        jobs = [record_summary(r.as_dict()) for r in api.list_jobs(args.jobs_root)
                if (not args.status or r.status == args.status) and (not args.action or r.action == args.action)]
        return {"jobs_root": str(Path(args.jobs_root).resolve()), "jobs": jobs}, EXIT_OK
    if args.verb == "cancel":
        return record_summary(api.cancel_job(args.job_id, args.jobs_root).as_dict()), EXIT_OK
    if args.verb == "logs":
        if args.tail < 0:
            raise RequestError(f"--tail {args.tail}: give a number of lines >= 0 (0: the whole log)")
        record = api.job_status(args.job_id, args.jobs_root)
        return {"id": record.id, "status": record.status, "log_path": record.log_path,
                "text": tail_lines(Path(record.log_path), args.tail)}, EXIT_OK
    raise RunnerError(f"unknown verb {args.verb}")


def record_summary(record: dict[str, Any]) -> dict[str, Any]:
    """The fields of a job record that status, list and cancel answer with (CLI and MCP alike)."""
    return {k: record.get(k) for k in _SUMMARY_FIELDS}


def _read_spec(path: Path) -> Any:
    import yaml

    from .specbuild import MASK, SECRET_KEYS

    if not path.is_file():
        return None
    spec = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader) or {}
    for key in SECRET_KEYS:
        if spec.get(key) and not str(spec[key]).startswith("${oc.env:"):
            spec[key] = MASK
    return spec


def tail_lines(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a text file (all of it for 0; empty when it does not exist)."""
    if not path.is_file():
        return ""
    with open(path, encoding="utf-8", errors="replace") as fh:
        return "".join(deque(fh, maxlen=lines) if lines > 0 else fh)


def _emit(payload: Any) -> None:
    sys.stdout.write(dumps(payload, indent=2, default=str) + "\n")


def entrypoint() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()
