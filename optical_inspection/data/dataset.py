"""Torch datasets and the batch transform: rows -> uint8 tiles (cache or disk) -> dict batches of model inputs."""
from __future__ import annotations

from typing import Sequence

import torch
from torch.utils.data import Dataset

from .augment import PairAugmenter
from .cache import DecodedSplit
from .defect_types import kind_indices
from .preprocess import Preprocessor
from .table import PairTable


class PairDataset(Dataset):
    """Rows of a split. ``__getitems__`` returns a whole batch (uint8 tiles), gathered from a DecodedSplit when
    one is given (no decoding), else decoded from disk (run it in DataLoader workers)."""

    def __init__(self, table: PairTable, pre: Preprocessor, decoded: DecodedSplit | None = None,
                 types: Sequence[str] = ()) -> None:
        self.table = table
        self.pre = pre
        self.decoded = decoded
        self.labels = torch.as_tensor(table.labels, dtype=torch.float32)
        self.kinds = torch.as_tensor(kind_indices(table.raw_labels, types))  # -1: PASS or no known kind

    def __len__(self) -> int:
        return len(self.table)

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        rows = torch.as_tensor(list(indices), dtype=torch.int64)
        if self.decoded is not None:
            test, golden = self.decoded.pairs(rows)
        else:
            test, golden = self.pre.stack_pairs([self.pre.load_pair_tiles(self.table, int(i)) for i in rows])
        return {"test": test, "golden": golden, "label": self.labels[rows], "kind": self.kinds[rows], "index": rows}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """A batch of one row (DataLoaders call ``__getitems__`` with whole batches)."""
        return self.__getitems__([index])


class BatchTransform:
    """DataLoader ``collate_fn`` of a PairDataset batch: (augment) -> join tiles -> normalise. Output batch:
    ``{"test", "golden": float32 [B, 3, H', W'], "label": float32 [B], "kind", "index": int64 [B]}`` (kind: the
    row's index in the defect types, -1 for none)."""

    def __init__(self, pre: Preprocessor, augmenter: PairAugmenter | None = None) -> None:
        self.pre = pre
        self.augmenter = augmenter

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        test, golden = batch["test"], batch["golden"]
        if self.augmenter is not None:
            test, golden = self.augmenter(test, golden)
        return {"test": self.pre.normalize(self.pre.concat(test)),
                "golden": self.pre.normalize(self.pre.concat(golden)),
                "label": batch["label"], "kind": batch["kind"], "index": batch["index"]}



def keep_tiles(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """DataLoader ``collate_fn`` that leaves a PairDataset batch as uint8 tiles (finished on the GPU)."""
    return batch
