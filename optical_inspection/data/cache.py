"""Decode-once storage of a split: uint8 tiles of every distinct image (goldens shared by many rows kept once)."""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ..errors import DataError
from .preprocess import Preprocessor, size_mismatch_message
from .table import PairTable


def distinct_images(table: PairTable) -> tuple[list[tuple[str, ...]], np.ndarray, np.ndarray]:
    """The distinct light-file tuples of a split and, per row, the position of its test and golden among them."""
    position: dict[tuple[str, ...], int] = {}
    test_keys, golden_keys = table.test_keys(), table.golden_keys()
    for key in test_keys + golden_keys:
        position.setdefault(key, len(position))
    test = np.fromiter((position[k] for k in test_keys), dtype=np.int64, count=len(test_keys))
    golden = np.fromiter((position[k] for k in golden_keys), dtype=np.int64, count=len(golden_keys))
    return list(position), test, golden


class OverBudget(Exception):
    """The decoded split would not fit the memory budget (the caller streams it instead)."""


class DecodedSplit:
    """Every image of ``table`` decoded once (threads; PIL releases the GIL) into ``tiles`` uint8 ``[U, N, C, H, W]``.

    C is 1 while every image is grey (DeepPCB, mono AOI cameras: a third of the memory) and 3 once a colour one
    appears; OverBudget is raised (and decoding stops) when that growth would pass ``max_bytes``.
    ``test_index[i]`` / ``golden_index[i]`` give row ``i``'s images. Test/golden size mismatches are found here,
    all at once, before training starts.
    """

    def __init__(self, table: PairTable, pre: Preprocessor, max_bytes: int | None = None,
                 threads: int | None = None) -> None:
        keys, self.test_index, self.golden_index = distinct_images(table)
        h, w = pre.tile_size
        self.tiles = torch.empty((len(keys), pre.num_tiles, 1, h, w), dtype=torch.uint8)
        if max_bytes is not None and self.tiles.numel() > max_bytes:
            raise OverBudget(self.tiles.numel())
        sizes = np.zeros((len(keys), pre.num_tiles, 2), dtype=np.int32)
        first_row = _first_rows(len(keys), self.test_index, self.golden_index)
        lock = threading.Lock()
        stop = threading.Event()

        def decode(u: int) -> None:
            if stop.is_set():
                return
            where = f"{table.csv_path} line {table.lines[first_row[u]]}: "
            tiles, sizes[u] = pre.load_tiles(keys[u], where, grey_ok=True)
            with lock:
                if tiles.shape[1] == 3 and self.tiles.shape[2] == 1:
                    if max_bytes is not None and 3 * self.tiles.numel() > max_bytes:
                        stop.set()
                        raise OverBudget(3 * self.tiles.numel())
                    self.tiles = self.tiles.expand(-1, -1, 3, -1, -1).clone()
                self.tiles[u] = tiles

        with ThreadPoolExecutor(max_workers=threads or min(8, os.cpu_count() or 1)) as pool:
            list(pool.map(decode, range(len(keys))))
        self._test_rows = torch.from_numpy(self.test_index)
        self._golden_rows = torch.from_numpy(self.golden_index)
        bad = np.nonzero((sizes[self.test_index] != sizes[self.golden_index]).any(axis=(1, 2)))[0]
        if len(bad):
            raise DataError(size_mismatch_message(table, bad.tolist(), sizes[self.test_index[bad]],
                                                  sizes[self.golden_index[bad]]))

    @property
    def nbytes(self) -> int:
        return self.tiles.numel()

    def pairs(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (test, golden) tiles ``[B, N, C, H, W]`` of ``rows`` (one gather, no decoding)."""
        return (self.tiles.index_select(0, self._test_rows.index_select(0, rows)),
                self.tiles.index_select(0, self._golden_rows.index_select(0, rows)))


def _first_rows(n: int, test_index: np.ndarray, golden_index: np.ndarray) -> np.ndarray:
    """A row using each distinct image (for error messages)."""
    first = np.zeros(n, dtype=np.int64)
    rows = np.arange(len(test_index))
    first[golden_index[::-1]] = rows[::-1]
    first[test_index[::-1]] = rows[::-1]
    return first
