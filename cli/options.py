"""The command-line options the scripts share, written once: one name, default and help each.

The README's single-dash flags (``-d -p -dspath -despth -a -desc -gpu``, as the authors' release
spells them) are kept, and every one is also accepted in the double-dash form (``--dspath``).
``--help`` shows each option's default. Default paths are the README's layout, relative to the
current folder; errors about paths print them absolute (``shown``).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from descriptors.core import DEFAULT_IMG_SIZE
import descriptors.registry as registry
from descriptors.names import DESCRIPTORS, FUSION, check_descriptor, fused_name, is_fused
from models.config import PRESETS, RunConfig, TestConfig, defaults
from skeletons.custom import register_custom_dataset
from skeletons.datasets import BUILTIN_DATASETS, CUSTOM
from skeletons.formats import FILE_DATASETS
from skeletons.layouts import shipped_layouts
from skeletons.reading import MODES

DATASET_CHOICES = (*BUILTIN_DATASETS, CUSTOM, *FILE_DATASETS)
PROTOCOL_HELP = "protocol: csub or cview (NTU-60), csub or csetup (NTU-120); default: the dataset's first " \
                "(csub; NW-UCLA has only cview, a custom dataset only split, its labels.csv's; -d pyskl: the " \
                "prefix of a split pair of the file, e.g. xsub for xsub_train/xsub_val; -d ctrgcn: split)"

RUN = defaults(RunConfig)   # the defaults the scripts share with training and testing


# name -> (flags, argparse keyword arguments). Scripts may override required/default/choices only
# where an option means something narrower there (e.g. -d of skels2desc_ucla.py can only be ucla).
OPTIONS: dict[str, tuple[tuple[str, ...], dict]] = {
    "dataset": (("-d", "--dataset"), {"choices": DATASET_CHOICES, "help": "dataset"}),
    "protocol": (("-p", "--protocol"), {"default": None, "help": PROTOCOL_HELP}),
    "data": (("--data",), {"metavar": "ROOT", "default": None,
                           "help": "-d custom: your dataset folder (ROOT/skeletons/<sample>.npy, ROOT/labels.csv, "
                                   "ROOT/classes.txt; README: Your own skeletons); -d pyskl: a PYSKL annotation "
                                   ".pkl; -d ctrgcn: a CTR-GCN NTU .npz (unpacked once into data/<pyskl|ctrgcn>/"
                                   "<file stem>; docs/CUSTOM_DATA.md)"}),
    "layout": (("--layout",), {"metavar": "FILE_OR_NAME", "default": None,
                               "help": "joint layout of your own skeletons (-d custom; -d pyskl/ctrgcn: default the "
                                       "shipped one that fits the file's joints and values; visualize.py: of a .npy "
                                       "sample): a layout .json file or a shipped one "
                                       f"({', '.join(shipped_layouts())})"}),
    "label_map": (("--label-map",), {"metavar": "FILE", "default": None,
                                     "help": "-d pyskl/ctrgcn: class names, one per line, label 0 first (default: "
                                             "NTU RGB+D's for NTU samples, else 'class 0', 'class 1', ...)"}),
    "desc": (("-desc", "--desc"), {"choices": (*registry.names(), FUSION), "default": FUSION,
                                   "help": "GD, JDD, ADD, LAD or FDD (or a descriptor of yours): one descriptor's "
                                           "ResNet_c; all: Fuse5, or the fusion network of --descriptors (in "
                                           "test/predict: the single models and the fusion network); train.py and test.py "
                                           "also take a comma list (GD,JDD,all): each name its own run, one after "
                                           "another, the exit status the worst of them"}),
    "descriptors": (("--descriptors",), {"metavar": "D1,D2,...", "default": None,
                                         "help": "the set of descriptors: the folders skels2desc makes, the "
                                                 "single models and fusion network that -desc all trains, tests, "
                                                 "predicts with and exports (default: the paper's five, "
                                                 f"{','.join(DESCRIPTORS)}; known now: {','.join(registry.names())}; "
                                                 "yours: a module in descriptors/extra/, docs/EXTENDING.md)"}),
    "gpu": (("-gpu", "--gpu"), {"type": int, "default": RUN["gpu"],
                                "help": "CUDA device index; -1 = CPU (also used when there is no CUDA); under "
                                        "torchrun each process takes its LOCAL_RANK"}),
    "dspath": (("-dspath", "--dspath"), {"default": None,
                                         "help": "folder of the sequence files: txt2npy's .skeleton.npy (NTU) or "
                                                 "the all_sqe .json files (NW-UCLA); default: the README layout "
                                                 "(data/ntu/npy60skel, data/ntu/npy120skel, data/ucla)"}),
    "despth": (("-despth", "--despth"), {"default": RUN["despth"],
                                         "help": "root folder of the descriptor image folders"}),
    "ckpt": (("-ckpt", "--ckpt"), {"default": RUN["ckpt"], "help": "checkpoint folder"}),
    "part": (("-a", "--part"), {"choices": ("train", "test"), "help": "split"}),
    "txt": (("-txt", "--txt"), {"default": None, "help": "the raw .skeleton files: a folder, or the official zip "
                                                         "as downloaded (read without unzipping; txt2npy.py takes "
                                                         "several, e.g. NTU-120's two zips); default: the README "
                                                         "layout (data/ntu/txt60skel, data/ntu/txt120skel)"}),
    "npy": (("-npy", "--npy"), {"default": None, "help": "folder of the converted .skeleton.npy files; default: the "
                                                         "README layout (data/ntu/npy60skel, data/ntu/npy120skel)"}),
    "missing": (("-missing", "--missing"), {"metavar": "FILE", "default": None,
                                            "help": "missing-skeleton list to skip (either official form); default: "
                                                    "the official list shipped with the package"}),
    "processes": (("-workers", "--workers"), {"type": int, "default": None,
                                              "help": "processes for converting files and making images "
                                                      "(default: all cores)"}),
    "loader_workers": (("-workers", "--workers"), {"type": int, "default": RUN["workers"],
                                                   "help": "data-loading processes (default: min(4, cores); "
                                                           "0 loads in the main process)"}),
    "mode": (("--mode",), {"default": MODES[0], "choices": MODES,
                           "help": "descriptor mode: paper = the release's images, quirks included; clean = "
                                   "quirks fixed, bodies selected (docs/METHOD.md)"}),
    "img_size": (("--img-size",), {"type": int, "default": DEFAULT_IMG_SIZE, "help": "side of the descriptor images in pixels"}),
    "epoch": (("--epoch",), {"default": defaults(TestConfig)["epoch"], "help": "checkpoint: best, last, or an epoch number"}),
    "preset": (("--preset",), {"choices": tuple(PRESETS), "default": None,
                               "help": "named settings, which the flags given override: release (the defaults) "
                                       "or cpu (the demo's recipe for a CPU: width 1/16, lr 1e-3, batch 16, 15 "
                                       "epochs, per-descriptor BN statistics, the last epoch tested, 32-px images "
                                       "made by skels2desc --img-size 32); docs/WORKFLOW.md"}),
    "wait": (("--wait",), {"action": "store_true",
                           "help": "if another run holds what this one needs (a split being written, a training "
                                   "of the same checkpoints, folders being read), wait for it instead of exiting"}),
    "overwrite": (("--overwrite",), {"action": "store_true",
                                     "help": "redo finished work instead of keeping it: txt2npy converts every file "
                                             "again, skels2desc remakes every image of the split, train.py deletes "
                                             "the model's checkpoints and log and starts over, pipeline.py does all "
                                             "of these"}),
    "no_progress": (("--no-progress",), {"action": "store_true", "help": "no progress bars"}),
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The module docstring as written, and each option's default in its help (options whose help
    already says what the default is, and flags, say nothing more)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def parser(doc: str | None) -> argparse.ArgumentParser:
    # allow_abbrev=False: an abbreviation is never completed (`--epoch 20` given to train.py is not
    # `--epochs 20`, which would extend a finished model)
    return argparse.ArgumentParser(description=doc, formatter_class=HelpFormatter, allow_abbrev=False)


def add(p: argparse.ArgumentParser, name: str, **overrides) -> argparse.Action:
    """Add the shared option ``name`` to ``p`` (its flags, default and help from OPTIONS)."""
    flags, kwargs = OPTIONS[name]
    kwargs = {**kwargs, **overrides}
    if kwargs.get("action") != "store_true":
        kwargs.setdefault("dest", name if name not in ("processes", "loader_workers") else "workers")
    return p.add_argument(*flags, **kwargs)


def add_dataset(p: argparse.ArgumentParser, **overrides) -> None:
    """-d with its --data, --layout and --label-map (which name a custom or one-file dataset)."""
    add(p, "dataset", **overrides)
    add(p, "data")
    add(p, "layout")
    add(p, "label_map")


MODEL_NAMES = (*registry.names(), FUSION)   # what -desc names


def descriptor_set(text: str | None) -> tuple[str, ...]:
    """--descriptors as a set in the registry's order (None: the paper's five); an unknown name is
    refused in one line naming the known ones and any file of descriptors/extra/ that did not load."""
    if text is None:
        return DESCRIPTORS
    names = [name.strip() for name in str(text).split(",") if name.strip()]
    if not names:
        raise ValueError(f"--descriptors {text!r}: name at least one descriptor (e.g. GD,JDD)")
    try:
        return registry.ordered(names)
    except ValueError as e:
        raise ValueError(f"--descriptors {text}: {e}") from None


def model_name(desc: str, descriptors: str | None) -> str:
    """A -desc name as the models' files name it: 'all' is the fusion network of --descriptors
    ('all' for the five, 'all-GD-JDD-JVD' for another set)."""
    return fused_name(descriptor_set(descriptors)) if desc == FUSION else desc


def add_desc_list(p: argparse.ArgumentParser, **overrides) -> argparse.Action:
    """-desc as train.py and test.py take it: one name or a comma list, checked by ``desc_names``."""
    return add(p, "desc", choices=None, metavar="DESC[,DESC...]", **overrides)


def desc_names(text: str, descriptors: str | None = None) -> list[str]:
    """The -desc list's model names in order (a repeated name once; 'all' the fusion network of
    ``descriptors``, ``model_name``); a name that is none of MODEL_NAMES is refused in one line naming it."""
    names = [name.strip() for name in str(text).split(",")]
    for name in names:
        if is_fused(name) and name != FUSION:   # a fusion network's own name ('all-GD-JDD-JVD')
            check_descriptor(name, allow_fusion=True)
        elif name not in (known := (*registry.names(), FUSION)):
            near = next((d for d in known if d.lower() == name.lower()), None)
            hint = f" (did you mean {near}?)" if near else ""
            raise ValueError(f"-desc {text}: {name!r} is not a model name{hint}; give one or more of "
                             f"{', '.join(known)}, comma-separated (-desc GD,JDD,{FUSION})"
                             + ("" if near else "; a descriptor of yours is a module in descriptors/extra/ "
                                                "(docs/EXTENDING.md)"))
    return list(dict.fromkeys(model_name(name, descriptors) for name in names))


def parse(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse ``argv``; with --preset, the preset's values are the defaults of the options it names,
    so flags given on the command line still win."""
    known, _ = parser.parse_known_args(argv)
    if getattr(known, "preset", None):
        dests = {action.dest for action in parser._actions}
        parser.set_defaults(**{k: v for k, v in PRESETS[known.preset].items() if k in dests})
    return parser.parse_args(argv)


