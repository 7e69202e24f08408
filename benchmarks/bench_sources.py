"""Training images/s by data source: descriptor PNGs, the --cache pack, or skeletons (the torch
engine making the images per batch), on the demo data, at the demo's network width.

Makes the demo (skeletons.demo), converts it (txt2npy's convert_folder) and extracts its descriptor
folders at each size (extract_split) in a temporary folder, then times train.py's epoch
(models.training.train_one_epoch) fed by each source, for one descriptor and for Fuse5 ('all');
also the sources alone (batches/s without a network) and reading sequences from files vs the
skeleton pack. Prints figures, asserts nothing.

  python benchmarks/bench_sources.py [--sizes 32 112] [--width 0.0625] [--workers 0] [--demo-size full]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from descriptors.dataset import DescriptorImages  # noqa: E402
from descriptors.extract import extract_split  # noqa: E402
from descriptors.skeleton_source import ImageMaker, SkeletonSequences, skeleton_loader  # noqa: E402
from models.networks import build_model  # noqa: E402
from models.training import RunOptions, make_criterion, train_one_epoch  # noqa: E402
from skeletons.augment import Augment  # noqa: E402
from skeletons.convert import convert_folder  # noqa: E402
from skeletons.datasets import get_dataset  # noqa: E402
from skeletons.demo import generate_demo  # noqa: E402

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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 112])
    p.add_argument("--width", type=float, default=0.0625)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--epochs", type=int, default=2, help="timed epochs per figure (after one warm-up)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    p.add_argument("--demo-size", default="full", choices=("small", "full"))
    p.add_argument("--datasets", nargs="+", default=list(SPLITS), choices=list(SPLITS))
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
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
