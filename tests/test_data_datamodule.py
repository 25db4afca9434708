"""OIDataModule: dict batches, decode-once cache vs streaming, training checks, archives as images_dir."""
from __future__ import annotations

import shutil
import tarfile

import numpy as np
import pytest
import torch

import optical_inspection.data.cache as cache_module
import optical_inspection.data.images as images_module
from optical_inspection.data.cache import DecodedSplit
from optical_inspection.data.cpus import resolve_workers
from optical_inspection.data.datamodule import OIDataModule
from optical_inspection.errors import DataError, SpecError


class _CountOpens:
    """Counts image-file opens by the data package (decodes)."""

    def __init__(self, monkeypatch):
        self.count = 0
        real = images_module.Image.open

        def counting(*args, **kwargs):
            self.count += 1
            return real(*args, **kwargs)
        monkeypatch.setattr(images_module.Image, "open", counting)


def test_batches_are_dicts(synthetic_split, make_config):
    dm = OIDataModule(make_config(*synthetic_split))
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert set(batch) == {"test", "golden", "label", "kind", "index"}
    assert batch["kind"].tolist() == [-1] * 4  # no defect types set: no row has a kind to learn
    assert batch["test"].shape == batch["golden"].shape == (4, 3, 128, 32)
    assert batch["test"].dtype == torch.float32 and batch["label"].dtype == torch.float32
    assert batch["index"].dtype == torch.int64 and batch["index"].tolist() == [0, 1, 2, 3]
    assert batch["label"].tolist() == dm.table("val").labels[:4].astype(float).tolist()
    train = list(dm.train_dataloader())
    assert len(train) == 24 // 4 and all(len(b["index"]) == 4 for b in train)


def test_decoded_once_and_equal_to_streaming(synthetic_split, make_config, monkeypatch):
    opens = _CountOpens(monkeypatch)
    cached = OIDataModule(make_config(*synthetic_split))
    cached.setup("test")
    first = opens.count
    assert first == (24 + len({r["object_name"] for r in cached.table("test").rows})) * 4  # goldens once each
    epochs = [torch.cat([b["test"] for b in cached.test_dataloader()]) for _ in range(2)]
    assert opens.count == first  # epochs read memory, never the files
    streamed = OIDataModule(make_config(*synthetic_split, cache_memory_mb=0))
    streamed.setup("test")
    assert streamed.dataset("test").decoded is None
    stream = torch.cat([b["test"] for b in streamed.test_dataloader()])
    assert torch.equal(epochs[0], epochs[1]) and torch.equal(epochs[0], stream)
    assert opens.count == first + 24 * 8


def test_budget_counts_grey_as_one_channel_and_disk_takes_the_rest(synthetic_split, make_config):
    dm = OIDataModule(make_config(*synthetic_split))
    table, pre = dm.table("test"), dm.pre
    grey_bytes = (24 + 8) * 4 * 32 * 32  # distinct images x lights x tile
    in_memory = DecodedSplit(table, pre, max_bytes=3 * grey_bytes)
    assert not in_memory.on_disk and in_memory.nbytes == 3 * grey_bytes
    on_disk = DecodedSplit(table, pre, max_bytes=2 * grey_bytes)  # colour images: 3 x grey_bytes do not fit
    assert on_disk.on_disk and on_disk.nbytes == 3 * grey_bytes
    rows = torch.tensor([5, 0, 23, 5])
    for a, b in zip(in_memory.pairs(rows), on_disk.pairs(rows)):
        assert a.dtype == torch.uint8 and a.shape == (4, 4, 3, 32, 32) and torch.equal(a, b)


def test_split_over_budget_is_decoded_once_to_disk(synthetic_split, make_config, monkeypatch):
    opens = _CountOpens(monkeypatch)
    monkeypatch.setattr(cache_module, "DROP_BYTES", 4096)  # hand pages back to the page cache very often
    size = {"image_height": 64, "image_width": 64}  # 32 colour images x 4 lights x 64x64: 1.5 MiB
    in_memory = OIDataModule(make_config(*synthetic_split, **size))
    expected = torch.cat([b["test"] for b in in_memory.test_dataloader()])
    first = opens.count
    dm = OIDataModule(make_config(*synthetic_split, cache_memory_mb=1, **size))
    dm.setup("test")
    assert dm.dataset("test").decoded.on_disk and not in_memory.dataset("test").decoded.on_disk
    epochs = [torch.cat([b["test"] for b in dm.test_dataloader()]) for _ in range(2)]
    assert opens.count == 2 * first  # decoded once, exactly as the in-memory copy
    assert torch.equal(epochs[0], expected) and torch.equal(epochs[1], expected)


