"""THE preprocessing, shared by training, evaluation, ONNX Runtime and TensorRT.

Each light image is decoded, resized to ``image_height x image_width`` (bilinear, antialiased), kept as uint8
tiles ``[N, C, H, W]`` (C = 3, or 1 for grey images, which stay compact until normalisation broadcasts them to
RGB); tiles are joined into a strip ``[C, H', W']`` (``linear``: stacked vertically in ``input_map`` order,
``grid``: ``grid_map.y`` rows of ``grid_map.x`` tiles, row-major) and normalised with ``rgb_input_mean/std``
after scaling to [0, 1]. Typical use: ``normalize(concat(tiles))``, or ``load_pairs(table, rows)``.

Tiles, strips and normalisation take numpy arrays or torch tensors alike and return the same kind: scoring from
an ONNX file goes through numpy only and never imports torch (about 1.7 s of start-up).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..errors import DataError, SpecError
from .images import decode_image, to_rgb
from .paths import light_names

if TYPE_CHECKING:
    import torch

    from ..config.dataset import DatasetConfig

Array = Any  # a numpy array or a torch tensor (the methods below return the kind they are given)


class Preprocessor:
    """Geometry and normalisation of one dataset config; turns image files into model inputs."""

    def __init__(self, dataset_cfg: DatasetConfig) -> None:
        self.lights: list[str] = light_names(dataset_cfg)
        self.num_tiles = max(1, len(self.lights))
        self.tile_size = (int(dataset_cfg.image_height), int(dataset_cfg.image_width))
        self.concat_type: str = dataset_cfg.concat_type or "linear"
        self.grid = (int(dataset_cfg.grid_map.x), int(dataset_cfg.grid_map.y))
        aug = dataset_cfg.augmentation_config
        self._check(dataset_cfg)
        self.mean = np.asarray(aug.rgb_input_mean, dtype=np.float32).reshape(3, 1, 1)
        self.std = np.asarray(aug.rgb_input_std, dtype=np.float32).reshape(3, 1, 1)

    def _check(self, dataset_cfg: DatasetConfig) -> None:
        problems = []
        num_input = dataset_cfg.num_input
        if num_input is not None and num_input != self.num_tiles:
            problems.append(f"dataset.num_input is {num_input} but dataset.input_map has {len(self.lights)} "
                            f"light(s) {self.lights}; set num_input: {self.num_tiles} or null")
        if self.concat_type == "grid" and self.grid[0] * self.grid[1] != self.num_tiles:
            problems.append(f"dataset.grid_map {self.grid[0]}x{self.grid[1]} holds {self.grid[0] * self.grid[1]} "
                            f"tiles but there are {self.num_tiles} light(s); make x*y equal the number of lights "
                            f"or use concat_type: linear")
        if not str(dataset_cfg.image_ext).startswith("."):
            problems.append(f"dataset.image_ext must start with a dot, e.g. '.jpg' (got {dataset_cfg.image_ext!r})")
        aug = dataset_cfg.augmentation_config
        for key in ("rgb_input_mean", "rgb_input_std"):
            values = getattr(aug, key)
            if len(values) != 3:
                problems.append(f"dataset.augmentation_config.{key} needs 3 values (R, G, B), got {len(values)}")
        if any(v <= 0 for v in aug.rgb_input_std):
            problems.append("dataset.augmentation_config.rgb_input_std values must be > 0")
        if problems:
            raise SpecError(problems)

    @property
    def strip_shape(self) -> tuple[int, int, int]:
        """(3, H', W') of one side of a pair after concatenation."""
        h, w = self.tile_size
        if self.concat_type == "grid":
            return 3, self.grid[1] * h, self.grid[0] * w
        return 3, self.num_tiles * h, w

    def decode_tiles(self, paths: Sequence[str | Path], where: str = "", grey_ok: bool = False
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Decode and resize each light: uint8 ``[N, C, H, W]`` (numpy) and the files' own sizes ``[N, 2]`` (H, W).

        C is 3, or 1 when ``grey_ok`` and every light file is grey (expand with :meth:`as_rgb`; saves memory)."""
        if len(paths) != self.num_tiles:
            raise DataError(f"{where}expected {self.num_tiles} image(s) (one per light), got {len(paths)}")
        arrays, sizes = zip(*(decode_image(str(p), self.tile_size, where) for p in paths))
        if not (grey_ok and all(a.shape[-1] == 1 for a in arrays)):
            arrays = [to_rgb(a) for a in arrays]
        return np.ascontiguousarray(np.stack(arrays).transpose(0, 3, 1, 2)), np.asarray(sizes, dtype=np.int32)

    def load_tiles(self, paths: Sequence[str | Path], where: str = "", grey_ok: bool = False
                   ) -> tuple[torch.Tensor, np.ndarray]:
        """:meth:`decode_tiles` as a torch tensor."""
        import torch

        tiles, sizes = self.decode_tiles(paths, where, grey_ok)
        return torch.from_numpy(tiles), sizes

    @staticmethod
    def as_rgb(tiles: Array) -> Array:
        """Tiles ``[..., C, H, W]`` with C 1 or 3 as 3 channels (a view for grey)."""
        if tiles.shape[-3] != 1:
            return tiles
        shape = (*tiles.shape[:-3], 3, *tiles.shape[-2:])
        return np.broadcast_to(tiles, shape) if isinstance(tiles, np.ndarray) else tiles.expand(*shape)

    def concat(self, tiles: Array) -> Array:
        """Join tiles ``[..., N, 3, H, W]`` into strips ``[..., 3, H', W']`` (any dtype)."""
        *lead, n, c, h, w = tiles.shape
        if self.concat_type == "grid":
            gx, gy = self.grid
            grid = tiles.reshape(*lead, gy, gx, c, h, w)
            nd = len(lead)
            # [..., gy, gx, c, h, w] -> [..., c, gy, h, gx, w]
            perm = list(range(nd)) + [nd + 2, nd, nd + 3, nd + 1, nd + 4]
            return _permute(grid, perm).reshape(*lead, c, gy * h, gx * w)
        nd = len(lead)
        perm = list(range(nd)) + [nd + 1, nd, nd + 2, nd + 3]
        return _permute(tiles, perm).reshape(*lead, c, n * h, w)

    def load_strip(self, paths: Sequence[str | Path]) -> torch.Tensor:
        """uint8 strip ``[3, H', W']`` of one side of a pair (the light files in input_map order)."""
        return self.concat(self.load_tiles(paths)[0])

    def normalize(self, images: Array) -> Array:
        """float32 ``(x/255 - mean) / std`` of uint8 ``[..., C, H', W']`` (float input is taken as already /255).

        C is 3, or 1 for grey images, which broadcast to 3 channels here (no RGB copy first)."""
        if isinstance(images, np.ndarray):
            return self._normalize_array(images)
        import torch

        x = images.float()
        std, mean = torch.from_numpy(self.std).to(x.device), torch.from_numpy(self.mean).to(x.device)
        scale = 1.0 / (255.0 * std) if images.dtype == torch.uint8 else 1.0 / std
        return torch.addcmul(-mean / std, x, scale)

    def _normalize_array(self, images: np.ndarray) -> np.ndarray:
        """numpy :meth:`normalize`: one multiply and one add per output channel, written in place."""
        scale = 1.0 / ((255.0 if images.dtype == np.uint8 else 1.0) * self.std[:, 0, 0])
        bias = -self.mean[:, 0, 0] / self.std[:, 0, 0]
        out = np.empty((*images.shape[:-3], 3, *images.shape[-2:]), dtype=np.float32)
        for c in range(3):
            channel = out[..., c, :, :]
            np.multiply(images[..., 0 if images.shape[-3] == 1 else c, :, :], np.float32(scale[c]), out=channel,
                        casting="unsafe")
            channel += np.float32(bias[c])
        return out

    def load_pair_tiles(self, table: Any, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 tiles (test, golden) ``[N, C, H, W]`` of row ``i`` (C = 1 when both are grey, else 3);
        DataError when their sizes differ."""
        line = f"{table.csv_path} line {table.lines[i]}: "
        test, test_sizes = self.load_tiles(table.test_paths(i), line, grey_ok=True)
        golden, golden_sizes = self.load_tiles(table.golden_paths(i), line, grey_ok=True)
        if not np.array_equal(test_sizes, golden_sizes):
            raise DataError(size_mismatch_message(table, [i], test_sizes[None], golden_sizes[None]))
        if test.shape[1] != golden.shape[1]:
            test, golden = self.as_rgb(test), self.as_rgb(golden)
        return test, golden

    def load_pairs(self, table: Any, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised float32 (test, golden) strips ``[B, 3, H', W']`` of the rows ``indices`` of a PairTable."""
        test, golden = self.stack_pairs([self.load_pair_tiles(table, int(i)) for i in indices])
        return self.normalize(self.concat(test)), self.normalize(self.concat(golden))

    def stack_pairs(self, pairs: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch per-row (test, golden) tiles: ``[B, N, C, H, W]`` each (C = 3 unless every row is grey)."""
        grey = all(t.shape[-3] == 1 for t, _ in pairs)
        fix = (lambda x: x) if grey else self.as_rgb
        import torch

        return torch.stack([fix(t) for t, _ in pairs]), torch.stack([fix(g) for _, g in pairs])

    def geometry(self) -> dict[str, Any]:
        """Plain description stored with checkpoints and exports."""
        return {"lights": list(self.lights), "image_height": self.tile_size[0], "image_width": self.tile_size[1],
                "concat_type": self.concat_type, "grid_map": {"x": self.grid[0], "y": self.grid[1]},
                "strip_shape": list(self.strip_shape), "rgb_input_mean": self.mean.flatten().tolist(),
                "rgb_input_std": self.std.flatten().tolist()}


def size_mismatch_message(table: Any, rows: Sequence[int], test_sizes: np.ndarray, golden_sizes: np.ndarray
                          ) -> str:
    """One message for the rows whose test and golden files differ in size (H x W of each light)."""
    def fmt(sizes: np.ndarray) -> str:
        return ", ".join(f"{h}x{w}" for h, w in sizes.tolist())

    lines = [f"  - line {table.lines[r]}: test {fmt(t)} vs golden {fmt(g)} ({table.test_paths(r)[0]})"
             for r, t, g in zip(list(rows)[:10], test_sizes[:10], golden_sizes[:10])]
    more = f"\n  ... and {len(rows) - 10} more" if len(rows) > 10 else ""
    return (f"{table.csv_path}: {len(rows)} pair(s) whose test and golden images differ in size (H x W per light); "
            f"a pair must be two registered images of the same size:\n" + "\n".join(lines) + more)


def _permute(x: Array, perm: list[int]) -> Array:
    return x.transpose(perm) if isinstance(x, np.ndarray) else x.permute(*perm)
