"""TAO's Siamese networks (layer names, sizes, outputs), the Compact default, losses and the factory."""
from __future__ import annotations

import pytest
import torch

from optical_inspection.errors import OIError
from optical_inspection.models import build_network, count_parameters
from optical_inspection.models.compact import Compact
from optical_inspection.models.losses import contrastive_losses, pair_losses
from optical_inspection.models.siamese import Siamese, Siamese3


def test_siamese3_has_tao_state_dict_names_and_size() -> None:
    model = Siamese3((3, 64, 32), embedding_vectors=5)
    names = set(model.state_dict())
    for index in (1, 5, 9):
        assert f"cnn1.{index}.weight" in names and f"cnn1.{index}.bias" in names
    for index in (3, 7, 11):
        assert f"cnn1.{index}.running_mean" in names
    assert {"fc1.0.weight", "fc1.2.running_var", "fc1.3.weight", "fc1.5.weight", "fc1.6.weight"} <= names
    flat = 8 * 64 * 32
    trunk = 1032
    head = (flat * 512 + 512) + 2 * 512 + (512 * 512 + 512) + 2 * 512 + (512 * 5 + 5)
    assert count_parameters(model) == trunk + head


def test_siamese1_has_tao_head_without_batchnorm() -> None:
    model = Siamese((3, 32, 32), embedding_vectors=7)
    assert {"fc1.0.weight", "fc1.2.weight", "fc1.4.weight"} <= set(model.state_dict())
    assert not any("running_mean" in k and k.startswith("fc1") for k in model.state_dict())
    assert model.fc1[4].out_features == 7


def test_siamese_outputs_embeddings_and_distance_score() -> None:
    torch.manual_seed(0)
    model = Siamese3((3, 32, 16)).eval()
    a, b = torch.randn(4, 3, 32, 16), torch.randn(4, 3, 32, 16)
    out_1, out_2 = model(a, b)
    assert out_1.shape == out_2.shape == (4, 5)
    expected = torch.sqrt(((out_1 - out_2 + 1e-6) ** 2).sum(1))
    torch.testing.assert_close(model.score(a, b), expected)
    assert torch.allclose(model.score(a, a), torch.full((4,), 1e-6 * 5 ** 0.5), atol=1e-5)


@pytest.mark.parametrize("lights", [1, 4])
def test_compact_is_at_least_200x_smaller_than_siamese3(lights: int) -> None:
    shape = (3, 128 * lights, 128)
    compact = count_parameters(Compact(shape, base_channels=16))
    assert compact * 200 <= count_parameters(Siamese3(shape))
    assert compact == count_parameters(Compact((3, 32, 32), base_channels=16))  # independent of image size


def test_compact_scores_identical_and_slightly_shifted_pairs_alike() -> None:
    torch.manual_seed(0)
    model = Compact((3, 64, 64), base_channels=8).eval()
    golden = torch.randn(2, 3, 64, 64)
    score = model.score(golden.clone(), golden)
    assert score.shape == (2,) and score.dtype == torch.float32
    # with the shift-tolerant comparison, only |f_t - f_g| sees a 1-pixel shift: the inputs to the head stay close
    feat = model.encoder(golden)
    shifted = model.encoder(torch.roll(golden, 1, dims=3))
    tolerant = model.compare(shifted, feat)[:, : 2 * feat.shape[1]]
    exact = model.compare(shifted, feat)[:, 2 * feat.shape[1]:]
    assert tolerant.abs().mean() < 0.5 * exact.abs().mean()


def test_unknown_model_type_is_an_error_not_a_fallback() -> None:
    with pytest.raises(OIError, match="unknown model.model_type 'Siamese3'"):
        build_network({"model_type": "Siamese3"}, (3, 32, 32))
    with pytest.raises(OIError, match="model_backbone"):
        build_network({"model_type": "Siamese", "model_backbone": "resnet"}, (3, 32, 32))


@pytest.mark.parametrize("model_type", ["Compact", "Siamese", "Siamese_3"])
@pytest.mark.parametrize("shape", [(4, 32, 32), (1, 32, 32), (32, 32)])
def test_strips_that_are_not_rgb_are_refused_by_every_network(model_type: str, shape: tuple[int, ...]) -> None:
    with pytest.raises(OIError, match=r"strip_shape \[.*\] is not \(3, height, width\)"):
        build_network({"model_type": model_type}, shape)


def test_contrastive_loss_matches_tao_formula() -> None:
    d = torch.tensor([0.5, 3.0, 0.5, 3.0])
    y = torch.tensor([0.0, 0.0, 1.0, 1.0])
    expected = torch.tensor([0.25, 9.0, (2.0 - 0.5) ** 2, 0.0])
    torch.testing.assert_close(contrastive_losses(d, y, margin=2.0), expected)
    torch.testing.assert_close(pair_losses("Siamese_3", d, y, 2.0), expected)


def test_compact_loss_is_bce_on_the_logit() -> None:
    logit = torch.tensor([0.0, 2.0])
    y = torch.tensor([1.0, 0.0])
    expected = torch.tensor([torch.log(torch.tensor(2.0)), torch.log1p(torch.exp(torch.tensor(2.0)))])
    torch.testing.assert_close(pair_losses("Compact", logit, y, 2.0), expected)
