"""Skeleton files of a split -> the five descriptor folders (front ends skels2desc_ntu.py / _ucla.py).

Streams sample by sample through a process pool (memory does not grow with the dataset), writes
every image atomically (temp file in the same folder, then os.replace), resumes by skipping
samples whose five images exist, and writes ``manifest.csv`` (index,sample,label,frames,bodies)
into each folder at the end. A sample that cannot be read is reported by name and skipped.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from functools import partial
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from tqdm import tqdm

from skeletons.atomic import TEMP_SUFFIX, atomic_path, write_bytes_atomic, write_text_atomic
from skeletons.bodies import clean_sequence
from skeletons.datasets import check_protocol, get_dataset, label_of, sample_id, split_from_folder
from skeletons.layouts import Layout, layout_for_joints
from skeletons.ntu import load_skeleton_npy, paper_sequence, read_skeleton
from skeletons.paths import DESCRIPTORS, descriptor_dir, image_name
from skeletons.ucla import ucla_sequence

from .core import DEFAULT_IMG_SIZE, MODES, descriptor_images, png_bytes

MANIFEST = "manifest.csv"
MANIFEST_FIELDS = ("index", "sample", "label", "frames", "bodies")
SETTINGS = "descriptors.json"     # mode and image size a folder was made with (guards resumes)
DEFAULT_PNG_LEVEL = 1             # zlib level 1: about twice as fast as Pillow's default, same pixels


# ---------------------------------------------------------------- reading one sample

def _ntu_dict(path: Path) -> dict:
    return load_skeleton_npy(path) if path.name.endswith(".npy") else read_skeleton(path)


def _ntu_sequence(path: Path, mode: str) -> np.ndarray:
    data = _ntu_dict(path)
    if len(data["skel_body0"]) == 0:
        raise ValueError(f"{path}: no frames")
    # Clean mode replaces the release's "body slots 0 and 1" (quirk 6) by body selection.
    return (paper_sequence if mode == "paper" else clean_sequence)(data)


def _ucla_sequence(path: Path, mode: str) -> np.ndarray:
    return ucla_sequence(path)  # one body per file: nothing to select in either mode


SEQUENCE_READERS = {".skeleton": _ntu_sequence, ".skeleton.npy": _ntu_sequence, ".json": _ucla_sequence}


def check_sequence(X: np.ndarray, path: str | Path) -> np.ndarray:
    """The sequence if the descriptors can use it, else ValueError naming the file and the problem."""
    if X.ndim != 3 or X.shape[-1] != 3:
        raise ValueError(f"{path}: sequence has shape {X.shape}, expected (frames, joints, 3)")
    if X.shape[0] == 0:
        raise ValueError(f"{path}: no frames")
    if not np.isfinite(X).all():
        raise ValueError(f"{path}: NaN or infinite coordinates")
    layout_for_joints(X.shape[1])
    return X


def load_sequence(path: str | Path, mode: str = "paper") -> np.ndarray:
    """A raw sample (.skeleton, .skeleton.npy or NW-UCLA .json) -> the (T, V, 3) sequence of ``mode``."""
    path = Path(path)
    if mode not in MODES:
        raise ValueError(f"unknown descriptor mode {mode!r}; choose from {', '.join(MODES)}")
    suffix = next((s for s in SEQUENCE_READERS if path.name.endswith(s)), None)
    if suffix is None:
        raise ValueError(f"{path}: unknown sample file type (expected {', '.join(SEQUENCE_READERS)})")
    try:
        X = np.asarray(SEQUENCE_READERS[suffix](path, mode), dtype=np.float64)
    except (ValueError, KeyError, IndexError) as error:   # name the file in every message
        message = str(error) or type(error).__name__
        raise ValueError(message if str(path) in message else f"{path}: {message}") from None
    return check_sequence(X, path)


# ---------------------------------------------------------------- writing one sample

def save_png(image: np.ndarray, path: Path, png_level: int = DEFAULT_PNG_LEVEL) -> None:
    """Write a PNG atomically: an interrupted run leaves no truncated image under the final name."""
    write_bytes_atomic(path, png_bytes(image, png_level))   # the temp name ends in .tmp: readers skip it


@dataclass(frozen=True)
class Job:
    """What every worker needs to turn one sample into its five images."""
    folders: dict[str, Path]
    layout: Layout
    mode: str = "paper"
    img_size: int = DEFAULT_IMG_SIZE
    png_level: int = DEFAULT_PNG_LEVEL
    overwrite: bool = False


@dataclass(frozen=True)
class Item:
    index: int
    path: Path
    label: int
    known: dict | None = None  # this sample's row of a previous manifest, if any


@dataclass(frozen=True)
class Outcome:
    status: str                # "written", "skipped" or "failed"
    sample: str
    row: dict | None = None    # manifest row when not failed
    reason: str = ""


def process_sample(job: Job, item: Item) -> Outcome:
    """Five images of one sample, or a skip when they all exist, or a failure with its reason."""
    name = image_name(item.index, item.label)
    outputs = {desc: job.folders[desc] / name for desc in DESCRIPTORS}
    done = not job.overwrite and all(p.exists() for p in outputs.values())
    sample = sample_id(item.path)
    try:
        if done and item.known is not None:
            return Outcome("skipped", sample, item.known)
        X = load_sequence(item.path, job.mode)
        row = {"index": item.index, "sample": sample, "label": item.label,
               "frames": X.shape[0], "bodies": X.shape[1] // job.layout.num_joints}
        if done:
            return Outcome("skipped", sample, row)
        images = descriptor_images(X, job.layout, job.mode, job.img_size)
        for desc, path in outputs.items():
            save_png(images[desc], path, job.png_level)
        return Outcome("written", sample, row)
    except Exception as error:  # one bad sample must not stop a 100k-sample run; it is reported
        reason = str(error) or type(error).__name__
        return Outcome("failed", sample, reason=reason if str(item.path) in reason else f"{item.path}: {reason}")


# ---------------------------------------------------------------- a whole split

@dataclass
class Summary:
    split: str                 # "ntu60 csub train"
    folders: dict[str, Path]
    total: int = 0
    written: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def lines(self) -> list[str]:
        names = ", ".join(folder.name for folder in self.folders.values())
        out = [f"{self.split}: {self.total} samples, {self.written} written, {self.skipped} already done, "
               f"{len(self.failed)} failed",
               f"  folders in {next(iter(self.folders.values())).parent}: {names}"]
        out += [f"  failed {name}: {reason}" for name, reason in self.failed]
        return out


def read_manifest(folder: Path) -> dict[str, dict]:
    """{sample: row} of a folder's manifest.csv; empty when absent or unreadable."""
    try:
        with open(folder / MANIFEST, newline="") as f:
            return {row["sample"]: {k: int(row[k]) if k != "sample" else row[k] for k in MANIFEST_FIELDS}
                    for row in csv.DictReader(f)}
    except (OSError, KeyError, ValueError):
        return {}


