"""Batched pair augmentation: one draw per pair, TAO quirks fixed, random_shift moves only the test image."""
from __future__ import annotations

import pytest
import torch

from optical_inspection.config.dataset import AugmentationConfig
from optical_inspection.data.augment import PairAugmenter


def _only(**on) -> AugmentationConfig:
    """A config with every augmentation off except those named (True = defaults, or a dict of settings); one
    photometric draw per pair (``photometric_per_side`` off) unless a test turns it on."""
    cfg = AugmentationConfig(augment=True, with_random_blur=False, with_random_crop=False, photometric_per_side=False)
    cfg.random_flip.enable = cfg.random_rotate.enable = cfg.random_color.enable = cfg.random_shift.enable = False
    for name, settings in on.items():
        if name in ("with_random_blur", "with_random_crop"):
            setattr(cfg, name, True)
            continue
        section = getattr(cfg, name)
        section.enable = True
        for key, value in (settings if isinstance(settings, dict) else {}).items():
            setattr(section, key, value)
    return cfg


def _batch(b=64, n=2, c=3, size=16, seed=0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, n, c, size, size), dtype=torch.uint8, generator=gen)


def _changed(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """Per sample: did the augmentation change it?"""
    return ((after - before.float() / 255).abs() > 1e-4).flatten(1).any(1)


@pytest.mark.parametrize("settings", [
    {"random_flip": True}, {"random_rotate": True}, {"with_random_crop": True}, {"with_random_blur": True},
    {"random_color": True}, {"random_flip": True, "random_rotate": True, "with_random_crop": True,
                             "with_random_blur": True, "random_color": True},
])
def test_pair_and_lights_share_one_draw(settings):
    x = _batch()
    test, golden = PairAugmenter(_only(**settings))(x, x.clone(), torch.Generator().manual_seed(1))
    assert test.shape == x.shape and test.dtype == torch.float32
    assert torch.allclose(test, golden, atol=1e-6)  # same draw for test and golden
    assert 0 <= float(test.min()) and float(test.max()) <= 1


def test_lights_share_the_geometric_draw():
    x = _batch(n=1)
    same = torch.cat([x, x], dim=1)  # two identical lights
    test, _ = PairAugmenter(_only(random_flip=True, random_rotate=True, with_random_crop=True))(same, same)
    assert torch.allclose(test[:, 0], test[:, 1])


def test_every_rotation_angle_is_used():
    x = _batch(b=200, n=1, c=1, size=8)
    cfg = _only(random_rotate={"rotate_probability": 1.0, "angle_list": [0.0, 90.0, 180.0, 270.0]})
    test, _ = PairAugmenter(cfg)(x, x, torch.Generator().manual_seed(0))
    ref = x.float() / 255
    seen = set()
    for k in range(4):
        turned = torch.rot90(ref, k, dims=(-2, -1))
        hit = (test - turned).abs().flatten(1).amax(1) < 1e-4
        if hit.any():
            seen.add(k)
    assert seen == {0, 1, 2, 3}  # TAO only ever used the first three entries


@pytest.mark.parametrize("name, settings", [
    ("random_color", {"color_probability": 0.0}), ("random_flip", {"hflip_probability": 0.0,
                                                                    "vflip_probability": 0.0}),
    ("random_rotate", {"rotate_probability": 0.0}),
])
def test_probability_zero_means_never(name, settings):
    x = _batch()
    test, _ = PairAugmenter(_only(**{name: settings}))(x, x)
    assert not _changed(x, test).any()


def test_colour_probability_applied_as_written():
    x = _batch(b=400)
    cfg = _only(random_color={"color_probability": 0.2})
    test, _ = PairAugmenter(cfg)(x, x, torch.Generator().manual_seed(0))
    share = _changed(x, test).float().mean().item()
    assert 0.12 < share < 0.28  # TAO jitters with 1 - 0.2 = 0.8


@pytest.mark.parametrize("name", ["with_random_crop", "with_random_blur"])
def test_crop_and_blur_are_coin_flips(name):
    x = _batch(b=400)
    test, _ = PairAugmenter(_only(**{name: True}))(x, x, torch.Generator().manual_seed(0))
    share = _changed(x, test).float().mean().item()
    assert 0.35 < share < 0.65  # TAO: always on


def test_shift_moves_test_against_golden_only():
    x = _batch(b=64, size=16)
    test, golden = PairAugmenter(_only(random_shift={"max_pixels": 2}))(x, x, torch.Generator().manual_seed(0))
    ref = x.float() / 255
    assert torch.allclose(golden, ref, atol=1e-5)
    moved = _changed(x, test)
    assert 0.7 < moved.float().mean().item() < 1.0  # (0, 0) is one of 25 draws
    inner = (test[..., 2:-2, 2:-2] - ref[..., 2:-2, 2:-2]).abs()
    # a shift by whole pixels: each moved sample equals the reference rolled by some (dy, dx) in [-2, 2]
    for i in torch.nonzero(moved).flatten()[:8].tolist():
        best = min((torch.roll(ref[i], (dy, dx), dims=(-2, -1))[..., 2:-2, 2:-2] - test[i][..., 2:-2, 2:-2])
                   .abs().max().item() for dy in range(-2, 3) for dx in range(-2, 3))
        assert best < 1e-4 and inner[i].max() > 0


def test_grey_tiles_and_determinism():
    x = _batch(c=1)
    cfg = _only(random_flip=True, random_rotate=True, with_random_crop=True, with_random_blur=True,
                random_color=True, random_shift=True)
    a = PairAugmenter(cfg)(x, x, torch.Generator().manual_seed(3))
    b = PairAugmenter(cfg)(x, x, torch.Generator().manual_seed(3))
    assert a[0].shape == x.shape and torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_hue_turns_colours_both_ways_and_keeps_grey():
    colour = torch.tensor([200, 60, 30], dtype=torch.uint8).view(1, 1, 3, 1, 1).expand(400, 1, 3, 4, 4)
    grey = torch.full((400, 1, 3, 4, 4), 90, dtype=torch.uint8)
    cfg = _only(random_color={"color_probability": 1.0, "brightness": 0.0, "contrast": 0.0, "saturation": 0.0,
                              "hue": 0.1})
    turned, _ = PairAugmenter(cfg)(colour, colour, torch.Generator().manual_seed(0))
    still, _ = PairAugmenter(cfg)(grey, grey)
    assert torch.allclose(still, grey.float() / 255, atol=1e-5)
    green_shift = turned[:, 0, 1, 0, 0] - 60 / 255
    assert (green_shift > 0.01).any() and (green_shift < -0.01).any()


@pytest.mark.parametrize("per_side", [False, True])
def test_photometric_per_side_draws_colour_and_blur_for_each_image(per_side: bool) -> None:
    cfg = _only(random_color={"color_probability": 1.0}, with_random_blur=True)
    cfg.photometric_per_side = per_side
    x = _batch()
    test, golden = PairAugmenter(cfg)(x, x, torch.Generator().manual_seed(1))
    differs = (test - golden).abs().flatten(1).amax(1) > 1e-4
    assert differs.all() if per_side else not differs.any()


@pytest.mark.parametrize("settings", [
    {"random_flip": True}, {"random_rotate": True}, {"random_shift": {"max_pixels": 3}}, {"with_random_crop": True},
    {"random_flip": True, "random_rotate": True, "random_shift": {"max_pixels": 2}},
])
def test_masks_move_with_the_test_image(settings):
    """A mask that marks the test image's bright pixels still marks them after the pair is moved (nearest
    sampling of the same geometry, so the dense map learns the right cells)."""
    gen = torch.Generator().manual_seed(1)
    test = torch.zeros(32, 1, 1, 24, 24, dtype=torch.uint8)
    corners = torch.randint(2, 14, (32, 2), generator=gen)
    for i, (y, x) in enumerate(corners.tolist()):  # one bright 8x8 square per tile
        test[i, 0, 0, y:y + 8, x:x + 8] = 255
    masks = (test[:, 0, :1] > 0).to(torch.uint8)  # [B, 1, H, W]
    out, _, moved = PairAugmenter(_only(**settings)).with_masks(test, test.clone(), masks, gen)
    assert moved is not None and moved.dtype == torch.uint8 and moved.shape == masks.shape
    bright = out[:, 0, 0] > 0.5
    agree = (bright == moved[:, 0].bool()).float().mean(dim=(1, 2))
    assert agree.min() > 0.97  # nearest vs bilinear differ at most on the square's rim
    assert not torch.equal(moved, masks)  # something moved
