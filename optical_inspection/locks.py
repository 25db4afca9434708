"""Advisory locks (``fcntl.flock``): the kernel releases them when their holder dies, even on ``kill -9``, so a
crash never leaves a stale lock behind, and the runner (job records, cache) and the trainer (results folders)
share one mechanism with no extra dependency. Not ``filelock``: its 4.x Unix lock creates probe files
(``.filelock-probe-*``) beside the lock, which a results folder would list as another run's files."""
from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

RESULTS_LOCK = ".oi-lock"


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the duration of the block, waiting for it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class FolderLock:
    """The lock a run holds on its results folder (``<folder>/.oi-lock``) for as long as it writes there."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / RESULTS_LOCK
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False when another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "FolderLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