def setup_dataset(args: argparse.Namespace) -> None:
    """Make ``-d custom --data ROOT --layout FILE_OR_NAME`` or ``-d pyskl|ctrgcn --data FILE`` a dataset
    of the table (the folder or file and the layout are read and checked here: one-line ValueError);
    refuse --data, --layout or --label-map without them."""
    data, layout = getattr(args, "data", None), getattr(args, "layout", None)
    label_map = getattr(args, "label_map", None)
    if args.dataset == CUSTOM:
        if not data or not layout:
            raise ValueError(f"-d {CUSTOM} needs --data ROOT (the dataset folder) and --layout FILE_OR_NAME "
                             f"(a layout file or one of {', '.join(shipped_layouts())})")
        if label_map:
            raise ValueError(f"--label-map is for -d {' or '.join(FILE_DATASETS)}; a custom dataset's classes are "
                             f"its classes.txt")
        register_custom_dataset(data, layout)
    elif args.dataset in FILE_DATASETS:
        what, register = FILE_DATASETS[args.dataset]
        if not data:
            raise ValueError(f"-d {args.dataset} needs --data FILE ({what})")
        register(data, layout, label_map)
    elif data or layout or label_map:
        raise ValueError(f"--data, --layout and --label-map are for -d {CUSTOM} or {' or '.join(FILE_DATASETS)}: "
                         f"add -d, or drop them")


def shown(path: str | Path) -> str:
    """A path as errors print it: absolute, so a run from another folder says where it looked."""
    return os.path.abspath(os.fspath(path))
