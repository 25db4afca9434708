"""Torch datasets and the batch transform: rows -> uint8 tiles (cache or disk) -> dict batches of model inputs."""
from __future__ import annotations

from typing import Sequence

import torch
from torch.utils.data import Dataset

from .augment import PairAugmenter
from .boxes import SplitBoxes, draw_masks
from .cache import DecodedSplit
from .defect_types import kind_indices
from .preprocess import Preprocessor
from .table import PairTable


class PairDataset(Dataset):
    """Rows of a split. ``__getitems__`` returns a whole batch (uint8 tiles), gathered from a DecodedSplit when
    one is given (no decoding), else decoded from disk (run it in DataLoader workers). With ``masks`` (training a
    dense map) batches also carry each test tile's defect mask, drawn from ``boxes`` (none: only PASS rows' masks,
    all clean, are known)."""

    def __init__(self, table: PairTable, pre: Preprocessor, decoded: DecodedSplit | None = None,
                 types: Sequence[str] = (), masks: bool = False, boxes: SplitBoxes | None = None) -> None:
        self.table = table
        self.pre = pre
        self.decoded = decoded
        self.labels = torch.as_tensor(table.labels, dtype=torch.float32)
        self.kinds = torch.as_tensor(kind_indices(table.raw_labels, types))  # -1: PASS or no known kind
        self.masks = masks
        self.boxes = boxes

    def __len__(self) -> int:
        return len(self.table)

    def __getitems__(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        rows = torch.as_tensor(list(indices), dtype=torch.int64)
        if self.decoded is not None:
            test, golden = self.decoded.pairs(rows)
        else:
            test, golden = self.pre.stack_pairs([self.pre.load_pair_tiles(self.table, int(i)) for i in rows])
        batch = {"test": test, "golden": golden, "label": self.labels[rows], "kind": self.kinds[rows], "index": rows}
        if self.masks:
            batch.update(self._masks(rows, *test.shape[-2:]))
        return batch

    def _masks(self, rows: torch.Tensor, height: int, width: int) -> dict[str, torch.Tensor]:
        """``mask`` uint8 [B, 1, H, W] (1: defect) and ``mask_known`` bool [B] of the rows."""
        if self.boxes is None:
            return {"mask": torch.zeros((len(rows), 1, height, width), dtype=torch.uint8),
                    "mask_known": self.labels[rows] == 0}
        return {"mask": draw_masks(torch.from_numpy(self.boxes.boxes[rows]), height, width),
                "mask_known": torch.from_numpy(self.boxes.known[rows])}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        """A batch of one row (DataLoaders call ``__getitems__`` with whole batches)."""
        return self.__getitems__([index])


class BatchTransform:
    """DataLoader ``collate_fn`` of a PairDataset batch: (augment) -> join tiles -> normalise. Output batch:
    ``{"test", "golden": float32 [B, 3, H', W'], "label": float32 [B], "kind", "index": int64 [B]}`` (kind: the
    row's index in the defect types, -1 for none), plus ``"mask"`` uint8 [B, 1, H', W'] and ``"mask_known"`` when
    the dataset draws masks (a tile's mask repeated on each light of its strip)."""

    def __init__(self, pre: Preprocessor, augmenter: PairAugmenter | None = None) -> None:
        self.pre = pre
        self.augmenter = augmenter

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        test, golden, masks = batch["test"], batch["golden"], batch.get("mask")
        if self.augmenter is not None:
            test, golden, masks = self.augmenter.with_masks(test, golden, masks)
        out = {"test": self.pre.normalize(self.pre.concat(test)),
               "golden": self.pre.normalize(self.pre.concat(golden)),
               "label": batch["label"], "kind": batch["kind"], "index": batch["index"]}
        if masks is not None:
            b, m, h, w = masks.shape
            lights = test.shape[1]
            out["mask"] = self.pre.concat(masks[:, None].expand(b, lights, m, h, w))
            out["mask_known"] = batch["mask_known"]
        return out



def keep_tiles(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """DataLoader ``collate_fn`` that leaves a PairDataset batch as uint8 tiles (finished on the GPU)."""
    return batch
