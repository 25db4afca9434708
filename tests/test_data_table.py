"""Reading split CSVs: the good path and one clear DataError per kind of bad input."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from optical_inspection.data.table import read_split
from optical_inspection.errors import DataError

HEADER = "input_path,golden_path,label,object_name\n"


@pytest.fixture
def split(tmp_path: Path, synthetic_split) -> tuple[Path, Path]:
    """A private copy of the synthetic split (tests rewrite its CSV)."""
    csv_path, images = synthetic_split
    shutil.copytree(images, tmp_path / "images")
    shutil.copy(csv_path, tmp_path / "dataset.csv")
    return tmp_path / "dataset.csv", tmp_path / "images"


def _rows(csv_path: Path) -> list[str]:
    return csv_path.read_text().splitlines()[1:]


def _read(csv_path, images, make_config, **kw):
    return read_split(csv_path, images, make_config(csv_path, images).dataset, **kw)


def test_reads_rows_labels_and_paths(split, make_config):
    csv_path, images = split
    table = _read(csv_path, images, make_config)
    assert len(table) == 24 and table.fieldnames == ["input_path", "golden_path", "label", "object_name"]
    raw = [line.split(",")[2] for line in _rows(csv_path)]
    assert table.raw_labels == raw
    assert table.labels.tolist() == [0 if r == "PASS" else 1 for r in raw]
    assert table.lines[0] == 2
    first = table.rows[0]
    assert table.test_paths(0) == [images / first["input_path"] / f"{first['object_name']}_{light}.jpg"
                                   for light in table.lights]
    assert all(p.parent == images / "golden" for p in table.golden_paths(0))


def test_extra_columns_kept_and_pass_variants(split, make_config):
    csv_path, images = split
    lines = _rows(csv_path)[:3]
    first = lines[0].split(",")
    first[2] = " pass "
    csv_path.write_text("input_path,golden_path,label,object_name,note\n" + ",".join(first) + ",x\n")
    table = _read(csv_path, images, make_config)
    assert table.rows[0]["note"] == "x" and table.labels.tolist() == [0] and table.raw_labels == [" pass "]


def test_inference_csv_may_lack_label(split, make_config):
    csv_path, images = split
    lines = [",".join(c for i, c in enumerate(line.split(",")) if i != 2) for line in _rows(csv_path)]
    csv_path.write_text("input_path,golden_path,object_name\n" + "\n".join(lines) + "\n")
    table = _read(csv_path, images, make_config, require_label=False)
    assert (table.labels == -1).all() and not table.has_labels
    with pytest.raises(DataError, match="lacks column.*'label'"):
        _read(csv_path, images, make_config)


@pytest.mark.parametrize("content, pattern", [
    ("", "is empty"),
    (HEADER, "no rows"),
    ("input_path;golden_path;label;object_name\na;b;PASS;c\n", "semicolons"),
    ("input_path\tgolden_path\tlabel\tobject_name\na\tb\tPASS\tc\n", "tabs"),
    ("input_path,golden_path,Label ,object_name\na,b,PASS,c\n", r"'label' \(found 'Label ': rename it\)"),
    ("inputpath,golden_path,label,object_name\na,b,PASS,c\n", r"'input_path' \(found 'inputpath'"),
    ("input_path,golden_path,label,object_name\na,b,PASS,c,extra\n", "line 2: more cells than header"),
])
def test_bad_csv_shapes(tmp_path, make_config, content, pattern):
    csv_path = tmp_path / "dataset.csv"
    csv_path.write_text(content)
    with pytest.raises(DataError, match=pattern):
        _read(csv_path, tmp_path, make_config)


def test_bad_cells_reported_together(split, make_config):
    csv_path, images = split
    lines = _rows(csv_path)
    bad = [lines[0], lines[0],                                   # duplicate (line 3 repeats line 2)
           "../outside,golden,PASS,C0@1",                         # escapes images_dir
           "C:/dir,golden,PASS,C0@1",                             # a Windows drive
           "boards/board000,golden,,C1@1",                        # blank label
           "boards/board000,golden,NaN,C2@1",                     # NaN label
           "boards/board000,golden,PASS,"]                        # blank object_name
    csv_path.write_text(HEADER + "\n".join(bad) + "\n")
    with pytest.raises(DataError) as err:
        _read(csv_path, images, make_config)
    msg = str(err.value)
    assert "6 problem(s)" in msg
    for needle in ("line 3: duplicate of line 2", "line 4: 'input_path' '../outside' contains '..'",
                   "line 5: 'input_path' 'C:/dir' is a Windows drive path", "line 6: 'label' is blank",
                   "line 7: 'label' is blank", "line 8: 'object_name' is blank"):
        assert needle in msg


def test_missing_files_counted_and_listed(split, make_config):
    csv_path, images = split
    shutil.rmtree(images / "boards" / "board000")
    (images / "golden" / "C1@1_WhiteLight.jpg").unlink()
    with pytest.raises(DataError) as err:
        _read(csv_path, images, make_config)
    msg = str(err.value)
    lines_of_c1 = sum(1 for line in _rows(csv_path) if line.endswith("C1@1"))
    n_board0 = sum(1 for line in _rows(csv_path) if line.startswith("boards/board000,"))
    assert f"{n_board0 * 4 + lines_of_c1} image file(s)" in msg
    assert "line 2, input_path: " in msg and "C0@1_LowAngleLight.jpg" in msg and "... and" in msg
    _read(csv_path, images, make_config, check_files=False)  # the check can be skipped


def test_wrong_images_dir(split, make_config):
    csv_path, images = split
    with pytest.raises(DataError, match="images_dir .*nope' does not exist"):
        _read(csv_path, images / "nope", make_config)
    with pytest.raises(DataError, match="none of them exists"):
        _read(csv_path, images / "golden", make_config)
    assert _read(csv_path, images.parent, make_config).images_dir == images  # the images/ wrapper is found
    with pytest.raises(DataError, match="does not exist"):
        _read(csv_path.with_name("none.csv"), images, make_config)


@pytest.mark.parametrize("images_dir", ["/abs/images", "images", ".", "/"])
@pytest.mark.parametrize("folder", ["boards/b1", ".", "a/./b", "x\\y", "/abs/f", "b/", "a//b"])
@pytest.mark.parametrize("name", ["C1@1", "n.a.me", "a/b", "."])
def test_image_paths_are_the_normalised_join(images_dir: str, folder: str, name: str) -> None:
    """The per-folder shortcut of image_paths gives exactly os.path.normpath of the joined path."""
    import os

    from optical_inspection.data.paths import image_paths

    expected = os.path.normpath(os.path.join(images_dir, folder.replace("\\", "/"), name))
    assert image_paths(images_dir, folder, name, ["A", "B"], ".png") == [expected + "_A.png", expected + "_B.png"]
