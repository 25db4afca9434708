"""TAO's two Siamese networks, with TAO's layer structure and state-dict names.

Both share a three-block trunk (reflection pad, 3x3 conv, ReLU, BatchNorm; channels 3→4→8→8, no pooling) whose
full-resolution feature map is flattened into a fully connected head that outputs an embedding of size E.
``forward`` returns the two embeddings (TAO's ONNX I/O ``output_1``/``output_2``); ``score`` is their Euclidean
distance (TAO's ``siamese_score``), a defect when it exceeds the threshold.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

TRUNK_CHANNELS = 8
PAIRWISE_EPS = 1e-6  # torch.pairwise_distance's default, as TAO uses it


def _trunk() -> nn.Sequential:
    """cnn1: indices 1/5/9 are the convs, 3/7/11 the BatchNorms (TAO's names)."""
    layers: list[nn.Module] = []
    for c_in, c_out in ((3, 4), (4, 8), (8, TRUNK_CHANNELS)):
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(c_in, c_out, kernel_size=3), nn.ReLU(inplace=True),
                   nn.BatchNorm2d(c_out)]
    return nn.Sequential(*layers)


class _SiameseBase(nn.Module):
    """Trunk + head applied to each input separately (two forward passes with shared weights, as TAO)."""

    fc1: nn.Sequential

    def __init__(self, strip_shape: tuple[int, int, int], embedding_vectors: int) -> None:
        super().__init__()
        _, height, width = strip_shape
        self.strip_shape = strip_shape
        self.embedding_vectors = embedding_vectors
        self.cnn1 = _trunk()
        self.flat_features = TRUNK_CHANNELS * height * width

    def forward_once(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc1(self.cnn1(x).flatten(1))

    def forward(self, input_1: torch.Tensor, input_2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_once(input_1), self.forward_once(input_2)

    def score(self, input_1: torch.Tensor, input_2: torch.Tensor) -> torch.Tensor:
        """Euclidean distance of the embeddings; larger = more defective."""
        output_1, output_2 = self(input_1, input_2)
        return embedding_distance(output_1, output_2)


class Siamese(_SiameseBase):
    """TAO's ``SiameseNetwork1``: Linear(F→500), ReLU, Linear(500→500), ReLU, Linear(500→E); no BatchNorm."""

    def __init__(self, strip_shape: tuple[int, int, int], embedding_vectors: int = 5) -> None:
        super().__init__(strip_shape, embedding_vectors)
        self.fc1 = nn.Sequential(
            nn.Linear(self.flat_features, 500), nn.ReLU(inplace=True),
            nn.Linear(500, 500), nn.ReLU(inplace=True),
            nn.Linear(500, embedding_vectors),
        )


class Siamese3(_SiameseBase):
    """TAO's ``SiameseNetwork3``: Linear(F→512), ReLU, BN1d, Linear(512→512), ReLU, BN1d, Linear(512→E)."""

    def __init__(self, strip_shape: tuple[int, int, int], embedding_vectors: int = 5) -> None:
        super().__init__(strip_shape, embedding_vectors)
        self.fc1 = nn.Sequential(
            nn.Linear(self.flat_features, 512), nn.ReLU(inplace=True), nn.BatchNorm1d(512),
            nn.Linear(512, 512), nn.ReLU(inplace=True), nn.BatchNorm1d(512),
            nn.Linear(512, embedding_vectors),
        )


def embedding_distance(output_1: torch.Tensor, output_2: torch.Tensor) -> torch.Tensor:
    """TAO's distance ``‖e1 − e2 + 1e-6‖₂`` (torch.pairwise_distance)."""
    return F.pairwise_distance(output_1, output_2, eps=PAIRWISE_EPS)