def test_background_decoding_serves_rows_in_order_and_reports_errors(synthetic_split, make_config, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setattr(cache_module, "CHUNK", 2)  # images per decode task
    dm = OIDataModule(make_config(*synthetic_split))
    table, pre = dm.table("test"), dm.pre
    whole = DecodedSplit(table, pre)
    ahead = DecodedSplit(table, pre, threads=1, background=True)
    rows = torch.arange(0, 8)
    assert all(torch.equal(a, b) for a, b in zip(ahead.pairs(rows), whole.pairs(rows)))
    ahead.finish()
    assert all(torch.equal(a, b) for a, b in zip(ahead.pairs(torch.arange(24)), whole.pairs(torch.arange(24))))
    csv_path, images = synthetic_split
    broken = tmp_path / "images"
    shutil.copytree(images, broken)
    last = table.test_paths(23)[0]
    (broken / last.relative_to(images)).write_bytes(b"not a jpeg")
    bad = DecodedSplit(OIDataModule(make_config(csv_path, broken)).table("test"), pre, background=True)
    bad.pairs(torch.arange(0, 4))  # rows before the broken file are served
    with pytest.raises(DataError, match=f"line 25: cannot read image .*{last.name}"):
        bad.finish()


def test_streaming_with_worker_processes(synthetic_split, make_config):
    dm = OIDataModule(make_config(*synthetic_split, cache_memory_mb=0, workers=1))
    loader = dm.predict_dataloader()
    assert loader.num_workers == 1
    assert torch.cat([b["index"] for b in loader]).tolist() == list(range(24))


def test_augmented_training_batches(synthetic_split, make_config):
    torch.manual_seed(0)
    dm = OIDataModule(make_config(*synthetic_split, augmentation_config={"augment": True}, fpratio_sampling=1.0))
    batch = next(iter(dm.train_dataloader()))
    assert batch["test"].shape == (4, 3, 128, 32) and torch.isfinite(batch["test"]).all()


def test_training_checks(synthetic_split, make_config):
    with pytest.raises(DataError, match="has 24 rows, fewer than dataset.batch_size=32"):
        OIDataModule(make_config(*synthetic_split, batch_size=32)).setup("fit")


def test_missing_split_keys(synthetic_split, make_config):
    cfg = make_config(*synthetic_split, infer_dataset={"csv_path": None, "images_dir": None})
    with pytest.raises(DataError, match="dataset.infer_dataset.csv_path and dataset.infer_dataset.images_dir"):
        OIDataModule(cfg).table("predict")


def test_images_dir_as_archive_with_wrapper(tmp_path, synthetic_split, make_config):
    csv_path, images = synthetic_split
    archive = tmp_path / "images.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(images, arcname="images/images")  # the double wrapper some exports have
    shutil.copy(csv_path, tmp_path / "dataset.csv")
    dm = OIDataModule(make_config(tmp_path / "dataset.csv", tmp_path))
    table = dm.table("test")
    assert table.images_dir.name == "images" and table.images_dir.parent.name == "images"
    direct = OIDataModule(make_config(*synthetic_split))
    a = next(iter(dm.test_dataloader()))["test"]
    b = next(iter(direct.test_dataloader()))["test"]
    assert np.allclose(a.numpy(), b.numpy())


def test_gpu_augmentation_path_gives_the_same_batches(synthetic_split, make_config, monkeypatch):
    """With a GPU trainer the loader yields uint8 tiles, finished in on_after_batch_transfer; same draws, same
    batches as the CPU path (checked here on CPU tensors)."""
    cfg = make_config(*synthetic_split, augmentation_config={"augment": True}, fpratio_sampling=1.0)
    cpu = OIDataModule(cfg)
    torch.manual_seed(0)
    expected = list(cpu.train_dataloader())
    gpu = OIDataModule(cfg)
    monkeypatch.setattr(gpu, "_on_gpu", lambda: True)
    torch.manual_seed(0)
    raw = list(gpu.train_dataloader())
    assert raw[0]["test"].dtype == torch.uint8 and raw[0]["test"].dim() == 5
    done = [gpu.on_after_batch_transfer(b, 0) for b in raw]
    for a, b in zip(expected, done):
        assert torch.equal(a["index"], b["index"]) and torch.allclose(a["test"], b["test"], atol=1e-6)
        assert torch.allclose(a["golden"], b["golden"], atol=1e-6)
    val = next(iter(gpu.val_dataloader()))
    assert gpu.on_after_batch_transfer(val, 0) is val  # other loaders are already finished


def test_workers_auto_and_integers(synthetic_split, make_config):
    assert resolve_workers("auto", rows=100_000, batch_size=32, cpus=2) == 0  # workers would take the step's cores
    assert resolve_workers("auto", rows=1_000, batch_size=32, cpus=16) == 0  # too few batches to pay for starting
    assert resolve_workers("auto", rows=100_000, batch_size=32, cpus=16) == 8
    assert resolve_workers("auto", rows=100_000, batch_size=32, cpus=64) == 8
    assert resolve_workers(3, rows=10, batch_size=32, cpus=2) == 3  # an integer is taken as given (TAO)
    assert make_config(*synthetic_split, workers="auto").dataset.workers == "auto"
    streamed = OIDataModule(make_config(*synthetic_split, cache_memory_mb=0, workers="auto"))
    assert streamed.predict_dataloader().num_workers == 0  # 24 rows: far below 100 batches
    for bad in (-1, "3", "many", 1.5):
        with pytest.raises(SpecError, match="dataset.workers: .* or input should be 'auto'") as exc:
            make_config(*synthetic_split, workers=bad)
        assert str(exc.value).count("dataset.workers") == 1  # one problem, not one per alternative


def test_no_room_on_disk_for_the_decoded_split_is_a_clear_error(synthetic_split, make_config, monkeypatch):
    import errno
    import os

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "posix_fallocate", full)
    dm = OIDataModule(make_config(*synthetic_split))
    with pytest.raises(DataError, match=r"no room for the decoded split .* point TMPDIR at a larger disk"):
        DecodedSplit(dm.table("test"), dm.pre, max_bytes=0)
