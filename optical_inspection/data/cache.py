"""Decode-once storage of a split: uint8 tiles of every distinct image (goldens shared by many rows kept once),
held in memory while they fit the budget, else in a temporary file on disk that is read back by batch."""
from __future__ import annotations

import mmap
import os
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError
from .cpus import usable_cpus
from .preprocess import Preprocessor, size_mismatch_message
from .table import PairTable

if TYPE_CHECKING:
    import torch

DROP_BYTES = 64 << 20  # a disk-backed store hands its touched pages back to the OS page cache this often
CHUNK = 64  # images decoded per thread-pool task (keeps the pool's own overhead small)


def distinct_images(table: PairTable) -> tuple[list[tuple[str, ...]], np.ndarray, np.ndarray]:
    """The distinct light-file tuples of a split in order of first use (row by row, test before golden) and, per
    row, the position of its test and golden among them: rows ``[0, r)`` only need the first ``need(r)`` ones."""
    position: dict[tuple[str, ...], int] = {}
    test_keys, golden_keys = table.test_keys(), table.golden_keys()
    for t, g in zip(test_keys, golden_keys):
        position.setdefault(t, len(position))
        position.setdefault(g, len(position))
    test = np.fromiter((position[k] for k in test_keys), dtype=np.int64, count=len(test_keys))
    golden = np.fromiter((position[k] for k in golden_keys), dtype=np.int64, count=len(golden_keys))
    return list(position), test, golden


class MemoryTiles:
    """uint8 tiles ``[U, N, C, H, W]`` in this process's memory."""

    on_disk = False

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.array = np.empty(shape, dtype=np.uint8)

    def write(self, u: int, tiles: np.ndarray) -> None:
        self.array[u] = tiles

    def gather(self, index: np.ndarray) -> np.ndarray:
        return self.array[index]


class DiskTiles(MemoryTiles):
    """uint8 tiles ``[U, N, C, H, W]`` in an unnamed temporary file (in ``TMPDIR``; gone once closed, also after
    a crash), memory-mapped. Every ``DROP_BYTES`` written or read, the mapped pages are dropped from this process
    (``MADV_DONTNEED``): they stay in the OS page cache, so reads stay fast while the process's RSS stays small."""

    on_disk = True

    def __init__(self, shape: tuple[int, ...]) -> None:
        size = int(np.prod(shape))
        self.file = tempfile.TemporaryFile(prefix="oi_tiles_")
        try:
            os.posix_fallocate(self.file.fileno(), 0, max(size, 1))
        except OSError as exc:
            self.file.close()
            raise DataError(f"no room for the decoded split ({size / 2**20:.0f} MiB) in {tempfile.gettempdir()}: "
                            f"{exc.strerror}. Free disk space, point TMPDIR at a larger disk, or raise "
                            f"dataset.cache_memory_mb to keep it in memory") from None
        self.map = mmap.mmap(self.file.fileno(), max(size, 1))
        # batches gather tiles at random: without this hint each page fault also maps the kernel's read-ahead
        # window, so far more pages than DROP_BYTES stay mapped between drops (DeepPCB: ~800 MiB of RssFile)
        self.map.madvise(mmap.MADV_RANDOM)
        self.array = np.frombuffer(self.map, dtype=np.uint8, count=size).reshape(shape)
        self._touched = 0

    def write(self, u: int, tiles: np.ndarray) -> None:
        self.array[u] = tiles
        self._count(tiles.nbytes)

    def gather(self, index: np.ndarray) -> np.ndarray:
        out = self.array[index]
        self._count(out.nbytes)
        return out

    def _count(self, nbytes: int) -> None:
        self._touched += nbytes
        if self._touched >= DROP_BYTES:
            self._touched = 0
            self.map.madvise(mmap.MADV_DONTNEED)


def _store(shape: tuple[int, ...], max_bytes: int | None) -> MemoryTiles:
    return DiskTiles(shape) if max_bytes is not None and int(np.prod(shape)) > max_bytes else MemoryTiles(shape)


