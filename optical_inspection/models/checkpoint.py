"""Checkpoints: tensors and plain metadata only, written atomically, read with ``torch.load(weights_only=True)``.

Layout (a Lightning checkpoint dict, so TAO's key names hold): ``state_dict`` with keys prefixed ``model.``
(``model.cnn1.1.weight``...), ``epoch``, ``global_step``, Lightning's resume state (``optimizer_states``,
``lr_schedulers``, ``loops``, ``callbacks``) and ``oi_meta``: the plain metadata
``{"model": {...}, "dataset": {...}, "epoch", "step", "metrics": {...}, "threshold", "threshold_source", ...}``.
Beside every checkpoint, ``<name>.pth.json`` holds the same metadata as JSON (written first, atomically), so the
runner chooses checkpoints without torch. TAO's own ``.pth`` files (no ``oi_meta``, no sidecar) load here too when
the spec that describes them is given; the runner lists them as "metadata unknown" and never picks them itself.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch
from torch import nn

from ..errors import OIError
from ..io_utils import atomic_path
from ..sidecar import write_sidecar
from . import bundled
from .factory import Network, build_network, dataset_geometry, model_settings

if TYPE_CHECKING:
    from ..config.experiment import ExperimentConfig

META_KEY = "oi_meta"
PREFIX = "model."
_PLAIN_SCALARS = (str, int, float, bool, type(None))


def check_plain(value: Any, where: str = "checkpoint") -> None:
    """Raise TypeError naming the first entry that is not a tensor, number, string, None, list, tuple or dict."""
    if isinstance(value, (torch.Tensor, *_PLAIN_SCALARS)):
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"{where}: key {key!r} is a {type(key).__name__}, not a str or int")
            check_plain(item, f"{where}[{key!r}]")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_plain(item, f"{where}[{i}]")
        return
    raise TypeError(f"{where} is a {type(value).__module__}.{type(value).__name__}; checkpoints hold only tensors "
                    f"and plain data (numbers, strings, lists, dicts)")


def write_checkpoint(path: str | Path, checkpoint: Mapping[str, Any]) -> Path:
    """Write a checkpoint dict atomically after checking that it is plain, its JSON sidecar first (so a listed
    checkpoint always has one; a write killed in between leaves only a sidecar, which nothing lists)."""
    check_plain(checkpoint)
    write_sidecar(path, sidecar_meta(checkpoint))
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        # through a file object, not a path: torch then names the archive's folder "archive" instead of after
        # the (random) temporary file name, so the same weights give the same bytes (the bundled file's sha256)
        torch.save(dict(checkpoint), fh)
    return Path(path)


def sidecar_meta(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """The sidecar document: ``oi_meta``, with epoch and step from Lightning's entries where it has none."""
    meta = checkpoint.get(META_KEY)
    own = dict(meta) if isinstance(meta, Mapping) else {}
    own.setdefault("epoch", checkpoint.get("epoch"))
    own.setdefault("step", checkpoint.get("global_step"))
    return own


