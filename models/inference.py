"""Classify one raw sample with trained checkpoints (predict.py): sequence -> five images ->
the models that exist -> class probabilities (mean of softmax, the honest score fusion).

The sample is read as its dataset's files are (an NTU .skeleton/.skeleton.npy, an NW-UCLA .json,
or a custom dataset's .npy in its layout), and the models must have been trained on skeletons of
that layout."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from descriptors.core import DEFAULT_IMG_SIZE, check_included, descriptor_images
from descriptors.dataset import as_three_channels, bgr_chw
from models.checkpoint import load_model
from models.reruns import settings_flags
from models.provenance import RELEASE_NOTICE, check_consistent, check_layout, check_role
from models.evaluation import main_scores, mean_softmax, model_outputs
from skeletons.datasets import Dataset, check_protocol, get_dataset
from skeletons.reading import check_file, file_kind, load_sequence
from descriptors.names import FUSION, needed_descriptors
from .logs import last_logged_epoch
from .prediction import Prediction, model_notes, unfinished_note
from .names import BEST, log_path, model_checkpoints


def inference_device(gpu: int) -> str:
    """cuda:<gpu>, or the CPU when -gpu -1 is given or there is no CUDA (one sample needs no GPU)."""
    return f"cuda:{gpu}" if gpu >= 0 and torch.cuda.is_available() else "cpu"


def split_checkpoints(ckpt_dir: str | Path, dataset: str, protocol: str | None, desc: str,
                      epoch: int | str = BEST) -> tuple[dict[str, Path], dict[str, Path]]:
    """(name -> existing checkpoint, name -> expected path of the missing ones) of the models that
    ``desc`` names (``all``: the five single models and Fuse5; a fusion of another set: its single
    models and its fusion network), both in the models' order."""
    paths = model_checkpoints(ckpt_dir, dataset, protocol, desc, epoch)
    found = {n: p for n, p in paths.items() if p.is_file()}
    missing = {n: p for n, p in paths.items() if n not in found}
    return found, missing


def find_checkpoints(ckpt_dir: str | Path, dataset: str, protocol: str | None, desc: str,
                     epoch: str = BEST) -> tuple[dict[str, Path], dict[str, Path]]:
    """``split_checkpoints``, refused in one line when none of the models asked for exists."""
    found, missing = split_checkpoints(ckpt_dir, dataset, protocol, desc, epoch)
    if not found:   # then every path is missing, in order: the first is the first model's
        raise FileNotFoundError(f"no checkpoint in {Path(ckpt_dir).absolute()} for {dataset} {protocol} -desc {desc} "
                                f"(looked for {next(iter(missing.values())).name}, ...); train with train.py first")
    return found, missing


def unfinished_notes(ckpt_dir: str | Path, dataset: str, protocol: str, ckpts: dict) -> list[str]:
    """A line for each model whose training has not reached the epochs it was started for."""
    notes = []
    for name, ckpt in ckpts.items():
        target = ckpt.settings.get("epochs") if ckpt.kind == "ours" else None
        logged = last_logged_epoch(log_path(ckpt_dir, dataset, protocol, name))
        if logged is not None and (note := unfinished_note(name, logged, target)):
            notes.append(note)
    return notes


def check_file_kind(path: str | Path, ds: Dataset) -> None:
    """Refuse a file of another dataset's kind (an NW-UCLA .json given to NTU models), by its name."""
    if ds.kind.names_file(path):
        return
    expected = " or ".join(ds.kind.suffixes)
    if ds.kind.needs_layout:   # then the file's name cannot say what it is
        raise ValueError(f"{path}: a {ds.kind.name} dataset's sample is a {expected} file ({ds.layout.name} layout)")
    raise ValueError(f"{path}: a {file_kind(path).name} skeleton cannot be classified by {ds.name} models "
                     f"(expected {expected})")


def train_command(ds: Dataset, protocol: str, desc: str, paths: str = "") -> str:
    """The train.py command line of one model (``paths``: e.g. ' -despth D -ckpt C'), printed in errors."""
    return f"python train.py -d {ds.name} -p {protocol}{ds.data_flags()} -desc {desc}{paths}"


def predict_file(path: str | Path, ckpt_dir: str | Path, dataset: str, protocol: str | None = None,
                 desc: str = FUSION, epoch: str = BEST, device: str = "cpu") -> Prediction:
    ds = get_dataset(dataset)
    protocol = check_protocol(dataset, protocol or ds.protocols[0])
    check_file(path)   # before the models are loaded
    check_file_kind(path, ds)
    # The images must be made exactly as the training images were: same mode and size.
    models, found, notes, mode, img_size = checked_models(ckpt_dir, dataset, protocol, desc, epoch, str(path))
    X = load_sequence(path, mode, ds.kind, ds.layout)
    check_included(X, mode, path)   # clean mode excludes what its models never saw
    images = descriptor_images(X, ds.layout, mode, img_size, needed_descriptors(found))
    return Prediction(classify_images(models, [images], device)[0], found, images, X, mode, ds.layout, notes,
                      networks=models)


IMAGE_BATCH = 32   # samples per forward pass of classify_images


def classify_images(models: dict, images: Sequence[dict], device: str, batch: int = IMAGE_BATCH) -> np.ndarray:
    """(N, classes) mean of the models' softmax (a fusion network's: its main head) for N samples'
    descriptor images, ``batch`` samples a pass through test.py's inference: the same input handling
    and the same fusion dispatch (a "loader" of one batch)."""
    descs = needed_descriptors(models)
    on_device = {n: m.to(device) for n, m in models.items()}
    probabilities = []
    for first in range(0, len(images), batch):
        chunk = images[first:first + batch]
        batches = tuple(torch.stack([as_three_channels(bgr_chw(im[d])) for im in chunk]) for d in descs)
        outputs = model_outputs(on_device, [(batches, None)], descs, torch.device(device))
        probabilities.append(mean_softmax(main_scores(outputs)))
    return np.concatenate(probabilities)


def checked_models(ckpt_dir: str | Path, dataset: str, protocol: str | None, desc: str, epoch: str,
                   what: str) -> tuple[dict, dict[str, Path], list[str], str, int]:
    """The loading and checks of ``predict_file`` for many sequences of one source (``what``, named
    in refusals; models/video_predict.py): (name -> model, name -> checkpoint, notes, mode, img_size)."""
    ds = get_dataset(dataset)
    protocol = check_protocol(dataset, protocol or ds.protocols[0])
    found, missing = find_checkpoints(ckpt_dir, dataset, protocol, desc, epoch)
    notes = model_notes(found, missing)
    loaded = {n: load_model(p, desc=n, num_classes=ds.num_classes) for n, p in found.items()}
    ckpts = {n: ckpt for n, (_, ckpt) in loaded.items()}
    for name, ckpt in ckpts.items():
        retrain = train_command(ds, protocol, name) + settings_flags(ckpt.settings)   # as it was trained
        check_role(ckpt, name, dataset, protocol, retrain)
        check_layout(ckpt, ds.layout, f"{what} ({ds.layout.name} layout)", retrain)
    pixels = check_consistent(ckpts)
    release = [n for n, c in ckpts.items() if c.kind != "ours"]
    notes += [RELEASE_NOTICE.format(names=", ".join(release))] if release else []
    notes += unfinished_notes(ckpt_dir, dataset, protocol, ckpts)
    return ({n: m for n, (m, _) in loaded.items()}, found, notes, pixels.get("mode", "paper"),
            int(pixels.get("img_size", DEFAULT_IMG_SIZE)))
