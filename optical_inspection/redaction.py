"""Secrets are resolved at run time and never written: the registry of secret environment variables and spec
keys, and the redaction every writer applies (files, status.json, logs, job records, CLI output).

- Secret environment variables (:data:`SECRET_ENV`): their values, read when a text is written, become ``***``.
- Values learnt at run time (e.g. the credentials of an ``s3://KEY:SECRET@bucket/...`` location) are added with
  :func:`register` and redacted the same way.
- The password of any ``scheme://user:password@host`` URL becomes ``***``.
- Secret spec keys (:data:`SECRET_SPEC_KEYS`) are written as the ``${oc.env:NAME}`` reference their value came
  from, or as ``***``; so a spec read back still resolves the value from the environment at run time.

Values shorter than :data:`MIN_SECRET_LEN` characters are not searched for (too short to find safely); the
secret spec keys are masked whatever their length.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from typing import Any, Iterator

MASK = "***"
MIN_SECRET_LEN = 8
SECRET_ENV = ("OI_ENCRYPTION_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
              "AWS_SECURITY_TOKEN")
SECRET_SPEC_KEYS = {"encryption_key": "OI_ENCRYPTION_KEY"}  # spec key -> the variable the runner reads it from
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)(?P<password>[^/\s@]+)(?P<at>@)")
_registered: set[str] = set()
_lock = threading.Lock()


def register(*values: str) -> None:
    """Redact these values (learnt at run time) from everything this process writes from now on."""
    with _lock:
        _registered.update(v for v in values if v)


def secret_values() -> list[str]:
    """The values to redact now, longest first (so a secret holding another is masked whole)."""
    values = {os.environ.get(name, "") for name in SECRET_ENV} | _registered
    return sorted((v for v in values if len(v) >= MIN_SECRET_LEN), key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with every known secret value and every URL password replaced by ``***``."""
    for value in secret_values():
        if value in text:
            text = text.replace(value, MASK)
    return _URL_PASSWORD.sub(lambda m: m["head"] + MASK + m["at"], text)


def env_reference(name: str) -> str:
    return "${oc.env:%s}" % name


def mask_secret_keys(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of a spec whose secret keys hold the ``${oc.env:NAME}`` reference their value came from (the value
    equals that variable) or ``***``; a reference stays a reference."""
    out = dict(data)
    for key, env in SECRET_SPEC_KEYS.items():
        value = out.get(key)
        if not value or str(value).startswith("${oc.env:"):
            continue
        out[key] = env_reference(env) if os.environ.get(env) == value else MASK
    return out


class RedactingStream:
    """A text stream wrapper that redacts whatever is written through it (the trainer's stdout/stderr, which
    the runner keeps as the job's log)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def redacted_output() -> Iterator[None]:
    """Redact what is printed to stdout/stderr inside the block."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = RedactingStream(sys.stdout), RedactingStream(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