def save_checkpoint(path: str | Path, model: nn.Module, meta: Mapping[str, Any]) -> Path:
    """Save ``model``'s weights with ``meta`` (plain data: model/dataset settings, epoch, step, threshold...)."""
    state = {PREFIX + k: v.detach().cpu() for k, v in model.state_dict().items()}
    return write_checkpoint(path, {
        "state_dict": state,
        "epoch": int(meta.get("epoch", 0)),
        "global_step": int(meta.get("step", 0)),
        META_KEY: dict(meta),
    })


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint dict safely (``weights_only=True``); any pickled object is refused. The keyword
    ``pretrained`` reads the bundled weights (checked against their sha256)."""
    p = bundled.resolve(path)
    if not p.is_file():
        raise OIError(f"checkpoint '{p}' does not exist")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        found = next(iter(foreign_globals(p)), None)  # read from the pickle's opcodes, not torch's wording
        if found is None:
            raise OIError(f"checkpoint '{p}' is not a readable PyTorch checkpoint (corrupt or not a .pth)") from None
        raise OIError(
            f"checkpoint '{p}' holds a pickled Python object ({found}), which is refused because loading "
            f"it could run arbitrary code. Only checkpoints of tensors and plain data load; if you trust the "
            f"file, re-save its weights as a plain state_dict."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, IndexError, KeyError, AttributeError) as exc:
        # torch's legacy (non-zip) reader fails on arbitrary bytes with any of these
        raise OIError(f"checkpoint '{p}' is not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict) or "state_dict" not in data:
        raise OIError(f"checkpoint '{p}' has no 'state_dict' entry; it is not an optical_inspection or TAO checkpoint")
    if data.get("state_dict_encrypted"):
        raise OIError(f"checkpoint '{p}' is an encrypted TAO checkpoint; decrypt it with TAO first")
    return data


_PLAIN_MODULES = ("torch", "collections", "_codecs")  # what torch's weights_only unpickler allows by default
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING"}
_SCAN_BYTES = 64 << 20


def foreign_globals(path: str | Path) -> list[str]:
    """``module.name`` of every class or function a checkpoint's pickle references outside torch's tensor
    rebuilding (e.g. ``posix.system``, ``argparse.Namespace``), read from the pickle opcodes without running them.
    Handles zip checkpoints (``*/data.pkl``) and legacy/raw pickle files; empty when nothing foreign is found."""
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if n.endswith("data.pkl")]
                blobs = [zf.read(n)[:_SCAN_BYTES] for n in names]
        else:
            with open(path, "rb") as fh:
                blobs = [fh.read(_SCAN_BYTES)]
    except (OSError, zipfile.BadZipFile, ValueError):
        return []
    found: list[str] = []
    for blob in blobs:
        found += _globals_of(io.BytesIO(blob))
    return [g for g in dict.fromkeys(found) if not g.startswith(tuple(m + "." for m in _PLAIN_MODULES))]


def _globals_of(stream: io.BytesIO, max_pickles: int = 8) -> list[str]:
    """Globals referenced by the pickles at the start of ``stream`` (a legacy torch file holds several in a row)."""
    import pickletools

    found: list[str] = []
    for _ in range(max_pickles):
        start = stream.tell()
        strings: list[str | None] = []
        memo: dict[int, str | None] = {}
        try:
            for op, arg, _ in pickletools.genops(stream):
                name = op.name
                if name in _STRING_OPS:
                    strings.append(arg if isinstance(arg, str) else None)
                elif name == "MEMOIZE":
                    memo[len(memo)] = strings[-1] if strings else None
                elif name in ("PUT", "BINPUT", "LONG_BINPUT") and isinstance(arg, int):
                    memo[arg] = strings[-1] if strings else None
                elif name in ("GET", "BINGET", "LONG_BINGET") and isinstance(arg, int):
                    strings.append(memo.get(arg))
                elif name in ("GLOBAL", "INST"):
                    found.append(".".join(str(arg).split(" ", 1)))
                elif name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.append(f"{strings[-2]}.{strings[-1]}")
        except (ValueError, TypeError, IndexError, KeyError):
            break  # the end of the pickles (legacy files carry raw tensor bytes after them) or a damaged one
        if stream.tell() == start:
            break
    return found


def checkpoint_meta(data: Mapping[str, Any], path: str | Path, config: ExperimentConfig | None = None
                    ) -> dict[str, Any]:
    """``oi_meta`` of a checkpoint; for a TAO checkpoint (none stored) it is derived from ``config``."""
    meta = data.get(META_KEY)
    if isinstance(meta, dict):
        return dict(meta)
    if config is None:
        raise OIError(f"checkpoint '{path}' carries no optical_inspection metadata (a TAO checkpoint?); "
                      f"pass the spec it was trained with so the network can be rebuilt")
    return {
        "model": model_settings(config.model), "dataset": dataset_geometry(config.dataset),
        "epoch": int(data.get("epoch") or 0), "step": int(data.get("global_step") or 0),
        "metrics": {}, "threshold": None, "threshold_source": None, "origin": "tao",
    }


def model_state(data: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The network's state_dict (``model.`` prefix removed)."""
    return {k[len(PREFIX):]: v for k, v in data["state_dict"].items() if k.startswith(PREFIX)}


