"""Checkpoints: our format (one dict) and the release's raw state dicts, saved atomically, loaded
with one function that says which kind it got and fails with one-line errors naming the file.

Ours: {"format": FORMAT, "version": VERSION, "model", "optimizer", "scheduler", "epoch", "best_acc",
"settings": {dataset, protocol, descriptor, num_classes, arch, width, mode, img_size, ...}, "rng", ...}.
Per-epoch and best files hold the model only; ``<prefix>_last.tar`` also holds optimizer,
scheduler and RNG states for an exact --resume (they would triple every file's size otherwise).
The release's files: ``torch.save(model.state_dict())`` with unused layer3 / layer4 / fc keys.
"""
from __future__ import annotations

import errno
import io
import pickle
import random
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.atomic import write_bytes_atomic
from common.errors import cause_text
from descriptors.names import FUSION, fused_members, is_fused
from .config import DEFAULT_ARCH, FULL_WIDTH, SHARED_BN_STATS
from .networks import PAPER_CHANNELS, build_model

FORMAT = "imdar-checkpoint"
VERSION = 1
UNUSED_PREFIXES = ("layer3.", "layer4.", "fc.")  # defined by the release, never used in forward
FUSE5_KEY = "convf1.weight"  # only Fuse5 has the shared per-descriptor head


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: str(e) names the file and the problem."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    pass


class CheckpointWriteError(CheckpointError):
    """A checkpoint that could not be written (full disk, ...); the file under its name is the previous one."""


@dataclass
class Checkpoint:
    path: Path
    kind: str                       # "ours" | "release"
    state_dict: dict                # model weights, unused release keys dropped
    settings: dict = field(default_factory=dict)
    epoch: int | None = None
    best_acc: float | None = None
    raw: dict = field(default_factory=dict, repr=False)  # ours: the whole dict (optimizer, rng, ...)

    @property
    def is_fusion(self) -> bool:
        return FUSE5_KEY in self.state_dict

    @property
    def num_classes(self) -> int:
        return int(self.state_dict["convf.weight"].shape[0])


def rng_states() -> dict:
    """Python, NumPy, torch (and CUDA) RNG states in types torch.load(weights_only=True) accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_states(states: dict) -> None:
    random.setstate(_as_tuple(states["python"]))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if states.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _as_tuple(x):
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def unwrap(model: nn.Module) -> nn.Module:
    """The module under DistributedDataParallel / torch.compile wrappers."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return model


def save_checkpoint(path: str | Path, *, model: nn.Module, optimizer=None, scheduler=None, epoch: int,
                    best_acc: float | None, settings: dict, extra: dict | None = None,
                    with_rng: bool = False) -> None:
    """Write our format atomically; optimizer/scheduler/RNG only when given (resume files)."""
    ckpt = {
        "format": FORMAT, "version": VERSION,
        "model": unwrap(model).state_dict(),
        "epoch": int(epoch), "best_acc": None if best_acc is None else float(best_acc),
        "settings": dict(settings),
    }
    if optimizer is not None:
        ckpt["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        ckpt["scheduler"] = scheduler.state_dict()
    if with_rng:
        ckpt["rng"] = rng_states()
    ckpt.update(extra or {})
    # Serialised in memory, then written with plain writes: torch's own file writer reports a full
    # disk as "enforce fail at inline_container.cc", a plain write as ENOSPC.
    buffer = io.BytesIO()
    torch.save(ckpt, buffer)
    try:
        write_bytes_atomic(path, buffer.getbuffer(), make_parents=True)   # never a half-written checkpoint
    except OSError as e:
        why = f"no space left on {Path(path).parent}" if e.errno == errno.ENOSPC else cause_text(e)
        raise CheckpointWriteError(f"{path}: checkpoint not written ({why}); "
                                   f"the files saved before it are intact") from None


def drop_unused(state_dict: dict) -> dict:
    return {k: v for k, v in state_dict.items() if not k.startswith(UNUSED_PREFIXES)}


def _read(path: Path, map_location) -> object:
    if not path.is_file():
        raise CheckpointNotFoundError(f"{path.absolute()}: checkpoint file not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - a damaged pickle fails in many ways (IndexError, KeyError, ...)
        if zipfile.is_zipfile(path) and "Weights only load failed" in str(e):
            why = "it holds pickled Python objects; only tensors/state dicts are loaded (weights_only)"
        else:
            why = "corrupt, truncated or not a torch.save file"
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint: {why}") from None


def read_settings(path: str | Path) -> dict | None:
    """The settings our checkpoint records, None for another kind of file (the release's).
    Memory-mapped, so only the small settings dict is read, not the weights."""
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, OSError):
        obj = _read(path, "cpu")  # not a zip archive (mmap needs one): read it whole, or fail naming the file
    return dict(obj.get("settings", {})) if isinstance(obj, dict) and obj.get("format") == FORMAT else None


def check_ours(path: Path, obj: dict) -> None:
    """Refuse a file of our format that this code cannot read: a newer version, or damaged fields."""
    version = obj.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"{path}: damaged checkpoint (format version {version!r} is not a number)")
    if version > VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version} is newer than this code ({VERSION})")
    model = obj.get("model")
    if not isinstance(model, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in model.items()):
        raise CheckpointError(f"{path}: damaged checkpoint (no model weights: 'model' is "
                              f"{'missing' if model is None else type(model).__name__})")
    if not isinstance(obj.get("settings", {}), dict):
        raise CheckpointError(f"{path}: damaged checkpoint ('settings' is {type(obj['settings']).__name__}, not a dict)")


