"""inspect: whole boards → registration → tiled dense map → boxes; every bad input a clear error, nothing written."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deploy_helpers import make_checkpoint, small_config
from model_helpers import config_of
from optical_inspection.actions import inspect
from optical_inspection.boards import components
from optical_inspection.boards.dense import board_cells
from optical_inspection.boards.registration import Transform, estimate, warp
from optical_inspection.data.synth.pairs import generate_pairs
from optical_inspection.errors import DataError, OIError
from optical_inspection.status import StatusLogger
from splits import deploy_split

SIDE = 192


@pytest.fixture(scope="module")
def boards(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list]:
    """Three synthetic 192-px boards (test with defects, golden) as PNG files and their defect boxes."""
    root = tmp_path_factory.mktemp("boards")
    pairs = generate_pairs(3, size=SIDE, style="binary", defect_rate=1.0, max_shift=0.0, use_jpeg=False, seed=5)
    lines = ["input_path,golden_path"]
    for i in range(3):
        for side, tiles in (("test", pairs.test), ("golden", pairs.golden)):
            Image.fromarray(tiles[i, 0, ..., 0]).save(root / f"{side}_{i}.png")
        lines.append(f"test_{i}.png,golden_{i}.png")
    (root / "boards.csv").write_text("\n".join(lines) + "\n")
    return root, root / "boards.csv", pairs.boxes


def _spec(root: Path, csv_path: Path, results: Path, **inspect_keys) -> dict:
    return {"results_dir": str(results), "dataset": {"inspect_dataset": {"csv_path": str(csv_path),
                                                                         "images_dir": str(root)}},
            "inspect": {"checkpoint": "pretrained", **inspect_keys}}


def _run(spec: dict) -> tuple[dict, Path]:
    results = Path(spec["results_dir"]) / "inspect"
    results.mkdir(parents=True, exist_ok=True)
    out = inspect.run(config_of(spec, "inspect"), results, StatusLogger(results / "status.json"))
    return out, results


def test_detections_csv_boards_csv_and_overlays(boards, tmp_path: Path) -> None:
    root, csv_path, truth = boards
    out, results = _run(_spec(root, csv_path, tmp_path / "r"))
    rows = list(csv.DictReader((results / "detections.csv").open()))
    assert list(csv.reader((results / "detections.csv").open()))[0] == list(inspect.DETECTION_COLUMNS)
    assert {r["input_path"] for r in rows} <= {f"test_{i}.png" for i in range(3)}
    for r in rows:
        x1, y1, x2, y2 = (int(r[k]) for k in ("x1", "y1", "x2", "y2"))
        assert 0 <= x1 < x2 <= SIDE and 0 <= y1 < y2 <= SIDE and 0 < float(r["score"]) <= 1
        assert r["type"] == "defect" and r["type_probability"] == ""  # the bundled network has no type head
    assert len(list(csv.DictReader((results / "boards.csv").open()))) == 3
    assert sorted(p.name for p in (results / "overlays").iterdir()) == [f"0000{i + 1}_test_{i}.png" for i in range(3)]
    assert out["kpi"]["num_boards"] == 3
    # the pretrained synthetic network finds some of the painted defects on whole boards
    hit = 0
    for r in rows:
        box = np.array([int(r[k]) for k in ("x1", "y1", "x2", "y2")])
        gt = truth[int(r["input_path"][5])]
        hit += any(box[0] <= g[2] + 4 and g[0] <= box[2] + 4 and box[1] <= g[3] + 4 and g[1] <= box[3] + 4
                   for g in gt)
    assert hit >= 1


def test_tiles_give_the_map_of_one_pass() -> None:
    from optical_inspection.models.checkpoint import load_checkpoint

    model, _ = load_checkpoint("pretrained")
    torch.manual_seed(0)
    test, golden = torch.randn(2, 3, 200, 264).unbind(0)
    with torch.no_grad():
        whole = board_cells(model, test, golden, 16, 1024, torch.device("cpu"))
        tiled = board_cells(model, test, golden, 16, 64, torch.device("cpu"))
    assert whole.shape == (25, 33)
    torch.testing.assert_close(tiled, whole, atol=1e-4, rtol=1e-4)


def test_registration_recovers_shift_and_small_rotation(boards) -> None:
    root, _, _ = boards
    golden = torch.from_numpy(np.asarray(Image.open(root / "golden_0.png")).copy())[None]
    golden = torch.nn.functional.interpolate(golden[None].float(), scale_factor=2.0)[0].round().to(torch.uint8)
    for true in (Transform(6.0, -8.0, 0.8), Transform(-3.0, 2.0, -1.0)):
        found = estimate(warp(golden, true), golden)
        assert abs(found.dx - true.dx) < 1.0 and abs(found.dy - true.dy) < 1.0 and abs(found.angle - true.angle) < 0.3


def test_components_and_boxes_of_a_hand_made_mask() -> None:
    mask = torch.zeros(8, 10, dtype=torch.bool)
    mask[1:3, 1:4] = True
    mask[5:8, 7] = True
    mask[4, 6] = True  # touches the second blob diagonally: 8-connected
    labels, count = components.label(mask)
    assert count == 2
    values = torch.arange(80, dtype=torch.float32).reshape(8, 10)
    boxes, peaks = components.boxes_of(labels, count, values)
    got = sorted(zip(boxes.tolist(), peaks.tolist()))
    assert got == [([1.0, 1.0, 4.0, 3.0], 23.0), ([6.0, 4.0, 8.0, 8.0], 77.0)]


def _flood_labels(mask: np.ndarray) -> np.ndarray:
    """Reference 8-connected labelling by breadth-first flood fill, labels in order of first pixel."""
    from collections import deque

    out = np.zeros(mask.shape, dtype=np.int64)
    h, w = mask.shape
    count = 0
    for y in range(h):
        for x in range(w):
            if mask[y, x] and not out[y, x]:
                count += 1
                out[y, x] = count
                todo = deque([(y, x)])
                while todo:
                    cy, cx = todo.popleft()
                    for ny in range(max(0, cy - 1), min(h, cy + 2)):
                        for nx in range(max(0, cx - 1), min(w, cx + 2)):
                            if mask[ny, nx] and not out[ny, nx]:
                                out[ny, nx] = count
                                todo.append((ny, nx))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_components_match_a_flood_fill_on_random_masks_and_a_long_snake(seed: int) -> None:
    rng = np.random.default_rng(seed)
    mask = rng.random((int(rng.integers(1, 60)), int(rng.integers(1, 60)))) < rng.uniform(0.2, 0.7)
    if seed == 0:  # one component whose path winds across the whole grid
        mask = np.zeros((64, 64), dtype=bool)
        mask[::4] = True
        mask[1::8, -1] = mask[2::8, -1] = mask[3::8, -1] = True
        mask[5::8, 0] = mask[6::8, 0] = mask[7::8, 0] = True
    labels, count = components.label(torch.from_numpy(mask))
    expected = _flood_labels(mask)
    assert count == expected.max() and np.array_equal(labels.numpy(), expected)


def _write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(["input_path,golden_path", *rows]) + "\n")
    return path


@pytest.mark.parametrize("case, message", [
    ("other_size", "golden .* is 96x96 but test .* is 192x192"),
    ("empty", "has a header but no boards"),
    ("missing", "row 2: image file not found: .*nope.png"),
    ("too_large", "over inspect.max_board_pixels"),
])
def test_bad_inputs_are_clear_errors_and_write_nothing(boards, tmp_path: Path, case: str, message: str) -> None:
    root, _, _ = boards
    Image.fromarray(np.zeros((96, 96), dtype=np.uint8)).save(root / "small.png")
    rows = {"other_size": ["test_0.png,small.png"], "empty": [], "missing": ["test_0.png,golden_0.png",
                                                                             "nope.png,golden_1.png"],
            "too_large": ["test_0.png,golden_0.png"]}[case]
    csv_path = _write_csv(tmp_path / "list.csv", rows)
    keys = {"max_board_pixels": 100 * 100} if case == "too_large" else {}
    with pytest.raises(DataError, match=message):
        _run(_spec(root, csv_path, tmp_path / "r", **keys))
    assert sorted(p.name for p in (tmp_path / "r" / "inspect").iterdir()) == []


def test_a_network_without_a_map_is_refused(boards, tmp_path: Path) -> None:
    root, csv_path, _ = boards
    split = deploy_split(tmp_path / "split", n_pairs=4)
    checkpoint = make_checkpoint(tmp_path, small_config("Siamese", *split))
    with pytest.raises(OIError, match="inspect needs a Compact one"):
        _run(_spec(root, csv_path, tmp_path / "r", checkpoint=str(checkpoint)))


def test_runner_plans_inspect_from_a_board_folder_without_torch(boards, tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    root, csv_path, _ = boards
    folder = tmp_path / "boards"
    (folder / "images").mkdir(parents=True)
    for png in root.glob("*_[0-9].png"):
        (folder / "images" / png.name).symlink_to(png)
    (folder / "dataset.csv").write_text(csv_path.read_text())
    probe = ("import io, contextlib, json, sys\nfrom runners.cli import main\nbuf = io.StringIO()\n"
             "with contextlib.redirect_stdout(buf):\n    code = main(sys.argv[1:])\n"
             "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'pytorch_lightning'))\n"
             "print(json.dumps({'code': code, 'heavy': heavy, 'out': json.loads(buf.getvalue())}))\n")
    args = ["plan", "inspect", "--jobs-root", str(tmp_path / "jobs"), "--data", f"inspect_dataset={folder}",
            "--overrides", json.dumps({"inspect.checkpoint": "pretrained"})]
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, cwd=tmp_path,
                          env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"})
    result = json.loads(done.stdout)
    assert result["code"] == 0 and result["heavy"] == [], done.stderr
    split = result["out"]["spec"]["dataset"]["inspect_dataset"]
    assert split == {"csv_path": str(folder / "dataset.csv"), "images_dir": str(folder / "images")}


def test_difference_boxes_of_a_hand_made_pair() -> None:
    from optical_inspection.boards.difference import box_max, difference_boxes

    golden = torch.zeros(1, 64, 80, dtype=torch.uint8)
    test = golden.clone()
    test[0, 20:30, 40:52] = 255  # a 12x10 blob of extra copper
    test[0, 5, 5] = 255  # one noisy pixel: removed by the opening
    boxes, score = difference_boxes(test, golden, margin=2)
    assert boxes.tolist() == [[38.0, 18.0, 54.0, 32.0]] and score.tolist() == [1.0]
    values = torch.zeros(64, 80)
    values[25, 45] = 3.0
    assert box_max(values, boxes).tolist() == [3.0]


def test_difference_boxes_are_kept_and_scored_by_the_map(boards, tmp_path: Path) -> None:
    root, csv_path, truth = boards
    _, results = _run(_spec(root, csv_path, tmp_path / "r", boxes="difference", overlays=False))
    rows = list(csv.DictReader((results / "detections.csv").open()))
    assert rows and all(0.5 < float(r["score"]) <= 1 for r in rows)  # kept: the map's peak is above logit 0
    assert not (results / "overlays").exists()
