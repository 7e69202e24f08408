"""Training and loading throughput (images/s) of ResNet_c and Fuse5.

CPU (always, small width): loader PNG vs --cache; training steps, Fuse5 one trunk pass vs the
release's five trunk calls. CUDA (when present, full width): fp32 vs AMP vs AMP+channels_last at
batch 32 and at the largest batch that fits, against the release's way (plain fp32, PNG decoded
per item, Fuse5 as five trunk calls), end to end with the loader.

  python benchmarks/bench_training.py [--images 256] [--width 0.0625] [--steps 5] [--workers 2]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from descriptors.dataset import DescriptorImages, write_synthetic_split  # noqa: E402
from models.networks import build_model  # noqa: E402
from models.loop import to_device  # noqa: E402
from models.recipe import make_criterion, total_loss  # noqa: E402

DATASET, CLASSES = "ucla", 10


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def loader_rate(root: Path, desc: str, cache: bool, workers: int, batch: int = 32) -> float:
    data = DescriptorImages(root, DATASET, None, "train", desc, cache=cache, uint8=True)
    loader = torch.utils.data.DataLoader(data, batch_size=batch, num_workers=workers)
    start = time.perf_counter()
    seen = sum(labels.shape[0] for _, labels in loader)
    return seen / (time.perf_counter() - start)


def training_step(desc: str, width: float, device: torch.device, amp: bool, channels_last: bool,
                  separate: bool) -> Callable[[torch.Tensor | list, torch.Tensor], None]:
    """One optimiser step of a fresh network, as train.py does it (Fuse5 ``separate``: the release's way)."""
    model = build_model(desc, CLASSES, width=width).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt, criterion = torch.optim.Adam(model.parameters(), 1e-4), make_criterion()
    forward = model.forward_separately if separate else model

    def step(x, labels) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = total_loss(forward(x), labels, criterion)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def train_rate(desc: str, width: float, batch: int, steps: int, device: torch.device, amp: bool = False,
               channels_last: bool = False, separate: bool = False) -> float:
    """Images/s of optimiser steps on in-memory batches (the network alone, no loader)."""
    step = training_step(desc, width, device, amp, channels_last, separate)
    n_images = 5 if desc == "all" else 1
    images = [torch.randint(0, 256, (batch, 3, 112, 112), dtype=torch.uint8) for _ in range(n_images)]
    x = to_device(images if desc == "all" else images[0], device, channels_last)
    labels = torch.randint(0, CLASSES, (batch,), device=device)
    step(x, labels)  # warm-up (cudnn autotune, allocator)
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step(x, labels)
    sync(device)
    return steps * batch / (time.perf_counter() - start)


def largest_batch(desc: str, device: torch.device, amp: bool, channels_last: bool, start: int = 32,
                  limit: int = 4096) -> int:
    """Doubling search for the largest batch whose training step fits in GPU memory."""
    best, batch = 0, start
    while batch <= limit:
        try:
            train_rate(desc, 1.0, batch, 1, device, amp, channels_last)
            best, batch = batch, batch * 2
        except torch.OutOfMemoryError:
            break
        finally:
            torch.cuda.empty_cache()
    return best


def end_to_end_rate(root: Path, desc: str, device: torch.device, cache: bool, workers: int, amp: bool,
                    channels_last: bool, separate: bool, batch: int = 32, steps: int = 20) -> float:
    """Images/s of training fed by the real loader (PNG per item or the --cache memmap)."""
    data = DescriptorImages(root, DATASET, None, "train", desc, cache=cache, uint8=True)
    loader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True, num_workers=workers,
                                         pin_memory=True, drop_last=True, persistent_workers=workers > 0)
    step = training_step(desc, 1.0, device, amp, channels_last, separate)
    seen, start = 0, None
    while seen < steps * batch:
        for images, labels in loader:
            step(to_device(images, device, channels_last), labels.to(device, non_blocking=True))
            if start is None:  # first step is warm-up
                sync(device)
                start = time.perf_counter()
                continue
            seen += batch
            if seen >= steps * batch:
                break
    sync(device)
    return seen / (time.perf_counter() - start)


def report(name: str, rate: float, base: float | None = None) -> None:
    ratio = f"  ({rate / base:.2f}x)" if base else ""
    print(f"  {name:<58s} {rate:9.1f} img/s{ratio}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    p.add_argument("--images", type=int, default=256, help="synthetic training images per descriptor")
    p.add_argument("--width", type=float, default=0.0625, help="CPU network width")
    p.add_argument("--steps", type=int, default=5, help="timed training steps (CPU)")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_synthetic_split(root, DATASET, None, "train", max(1, args.images // CLASSES), CLASSES)
        print(f"loader, {args.images // CLASSES * CLASSES} images of 112x112, batch 32, "
              f"{args.workers} workers, CPU threads {torch.get_num_threads()}")
        for desc in ("GD", "all"):
            png = loader_rate(root, desc, False, args.workers)
            loader_rate(root, desc, True, 0)  # build the cache outside the timing
            report(f"{desc:>3}: PNG decode per item", png)
            report(f"{desc:>3}: --cache (uint8 memmap)", loader_rate(root, desc, True, args.workers), png)
        print(f"training on CPU, width {args.width}, batch 32, {args.steps} steps")
        report("ResNet_c fp32", train_rate("GD", args.width, 32, args.steps, cpu))
        five = train_rate("all", args.width, 32, args.steps, cpu, separate=True)
        report("Fuse5 fp32, five trunk calls (release)", five)
        report("Fuse5 fp32, one trunk pass, per-chunk BN", train_rate("all", args.width, 32, args.steps, cpu), five)

        if not torch.cuda.is_available():
            print("no CUDA device: GPU comparisons skipped")
            return
        gpu = torch.device("cuda")
        torch.backends.cudnn.benchmark = True
        print(f"training on {torch.cuda.get_device_name(gpu)}, full width, network alone")
        for desc in ("GD", "all"):
            base = train_rate(desc, 1.0, 32, 20, gpu, separate=desc == "all")
            report(f"{desc:>3} release: fp32{', five trunk calls' if desc == 'all' else ''}, batch 32", base)
            for amp, cl, label in ((False, False, "fp32"), (True, False, "AMP bf16"), (True, True, "AMP bf16 + channels_last")):
                report(f"{desc:>3} {label}, batch 32", train_rate(desc, 1.0, 32, 20, gpu, amp, cl), base)
            big = largest_batch(desc, gpu, True, True)
            if big:
                report(f"{desc:>3} AMP bf16 + channels_last, batch {big} (largest that fits)",
                       train_rate(desc, 1.0, big, 5, gpu, True, True), base)
        print(f"training on {torch.cuda.get_device_name(gpu)}, full width, with the loader, batch 32")
        for desc in ("GD", "all"):
            base = end_to_end_rate(root, desc, gpu, False, args.workers, False, False, desc == "all")
            report(f"{desc:>3} release: fp32, PNG per item{', five trunk calls' if desc == 'all' else ''}", base)
            report(f"{desc:>3} ours: AMP + channels_last, --cache",
                   end_to_end_rate(root, desc, gpu, True, args.workers, True, True, False), base)


if __name__ == "__main__":
    main()
