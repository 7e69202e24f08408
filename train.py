"""Train ResNet_c on one descriptor, or Fuse5 on all five, as the authors' release does.

  python train.py -d ntu60 -p csub -desc GD -gpu 0
  python train.py -d custom --data ROOT --layout coco17 -desc all -gpu 0      # your own skeletons
  torchrun --nproc_per_node 4 train.py -d ntu120 -p csub -desc all -gpu 0 --amp   # several GPUs

Rerunning the same command skips a finished run and continues an unfinished one exactly from
<prefix>_last.tar; other settings are refused (start over with --overwrite, or use another -ckpt).
"""
from __future__ import annotations

import argparse
import sys

from models.networks import BN_STATS, DEFAULT_ARCH
from cli import options as cli
from skeletons.augment import Augment


def get_args_parser() -> argparse.ArgumentParser:
    p = cli.parser(__doc__)
    cli.add_dataset(p, required=True)
    cli.add(p, "protocol")
    cli.add(p, "desc", required=True)
    cli.add(p, "gpu")
    cli.add(p, "despth")
    cli.add(p, "ckpt")
    p.add_argument("--source", default="images", choices=("images", "skeletons"),
                   help="images: the descriptor folders skels2desc made; skeletons: no image files, the images "
                        "are made batch by batch on the training device from -dspath (bit-equal to the PNGs)")
    cli.add(p, "dspath")
    cli.add(p, "img_size", default=None, help="--source skeletons: side of the images made (default: 112); with "
                                              "images it is read from the folders (given, it must agree)")
    a = Augment()
    p.add_argument("--augment", action="store_true",
                   help=f"skeleton augmentation, with --source skeletons and --mode clean: rotation about the "
                        f"vertical axis up to {a.rotation:g} degrees, scaling by up to {100 * a.scale:g}%%, a random "
                        f"crop of {100 * a.crop_min:g}-100%% of the frames resampled to the sequence's length, joint "
                        f"jitter of {100 * a.jitter:g}%% of the body size (skeletons/augment.py)")
    p.add_argument("--epochs", type=int, default=50, help="the release ran 500; its rate is < 1e-8 after epoch 40")
    p.add_argument("--batch-size", type=int, default=32, help="per process")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier (1.0 = 256/512/1024 as released)")
    p.add_argument("--arch", default=DEFAULT_ARCH, help="resnet_c or a torchvision classification model name")
    p.add_argument("--pretrained", action="store_true", help="torchvision weights for --arch (downloaded)")
    p.add_argument("--mode", default=None, choices=["paper", "clean"],
                   help="descriptor mode of the images: read from the folders' records (refused if it "
                        "contradicts them); says what folders without one hold, such as the release's (default paper)")
    p.add_argument("--bn-stats", default="shared", choices=BN_STATS,
                   help="Fuse5 BatchNorm running statistics: shared by the five descriptors (as released) "
                        "or one set per descriptor (fixes the release's eval-time mismatch)")
    cli.add(p, "loader_workers")
    p.add_argument("--amp", action="store_true", help="mixed precision on CUDA (bfloat16, else float16)")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                   help="keep NCHW on CUDA (channels_last is the default there)")
    p.add_argument("--cache", action="store_true", help="pack each split into a uint8 memory-mapped .npy once")
    p.add_argument("--resume", action="store_true",
                   help="continue exactly from <prefix>_last.tar: now always done when it exists and records "
                        "the same settings (kept for older command lines)")
    cli.add(p, "overwrite")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-fraction", type=float, default=0.0,
                   help="hold out this part of train to pick the best epoch (default: test accuracy, as released)")
    p.add_argument("--label-smoothing", type=float, default=None,
                   help="standard label smoothing instead of the release's 0.8/0.1 soft targets")
    p.add_argument("--keep-last", type=int, default=3,
                   help="keep only the N newest per-epoch checkpoints (best and last are kept apart); "
                        "0 keeps every epoch, as the release did")
    p.add_argument("--max-steps", type=int, default=None, help="cap the steps of each epoch (smoke runs)")
    cli.add(p, "no_progress")
    return p


def main(args: argparse.Namespace) -> int:
    from models.checkpoint import CheckpointError
    from models.networks import WeightsUnavailableError
    from common.errors import error_line
    from models.training import fit

    try:
        cli.setup_dataset(args)
        fit(args)
    except (FileNotFoundError, ValueError, CheckpointError, WeightsUnavailableError) as e:  # expected: one line
        print(f"error: {error_line(e)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
