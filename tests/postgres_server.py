"""A real PostgreSQL server for tests: ``initdb`` + ``pg_ctl`` in a temporary folder, listening on 127.0.0.1 only,
with a password (scram-sha-256), stopped and deleted afterwards.

Binaries: ``initdb`` on PATH or Debian's ``/usr/lib/postgresql/<version>/bin``. As root (CI), the server runs as
the ``postgres`` user (initdb refuses root). When it cannot start the tests skip, naming why, unless
``OI_REQUIRE_POSTGRES=1`` (set by .ci/run), which turns the skip into a failure.
"""
from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

USER = "oi_test"


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    database: str

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"


def bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl (newest Debian version first), or None."""
    found = shutil.which("initdb")
    candidates = ([str(Path(found).resolve().parent)] if found else []) + sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name) if Path(
            p).parent.name.isdigit() else 0, reverse=True)
    for folder in candidates:
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unavailable(reason: str) -> None:
    if os.environ.get("OI_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required (OI_REQUIRE_POSTGRES=1) but {reason}")
    pytest.skip(f"no PostgreSQL server for this test: {reason} (install Debian's postgresql package)")


def start_server() -> Iterator[PostgresServer]:
    """Start a server, yield it, stop it and delete its folder (a generator for a pytest fixture)."""
    binaries = bin_dir()
    if binaries is None:
        _unavailable("initdb/pg_ctl were found neither on PATH nor in /usr/lib/postgresql/*/bin")
    run_as: list[str] = []
    owner = None
    if os.geteuid() == 0:  # initdb refuses to run as root: use the postgres account (Debian's package makes it)
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and there is no 'postgres' user to run the server as")
        run_as = ["runuser", "-u", "postgres", "--"]
    top = Path(tempfile.mkdtemp(prefix="oi-pg-"))
    data, password = top / "data", secrets.token_urlsafe(16)
    (top / "pw").write_text(password + "\n")
    (top / "pw").chmod(0o600)
    if owner is not None:
        for path in (top, top / "pw"):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    port = _free_port()
    log = top / "server.log"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*run_as, *args], capture_output=True, text=True, timeout=120, cwd=top)

    try:
        done = run(str(binaries / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={top / 'pw'}",
                   "--auth=scram-sha-256", "--encoding=UTF8", "--no-sync")
        if done.returncode != 0:
            _unavailable(f"initdb failed: {(done.stderr or done.stdout).strip()[-800:]}")
        opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {top} -c fsync=off -c max_connections=100"
        done = run(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "-t", "60", "start")
        if done.returncode != 0:
            tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
            _unavailable(f"pg_ctl start failed: {(done.stderr or done.stdout).strip()[-400:]} {tail}")
        try:
            yield PostgresServer("127.0.0.1", port, USER, password, "postgres")
        finally:
            run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(top, ignore_errors=True)
