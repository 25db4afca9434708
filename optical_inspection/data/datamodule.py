"""OIDataModule: the four splits of a spec as Lightning dataloaders of dict batches.

Batches: ``{"test", "golden": float32 [B, 3, H', W'], "label": float32 [B] (1 defect, 0 pass, -1 unknown),
"index": int64 [B] (row of the split's CSV)}``. Each split is decoded once: kept in memory while the decoded
splits fit ``dataset.cache_memory_mb``, else in a temporary file on disk read back by batch (never decoded
again); with ``cache_memory_mb: 0`` splits are streamed from the image files by ``dataset.workers`` processes.
Training augmentation runs batched, on the CPU in the loader, or on the GPU (after the uint8 tiles are moved
there) when the Trainer uses one.
"""
from __future__ import annotations

import logging
import multiprocessing
from typing import TYPE_CHECKING, Any, Callable, cast

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from ..errors import DataError
from .augment import PairAugmenter
from .boxes import read_boxes, split_boxes
from .cache import DecodedSplit
from .cpus import resolve_workers, usable_cpus
from .dataset import BatchTransform, PairDataset, keep_tiles
from .defect_types import kind_indices
from .inject import DefectInjector
from .preprocess import Preprocessor
from .sampling import train_sampler
from .table import PairTable, split_table

if TYPE_CHECKING:
    from ..config.experiment import ExperimentConfig

log = logging.getLogger(__name__)

STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}


