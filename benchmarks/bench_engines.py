"""Descriptor-image throughput (samples/s, five images each, no files): numpy engine vs torch engine.

    python benchmarks/bench_engines.py [--samples 512] [--cpu-batches 64,256]
                                       [--cuda-batches 1024,4096] [--skip-cpu]

Samples: the real NTU .skeleton files in ../shared/data/ntu (IMDAR_SHARED overrides) repeated to
--samples, else the demo generator's NTU files. Reported:
- numpy engine (descriptors.core.descriptor_images, Pillow resize) on one core;
- torch engine on the CPU, one thread: one sample at a time, then per batch size (its default
  chunking);
- torch engine on CUDA when present, per batch size, synchronised: end to end (host packing,
  transfer, images on the device) and on a batch already packed on the device;
- the pixels of the first samples that differ between the engines (0 expected).
CPU rates use process CPU time (the busiest core's share on a shared machine) and wall time.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")   # one core for the CPU figures, set before numpy/torch load

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from descriptors.core import descriptor_images  # noqa: E402
from descriptors.torch_engine import descriptor_images_torch, pack_batch, packed_descriptor_images  # noqa: E402
from demo.generate import generate_demo  # noqa: E402
from skeletons.ntu import paper_sequence, read_skeleton  # noqa: E402
from common.shared import shared_dir  # noqa: E402
from descriptors.names import DESCRIPTORS  # noqa: E402

SHARED = shared_dir()
GOAL_CPU_RATIO, GOAL_CUDA_RATE = 2.0, 20_000


def load_samples(count: int) -> tuple[list[np.ndarray], str]:
    """``count`` NTU paper-mode sequences (real files repeated, else demo files) and their source."""
    files = sorted((SHARED / "data" / "ntu").glob("*.skeleton"))
    source = f"{len(files)} real NTU files in {SHARED / 'data' / 'ntu'}"
    if files:
        sequences = [paper_sequence(read_skeleton(f)) for f in files]
    else:
        with tempfile.TemporaryDirectory() as tmp:
            generate_demo(tmp, seed=0, size="small")
            files = sorted((Path(tmp) / "ntu" / "txt60skel").glob("*.skeleton"))
            sequences = [paper_sequence(read_skeleton(f)) for f in files]
        source = f"{len(files)} demo NTU files (no real samples at {SHARED / 'data' / 'ntu'})"
    return [sequences[k % len(sequences)] for k in range(count)], source


def rate(run: Callable[[], object], samples: int, clock=time.perf_counter, repeat: int = 3) -> float:
    """Best samples/s of ``repeat`` runs after a warm-up."""
    run()
    best = min(_timed(run, clock) for _ in range(repeat))
    return samples / best


def _timed(run: Callable[[], object], clock) -> float:
    start = clock()
    run()
    return clock() - start


def differing_pixels(sequences: list[np.ndarray], device: str) -> str:
    """The line reporting how many pixels differ between the engines on ``sequences``."""
    ours = descriptor_images_torch(sequences, device=device)
    count = sum(int((ours[name][i].cpu().numpy() != descriptor_images(X)[name]).sum())
                for i, X in enumerate(sequences) for name in DESCRIPTORS)
    return f"  pixels differing from the numpy engine ({len(sequences)} samples, five images): {count}"


def line(label: str, value: float, base: float | None = None) -> None:
    ratio = f"  ({value / base:.2f}x numpy)" if base else ""
    print(f"  {label:<58} {value:>10,.0f} samples/s{ratio}")


def bench_cpu(sequences: list[np.ndarray], batches: list[int]) -> None:
    torch.set_num_threads(1)
    print(f"CPU, one thread (torch threads {torch.get_num_threads()}, OMP_NUM_THREADS "
          f"{os.environ['OMP_NUM_THREADS']})")
    subset = sequences[:min(len(sequences), 128)]
    numpy_cpu = rate(lambda: [descriptor_images(X) for X in subset], len(subset), time.process_time)
    line("numpy engine (CPU time)", numpy_cpu)
    line("numpy engine (wall time)", rate(lambda: [descriptor_images(X) for X in subset], len(subset)))
    single = sequences[:64]
    one = rate(lambda: descriptor_images_torch(single, chunk=1), len(single), time.process_time)
    line("torch engine, one sample at a time (CPU time)", one, numpy_cpu)
    best = 0.0
    for batch in batches:
        chunk = sequences[:batch]
        cpu = rate(lambda: descriptor_images_torch(chunk), len(chunk), time.process_time)
        best = max(best, cpu)
        line(f"torch engine, batch {len(chunk)} (CPU time)", cpu, numpy_cpu)
        wall = rate(lambda: descriptor_images_torch(chunk), len(chunk))
        line(f"torch engine, batch {len(chunk)} (wall time)", wall)
    print(f"  goal: torch >= {GOAL_CPU_RATIO:g}x numpy per core -> {best / numpy_cpu:.2f}x "
          f"({'met' if best >= GOAL_CPU_RATIO * numpy_cpu else 'not met'})")
    print(differing_pixels(sequences[:64], "cpu"))


def bench_cuda(sequences: list[np.ndarray], batches: list[int]) -> None:
    device = torch.device("cuda")
    print(f"CUDA: {torch.cuda.get_device_name(device)}")

    def synced(run: Callable[[], object]) -> Callable[[], None]:
        def timed() -> None:
            run()
            torch.cuda.synchronize(device)
        return timed

    best = 0.0
    for batch in batches:
        chunk = [sequences[k % len(sequences)] for k in range(batch)]
        torch.cuda.reset_peak_memory_stats(device)
        end_to_end = rate(synced(lambda: descriptor_images_torch(chunk, device=device)), batch)
        pack = pack_batch(chunk, device=device)
        on_device = rate(synced(lambda: packed_descriptor_images(pack)), batch)
        best = max(best, end_to_end)
        line(f"batch {batch}: end to end (pack on host, transfer, compute)", end_to_end)
        line(f"batch {batch}: packed batch already on the device", on_device)
        print(f"  {'':<58} peak memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")
    print(f"  goal: >= {GOAL_CUDA_RATE:,} samples/s end to end -> {best:,.0f} "
          f"({'met' if best >= GOAL_CUDA_RATE else 'not met'})")
    print(differing_pixels(sequences[:64], "cuda"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    p.add_argument("--samples", type=int, default=512, help="samples for the CPU figures")
    p.add_argument("--cpu-batches", default="64,256", help="torch CPU batch sizes, comma-separated")
    p.add_argument("--cuda-batches", default="1024,4096", help="torch CUDA batch sizes, comma-separated")
    p.add_argument("--skip-cpu", action="store_true", help="only the CUDA figures")
    args = p.parse_args()
    sequences, source = load_samples(args.samples)
    frames = np.array([len(X) for X in sequences])
    two = sum(X.shape[1] == 50 for X in sequences)
    print(f"samples: {source}, {len(sequences)} used, frames mean {frames.mean():.0f} (max {frames.max()}), "
          f"{two} with two bodies, images 112x112")
    if not args.skip_cpu:
        bench_cpu(sequences, [int(b) for b in args.cpu_batches.split(",")])
    if torch.cuda.is_available():
        bench_cuda(sequences, [int(b) for b in args.cuda_batches.split(",")])
    else:
        print("no CUDA device: GPU figures skipped")


if __name__ == "__main__":
    main()
