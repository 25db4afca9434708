"""User-facing errors: printed without a traceback, each with a documented exit code."""
from __future__ import annotations


class OIError(Exception):
    """A failure the user can fix (bad data, missing file...). Exit code 1."""

    exit_code = 1


class SpecError(OIError):
    """The spec or the command line is wrong. Exit code 2. Holds every problem found, not just the first."""

    exit_code = 2

    def __init__(self, problems: list[str] | str, source: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        head = f"Invalid spec{f' {source}' if source else ''}: {len(self.problems)} problem(s)"
        super().__init__(head + "\n" + "\n".join(f"  - {p}" for p in self.problems))


class DataError(OIError):
    """A dataset (CSV, images, archive) is unusable. Exit code 1."""
