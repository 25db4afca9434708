"""`python -m runners.automl JOB_ID [--jobs-root ROOT]`: run a recorded AutoML job (the detached process that
`python -m runners run train --detach` starts when automl_policy is on). Prints the final record as JSON.

`python -m runners.automl stop STUDY [--storage-env VAR] [--reason TEXT]`: ask every worker of a shared study
to stop (the storage URL is read from the environment variable, default OI_OPTUNA_STORAGE, never from argv)."""
from __future__ import annotations

import argparse
import sys

from ..errors import RunnerError
from ..records import JobStore
from .job import run_automl_job
from optical_inspection.strict_json import dumps


def main(argv: list[str] | None = None) -> int:
    from optical_inspection.redaction import redacted_output

    with redacted_output():  # stdout/stderr are the job's log
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["stop"]:
        return _stop(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m runners.automl", description=__doc__)
    parser.add_argument("job_id")
    parser.add_argument("--jobs-root", default="oi_jobs")
    args = parser.parse_args(argv)
    try:
        record = run_automl_job(JobStore(args.jobs_root), args.job_id)
    except RunnerError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return exc.exit_code
    print(dumps(record.as_dict(), indent=2))
    return 0 if record.status == "success" else 1


def _stop(argv: list[str]) -> int:
    import os

    parser = argparse.ArgumentParser(prog="python -m runners.automl stop", description="stop a shared study")
    parser.add_argument("study", help="automl.study_name")
    parser.add_argument("--storage-env", default="OI_OPTUNA_STORAGE", help="variable holding the storage URL")
    parser.add_argument("--reason", default="stop requested by the user")
    args = parser.parse_args(argv)
    url = os.environ.get(args.storage_env)
    if not url:
        print(f"ERROR: {args.storage_env} is not set; export the study's storage URL in it", file=sys.stderr)
        return 2
    import optuna

    from .driver import request_stop
    from .study import open_storage

    try:
        study = optuna.load_study(study_name=args.study, storage=open_storage(url))
    except KeyError:
        print(f"ERROR: no study '{args.study}' in that storage; `optuna studies` lists them", file=sys.stderr)
        return 2
    except RunnerError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return exc.exit_code
    request_stop(study, args.reason)
    print(dumps({"study": args.study, "stop_requested": args.reason}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
