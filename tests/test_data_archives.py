"""Safe archive extraction, re-use of an unchanged extraction, and images/ wrapper detection."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import optical_inspection.data.archives as archives
from optical_inspection.data.archives import prepare_images_dir, resolve_images_dir, safe_extract
from optical_inspection.errors import DataError


def _tar(path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _special(name: str, kind: bytes, link: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info, None


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_extracts_a_clean_archive(tmp_path):
    archive = _tar(tmp_path / "a.tar.gz", [_file("images/x/a.jpg", b"abc"), _file("images/b.jpg")])
    target = safe_extract(archive, tmp_path / "out")
    assert (target / "images" / "x" / "a.jpg").read_bytes() == b"abc"
    assert _listing(tmp_path) == {"a.tar.gz", "out", "out/images", "out/images/x", "out/images/x/a.jpg",
                                  "out/images/b.jpg", "out/.oi_extracted.json"}


@pytest.mark.parametrize("bad, why", [
    (_file("../evil", b"pwned"), "contains '..'"),
    (_file("/abs/evil", b"pwned"), "is absolute"),
    (_special("link", tarfile.SYMTYPE, "/etc/passwd"), "is a link"),
    (_special("hard", tarfile.LNKTYPE, "images/ok.jpg"), "is a link"),
    (_special("dev", tarfile.CHRTYPE), "device or FIFO"),
    (_special("fifo", tarfile.FIFOTYPE), "device or FIFO"),
])
def test_refuses_unsafe_entries_and_writes_nothing(tmp_path, bad, why):
    work = tmp_path / "work"
    work.mkdir()
    archive = _tar(tmp_path / "evil.tar.gz", [_file("images/ok.jpg"), bad])
    with pytest.raises(DataError, match=why):
        safe_extract(archive, work / "target")
    assert _listing(work) == set() and _listing(tmp_path) == {"evil.tar.gz", "work"}


def test_all_problems_listed_together(tmp_path):
    archive = _tar(tmp_path / "evil.tar.gz", [_file("../evil"), _file("/abs"), _special("l", tarfile.SYMTYPE, "/"),
                                              _special("d", tarfile.BLKTYPE)])
    with pytest.raises(DataError, match="4 unsafe entr"):
        safe_extract(archive, tmp_path / "t")


def test_size_cap(tmp_path):
    archive = _tar(tmp_path / "big.tar.gz", [_file("a", b"0" * 2000)])
    with pytest.raises(DataError, match="over the"):
        safe_extract(archive, tmp_path / "t", max_bytes=1000)
    assert not (tmp_path / "t").exists()


def test_corrupt_archive(tmp_path):
    (tmp_path / "bad.tar.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DataError, match="bad.tar.gz"):
        safe_extract(tmp_path / "bad.tar.gz", tmp_path / "t")


def _split_archive(folder: Path) -> tuple[Path, Path]:
    csv_path = folder / "dataset.csv"
    csv_path.write_text("input_path,golden_path,label,object_name\nboards/b1,golden,PASS,C1\n")
    archive = _tar(folder / "images.tar.gz", [_file("images/boards/b1/C1.jpg"), _file("images/golden/C1.jpg")])
    return csv_path, archive


def test_reextraction_skipped_until_the_archive_changes(tmp_path, monkeypatch):
    csv_path, archive = _split_archive(tmp_path)
    calls = []
    real = archives.safe_extract
    monkeypatch.setattr(archives, "safe_extract", lambda *a, **k: calls.append(a) or real(*a, **k))
    first = prepare_images_dir(tmp_path, csv_path)  # a folder holding images.tar.gz
    assert first.name == "images" and (first / "golden" / "C1.jpg").is_file() and len(calls) == 1
    assert prepare_images_dir(archive, csv_path) == first and len(calls) == 1  # unchanged: reused
    st = archive.stat()
    os.utime(archive, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert prepare_images_dir(archive, csv_path) == first and len(calls) == 2


def test_missing_images_dir(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        prepare_images_dir(tmp_path / "nope", tmp_path / "d.csv")


@pytest.mark.parametrize("wrapper", ["", "images", "images/images", "export/v1"])
def test_resolve_images_dir_finds_wrappers(tmp_path, wrapper):
    root = tmp_path / "root"
    base = root / wrapper if wrapper else root
    for d in ("boards/b1", "golden"):
        (base / d).mkdir(parents=True)
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("input_path,golden_path,label,object_name\nboards/b1,golden,PASS,C1\n")
    assert resolve_images_dir(root, csv_path) == base


def test_resolve_images_dir_without_match_returns_root(tmp_path):
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("input_path,golden_path,label,object_name\nx,y,PASS,C1\n")
    assert resolve_images_dir(tmp_path, csv_path) == tmp_path


def test_archives_and_tables_import_without_torch():
    """The runner (never torch) uses archives; keep it and the CSV reader torch-free."""
    code = ("import sys, optical_inspection.data.archives, optical_inspection.data.table, "
            "optical_inspection.data.convert_factory; print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
