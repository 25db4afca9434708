"""Runner errors, each with the exit code the CLI returns for it (documented in :mod:`runners.cli`)."""
from __future__ import annotations

EXIT_OK = 0
EXIT_JOB_FAILED = 1      # the launched action failed, or AutoML was asked for and is not available
EXIT_BAD_REQUEST = 2     # usage, overrides or the built spec are invalid (every problem listed)
EXIT_NOT_FOUND = 3       # unknown job id, parent job unusable, checkpoint missing or ambiguous
EXIT_DATA = 4            # a data source is missing or unreadable (local folder, archive, S3)
EXIT_INTERRUPTED = 130


class RunnerError(Exception):
    """A failure the user can fix; the message says what is wrong and what to do."""

    exit_code = EXIT_JOB_FAILED

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        text = self.problems[0] if len(self.problems) == 1 else (
            f"{len(self.problems)} problems:\n" + "\n".join(f"  - {p}" for p in self.problems))
        super().__init__(text)


class RequestError(RunnerError):
    """The request (arguments, overrides, resulting spec) is invalid."""

    exit_code = EXIT_BAD_REQUEST


class NotFoundError(RunnerError):
    """A job, parent artefact or checkpoint does not exist or is ambiguous."""

    exit_code = EXIT_NOT_FOUND


class DataSourceError(RunnerError):
    """A data source cannot be read (missing folder/file, bad archive, S3 bucket/key/credentials)."""

    exit_code = EXIT_DATA