def prepare_folders(folders: dict[str, Path], settings: dict, overwrite: bool) -> None:
    """Create the folders, refuse to mix settings with an earlier run, drop stale temp files."""
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
        previous = folder / SETTINGS
        if previous.exists() and not overwrite:
            made_with = json.loads(previous.read_text())
            if made_with != settings:
                raise ValueError(f"{folder}: made with {made_with}, not {settings}; "
                                 "rerun with --overwrite to replace its images")
        for entry in os.scandir(folder):
            if entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX):   # left by a killed writer
                os.unlink(entry.path)
        write_text_atomic(previous, json.dumps(settings) + "\n")


def extract_split(dataset: str, protocol: str | None, part: str, seq_dir: str | Path, out_root: str | Path,
                  mode: str = "paper", workers: int | None = None, img_size: int = DEFAULT_IMG_SIZE,
                  png_level: int = DEFAULT_PNG_LEVEL, overwrite: bool = False, progress: bool = True) -> Summary:
    """Write the five descriptor folders of one split; returns what was written, skipped, failed."""
    if mode not in MODES:
        raise ValueError(f"unknown descriptor mode {mode!r}; choose from {', '.join(MODES)}")
    if img_size < 1 or not 0 <= png_level <= 9:
        raise ValueError(f"--img-size must be >= 1 and --png-level 0..9 (got {img_size}, {png_level})")
    protocol = check_protocol(dataset, protocol)
    paths = split_from_folder(seq_dir, dataset, protocol, part)
    if not paths:
        suffix = get_dataset(dataset).seq_suffix
        hint = " (run txt2npy.py first?)" if suffix.endswith(".npy") else ""
        raise ValueError(f"{seq_dir}: no {suffix} files of the {dataset} {protocol} {part} split{hint}")
    folders = {desc: descriptor_dir(out_root, dataset, desc, part, protocol) for desc in DESCRIPTORS}
    prepare_folders(folders, {"mode": mode, "img_size": img_size}, overwrite)
    known = {} if overwrite else read_manifest(folders[DESCRIPTORS[0]])
    items = (Item(i, p, label_of(sample_id(p), dataset), known.get(sample_id(p))) for i, p in enumerate(paths))
    job = Job(folders, get_dataset(dataset).layout, mode, img_size, png_level, overwrite)
    workers = max(1, min(workers or os.cpu_count() or 1, len(paths) or 1))
    summary = Summary(f"{dataset} {protocol} {part}", folders, total=len(paths))
    manifest = folders[DESCRIPTORS[0]] / MANIFEST
    with atomic_path(manifest) as tmp:
        with open(tmp, "w", newline="") as f, tqdm(total=len(paths), unit="sample", disable=not progress,
                                                   desc=summary.split) as bar:
            writer = csv.DictWriter(f, fieldnames=MANIFEST_FIELDS)
            writer.writeheader()
            for outcome in _run(partial(process_sample, job), items, workers, len(paths)):
                if outcome.status == "failed":
                    summary.failed.append((outcome.sample, outcome.reason))
                else:
                    setattr(summary, outcome.status, getattr(summary, outcome.status) + 1)
                    writer.writerow(outcome.row)
                bar.update()
        for desc, folder in folders.items():  # the same manifest in each of the five folders
            if desc != DESCRIPTORS[0]:
                with atomic_path(folder / MANIFEST) as copy:
                    shutil.copyfile(tmp, copy)
    return summary


