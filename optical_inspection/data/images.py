"""Decoding one image file into a uint8 array, with clear errors for unreadable files."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from ..errors import DataError

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated JPEG is an error, never silently grey
GREY_MODES = ("1", "L")
WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # 16-bit grey (PNG, TIFF); "I" = 32-bit integer pixels


def decode_image(path: str, size: tuple[int, int] | None = None, where: str = ""
                 ) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode ``path`` to uint8 ``[H, W, C]`` resized to ``size=(H, W)`` (bilinear, antialiased), and the file's
    own (H, W). C is 1 for grey images (grey files, or RGB files whose channels are equal; expand with
    :func:`to_rgb`), else 3 (RGB; alpha dropped).

    16-bit grey images (TAO clips them at 255) are scaled to 8 bits over the full 16-bit range (0..65535 ->
    0..255, rounded), so a 16-bit and an 8-bit export of the same picture decode alike; 16-bit RGB is reduced to
    8 bits by Pillow. Float pixels, and integer pixels outside 0..65535, are refused naming the file.
    Decompression bombs (images over Pillow's pixel limit) are refused, naming the file.
    Never returns a half-decoded image: unreadable, truncated or non-image files raise DataError.
    """
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in WIDE_MODES:
                out = Image.fromarray(_wide_to_uint8(np.asarray(img), path, where), mode="L")
            elif img.mode == "F":
                raise DataError(f"{where}image {path} has 32-bit float pixels, which have no fixed range; re-export "
                                "it as an 8-bit or 16-bit image")
            else:
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
    except Image.DecompressionBombError as exc:
        raise DataError(f"{where}image {path} is too large to decode safely ({exc}); inspection tiles are small: "
                        "crop or downscale it") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{where}cannot read image {path}: {exc} (truncated or not an image? re-export it)") from None


def to_rgb(array: np.ndarray) -> np.ndarray:
    """``[..., C]`` with C 1 or 3 -> ``[..., 3]`` (grey repeated)."""
    return np.repeat(array, 3, axis=-1) if array.shape[-1] == 1 else array


def _wide_to_uint8(array: np.ndarray, path: str, where: str) -> np.ndarray:
    """16-bit (or 32-bit integer) grey pixels -> uint8 over the 16-bit range: round(v * 255 / 65535)."""
    wide = array.astype(np.int64)
    if wide.size and (wide.min() < 0 or wide.max() > 65535):
        low, high = int(wide.min()), int(wide.max())
        raise DataError(f"{where}image {path} has integer pixels outside 0..65535 ({low}..{high}); "
                        "re-export it as an 8-bit or 16-bit image")
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)
