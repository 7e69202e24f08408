"""Checkpoint and run-file naming (docs/METHOD.md §4, the README's layout), and the files of one
run: <prefix>_<N>_epoch.tar, <prefix>_epoch_best.tar, <prefix>_last.tar, <prefix>_log.csv, and its
curves (<prefix>_curves.png, tensorboard/<prefix>/)."""
from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import descriptors.registry as registry
from descriptors.names import check_descriptor, fused_inputs, model_names, protocol_suffix

DEFAULT_CHECKPOINT_DIR = "checkpoints"
LAST_SUFFIX, BEST_SUFFIX, LOG_SUFFIX = "_last.tar", "_epoch_best.tar", "_log.csv"
CURVES_SUFFIX, TENSORBOARD_DIR = "_curves.png", "tensorboard"   # a run's curves (models/curves.py)
GROUP_OUTPUTS = ("g12", "g345")   # a fusion network's group heads: its colour inputs', its gray inputs'


def fused_outputs(name: str) -> tuple[str, ...]:
    """A fusion network's outputs by name, in the order of its loss terms: the log's columns, the
    curves and the exported graph's outputs name them so. Fuse5: main, single_GD .. single_LAD,
    g12 (GD+FDD), g345 (JDD+ADD+LAD); the group heads exist when a set has both colour and gray inputs."""
    inputs = fused_inputs(name)
    return ("main", *(f"single_{d}" for d in inputs), *(GROUP_OUTPUTS if registry.has_groups(inputs) else ()))


FUSE5_OUTPUTS = fused_outputs("all")
BEST, LAST = "best", "last"   # --epoch: the best epoch's checkpoint, the last one's
SUPERSEDED_DIR = "superseded"   # under -ckpt: earlier models that a retrain replaced, kept


def checkpoint_prefix(dataset: str, protocol: str | None, desc: str) -> str:
    """'ntu60_csub_GD', 'ucla_all' (the release's checkpoint name stems), 'custom_GD'."""
    check_descriptor(desc, allow_fusion=True)
    return f"{dataset}{protocol_suffix(dataset, protocol)}_{desc}"


def checkpoint_path(ckpt_dir: str | Path, dataset: str, protocol: str | None, desc: str,
                    epoch: int | str = BEST) -> Path:
    """<prefix>_<epoch>_epoch.tar, <prefix>_epoch_best.tar or <prefix>_last.tar."""
    prefix = checkpoint_prefix(dataset, protocol, desc)
    if epoch == BEST:
        name = f"{prefix}{BEST_SUFFIX}"
    elif epoch == LAST:
        name = f"{prefix}{LAST_SUFFIX}"
    elif isinstance(epoch, int) or str(epoch).isdigit():
        name = f"{prefix}_{int(epoch)}_epoch.tar"
    else:
        raise ValueError(f"--epoch must be best, last or an epoch number, got {epoch!r}")
    return Path(ckpt_dir) / name


def log_path(ckpt_dir: str | Path, dataset: str, protocol: str | None, desc: str) -> Path:
    """<prefix>_log.csv: the run's per-epoch log (models/logs.py)."""
    return Path(ckpt_dir) / f"{checkpoint_prefix(dataset, protocol, desc)}{LOG_SUFFIX}"


def model_checkpoints(ckpt_dir: str | Path, dataset: str, protocol: str | None, desc: str,
                      epoch: int | str = BEST) -> dict[str, Path]:
    """Checkpoint of every model that ``-desc`` names."""
    return {name: checkpoint_path(ckpt_dir, dataset, protocol, name, epoch) for name in model_names(desc)}


def epoch_checkpoints(ckpt_dir: str | Path, prefix: str) -> dict[int, Path]:
    """{epoch: path} of the <prefix>_<epoch>_epoch.tar files in a folder."""
    pattern = re.compile(rf"^{re.escape(prefix)}_(\d+)_epoch\.tar$")
    found = ((pattern.match(p.name), p) for p in Path(ckpt_dir).glob(f"{prefix}_*_epoch.tar"))
    return {int(m.group(1)): p for m, p in found if m}


def prune_checkpoints(ckpt_dir: str | Path, prefix: str, keep_last: int | None) -> None:
    """Keep the ``keep_last`` newest per-epoch files (best and last files are separate and kept)."""
    if not keep_last:
        return
    files = epoch_checkpoints(ckpt_dir, prefix)
    for epoch in sorted(files)[:-keep_last]:
        files[epoch].unlink(missing_ok=True)


def run_lock_path(ckpt_dir: str | Path, prefix: str) -> Path:
    """Hidden lock beside a run's checkpoints: one training per run prefix at a time."""
    return Path(ckpt_dir) / f".{prefix}.lock"


def curves_path(ckpt_dir: str | Path, prefix: str) -> Path:
    return Path(ckpt_dir) / f"{prefix}{CURVES_SUFFIX}"


def tensorboard_dir(ckpt_dir: str | Path, prefix: str) -> Path:
    return Path(ckpt_dir) / TENSORBOARD_DIR / prefix


def run_files(ckpt_dir: str | Path, prefix: str) -> list[Path]:
    """A run's files that exist: <prefix>_<N>_epoch.tar (by epoch), _epoch_best.tar, _last.tar,
    _log.csv, _curves.png, and its TensorBoard folder."""
    folder = Path(ckpt_dir)
    files = [path for _, path in sorted(epoch_checkpoints(folder, prefix).items())]
    files += [folder / f"{prefix}{end}" for end in (BEST_SUFFIX, LAST_SUFFIX, LOG_SUFFIX, CURVES_SUFFIX)]
    return [p for p in files if p.is_file()] + [d for d in [tensorboard_dir(folder, prefix)] if d.is_dir()]


def keep_run_files(ckpt_dir: str | Path, prefix: str) -> Path | None:
    """Move a run's files into <ckpt>/superseded/<prefix>_<time>/ (a retrain that would replace a
    finished model keeps it there); the folder, or None when there were none."""
    files = run_files(ckpt_dir, prefix)
    if not files:
        return None
    kept = Path(ckpt_dir) / SUPERSEDED_DIR / f"{prefix}_{time.strftime('%Y%m%d-%H%M%S')}"
    kept.mkdir(parents=True, exist_ok=True)
    for path in files:
        os.replace(path, kept / (path.name if path.is_file() else TENSORBOARD_DIR))
    return kept


def remove_run_files(ckpt_dir: str | Path, prefix: str) -> int:
    """--overwrite: delete a run's files (that prefix only); how many there were."""
    files = run_files(ckpt_dir, prefix)
    for path in files:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return len(files)