class DecodedSplit:
    """Every image of ``table`` decoded once (threads; PIL releases the GIL) into uint8 tiles ``[U, N, C, H, W]``,
    in memory up to ``max_bytes`` (None: no limit), past it in a temporary file on disk (:class:`DiskTiles`).

    C is 1 while every image is grey (DeepPCB, mono AOI cameras: a third of the space) and 3 once a colour one
    appears. ``test_index[i]`` / ``golden_index[i]`` give row ``i``'s images. Test/golden size mismatches are found
    all at once, before anything is scored or trained. With ``background=True`` the constructor returns at once
    and decodes in its threads in row order: :meth:`pairs` waits for the rows it is asked for, and :meth:`finish`
    (call it before using any result) waits for the rest and runs the checks.
    """

    def __init__(self, table: PairTable, pre: Preprocessor, max_bytes: int | None = None,
                 threads: int | None = None, background: bool = False) -> None:
        self.table = table
        self.pre = pre
        self.keys, self.test_index, self.golden_index = distinct_images(table)
        h, w = pre.tile_size
        self._max_bytes = max_bytes
        self.store = _store((len(self.keys), pre.num_tiles, 1, h, w), max_bytes)
        self._sizes = np.zeros((len(self.keys), pre.num_tiles, 2), dtype=np.int32)
        self._first_row = _first_rows(len(self.keys), self.test_index, self.golden_index)
        self._need = np.maximum.accumulate(np.maximum(self.test_index, self.golden_index)) + 1  # per row
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=threads or min(8, usable_cpus()))
        self._chunks: list[Future] = [self._pool.submit(self._decode, range(u, min(u + CHUNK, len(self.keys))))
                                      for u in range(0, len(self.keys), CHUNK)]
        self._done = 0  # chunks known to be finished
        if not background:
            self.finish()

    @property
    def nbytes(self) -> int:
        return self.store.array.size

    @property
    def on_disk(self) -> bool:
        return self.store.on_disk

    def _decode(self, positions: range) -> None:
        for u in positions:
            if self._stop.is_set():
                return
            where = f"{self.table.csv_path} line {self.table.lines[self._first_row[u]]}: "
            tiles, self._sizes[u] = self.pre.decode_tiles(self.keys[u], where, grey_ok=True)
            with self._lock:
                if tiles.shape[1] == 3 and self.store.array.shape[2] == 1:
                    self._grow_to_rgb()
                self.store.write(u, tiles)

    def _grow_to_rgb(self) -> None:
        """Colour appeared: copy the grey tiles decoded so far into a 3-channel store (on disk past the budget)."""
        old = self.store.array
        new = _store(old.shape[:2] + (3,) + old.shape[3:], self._max_bytes)
        for start in range(0, len(old), CHUNK):
            new.array[start:start + CHUNK] = old[start:start + CHUNK]  # broadcasts grey to 3 channels
        self.store = new

    def _wait(self, chunks: int) -> None:
        """Wait until the first ``chunks`` decode tasks are done (re-raising the first decode error)."""
        try:
            for future in self._chunks[self._done:chunks]:
                future.result()
                self._done += 1
        except BaseException:
            self.cancel()
            raise

    def cancel(self) -> None:
        """Stop decoding (the caller gave up, e.g. on an error of its own)."""
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def finish(self) -> DecodedSplit:
        """Wait for every image, then check each pair's test and golden sizes (one DataError for all)."""
        self._wait(len(self._chunks))
        self._pool.shutdown(wait=True)
        sizes = self._sizes
        bad = np.nonzero((sizes[self.test_index] != sizes[self.golden_index]).any(axis=(1, 2)))[0]
        if len(bad):
            raise DataError(size_mismatch_message(self.table, bad.tolist(), sizes[self.test_index[bad]],
                                                  sizes[self.golden_index[bad]]))
        return self

    def test_sizes(self) -> np.ndarray:
        """int32 [R, 2]: each row's test image file size (H, W) of its first light (waits for the decoding)."""
        self._wait(len(self._chunks))
        return self._sizes[self.test_index, 0]

    def pairs(self, rows: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (test, golden) tiles ``[B, N, C, H, W]`` of ``rows`` as torch tensors (see :meth:`arrays`)."""
        import torch

        test, golden = self.arrays(rows)
        return torch.from_numpy(test), torch.from_numpy(golden)

    def arrays(self, rows: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (test, golden) tiles ``[B, N, C, H, W]`` of ``rows`` (one gather each, no decoding; numpy)."""
        rows = np.asarray(rows, dtype=np.int64)
        if self._done < len(self._chunks) and len(rows):
            self._wait(-(-int(self._need[rows.max()]) // CHUNK))
        with self._lock:
            return self.store.gather(self.test_index[rows]), self.store.gather(self.golden_index[rows])


def _first_rows(n: int, test_index: np.ndarray, golden_index: np.ndarray) -> np.ndarray:
    """A row using each distinct image (for error messages)."""
    first = np.zeros(n, dtype=np.int64)
    rows = np.arange(len(test_index))
    first[golden_index[::-1]] = rows[::-1]
    first[test_index[::-1]] = rows[::-1]
    return first
