"""The procedural pair generator: deterministic by seed, defects exactly where the masks and boxes say."""
from __future__ import annotations

import numpy as np
import pytest

from optical_inspection.data.synth import AOI_KINDS, COPPER_KINDS, generate_pairs
from optical_inspection.data.synth.defects import window_max


@pytest.mark.parametrize("style", ["binary", "grey", "rgb"])
def test_same_seed_same_pairs(style):
    a = generate_pairs(40, size=32, style=style, n_lights=2, seed=5)
    b = generate_pairs(40, size=32, style=style, n_lights=2, seed=5)
    c = generate_pairs(40, size=32, style=style, n_lights=2, seed=6)
    assert np.array_equal(a.test, b.test) and np.array_equal(a.golden, b.golden) and a.labels == b.labels
    assert not np.array_equal(a.golden, c.golden)
    channels = 3 if style == "rgb" else 1
    lights = 1 if style == "binary" else 2
    assert a.test.shape == a.golden.shape == (40, lights, 32, 32, channels) and a.test.dtype == np.uint8


@pytest.mark.parametrize("style,kinds", [("binary", COPPER_KINDS), ("rgb", AOI_KINDS)])
def test_every_kind_is_drawn_with_mask_and_box(style, kinds):
    batch = generate_pairs(len(kinds) * 12, size=48, style=style, defect_rate=1.0, kinds=kinds, seed=1)
    drawn = {k for pair in batch.kinds for k in pair}
    assert drawn == set(kinds)
    for labels, kinds_i, boxes, mask in zip(batch.labels, batch.kinds, batch.boxes, batch.mask):
        assert labels == kinds_i[0] and len(boxes) == len(kinds_i) >= 1
        ys, xs = np.nonzero(mask)
        assert len(ys) > 0
        # every mask pixel lies in one of the boxes, and every box holds mask pixels
        inside = np.zeros(len(ys), dtype=bool)
        for x0, y0, x1, y1 in boxes:
            hit = (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)
            assert hit.any()
            inside |= hit
        assert inside.all()


@pytest.mark.parametrize("style", ["binary", "grey"])
def test_difference_outside_the_mask_is_only_misregistration(style):
    """Same seed with and without defects: identical layouts, warps and photometry, so the two test images differ
    only inside the (slightly dilated: warp and blur spread a defect's edge) defect mask."""
    kwargs = dict(size=48, style=style, use_jpeg=False, seed=3)
    with_defects = generate_pairs(64, defect_rate=1.0, **kwargs)
    clean = generate_pairs(64, defect_rate=0.0, **kwargs)
    assert set(clean.labels) == {"PASS"} and not clean.mask.any() and all(len(b) == 0 for b in clean.boxes)
    assert np.array_equal(with_defects.golden, clean.golden)
    diff = np.abs(with_defects.test.astype(int) - clean.test.astype(int)).max(axis=(1, 4))  # [B, S, S]
    near = window_max(with_defects.mask.astype(np.float32), 3) > 0
    assert (diff[~near] <= (0 if style == "binary" else 2)).all()  # grey: faint anti-aliased fringes, blurred
    assert (diff[with_defects.mask] > 0).mean() > 0.3


def test_defective_pairs_exactly_as_asked():
    want = np.arange(30) % 3 == 0
    batch = generate_pairs(30, size=24, style="rgb", defective=want, seed=2)
    assert [lab != "PASS" for lab in batch.labels] == want.tolist()


def test_misregistration_bounded():
    """Clean pairs differ by a small warp only: the test image is the golden moved by at most ~3 px."""
    batch = generate_pairs(32, size=48, style="grey", defect_rate=0.0, use_jpeg=False, seed=4)
    t, g = batch.test[:, 0, ..., 0].astype(float), batch.golden[:, 0, ..., 0].astype(float)
    best = np.full(len(t), np.inf)
    for dy in range(-4, 5):
        for dx in range(-4, 5):
            shifted = np.roll(g, (dy, dx), axis=(1, 2))[:, 6:-6, 6:-6]
            best = np.minimum(best, np.abs(t[:, 6:-6, 6:-6] - shifted).mean((1, 2)))
    plain = np.abs(t - g)[:, 6:-6, 6:-6].mean((1, 2))
    assert (best <= plain + 1e-9).all() and np.median(best) < 12


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="style"):
        generate_pairs(2, style="xray")
    with pytest.raises(ValueError, match="not available"):
        generate_pairs(2, style="binary", kinds=["scratch"])
    with pytest.raises(ValueError, match="size"):
        generate_pairs(2, size=8)


def test_pairs_of_one_layout_share_board_colours():
    """The goldens of the boards inspected against one golden differ only by the photometric noise (before each
    board drew its own palette: mean difference 12.5 grey levels here; shared: about 6)."""
    batch = generate_pairs(30, size=32, style="rgb", n_lights=2, defect_rate=0.0, max_shift=0.0,
                           pairs_per_layout=3, use_jpeg=False, seed=1)
    golden = batch.golden.astype(np.float32)
    assert np.abs(golden[0::3] - golden[1::3]).mean() < 8.0
