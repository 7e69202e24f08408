"""The video route's speed on this machine (prints figures; not a test; docs/VIDEO.md quotes them).

    python benchmarks/bench_video.py [--frames 150] [--side 480]

A synthetic video made from scikit-image's astronaut photo (moved and zoomed, --side pixels square,
30 frames/s) goes through BlazePose full (skeletons/video.py), then the whole of predict.py VIDEO's
work: the NTU-25 mapping, the descriptors and the six networks (-desc all: five ResNet_c and Fuse5,
random weights, which time the same as trained ones) at the demo's width 1/16 on 32-px images, for
the whole video and for its sliding windows (60 frames every 15). Prints frames/s of the pose
extraction alone and of the whole route, and the machine's load while it ran.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# torch and the networks are imported in main(): the pose parts' spawned processes import this
# module, and predict.py's do not import torch either (their start is what is measured)
from descriptors.names import DESCRIPTORS, FUSION  # noqa: E402
from skeletons.layouts import NTU  # noqa: E402
from skeletons.pose_maps import pose_map_for  # noqa: E402
from skeletons.video import (DEFAULT_STRIDE, DEFAULT_WINDOW, POSE_PROCESSES, opencv, part_bounds,  # noqa: E402
                             skeleton_sequence, track_pose)

WIDTH, IMG_SIZE, NUM_CLASSES = 0.0625, 32, 60


def write_clip(path: Path, frames: int, side: int) -> None:
    import skimage.data
    cv2 = opencv()
    canvas = np.full((704, 704, 3), 128, np.uint8)
    canvas[96:608, 96:608] = skimage.data.astronaut()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (side, side))
    for t in range(frames):
        size = 560 + int(60 * np.sin(t / 5))
        x, y = 72 + int(40 * np.sin(t / 7)), 72 + int(30 * np.cos(t / 6))
        crop = cv2.resize(canvas[y:y + size, x:x + size], (side, side), interpolation=cv2.INTER_AREA)
        writer.write(crop[:, :, ::-1])
    writer.release()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=150)
    p.add_argument("--side", type=int, default=480)
    args = p.parse_args()
    import torch
    from models.networks import build_model
    from models.video_predict import classify_video

    torch.manual_seed(0)
    models = {d: build_model(d, NUM_CLASSES, width=WIDTH).eval() for d in (*DESCRIPTORS, FUSION)}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        write_clip(clip, args.frames, args.side)
        start = time.perf_counter()
        track_pose(Path(tmp) / "clip.mp4")   # warm-up run: model files read, graph built
        warm = time.perf_counter() - start
        start = time.perf_counter()
        track_pose(clip)
        one_s = time.perf_counter() - start
        start = time.perf_counter()   # as predict.py VIDEO runs it: the parts' processes started anew
        track = track_pose(clip, processes=POSE_PROCESSES)
        pose_s = time.perf_counter() - start
        X, frames = skeleton_sequence(track, pose_map_for(NTU))
        _, _, windows = classify_video(models, X, frames, track.frames, DEFAULT_WINDOW, DEFAULT_STRIDE, NTU, "paper",
                                       IMG_SIZE, "cpu")
        whole_s = time.perf_counter() - start
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.get_num_threads()} threads; load average "
          f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after (other processes share the CPUs)")
    print(f"video: {args.frames} frames of {args.side}x{args.side} px, {int(track.present.sum())} with a person; "
          f"first run (with the graph's start) {args.frames / warm:.1f} frames/s")
    print(f"pose extraction (BlazePose full), 1 process:      {args.frames / one_s:6.1f} frames/s")
    print(f"pose extraction, {len(part_bounds(track.frames, POSE_PROCESSES))} process(es) as predict.py runs it: "
          f"{args.frames / pose_s:6.1f} frames/s")
    print(f"whole route as predict.py VIDEO runs it (pose, NTU-25, descriptors, 6 networks at width 1/16 on {IMG_SIZE} px, whole video + "
          f"{len(windows)} windows): {args.frames / whole_s:6.1f} frames/s")


if __name__ == "__main__":
    main()
