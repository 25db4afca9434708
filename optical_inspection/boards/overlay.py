"""A board's overlay PNG: the test board, its defect map in red, and the boxes with their scores."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

ALPHA = 0.5


def write_overlay(path: Path, test: torch.Tensor, result: Any) -> Path:
    """Write ``path`` from uint8 ``test`` [C, H, W] and a BoardResult."""
    image = test.expand(3, -1, -1).permute(1, 2, 0).float().numpy()
    # red where the map leans to defect (p > 0.5), clear elsewhere
    alpha = (2 * torch.sigmoid(result.defect_map) - 1).clamp(min=0).numpy()[..., None] * ALPHA
    red = np.zeros_like(image)
    red[..., 0] = 255.0
    picture = Image.fromarray(np.round(image * (1 - alpha) + red * alpha).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    for (x1, y1, x2, y2), score in zip(result.boxes.tolist(), result.scores.tolist()):
        draw.rectangle([x1, y1, x2 - 1, y2 - 1], outline=(255, 220, 0), width=2)
        draw.text((x1 + 2, max(0, y1 - 11)), f"{score:.2f}", fill=(255, 220, 0))
    picture.save(path, format="PNG")
    return path
