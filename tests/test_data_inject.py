"""Synthetic defects painted on PASS training pairs: what changes, what does not, and the spec keys' errors."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from optical_inspection.data.inject import KINDS, DefectInjector
from optical_inspection.data.synth import generate_pairs
from optical_inspection.errors import SpecError
from optical_inspection.spec import validate_dict


def _batch(style: str, n: int = 24, lights: int = 1) -> dict[str, torch.Tensor]:
    pairs = generate_pairs(n, size=48, style=style, n_lights=lights, defect_rate=0.0, seed=3)
    tiles = lambda a: torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, -1, 2)))  # noqa: E731  [B, L, C, S, S]
    label = torch.zeros(n)
    label[:4] = 1.0  # labelled defects are left alone
    return {"test": tiles(pairs.test), "golden": tiles(pairs.golden), "label": label, "index": torch.arange(n)}


@pytest.mark.parametrize("style, lights", [("binary", 1), ("rgb", 2)])
@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_paints_a_local_defect_on_the_test_image_only(style: str, lights: int, kind: str) -> None:
    batch = _batch(style, lights=lights)
    torch.manual_seed(0)
    out = DefectInjector(SimpleNamespace(rate=1.0, kinds=[kind], max_size=6.0))(batch)
    assert torch.equal(out["golden"], batch["golden"]) and torch.equal(out["index"], batch["index"])
    assert torch.equal(out["test"][:4], batch["test"][:4]) and out["label"][:4].eq(1).all()
    painted = out["label"][4:] == 1
    assert painted.float().mean() > 0.7  # nearly every PASS pair finds a place for one
    diff = (out["test"].int() - batch["test"].int()).abs().amax(dim=(1, 2))  # [B, H, W]
    assert diff[4:][~painted].eq(0).all() and diff[4:][painted].amax(dim=(1, 2)).ge(10).all()
    ys, xs = diff[4:][painted].gt(0).any(2), diff[4:][painted].gt(0).any(1)
    extent = lambda m: m.shape[1] - m.int().argmax(1) - m.flip(1).int().argmax(1)  # noqa: E731
    assert extent(ys).max() <= 20 and extent(xs).max() <= 20  # one local defect, not a global change


def test_same_torch_seed_same_defects_and_rate_zero_paints_nothing() -> None:
    batch = _batch("binary")
    cfg = SimpleNamespace(rate=0.5, kinds=list(KINDS), max_size=8.0)
    runs = []
    for _ in range(2):
        torch.manual_seed(5)
        runs.append(DefectInjector(cfg)(batch))
    assert torch.equal(runs[0]["test"], runs[1]["test"]) and torch.equal(runs[0]["label"], runs[1]["label"])
    assert 0 < runs[0]["label"][4:].sum() < 20
    none = DefectInjector(SimpleNamespace(rate=0.0, kinds=list(KINDS), max_size=8.0))(batch)
    assert torch.equal(none["test"], batch["test"]) and torch.equal(none["label"], batch["label"])


@pytest.mark.parametrize("value, pattern", [
    ({"kinds": ["dust"]}, r"dataset\.synthetic_defects\.kinds"),
    ({"kinds": []}, r"dataset\.synthetic_defects\.kinds: empty"),
    ({"rate": 1.5}, r"dataset\.synthetic_defects\.rate"),
    ({"strength": 1}, r"dataset\.synthetic_defects\.strength"),
])
def test_bad_synthetic_defect_keys_are_refused_by_name(value: dict, pattern: str) -> None:
    spec = {"results_dir": "/tmp/x", "dataset": {"synthetic_defects": value}}
    with pytest.raises(SpecError, match=pattern):
        validate_dict(spec, "train")


def test_painted_defects_mark_their_pixels_in_the_masks() -> None:
    batch = _batch("binary")
    n, size = len(batch["label"]), batch["test"].shape[-1]
    batch["mask"] = torch.zeros(n, 1, size, size, dtype=torch.uint8)
    batch["mask_known"] = batch["label"] == 0
    torch.manual_seed(2)
    out = DefectInjector(SimpleNamespace(rate=1.0, kinds=list(KINDS), max_size=6.0))(batch)
    painted = torch.nonzero(out["label"][4:] == 1).flatten() + 4
    assert len(painted) > 10 and out["mask_known"][painted].all() and not out["mask_known"][:4].any()
    changed = (out["test"].int() - batch["test"].int()).abs().amax(dim=(1, 2)) > 0  # [B, H, W]
    mask = out["mask"][:, 0].bool()
    assert mask[painted].flatten(1).any(1).all()
    # the mask holds the changed pixels (a painted pixel is one the defect covers by a quarter or more)
    for i in painted.tolist():
        assert (mask[i] & changed[i]).sum() >= 0.8 * mask[i].sum()
    assert not mask[:4].any()
