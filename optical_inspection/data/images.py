"""Decoding one image file into a uint8 array, with clear errors for unreadable files."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from ..errors import DataError

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated JPEG is an error, never silently grey
GREY_MODES = ("1", "L")


def decode_image(path: str, size: tuple[int, int] | None = None, where: str = ""
                 ) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode ``path`` to uint8 ``[H, W, C]`` resized to ``size=(H, W)`` (bilinear, antialiased), and the file's
    own (H, W). C is 1 for grey images (grey files, or RGB files whose channels are equal; expand with
    :func:`to_rgb`), else 3 (RGB; alpha dropped).

    Never returns a half-decoded image: unreadable, truncated or non-image files raise DataError.
    """
    try:
        with Image.open(path) as img:
            img.load()
            out = img.convert("L" if img.mode in GREY_MODES else "RGB") if img.mode not in ("L", "RGB") else img
            original = (out.height, out.width)
            if size is not None and original != tuple(size):
                out = out.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            array = np.asarray(out, dtype=np.uint8)
            if array.ndim == 2:
                return array[..., None], original
            if (array[..., 0] == array[..., 1]).all() and (array[..., 1] == array[..., 2]).all():
                return array[..., :1], original  # grey content stored as RGB
            return array, original
    except FileNotFoundError:
        raise DataError(f"{where}image file not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{where}cannot read image {path}: {exc} (truncated or not an image? re-export it)") from None


def to_rgb(array: np.ndarray) -> np.ndarray:
    """``[..., C]`` with C 1 or 3 -> ``[..., 3]`` (grey repeated)."""
    return np.repeat(array, 3, axis=-1) if array.shape[-1] == 1 else array