def load_checkpoint(path: str | Path, map_location="cpu") -> Checkpoint:
    """Read our format or a released raw state dict; CheckpointError (a ValueError) otherwise."""
    path = Path(path)
    obj = _read(path, map_location)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        check_ours(path, obj)
        # All keys kept: ours hold no unused release layers, and torchvision models have a real "fc."
        return Checkpoint(path, "ours", dict(obj["model"]), dict(obj.get("settings", {})),
                          obj.get("epoch"), obj.get("best_acc"), obj)
    if isinstance(obj, dict) and "conv1.0.weight" in obj and "convf.weight" in obj \
            and all(torch.is_tensor(v) for v in obj.values()):
        state = drop_unused(obj)
        width = state["conv1.0.weight"].shape[0] / PAPER_CHANNELS[0]
        settings = {"arch": DEFAULT_ARCH, "width": width, "num_classes": int(state["convf.weight"].shape[0]),
                    "mode": "paper"}
        if FUSE5_KEY in state:
            settings["descriptor"] = FUSION
        return Checkpoint(path, "release", state, settings)
    raise CheckpointError(f"{path}: not an imdar checkpoint nor a released ResNet_c/Fuse5 state dict")


def load_model(path: str | Path, *, desc: str, num_classes: int, map_location="cpu",
               **overrides) -> tuple[nn.Module, Checkpoint]:
    """Build the network a checkpoint needs and load it strictly; returns (model in eval mode, ckpt).

    ``overrides`` (arch, width, pretrained) replace the file's settings when building.
    """
    ckpt = load_checkpoint(path, map_location)
    want_fusion = is_fused(desc)
    if ckpt.settings.get("arch", DEFAULT_ARCH) == DEFAULT_ARCH and ckpt.is_fusion != want_fusion:
        found = "a Fuse5 (all-descriptor)" if ckpt.is_fusion else "a single-descriptor ResNet_c"
        raise CheckpointError(f"{ckpt.path}: holds {found} model, but -desc {desc} needs "
                              f"{'Fuse5' if want_fusion else 'a single-descriptor model'}")
    if want_fusion and ckpt.settings.get("descriptor", desc) != desc:
        raise CheckpointError(f"{ckpt.path}: holds the fusion network {ckpt.settings['descriptor']}, not {desc} "
                              f"(its descriptors: {', '.join(fused_members(desc))})")
    file_classes = ckpt.settings.get("num_classes", ckpt.num_classes if "convf.weight" in ckpt.state_dict else None)
    if file_classes is not None and int(file_classes) != num_classes:
        raise CheckpointError(f"{ckpt.path}: model has {file_classes} classes, the dataset has {num_classes}")
    options = {"arch": ckpt.settings.get("arch", DEFAULT_ARCH), "width": ckpt.settings.get("width", FULL_WIDTH),
               "bn_stats": ckpt.settings.get("bn_stats", SHARED_BN_STATS)}
    options.update(overrides)
    model = build_model(desc, num_classes, **options)
    try:
        model.load_state_dict(ckpt.state_dict, strict=True)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        raise CheckpointError(f"{ckpt.path}: weights do not fit the model ({' '.join(lines[1:3])[:300]})") from None
    return model.eval(), ckpt
