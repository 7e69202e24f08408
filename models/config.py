"""What a training and an evaluation take, as values: ``TrainConfig`` and ``TestConfig``. Their field
defaults are the only defaults (train.py's and test.py's parsers are built from them), and the
release's and the demo's settings are named presets over them (``PRESETS``).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from descriptors.core import DEFAULT_IMG_SIZE
from descriptors.names import DEFAULT_DESCRIPTOR_ROOT, FUSION
from .names import BEST, DEFAULT_CHECKPOINT_DIR, LAST

# The settings' fixed values, here and not with the networks or the data: this module imports no
# torch, so the front ends that only parse options (txt2npy.py, skels2desc) start fast.
DEFAULT_ARCH = "resnet_c"           # the release's network (ResNet_c; Fuse5 for -desc all)
FULL_WIDTH = 1.0                    # the channel multiplier of the release's networks
# Fuse5 BatchNorm running statistics: one pair shared by the five descriptors (the release), or one per descriptor.
BN_STATS = ("shared", "per-descriptor")
SHARED_BN_STATS = BN_STATS[0]
IMAGES, SKELETONS = "images", "skeletons"   # --source: descriptor folders, or images made while training


def default_workers(most: int = 4) -> int:
    """Data-loading processes: ``most``, but no more than the CPUs this process may use (more only
    contend, and PyTorch warns about them)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(0, min(most, cpus))


@dataclass(kw_only=True)
class RunConfig:
    """Where a run's data and models are: what training and testing share."""
    dataset: str | None = None
    protocol: str | None = None          # None: the dataset's first (skeletons.datasets.default_protocol)
    data: str | None = None              # -d custom: the dataset folder; -d pyskl/ctrgcn: the data file
    layout: str | None = None            # -d custom: its joint layout (file or shipped name)
    label_map: str | None = None         # -d pyskl/ctrgcn: class names, label 0 first
    desc: str = FUSION
    descriptors: str | None = None       # --descriptors: the set that -desc all fuses (None: the five)
    gpu: int = 0
    despth: str = DEFAULT_DESCRIPTOR_ROOT
    ckpt: str = DEFAULT_CHECKPOINT_DIR
    source: str = IMAGES                 # images: the descriptor folders; skeletons: images made on the device
    dspath: str | None = None            # None: the dataset's README folder
    batch_size: int = 32
    workers: int = field(default_factory=default_workers)
    wait: bool = False                   # wait for a run holding a lock this one needs, instead of refusing
    preset: str | None = None            # the named settings the command line started from (PRESETS)


@dataclass(kw_only=True)
class TrainConfig(RunConfig):
    """Everything train.py takes (docs/WORKFLOW.md). The defaults are the release's recipe, except
    epochs (the release ran 500; its rate is < 1e-8 after epoch 40) and keep_last."""
    img_size: int | None = None          # --source skeletons: side of the images made; else read from the folders
    augment: bool = False
    epochs: int = 50
    lr: float = 1e-4
    width: float = FULL_WIDTH
    arch: str = DEFAULT_ARCH
    pretrained: bool = False
    mode: str | None = None              # None: what the folders record (paper for folders without a record)
    bn_stats: str = SHARED_BN_STATS
    amp: bool = False
    channels_last: bool = True
    cache: bool = False
    verify_cache: bool = False           # kept for older command lines: every byte is always checked
    resume: bool = False                 # kept for older command lines: resuming is automatic
    overwrite: bool = False
    seed: int = 0
    val_fraction: float = 0.0
    label_smoothing: float | None = None
    keep_last: int = 3
    max_steps: int | None = None
    no_progress: bool = False


@dataclass(kw_only=True)
class TestConfig(RunConfig):
    """Everything test.py takes."""
    epoch: str = BEST
    priority: str | None = None
    out: str | None = None
    paper_table: bool = False
    on: str = "test"                     # test, or heldout: the part of train the models' --val-fraction held out
    save_score: tuple[str, ...] = ()     # also write the scores in these formats: ctrgcn, pyskl
    no_progress: bool = False            # no progress bar of the batches evaluated
    ablation: bool = False               # also fuse every subset of the single models (models/ablation.py)


# Named settings over the defaults (--preset). release: the defaults themselves. cpu: the demo's
# whole recipe (pipeline.py --demo runs it), small enough for 2 CPU cores, large enough to learn:
# with the release's rate and schedule a 1/16-width network learns next to nothing. img_size is
# the descriptor images' side (skels2desc --img-size; train.py checks the folders against it),
# epoch the checkpoint tested (the last: no epoch picked on the test split).
PRESETS: dict[str, dict[str, Any]] = {
    "release": {},
    "cpu": {"epochs": 15, "width": 0.0625, "batch_size": 16, "lr": 1e-3, "img_size": 32,
            "bn_stats": BN_STATS[1], "epoch": LAST, "gpu": -1},
}
DEMO_PRESET = "cpu"


def preset_settings(name: str) -> dict[str, Any]:
    """Every setting of training and testing, and the descriptor images' side, as preset ``name``
    gives them (its values over the defaults)."""
    return {**defaults(TrainConfig), **defaults(TestConfig), "img_size": DEFAULT_IMG_SIZE, **PRESETS[name]}


def defaults(config: type) -> dict[str, Any]:
    """{field: default} of a config class (default factories called)."""
    out = {}
    for f in dataclasses.fields(config):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def set_parser_defaults(parser: argparse.ArgumentParser, config: type) -> argparse.ArgumentParser:
    """Give ``parser``'s options the defaults of ``config``'s fields (its options are the fields)."""
    parser.set_defaults(**defaults(config))
    return parser


def from_args(config: type, args: argparse.Namespace):
    """A config from parsed command-line options: every field taken by name, an option that is
    not a field refused (TypeError names it)."""
    return config(**vars(args))
