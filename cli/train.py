"""train.py's front end: its options (their defaults are ``TrainConfig``'s) and one run of
``models.training.fit`` per -desc name, one after another, with expected errors as one line."""
from __future__ import annotations

import argparse
import dataclasses

from common.errors import INTERRUPTED_STATUS, error_line, interrupted_line, one_line_run
from common.locks import LockHeldError
from descriptors.core import DEFAULT_IMG_SIZE
from models.checkpoint import CheckpointError
from models.config import BN_STATS, IMAGES, SKELETONS, TrainConfig, from_args, set_parser_defaults
from models.logs import ending_table
from models.loop import prompt_interrupt
from models.networks import WeightsUnavailableError
from models.names import checkpoint_prefix
from models.training import fit
from skeletons.augment import Augment
from skeletons.datasets import default_protocol
from skeletons.reading import MODES

from . import options as cli

KEPT = "the epochs saved so far are kept"
EXPECTED = (FileNotFoundError, ValueError, CheckpointError, WeightsUnavailableError, LockHeldError)


def build_parser(doc: str | None = None) -> argparse.ArgumentParser:
    """train.py's options, each default taken from TrainConfig."""
    p = cli.parser(doc)
    cli.add_dataset(p, required=True)
    cli.add(p, "protocol")
    cli.add_desc_list(p, required=True)
    for name in ("descriptors", "gpu", "despth", "ckpt", "wait", "preset"):
        cli.add(p, name)
    p.add_argument("--source", choices=(IMAGES, SKELETONS),
                   help="images: the descriptor folders skels2desc made; skeletons: no image files, the images "
                        "are made batch by batch on the training device from -dspath (bit-equal to the PNGs)")
    cli.add(p, "dspath")
    cli.add(p, "img_size", help=f"--source skeletons: side of the images made (default: {DEFAULT_IMG_SIZE}); with "
                                f"images it is read from the folders (given, it must agree)")
    a = Augment()
    p.add_argument("--augment", action="store_true",
                   help=f"skeleton augmentation, with --source skeletons and --mode clean: rotation about the "
                        f"vertical axis up to {a.rotation:g} degrees, scaling by up to {100 * a.scale:g}%%, a random "
                        f"crop of {100 * a.crop_min:g}-100%% of the frames resampled to the sequence's length, joint "
                        f"jitter of {100 * a.jitter:g}%% of the body size (skeletons/augment.py)")
    p.add_argument("--epochs", type=int, help="the release ran 500; its rate is < 1e-8 after epoch 40")
    p.add_argument("--batch-size", type=int, help="per process")
    p.add_argument("--lr", type=float)
    p.add_argument("--width", type=float, help="channel multiplier (1.0 = 256/512/1024 as released)")
    p.add_argument("--arch", help="resnet_c or a torchvision classification model name")
    p.add_argument("--pretrained", action="store_true", help="torchvision weights for --arch (downloaded)")
    p.add_argument("--mode", choices=MODES,
                   help="descriptor mode of the images: read from the folders' records (refused if it "
                        f"contradicts them); says what folders without one hold, such as the release's "
                        f"(default {MODES[0]})")
    p.add_argument("--bn-stats", choices=BN_STATS,
                   help="Fuse5 BatchNorm running statistics: shared by the five descriptors (as released) "
                        "or one set per descriptor (fixes the release's eval-time mismatch)")
    cli.add(p, "loader_workers")
    p.add_argument("--amp", action="store_true", help="mixed precision on CUDA (bfloat16, else float16)")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                   help="keep NCHW on CUDA (channels_last is the default there)")
    p.add_argument("--cache", action="store_true", help="pack each split into a uint8 memory-mapped .npy once")
    p.add_argument("--verify-cache", action="store_true",
                   help="kept for older command lines: every byte of a --cache pack found on disk is now always "
                        "checked against its seal; a damaged pack is moved aside and made again")
    p.add_argument("--resume", action="store_true",
                   help="continue exactly from <prefix>_last.tar: now always done when it exists and records "
                        "the same settings (kept for older command lines)")
    cli.add(p, "overwrite")
    p.add_argument("--seed", type=int)
    p.add_argument("--val-fraction", type=float,
                   help="hold out this part of train to pick the best epoch (default: test accuracy, as released)")
    p.add_argument("--label-smoothing", type=float,
                   help="standard label smoothing instead of the release's 0.8/0.1 soft targets")
    p.add_argument("--keep-last", type=int,
                   help="keep only the N newest per-epoch checkpoints (best and last are kept apart); "
                        "0 keeps every epoch, as the release did")
    p.add_argument("--max-steps", type=int, help="cap the steps of each epoch (smoke runs)")
    cli.add(p, "no_progress")
    return set_parser_defaults(p, TrainConfig)


def train_one(config: TrainConfig) -> tuple[int, dict | None]:
    """One model's training (one -desc name): (exit status, fit's result); 2 with the one-line
    error of an expected failure, 130 on Ctrl-C, also inside one long call into torch."""
    result: dict = {}

    def train() -> int:
        with prompt_interrupt(interrupted_line(KEPT)):
            result.update(fit(config))
        return 0

    return one_line_run(train, EXPECTED, KEPT, describe=error_line), result or None


def run(config: TrainConfig) -> int:
    """Each -desc name's training, one after another, as if train.py were run once per name; the
    worst exit status (2 with an expected failure's one line); a Ctrl-C stops the list (130)."""
    names: list[str] = []

    def check() -> int:   # every name, the dataset and the protocol, before any model is trained
        names.extend(cli.desc_names(config.desc, config.descriptors))
        cli.setup_dataset(config)
        default_protocol(config.dataset, config.protocol)
        return 0

    if status := one_line_run(check, EXPECTED, "nothing was trained", describe=error_line):
        return status
    if len(names) == 1:
        return train_one(dataclasses.replace(config, desc=names[0]))[0]
    statuses, rows = [], []
    for k, name in enumerate(names):
        print(("\n" if k else "") + f"== -desc {name} ({k + 1} of {len(names)})", flush=True)
        status, result = train_one(dataclasses.replace(config, desc=name))
        if status == INTERRUPTED_STATUS:
            return status
        statuses.append(status)
        rows.append(result["ending"].row() if result else
                    [checkpoint_prefix(config.dataset, default_protocol(config.dataset, config.protocol), name),
                     "failed (its error is above)"])
    print(f"\n-desc {','.join(names)}: {statuses.count(0)} of {len(names)} trained or already finished\n"
          f"{ending_table(rows)}", flush=True)
    return max(statuses)


def main(args: argparse.Namespace) -> int:
    return run(from_args(TrainConfig, args))
