"""PyTorch scorer: a checkpoint (.pth/.ckpt) run on the CPU or a GPU."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from ..models.checkpoint import load_checkpoint
from ..models.compact import Compact
from ..models.denormals import flush_denormals
from ..models.threshold import natural_threshold

if TYPE_CHECKING:
    from ..config.experiment import ExperimentConfig


class TorchScorer:
    """Scores pairs with a checkpoint's network in eval mode (no gradients)."""

    max_batch: int | None = None
    uses_torch_threads = True  # score_split leaves torch's thread pool to the model

    def __init__(self, model_path: str | Path, config: ExperimentConfig | None = None,
                 device: str | torch.device | None = None) -> None:
        self.model, self.meta = load_checkpoint(model_path, config)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.to(self.device)
        stored = self.meta.get("threshold")
        self.threshold: float | None = float(stored) if stored is not None else natural_threshold(self.meta["model"])
        self.supports_maps = hasattr(self.model, "score_and_map")
        self.defect_types: list[str] = list(self.meta["model"].get("defect_types") or [])

    def _inputs(self, test: Any, golden: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """float32 tensors on the scorer's device."""
        return (torch.as_tensor(test, dtype=torch.float32).to(self.device),
                torch.as_tensor(golden, dtype=torch.float32).to(self.device))

    @torch.inference_mode()
    def score(self, test: Any, golden: Any) -> np.ndarray:
        t, g = self._inputs(test, golden)
        with flush_denormals():
            return self.model.score(t, g).float().cpu().numpy()

    @torch.inference_mode()
    def score_maps(self, test: Any, golden: Any) -> tuple[np.ndarray, np.ndarray]:
        """(float32[B] scores, float32[B, H', W'] defect maps); Compact networks only (``supports_maps``)."""
        t, g = self._inputs(test, golden)
        with flush_denormals():
            score, maps = cast(Compact, self.model).score_and_map(t, g)
        return score.float().cpu().numpy(), maps.float().cpu().numpy()


    @torch.inference_mode()
    def score_types(self, test: Any, golden: Any) -> tuple[np.ndarray, np.ndarray]:
        """(float32[B] scores, float32[B, K] defect-kind probabilities); networks with ``defect_types`` only."""
        t, g = self._inputs(test, golden)
        with flush_denormals():
            score, type_logits = cast(Compact, self.model).score_and_types(t, g)
        return score.float().cpu().numpy(), type_logits.float().softmax(1).cpu().numpy()


def load(model_path: str | Path, config: ExperimentConfig | None = None) -> TorchScorer:
    """The backend entry point used by :func:`optical_inspection.deploy.load_scorer`."""
    return TorchScorer(model_path, config)
