"""Training images/s by data source: descriptor PNGs, the --cache pack, or skeletons (the torch
engine making the images per batch), on the demo data, at the demo's network width.

Makes the demo (demo.generate), converts it (txt2npy's convert_folder) and extracts its descriptor
folders at each size (extract_split) in a temporary folder, then times train.py's epoch
(models.loop.train_one_epoch) fed by each source, for one descriptor and for Fuse5 ('all');
also the sources alone (batches/s without a network) and reading sequences from files vs the
skeleton pack. Prints figures, asserts nothing.

``--busy DEVICE`` (for benchmarks/gpu_check.sh): only whether training from skeletons keeps the
device busy: ResNet_c (GD) and Fuse5 at full width (AMP + channels_last on CUDA) fed by the
skeleton loader, every batch's images made by the engine on the device (no memo, and with
--augment), against the network alone on a batch kept on the device.

First, on the real samples of shared/data (when there): the skeleton pack's size (bytes per sample
and per body-frame, against float64, the format-1 pack) and read rate against the files, for NTU
in both modes and NW-UCLA, and an NTU-120 estimate from them. ``--pack-only`` stops there.

  python benchmarks/bench_sources.py [--sizes 32 112] [--width 0.0625] [--workers 0] [--demo-size full]
                                     [--data ../shared/data] [--pack-only]
  python benchmarks/bench_sources.py --busy cuda [--busy-samples 4096] [--batch 256]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from descriptors.dataset import DescriptorImages  # noqa: E402
from descriptors.extract import extract_split  # noqa: E402
from descriptors.skeleton_source import (INDEX_COLUMNS, ImageMaker, SkeletonSequences, read_pack,  # noqa: E402
                                         skeleton_loader)
from models.networks import build_model  # noqa: E402
from models.loop import RunOptions, to_device, train_one_epoch  # noqa: E402
from models.recipe import make_criterion, total_loss  # noqa: E402
from skeletons.augment import Augment  # noqa: E402
from skeletons.convert import convert_folder  # noqa: E402
from skeletons.datasets import get_dataset, official_missing, official_samples, parse_ntu_name  # noqa: E402
from demo.generate import generate_demo  # noqa: E402
from common.shared import shared_dir  # noqa: E402

SPLITS = {"ntu60": "csub", "ucla": None}


def make_demo(work: Path, sizes: list[int], demo_size: str, workers: int) -> dict[str, Path]:
    """The demo's sequence folders ({dataset: folder}); descriptor roots at work/desc<size>."""
    generate_demo(work / "raw", seed=0, size=demo_size)
    npy = work / "npy60skel"
    convert_folder(work / "raw" / "ntu" / "txt60skel", npy, "ntu60", workers=workers, progress=False)
    seq_dirs = {"ntu60": npy, "ucla": work / "raw" / "ucla"}
    for size in sizes:
        for dataset, protocol in SPLITS.items():
            extract_split(dataset, protocol, "train", seq_dirs[dataset], work / f"desc{size}", workers=workers,
                          img_size=size, progress=False)
    return seq_dirs


def loaders(work: Path, seq_dirs: dict, dataset: str, desc: str, size: int, batch: int, workers: int,
            augment: bool) -> dict[str, object]:
    """The training loaders of each source, shuffled as fit() shuffles (with ``augment`` only the
    skeleton ones: images cannot be augmented)."""
    protocol, root = SPLITS[dataset], work / f"desc{size}"
    kw = {"batch_size": batch, "num_workers": workers, "shuffle": True, "persistent_workers": workers > 0}
    out = {}
    if not augment:
        for name, cache in (("PNG", False), ("--cache", True)):
            images = DescriptorImages(root, dataset, protocol, "train", desc, cache=cache, uint8=True)
            out[name] = torch.utils.data.DataLoader(images, **kw)
    for pack in (False, True):
        source = SkeletonSequences(seq_dirs[dataset], dataset, protocol, "train", pack=pack)
        maker = ImageMaker(desc, source.layout, "paper", size, "cpu", Augment() if augment else None)
        name = f"skeletons{' packed' if pack else ''}{' + augment' if augment else ''}"
        out[name] = skeleton_loader(source, maker, **kw)
    return out