TYPE_HEAD_KEYS = ("type_classifier.",)  # a Compact's defect-kind layer: its kinds belong to one training set
DENSE_HEAD_KEYS = ("dense.",)  # a Compact's dense map layer (its kind channels too)
BOX_TYPER_KEYS = ("box_typer.",)  # a Compact's box typer: trained anew on each training set's boxes


def load_state(model: nn.Module, state: Mapping[str, torch.Tensor], path: str | Path,
               optional: tuple[str, ...] = ()) -> None:
    """Strict load with one clear message listing missing, unexpected and mis-shaped tensors. Tensors whose names
    start with one of ``optional`` may be missing, extra or of another shape: the model keeps its own there."""
    own = model.state_dict()
    if optional:
        state = {k: v for k, v in state.items() if not k.startswith(optional)}
        state.update({k: v for k, v in own.items() if k.startswith(optional)})
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        if shapes:
            parts.append("shape mismatch " + "; ".join(shapes[:5]))
        raise OIError(f"checkpoint '{path}' does not fit this network ({', '.join(parts)}); check model.model_type, "
                      f"embedding_vectors, base_channels and the dataset geometry (lights, image size)")
    model.load_state_dict(state)


def load_checkpoint(path: str | Path, config: ExperimentConfig | None = None) -> tuple[Network, dict[str, Any]]:
    """Rebuild the network stored in ``path``; returns (model in eval mode, metadata).

    The bundled weights (``pretrained``) take the spec's dataset geometry (any lights, tile size; the network is
    fully convolutional), with the first layer adapted to the spec's rgb_input_mean/std."""
    data = read_checkpoint(path)
    meta = checkpoint_meta(data, path, config)
    state = model_state(data)
    if bundled.is_keyword(path) and config is not None:
        geometry = dataset_geometry(config.dataset)
        state = adapt_normalisation(state, meta["dataset"], geometry)
        meta["dataset"] = geometry
    try:
        model = build_network(meta["model"], meta["dataset"]["strip_shape"])
    except OIError as exc:
        raise OIError(f"checkpoint '{path}': {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError, MemoryError) as exc:
        raise OIError(f"checkpoint '{path}': its metadata ({META_KEY}) does not describe a network that can be built "
                      f"({type(exc).__name__}: {exc}); it is damaged or hand-edited") from None
    load_state(model, state, path)
    return model.eval(), meta


def adapt_normalisation(state: Mapping[str, torch.Tensor], trained: Mapping[str, Any], wanted: Mapping[str, Any]
                        ) -> dict[str, torch.Tensor]:
    """Compact weights trained with one rgb_input_mean/std, rewritten for another: the first convolution is
    scaled by std_new/std_old per input channel and the constant it then adds, sum W (mean_new - mean_old) /
    std_old, is taken off the following batch norm's running mean (exact away from the zero-padded border)."""
    old_m, old_s = (torch.tensor(trained[k], dtype=torch.float32) for k in ("rgb_input_mean", "rgb_input_std"))
    new_m, new_s = (torch.tensor(wanted[k], dtype=torch.float32) for k in ("rgb_input_mean", "rgb_input_std"))
    if torch.allclose(old_m, new_m) and torch.allclose(old_s, new_s):
        return dict(state)
    out = dict(state)
    weight = state["encoder.0.0.weight"]  # [out, 3, k, k]
    out["encoder.0.0.weight"] = weight * (new_s / old_s).view(1, 3, 1, 1)
    constant = (weight * ((new_m - old_m) / old_s).view(1, 3, 1, 1)).sum(dim=(1, 2, 3))
    out["encoder.0.1.running_mean"] = state["encoder.0.1.running_mean"] - constant
    return out
