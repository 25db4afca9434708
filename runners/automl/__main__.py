"""`python -m runners.automl JOB_ID [--jobs-root ROOT]`: run a recorded AutoML job (the detached process that
`python -m runners run train --detach` starts when automl_policy is on). Prints the final record as JSON."""
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


if __name__ == "__main__":
    sys.exit(main())
