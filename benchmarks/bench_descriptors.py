"""Descriptor extraction speed on real NTU samples (prints figures; not a test).

    python benchmarks/bench_descriptors.py [--samples 350] [--loop-samples 10] [--workers N]

The real .skeleton files in ../shared/data/ntu are converted once and copied under distinct
NTU-60 csub-train names until there are --samples of them. Reported:
- time split of the full step on one core: read .npy, compute the matrices, encode + resize, PNG bytes
  (descriptors.core.png_bytes at zlib level 1), file write (atomic: temp + rename);
- samples/s for the step without writing files, and for skels2desc's extract_split (read .npy,
  five descriptors, five PNG files) on one worker and on all cores;
- for reference: our PNG bytes at level 6 (Pillow's default) and Pillow's own writer at level 1,
  file sizes, and that every file decodes to the image;
- peak memory (max RSS of this process and of its worker processes);
- the ratio to a per-element loop implementation written below (the release's approach).
"""
from __future__ import annotations

import argparse
import io
import math
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from descriptors.core import (GRAY_DESCRIPTORS, descriptor_matrices, encode_gray, encode_rgb, fuse,  # noqa: E402
                              normalised_adjacency, png_bytes, quirks_for)
from descriptors.extract import extract_split  # noqa: E402
from common.atomic import write_bytes_atomic  # noqa: E402
from skeletons.datasets import NTU60_CSUB_TRAIN_PERFORMERS  # noqa: E402
from skeletons.layouts import NTU, Layout  # noqa: E402
from skeletons.ntu import load_skeleton_npy, paper_sequence, read_skeleton, save_skeleton_npy  # noqa: E402
from common.shared import shared_dir  # noqa: E402
from descriptors.names import DESCRIPTORS  # noqa: E402

SHARED = shared_dir()