def _run(task, items, workers: int, total: int):
    """Ordered outcomes of ``task`` over ``items``, in this process or a pool streaming them."""
    if workers == 1:
        yield from map(task, items)
        return
    chunksize = max(1, min(32, total // (workers * 8)))
    with Pool(workers) as pool:
        yield from pool.imap(task, items, chunksize=chunksize)


# ---------------------------------------------------------------- command line

def build_parser(datasets: tuple[str, ...], protocols: tuple[str, ...] | None) -> argparse.ArgumentParser:
    """The seed README's flags; ``protocols`` None means the dataset has only one (NW-UCLA)."""
    parser = argparse.ArgumentParser(description="Turn a split's skeleton sequences into the five descriptor "
                                                 "image folders (GD, JDD, ADD, LAD, FDD).")
    parser.add_argument("-d", dest="dataset", required=True, choices=datasets)
    if protocols:
        parser.add_argument("-p", dest="protocol", required=True, choices=protocols)
    parser.add_argument("-dspath", required=True, help="folder of the sequence files "
                        "(NTU: txt2npy's .skeleton.npy; NW-UCLA: the all_sqe .json files)")
    parser.add_argument("-despth", required=True, help="root folder of the descriptor folders")
    parser.add_argument("-a", dest="part", required=True, choices=("train", "test"), help="split to write")
    parser.add_argument("--mode", default="paper", choices=MODES,
                        help="paper: the released images (quirks included); clean: quirks fixed, bodies selected")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--img-size", type=int, default=DEFAULT_IMG_SIZE)
    parser.add_argument("--png-level", type=int, default=DEFAULT_PNG_LEVEL, help="zlib level 0..9 (default 1)")
    parser.add_argument("--overwrite", action="store_true", help="recompute images that already exist")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None, datasets: tuple[str, ...], protocols: tuple[str, ...] | None) -> int:
    args = build_parser(datasets, protocols).parse_args(argv)
    try:
        summary = extract_split(args.dataset, getattr(args, "protocol", None), args.part, args.dspath,
                                args.despth, mode=args.mode, workers=args.workers, img_size=args.img_size,
                                png_level=args.png_level, overwrite=args.overwrite, progress=not args.quiet)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("\n".join(summary.lines()))
    return 0 if summary.ok else 1