class OIDataModule(pl.LightningDataModule):
    """Dataloaders for ``train`` (augmented, fpratio-sampled, drop_last), ``val``, ``test`` and ``predict``."""

    def __init__(self, config: ExperimentConfig) -> None:
        super().__init__()
        self.config = config
        self.dataset_cfg = config.dataset
        self.pre = Preprocessor(self.dataset_cfg)
        self._tables: dict[str, PairTable] = {}
        self._datasets: dict[str, PairDataset] = {}
        self._budget = int(self.dataset_cfg.cache_memory_mb) * 2**20
        self._cached_bytes = 0
        self._device_transform: BatchTransform | None = None
        self.types: tuple[str, ...] = ()  # defect kinds the network learns (set by the train action)
        self.dense_map = config.model.model_type == "Compact" and bool(config.model.dense_map)

    # -- splits -----------------------------------------------------------------------------------------------
    def table(self, split: str) -> PairTable:
        """The PairTable of ``train``/``val``/``test``/``predict`` (read and checked once)."""
        if split not in self._tables:
            self._tables[split] = split_table(self.dataset_cfg, split)
        return self._tables[split]

    def dataset(self, split: str) -> PairDataset:
        """The PairDataset of a split, decoded into memory when it fits what is left of the budget."""
        if split not in self._datasets:
            table = self.table(split)
            same = [s for s, t in self._tables.items() if s in self._datasets and _same_source(t, table)]
            if same:
                self._datasets[split] = self._pairs(split, table, self._datasets[same[0]].decoded)
                return self._datasets[split]
            decoded = None
            if self._budget > 0:
                decoded = DecodedSplit(table, self.pre, max_bytes=max(self._budget - self._cached_bytes, 0))
                self._cached_bytes += 0 if decoded.on_disk else decoded.nbytes
                log.info("%s split: %d rows decoded once into %s (%.1f MiB)", split, len(table),
                         "a temporary file (over dataset.cache_memory_mb)" if decoded.on_disk else "memory",
                         decoded.nbytes / 2**20)
            else:
                log.info("%s split: dataset.cache_memory_mb is 0; streaming from the image files with %d worker(s)",
                         split, self.workers(len(table)))
            self._datasets[split] = self._pairs(split, table, decoded)
        return self._datasets[split]

    def _pairs(self, split: str, table: PairTable, decoded: DecodedSplit | None) -> PairDataset:
        """The split's PairDataset; the training split of a dense-map network also draws defect masks (from
        ``train_dataset.boxes_path`` when given)."""
        if split != "train" or not self.dense_map:
            return PairDataset(table, self.pre, decoded, self.types)
        path = self.dataset_cfg.train_dataset.boxes_path
        boxes = None
        if path:
            if decoded is None:
                raise DataError("dataset.train_dataset.boxes_path needs the decoded cache (its boxes are scaled by "
                                "each image's own size, known once decoded); set dataset.cache_memory_mb above 0 "
                                "(past it the cache spills to a temporary file) or boxes_path to null")
            per_row, types = read_boxes(path, table)
            boxes = split_boxes(per_row, decoded.test_sizes(), table.labels, self._box_kinds(table, types))
            log.info("train split: %d defect boxes on %d rows from %s", sum(map(len, per_row)),
                     sum(1 for b in per_row if b), path)
        return PairDataset(table, self.pre, decoded, self.types, masks=True, boxes=boxes)

    def _box_kinds(self, table: PairTable, types: list[list[str]]) -> list[list[int]] | None:
        """Each box's index in the defect kinds: its ``type``, else its row's kind when the row has that one box
        only; -1 when neither is one of them. None without defect kinds."""
        if not self.types:
            return None
        row_kinds = kind_indices(table.raw_labels, self.types)
        position = {t: i for i, t in enumerate(self.types)}
        return [[position.get(t, -1) if t else (int(row_kinds[r]) if len(row_types) == 1 else -1) for t in row_types]
                for r, row_types in enumerate(types)]  # a few boxes per row, once per split

    def setup(self, stage: str | None = None) -> None:
        """Read, check and (when it fits) decode the splits of ``stage`` before anything runs."""
        if stage in (None, "fit"):
            self._check_validation()
        for split in STAGE_SPLITS.get(stage or "fit", ()):
            self.dataset(split)
        if stage in (None, "fit"):
            self._check_train()

    def _check_train(self) -> None:
        table = self.table("train")
        batch = self.dataset_cfg.batch_size  # > 1: the spec's cross-key rules (cross_checks.py) refuse less
        if len(table) < batch:
            raise DataError(f"training split {table.csv_path} has {len(table)} rows, fewer than dataset.batch_size="
                            f"{batch}; every training batch would be dropped. Lower dataset.batch_size.")

    def _check_validation(self) -> None:
        """The decision threshold is calibrated on the validation PASS pairs: a split without any is refused
        before training (TAO would train and simply have no threshold)."""
        table = self.table("val")
        if not (table.labels == 0).any():
            raise DataError(f"validation split {table.csv_path} has no PASS rows ({len(table)} rows, all defects); "
                            f"the decision threshold is calibrated on validation PASS pairs "
                            f"(train.target_false_alarm), so add PASS pairs to it")

    # -- loaders ----------------------------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        """Training batches, fpratio-sampled, drop_last, with synthetic defects painted on PASS pairs when
        ``synthetic_defects`` is on (in the loader, on uint8 tiles), augmented when ``augment`` is on: in the loader
        on CPU, or, when a Trainer runs on a GPU, on the GPU in :meth:`on_after_batch_transfer` (uint8 tiles
        travel)."""
        ds = self.dataset("train")
        self._check_train()
        aug_cfg = self.dataset_cfg.augmentation_config
        augmenter = PairAugmenter(aug_cfg) if aug_cfg.augment else None
        on_device = augmenter is not None and self._on_gpu()
        self._device_transform = BatchTransform(self.pre, augmenter) if on_device else None
        transform = keep_tiles if on_device else BatchTransform(self.pre, augmenter)
        synthetic = self.dataset_cfg.synthetic_defects
        injecting = synthetic.enable and synthetic.rate > 0 and len(synthetic.kinds) > 0
        if injecting:
            transform = _Then(DefectInjector(synthetic), transform)
        sampler = train_sampler(ds.table.labels, self.dataset_cfg.fpratio_sampling,
                                f"training split {ds.table.csv_path}", synthetic=injecting)
        return self._loader(ds, transform, sampler=sampler, drop_last=True,
                            heavy=(augmenter is not None and not on_device) or injecting)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Finish GPU-augmented training batches (uint8 tiles ``[B, N, C, H, W]``) on their device."""
        if self._device_transform is not None and isinstance(batch, dict) and batch["test"].dim() == 5:
            return self._device_transform(batch)
        return batch

    def _on_gpu(self) -> bool:
        trainer = getattr(self, "trainer", None)
        return trainer is not None and trainer.strategy.root_device.type == "cuda"

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader("predict")

    def _eval_loader(self, split: str) -> DataLoader:
        return self._loader(self.dataset(split), BatchTransform(self.pre), sampler=None, drop_last=False, heavy=False)

    def _loader(self, ds: PairDataset, transform: Callable[[dict], dict], *, sampler: Any, drop_last: bool,
                heavy: bool) -> DataLoader:
        """Streaming splits use worker processes; decoded splits use them only for augmentation, and only where
        workers fork (sharing the decoded tiles instead of copying them)."""
        workers = self.workers(len(ds))
        if ds.decoded is not None and not (heavy and multiprocessing.get_start_method() == "fork"):
            workers = 0
        return DataLoader(ds, batch_size=self.dataset_cfg.batch_size, sampler=sampler, shuffle=False,
                          drop_last=drop_last, collate_fn=cast(Callable[[list[Any]], Any], transform),
                          num_workers=workers,
                          persistent_workers=workers > 0, pin_memory=torch.cuda.is_available())


    def workers(self, rows: int) -> int:
        """``dataset.workers``, with ``auto`` resolved for this machine and a split of ``rows`` rows."""
        return resolve_workers(self.dataset_cfg.workers, rows, int(self.dataset_cfg.batch_size), usable_cpus())


class _Then:
    """``collate_fn`` composition: ``second(first(batch))`` (picklable, for loader workers)."""

    def __init__(self, first: Callable[[dict], dict], second: Callable[[dict], dict]) -> None:
        self.first, self.second = first, second

    def __call__(self, batch: dict) -> dict:
        return self.second(self.first(batch))


def _same_source(a: PairTable, b: PairTable) -> bool:
    return a.csv_path.resolve() == b.csv_path.resolve() and a.images_dir.resolve() == b.images_dir.resolve()