def train_name(k: int) -> str:
    """k-th distinct NTU-60 csub-train sample id (unique for k < 2040)."""
    setup, camera = k % 17 + 1, k // 17 % 3 + 1
    performer = NTU60_CSUB_TRAIN_PERFORMERS[k // 51 % 20]
    return f"S{setup:03d}C{camera:03d}P{performer:03d}R{k // 1020 % 2 + 1:03d}A{k % 60 + 1:03d}"


def make_npy_folder(folder: Path, samples: int) -> list[Path]:
    sources = sorted((SHARED / "data" / "ntu").glob("*.skeleton"))
    if not sources:
        sys.exit(f"error: no real NTU samples in {SHARED / 'data' / 'ntu'} (set IMDAR_SHARED)")
    converted = []
    for k, src in enumerate(sources):
        path = folder / f"{train_name(k)}.skeleton.npy"
        save_skeleton_npy(path, read_skeleton(src))
        converted.append(path)
    paths = list(converted)
    for k in range(len(sources), samples):   # repeat the real files under new names
        path = folder / f"{train_name(k)}.skeleton.npy"
        shutil.copyfile(converted[k % len(converted)], path)
        paths.append(path)
    return paths[:samples]


# ---------------------------------------------------------------- per-element loop implementation

def loop_matrices(X: np.ndarray, layout: Layout, mode: str = "paper") -> dict[str, np.ndarray]:
    """The four matrices with Python loops over frames, bodies, joints, pairs (as the release does)."""
    q = quirks_for(layout, mode)
    T, V = X.shape[0], layout.num_joints
    bodies = X.shape[1] // V
    adjacency = normalised_adjacency(layout)
    pairs, triplets = list(layout.jdd_pairs), list(layout.lad_triplets)
    second = {(p, a): j for p, a, j in q.jdd_axis_sources}
    if bodies == 2:
        for index, replacement in q.lad_two_body_triplets:
            triplets[index] = replacement

    def dist(a, b):
        return math.sqrt((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2 + (a[2] - b[2]) ** 2)

    gd = np.zeros((bodies * V, T, 3))
    jdd = np.zeros((bodies * len(pairs), T))
    add = np.zeros((bodies * V, max(T - 1, 0)))
    lad = np.zeros((bodies * len(triplets), T))
    for b in range(bodies):
        o = b * V
        size = 0.0
        for i, j in layout.size_bones:
            size += dist(X[0, o + i], X[0, o + j])
        size = size or 1.0
        for t in range(T):
            if t >= 1 or not q.gd_skip_first_frame:
                for j in range(V):
                    for c in range(3):
                        acc = np.float32(0)
                        for i in range(V):
                            acc = np.float32(acc + np.float32(X[t, o + i, c]) * adjacency[i, j])
                        gd[o + j, t, c] = acc
            for k, (i, j) in enumerate(pairs):
                other = [X[t, o + second.get((k, c), j), c] for c in range(3)]
                d = dist(X[t, o + i], other)
                jdd[b * len(pairs) + k, t] = d if k in q.jdd_unnormalised_pairs else d / size
            for j in range(V):
                if t < T - 1:
                    add[o + j, t] = dist(X[t + 1, o + j], X[t, o + j])
            for k, (p, a, c) in enumerate(triplets):
                ab, ac, bc = dist(X[t, o + a], X[t, o + p]), dist(X[t, o + c], X[t, o + p]), dist(X[t, o + c], X[t, o + a])
                lad[b * len(triplets) + k, t] = 0.0 if ab == 0 or ac == 0 else \
                    math.acos(max(-1.0, min(1.0, round((ab ** 2 + ac ** 2 - bc ** 2) / (2 * ab * ac), 2))))
    if bodies == 2:
        source = jdd.copy()
        for dst, src in q.jdd_two_body_row_copies:
            jdd[dst] = source[src] if src is not None else 0.0
    return {"GD": gd, "JDD": jdd, "ADD": add, "LAD": lad}


# ---------------------------------------------------------------- measurements

def encode(matrices: dict[str, np.ndarray], img_size: int = 112) -> dict[str, np.ndarray]:
    images = {"GD": encode_rgb(matrices["GD"], img_size)}
    images.update({d: encode_gray(matrices[d], img_size) for d in GRAY_DESCRIPTORS})
    images["FDD"] = fuse(images)
    return images


def pillow_png(image: np.ndarray, level: int) -> bytes:
    """The PNG Pillow writes (adaptive per-row filters), for comparison with ours."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=level)
    return buffer.getvalue()


STAGES = ("read", "compute", "encode", "png level 1", "file write")
REFERENCES = ("png level 6", "Pillow png level 1")   # timed beside the step, not part of it


def time_split(paths: list[Path], out: Path, clock=time.process_time) -> dict[str, float]:
    """Seconds per stage over all samples, one core, in this process. The default clock is CPU
    time, which other processes competing for the cores inflate much less than wall time.
    "png" makes the file bytes in memory, "file write" writes them atomically (temp + rename)."""
    totals = dict.fromkeys(STAGES + REFERENCES, 0.0)
    out.mkdir(exist_ok=True)
    for k, path in enumerate(paths):
        t0 = clock()
        X = paper_sequence(load_skeleton_npy(path))
        t1 = clock()
        matrices = descriptor_matrices(X, NTU)
        t2 = clock()
        images = encode(matrices)
        t3 = clock()
        files = {desc: png_bytes(images[desc], 1) for desc in DESCRIPTORS}
        t4 = clock()
        for desc, data in files.items():
            write_bytes_atomic(out / f"{desc}_{k}.png", data)
        t5 = clock()
        level6 = {desc: png_bytes(images[desc], 6) for desc in DESCRIPTORS}
        t6 = clock()
        pillow = {desc: pillow_png(images[desc], 1) for desc in DESCRIPTORS}
        t7 = clock()
        for name, dt in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6)):
            totals[name] += dt
    same = all(np.array_equal(np.asarray(Image.open(io.BytesIO(data))), images[desc])
               for data_by_desc in (files, level6, pillow) for desc, data in data_by_desc.items())
    sizes = {name: sum(map(len, data.values())) for name, data in
             (("ours, level 1", files), ("ours, level 6", level6), ("Pillow, level 1", pillow))}
    print(f"last sample's PNG files decode to the images (ours at levels 1 and 6, Pillow's): {same}; "
          "bytes: " + ", ".join(f"{name} {size}" for name, size in sizes.items()))
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--samples", type=int, default=350)
    parser.add_argument("--loop-samples", type=int, default=5, help="samples timed with the loop version")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--tmp", default=None, help="folder for the files (default: the system's temp "
                        "folder); file writing costs depend on its file system, e.g. try /dev/shm")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        tmp = Path(tmp)
        (tmp / "npy").mkdir()
        paths = make_npy_folder(tmp / "npy", args.samples)
        frames = [load_skeleton_npy(p)["skel_body0"].shape[0] for p in paths[:35]]
        print(f"{len(paths)} samples (35 real NTU files repeated), mean {np.mean(frames):.0f} frames, "
              f"{os.cpu_count()} cores, numpy {np.__version__}")

        n = len(paths)
        for clock_name, clock in (("CPU time", time.process_time), ("wall time", time.perf_counter)):
            totals = time_split(paths, tmp / f"split_{clock_name.split()[0]}", clock)
            print(f"time split on one core, {clock_name} (ms per sample), files in {tmp}:")
            for name, seconds in totals.items():
                print(f"  {name:18s} {1000 * seconds / n:7.3f}" + ("   (reference, not in the step)"
                                                                   if name in REFERENCES else ""))
            no_write = totals["read"] + totals["compute"] + totals["encode"]
            full = sum(totals[name] for name in STAGES)
            print(f"  -> without file writing {n / no_write:6.1f} samples/s; full step {n / full:6.1f} samples/s "
                  f"(PNG level 1)")

        for workers in sorted({1, args.workers}):
            t0 = time.perf_counter()
            summary = extract_split("ntu60", "csub", "train", tmp / "npy", tmp / f"desc{workers}",
                                    workers=workers, progress=False)
            dt = time.perf_counter() - t0
            assert summary.written == n and summary.ok, summary.lines()
            print(f"extract_split, {workers} worker(s): {n / dt:7.1f} samples/s ({dt:.2f} s for {n})")

        loop_paths = paths[: args.loop_samples]
        sequences = [paper_sequence(load_skeleton_npy(p)) for p in loop_paths]
        t0 = time.process_time()
        loop_images = [encode(loop_matrices(X, NTU)) for X in sequences]
        loop_time = time.process_time() - t0
        t0 = time.process_time()
        fast_images = [encode(descriptor_matrices(X, NTU)) for X in sequences]
        fast_time = time.process_time() - t0
        same = all(np.array_equal(a[d], b[d]) for a, b in zip(loop_images, fast_images) for d in DESCRIPTORS)
        print(f"loop implementation (CPU time): {1000 * loop_time / len(sequences):8.1f} ms per sample, vectorised "
              f"{1000 * fast_time / len(sequences):.2f} ms (compute + encode): {loop_time / fast_time:.0f}x; "
              f"identical images: {same}")
        self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(f"peak memory (max RSS): this process {self_kb / 1024:.0f} MB, largest worker {child_kb / 1024:.0f} MB")


if __name__ == "__main__":
    main()
