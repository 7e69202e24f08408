"""Turn your own videos into a custom skeleton dataset (docs/VIDEO.md), for pipeline.py -d custom.

    python video2skel.py VIDEO_DIR --out DATASET --layout ntu25          # 3D, NTU's joints and axes
    python video2skel.py VIDEO_DIR --out DATASET --layout coco17 --test-fraction 0.3 --seed 1 --workers 2
    python pipeline.py -d custom --data DATASET --layout ntu25

VIDEO_DIR holds one subfolder of videos (.mp4/.avi/.mov/.mkv/.webm) per class; the class names are
the subfolders' names, in sorted order. DATASET gets skeletons/<class>_<video>.npy (BlazePose per
frame, frames without a person left out), labels.csv (a stratified train/test split, seeded) and
classes.txt. Run it again to resume: videos already converted are skipped. A video that cannot be
read, or shows nobody, is named in one line and left out.
"""
from __future__ import annotations

import argparse
import os
import sys

from cli import options as cli
from skeletons.video_dataset import videos_to_dataset


def get_args_parser() -> argparse.ArgumentParser:
    p = cli.parser(__doc__)
    p.add_argument("video_dir", help="folder with one subfolder of videos per class")
    p.add_argument("--out", required=True, help="the custom dataset folder to write (created, or resumed)")
    # ntu25: 3D world joints in NTU's Kinect axes (metres); coco17: 2D image joints (pixels)
    cli.add(p, "layout", required=True, choices=("ntu25", "coco17"))
    p.add_argument("--test-fraction", type=float, default=0.2, help="share of each class's videos in the test split")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/test split")
    # each worker loads its own pose graph: two by default, more where memory allows
    cli.add(p, "processes", default=min(2, os.cpu_count() or 1))
    return p


def main(args: argparse.Namespace) -> int:
    try:
        summary = videos_to_dataset(args.video_dir, args.out, args.layout, args.test_fraction, args.seed,
                                    args.workers, report=lambda line: print(f"skipped: {line}", file=sys.stderr))
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for note in summary.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"{args.out}: {summary.line()}; train with: python pipeline.py -d custom --data {args.out} "
          f"--layout {args.layout}")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