def source_rate(loader, epochs: int) -> float:
    """Samples/s of a loader's batches alone."""
    seen, start = 0, time.perf_counter()
    for _ in range(epochs):
        seen += sum(len(labels) for _, labels in loader)
    return seen / (time.perf_counter() - start)


def training_rate(loader, dataset: str, desc: str, width: float, epochs: int) -> float:
    """Samples/s of train.py's epochs (train_one_epoch) on the CPU, after one warm-up epoch."""
    torch.manual_seed(0)
    model = build_model(desc, get_dataset(dataset).num_classes, width=width)
    optimizer, criterion = torch.optim.Adam(model.parameters(), 1e-4), make_criterion()
    cpu, opts = torch.device("cpu"), RunOptions(progress=False)
    train_one_epoch(model, criterion, optimizer, loader, cpu, 0, opts)
    stats = [train_one_epoch(model, criterion, optimizer, loader, cpu, e, opts) for e in range(1, epochs + 1)]
    return sum(s["images"] for s in stats) / sum(s["seconds"] for s in stats)


def sequence_read_rate(source: SkeletonSequences, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        for i in range(len(source)):
            source.load(i)
    return repeats * len(source) / (time.perf_counter() - start)


DEFAULT_DATA = shared_dir() / "data"
MUTUAL_ACTIONS = set(range(50, 61)) | set(range(106, 121))   # NTU-120's two-person actions (26 of 120)
INDEX_BYTES = len(INDEX_COLUMNS) * 8   # the pack index's int64 row of each sample
PAPER_FRAMES = 8_000_000   # NTU RGB+D 120 (Liu et al., TPAMI 2019): "114 thousand video samples and 8 million frames"


def pack_figures(seq_dir: Path, dataset: str, protocol: str | None, mode: str, packs: Path,
                 repeats: int) -> dict:
    """The pack of both parts of a split: samples, frames, body-frames, pack bytes, float64 bytes,
    index bytes, read rates (files, pack) and per-sample (frames, bodies, action)."""
    out = {"samples": 0, "frames": 0, "body_frames": 0, "bytes": 0, "float64": 0, "index": 0, "files_s": 0.0,
           "pack_s": 0.0, "per_sample": []}
    for part in ("train", "test"):
        files = SkeletonSequences(seq_dir, dataset, protocol, part, mode)
        packed = SkeletonSequences(seq_dir, dataset, protocol, part, mode, pack=True, pack_dir=packs)
        index = read_pack(packed.pack_path)[1]
        frames, joints = (index[:, INDEX_COLUMNS.index(column)] for column in ("frames", "joints"))
        bodies = joints // packed.layout.num_joints
        out["samples"] += len(index)
        out["frames"] += int(frames.sum())
        out["body_frames"] += int((frames * bodies).sum())
        out["bytes"] += packed.pack_path.stat().st_size
        out["index"] += index.nbytes
        out["float64"] += int((frames * joints).sum()) * packed.layout.dims * 8
        out["files_s"] += len(files) * repeats / sequence_read_rate(files, repeats)
        out["pack_s"] += len(files) * repeats / sequence_read_rate(packed, repeats)
        out["per_sample"] += [(int(f), int(b), s) for f, b, s in zip(frames, bodies, packed.samples)]
    return out


def pack_report(data: Path, work: Path, repeats: int) -> None:
    """Print the skeleton pack's figures on the real samples and the NTU-120 estimate."""
    npy = work / "real_ntu_npy"
    convert_folder(data / "ntu", npy, "ntu120", workers=1, progress=False)
    print(f"Skeleton pack on the real samples of {data} (bytes: the pack file; its index adds {INDEX_BYTES} per sample)")
    paper = None
    for name, dataset, protocol, seq_dir, mode in (("NTU", "ntu120", "csub", npy, "paper"),
                                                    ("NTU", "ntu120", "csub", npy, "clean"),
                                                    ("NW-UCLA", "ucla", None, data / "ucla" / "all_sqe", "paper")):
        f = pack_figures(seq_dir, dataset, protocol, mode, work / "packs", repeats)
        n, read = f["samples"], repeats * f["samples"]
        print(f"  {name:7s} {mode:5s} {n:3d} samples, {f['frames'] / n:5.1f} frames and "
              f"{f['body_frames'] / f['frames']:.2f} bodies a sample: pack {f['bytes'] / n:8.0f} B/sample "
              f"{f['bytes'] / f['body_frames']:6.1f} B/body-frame; float64 {f['float64'] / n:8.0f} B/sample "
              f"{f['float64'] / f['body_frames']:6.1f} B/body-frame; ratio {f['bytes'] / f['float64']:.3f}; "
              f"read {read / f['pack_s']:6.0f} sequences/s from the pack, {read / f['files_s']:5.0f}/s from files "
              f"({f['files_s'] / f['pack_s']:.1f}x)")
        if name == "NTU" and mode == "paper":
            paper = f
    listed = len(official_samples("ntu120"))
    samples = listed - len(official_missing("ntu120"))
    frames = paper["frames"] / paper["samples"]
    bodies = paper["body_frames"] / paper["frames"]
    per_value = paper["bytes"] / (paper["body_frames"] * 75)
    print(f"NTU-120 estimate (paper mode), NOT a measurement: samples x mean frames x mean bodies x 25 joints x "
          f"3 coordinates x {per_value:.3f} bytes (+ {INDEX_BYTES} B index a sample)")
    groups = {m: [b for _, b, s in paper["per_sample"] if (parse_ntu_name(s).action in MUTUAL_ACTIONS) == m]
              for m in (False, True)}
    mutual = len(MUTUAL_ACTIONS)
    reweighted = ((120 - mutual) * np.mean(groups[False]) + mutual * np.mean(groups[True])) / 120   # the samples over-represent them
    for label, mean_frames, mean_bodies in (
            ("means of the real samples", frames, bodies),
            ("bodies reweighted to NTU-120's 26/120 two-person actions", frames, reweighted),
            ("frames from the dataset paper's total, bodies reweighted", PAPER_FRAMES / listed, reweighted)):
        values = samples * mean_frames * mean_bodies * 75
        print(f"  {label}: {samples:,} samples ({listed:,} - {listed - samples} missing) x {mean_frames:.1f} frames x "
              f"{mean_bodies:.2f} bodies x 75 x {per_value:.3f} B + index = "
              f"{(values * per_value + samples * INDEX_BYTES) / 1e9:.2f} GB (float64: {values * 8 / 1e9:.2f} GB)")


def busy_report(data: Path, work: Path, device: torch.device, width: float, batch: int, samples: int,
                steps: int, workers: int) -> None:
    """Print images/s of training fed from skeletons against the network alone (see the docstring)."""
    from bench_memory import make_split, sequence_files

    files, what = sequence_files(data, work)
    make_split(files, samples, work / "split")
    cuda = device.type == "cuda"
    print(f"Training from skeletons on {torch.cuda.get_device_name(device) if cuda else 'the CPU'}: width {width}, "
          f"batch {batch}, {'AMP bf16 + channels_last, ' if cuda else ''}{workers} workers, {samples} NTU "
          f"samples linked to {what}")
    for desc in ("GD", "all"):
        torch.manual_seed(0)
        model = build_model(desc, get_dataset("ntu60").num_classes, width=width).to(device)
        model = model.to(memory_format=torch.channels_last) if cuda else model
        optimizer, criterion = torch.optim.Adam(model.parameters(), 1e-4), make_criterion()

        def step(images, labels) -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                loss = total_loss(model(to_device(images, device, cuda)), labels.to(device), criterion)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        def sync() -> None:
            if cuda:
                torch.cuda.synchronize(device)

        def rate(batches) -> float:
            seen, start = 0, None
            for images, labels in batches:
                step(images, labels)
                if start is None:   # the first step warms up (cudnn autotune, allocator)
                    sync()
                    start = time.perf_counter()
                    continue
                seen += len(labels)
                if seen >= steps * batch:
                    break
            sync()
            return seen / (time.perf_counter() - start)

        fixed = torch.randint(0, 256, (batch, 3, 112, 112), dtype=torch.uint8, device=device)
        labels = torch.randint(0, 60, (batch,))
        alone = rate(((fixed if desc == "GD" else [fixed] * 5), labels) for _ in range(steps + 1))
        print(f"  {desc:>3} network alone {alone:9.0f} img/s", flush=True)
        for augment in (False, True):
            source = SkeletonSequences(work / "split", "ntu60", "csub", "train", "clean" if augment else "paper")
            maker = ImageMaker(desc, source.layout, source.mode, 112, device, Augment() if augment else None,
                               memo_budget=0)
            loader = skeleton_loader(source, maker, batch_size=batch, shuffle=True, drop_last=True,
                                     num_workers=workers, persistent_workers=workers > 0)
            fed = rate(b for _ in range(steps + 2) for b in loader)
            print(f"  {desc:>3} from skeletons{' + augment' if augment else '':10s} {fed:9.0f} img/s: the network "
                  f"has the device {min(1.0, fed / alone):4.0%} of the time", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 112])
    p.add_argument("--width", type=float, default=0.0625)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--epochs", type=int, default=2, help="timed epochs per figure (after one warm-up)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    p.add_argument("--demo-size", default="full", choices=("small", "full"))
    p.add_argument("--datasets", nargs="+", default=list(SPLITS), choices=list(SPLITS))
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared/data: real NTU and NW-UCLA samples")
    p.add_argument("--pack-only", action="store_true", help="only the pack's figures on the real samples")
    p.add_argument("--busy", metavar="DEVICE", help="only: does training from skeletons keep DEVICE busy")
    p.add_argument("--busy-samples", type=int, default=4096, help="samples of the --busy split")
    p.add_argument("--busy-steps", type=int, default=20, help="timed steps of each --busy figure")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.busy:
            device = torch.device(args.busy)
            width = 1.0 if device.type == "cuda" else args.width
            busy_report(args.data, work, device, width, args.batch, args.busy_samples, args.busy_steps, args.workers)
            return
        if (args.data / "ntu").is_dir():
            pack_report(args.data, work, repeats=20)
        else:
            print(f"no real samples at {args.data} (--data): the pack's figures on them are left out")
        if args.pack_only:
            return
        seq_dirs = make_demo(work, args.sizes, args.demo_size, max(1, args.workers))
        print(f"CPU threads {torch.get_num_threads()}, DataLoader workers {args.workers}, batch {args.batch}, "
              f"width {args.width}, demo {args.demo_size}")
        for dataset in args.datasets:
            plain = SkeletonSequences(seq_dirs[dataset], dataset, SPLITS[dataset], "train")
            packed = SkeletonSequences(seq_dirs[dataset], dataset, SPLITS[dataset], "train", pack=True)
            files, mapped = sequence_read_rate(plain, 3), sequence_read_rate(packed, 3)
            print(f"{dataset} train, {len(plain)} sequences: read from files {files:8.0f}/s, from the pack "
                  f"{mapped:8.0f}/s ({mapped / files:.1f}x)")
            for size in args.sizes:
                for desc in ("GD", "all"):
                    for augment in (False, True):
                        made = loaders(work, seq_dirs, dataset, desc, size, args.batch, args.workers, augment)
                        for name, loader in made.items():
                            alone = source_rate(loader, args.epochs)
                            train = training_rate(loader, dataset, desc, args.width, args.epochs)
                            print(f"  {dataset:5s} {size:3d} px {desc:>3s}  {name:<27s} source alone {alone:8.0f} "
                                  f"samples/s   training {train:7.0f} samples/s", flush=True)


if __name__ == "__main__":
    main()
