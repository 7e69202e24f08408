"""One command from raw skeletons to results: the README's sequence for one dataset and protocol.

    python pipeline.py --demo                          # synthetic demo data, CPU, about a minute
    python pipeline.py --demo --layout coco17          # the demo's actions as COCO-17 2D keypoints
    python pipeline.py -d ntu60 -p csub -gpu 0         # txt2npy -> skels2desc -> train x6 -> test
    python pipeline.py -d ucla -gpu 0 --epochs 100
    python pipeline.py -d custom --data ROOT --layout my_layout.json -gpu 0    # your own skeletons

Each step runs the same code as its script (txt2npy.py, skels2desc_*.py, train.py, test.py) and
is skipped when its outputs are complete, so a second run, or a run after an interruption, only
does what is left.
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import torch

import test as test_script
import train as train_script
from cli import options as cli
from common.atomic import write_text_atomic
from descriptors import provenance
from descriptors.extract import extract_split
from descriptors.names import DEFAULT_DESCRIPTOR_ROOT, DESCRIPTORS, FUSION, FUSION_ORDER, descriptor_dir
from models.names import DEFAULT_CHECKPOINT_DIR, checkpoint_path, checkpoint_prefix
from models.networks import BN_STATS
from models.run_data import IMAGES, SKELETONS
from skeletons.convert import convert_folder, plan_conversion
from skeletons.datasets import CUSTOM, PARTS, default_protocol, get_dataset, sample_id, split_from_folder

DEMO_ROOT = Path("data/demo")
DEMO_MARKER = ".demo.json"  # what generated the demo data (seed, size); regenerated when it differs
# Small enough for 2 CPU cores in about a minute, large enough for the fused models to be right.
DEMO_DEFAULTS = {"dataset": "ntu60", "epochs": 15, "width": 0.0625, "batch_size": 16, "lr": 1e-3,
                 "img_size": 32, "bn_stats": "per-descriptor", "epoch": "last", "gpu": -1}
# Everything else runs as the README and the release do.
RELEASE_DEFAULTS = {"gpu": 0, "epochs": 50, "width": 1.0, "batch_size": 32, "img_size": 112, "lr": 1e-4,
                    "bn_stats": "shared", "epoch": "best"}
DEMO_DATASETS = ("ntu60", "ucla", CUSTOM)
DEMO_LAYOUT = "coco17"                 # the demo's custom dataset: its NTU actions as COCO-17 2D keypoints
DEMO_CUSTOM = DEMO_ROOT / DEMO_LAYOUT
MODELS = (*DESCRIPTORS, FUSION)


def get_args_parser() -> argparse.ArgumentParser:
    p = cli.parser(__doc__)
    p.add_argument("--demo", action="store_true", help="generate synthetic demo data in data/demo/ and run on CPU")
    p.add_argument("--demo-size", default="full", choices=["full", "small"], help="demo data size (small: tests)")
    p.add_argument("--seed", type=int, default=0, help="demo data and training seed")
    # Options whose default depends on --demo are None here; resolve() fills them in.
    cli.add_dataset(p)
    cli.add(p, "protocol")
    cli.add(p, "gpu", default=None, help="CUDA device index; -1 = CPU (default: 0; demo: -1)")
    cli.add(p, "txt", help="folder of raw .skeleton files (default: the README layout; demo: data/demo/ntu/txt60skel)")
    cli.add(p, "dspath")
    cli.add(p, "despth", default=None, help=f"root folder of the descriptor image folders (default: "
                                            f"{DEFAULT_DESCRIPTOR_ROOT}; demo: data/demo/descriptors)")
    cli.add(p, "ckpt", default=None, help=f"checkpoint folder (default: {DEFAULT_CHECKPOINT_DIR}; "
                                          f"demo: data/demo/checkpoints)")
    cli.add(p, "mode")
    cli.add(p, "img_size", default=None, help="side of the descriptor images in pixels (default: 112 as released; "
                                               "demo: 32)")
    p.add_argument("--epochs", type=int, help="training epochs per model (default 50; demo 15)")
    p.add_argument("--width", type=float, help="network channel multiplier (default 1.0; demo 1/16)")
    p.add_argument("--lr", type=float, help="base learning rate (default 1e-4 as released; demo 1e-3)")
    p.add_argument("--bn-stats", choices=BN_STATS, help="Fuse5 BatchNorm statistics (default shared as released; "
                   "demo per-descriptor, see train.py --help)")
    p.add_argument("--batch-size", type=int, help="training batch size (default 32; demo 16)")
    cli.add(p, "epoch", default=None, help="checkpoint evaluated: best, last or an epoch number (default: best, "
                                           "picked on the test split as released; demo: last, no selection on test data)")
    cli.add(p, "processes")
    p.add_argument("--amp", action="store_true", help="mixed precision training on CUDA")
    cli.add(p, "overwrite")
    p.add_argument("--source", default=IMAGES, choices=(IMAGES, SKELETONS),
                   help="images: make the descriptor folders, train and test on them (the README sequence); "
                        "skeletons: no image files, the images are made while training and testing")
    return p


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fill what the command line left open: the demo's small settings or the release's, and the
    demo's custom dataset (--demo --layout coco17, or --demo -d custom)."""
    if args.demo and not args.dataset and (args.layout or args.data):
        args.dataset = CUSTOM
    for key, value in ({**RELEASE_DEFAULTS, **DEMO_DEFAULTS} if args.demo else RELEASE_DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if not args.dataset:
        raise ValueError("-d is required (or --demo)")
    if args.demo and args.dataset not in DEMO_DATASETS:
        raise ValueError(f"the demo data covers {', '.join(DEMO_DATASETS)}, not {args.dataset}")
    if args.demo and args.dataset == CUSTOM:
        if args.data or args.layout not in (None, DEMO_LAYOUT):
            raise ValueError(f"--demo makes its own custom dataset, {DEMO_CUSTOM} with --layout {DEMO_LAYOUT}; "
                             f"drop --data and --layout, or drop --demo to run on your own data")
        args.data, args.layout = str(DEMO_CUSTOM), DEMO_LAYOUT
    return args


def resolve_paths(args: argparse.Namespace) -> argparse.Namespace:
    """The README layout's paths for what the command line left open (under data/demo/ for the demo)."""
    ds = get_dataset(args.dataset)
    args.protocol = default_protocol(args.dataset, args.protocol)
    if ds.custom is not None and args.dspath:
        raise ValueError(f"a custom dataset's sequences are in ROOT/skeletons of --data; drop -dspath {args.dspath}")
    # The demo mirrors the README layout under data/demo/ instead of data/.
    data = DEMO_ROOT if args.demo else Path("data")
    in_data = lambda readme_path: data / Path(readme_path).relative_to("data")  # noqa: E731
    args.txt = Path(args.txt or in_data(ds.raw_dir)) if ds.kind.needs_conversion else None
    args.dspath = Path(ds.seq_dir) if ds.custom is not None else Path(args.dspath or in_data(ds.seq_dir))
    args.despth = Path(args.despth or in_data(DEFAULT_DESCRIPTOR_ROOT))
    args.ckpt = Path(args.ckpt or (DEMO_ROOT / "checkpoints" if args.demo else DEFAULT_CHECKPOINT_DIR))
    return args


def dataset_argv(args: argparse.Namespace) -> list[str]:
    """-d, -p and (custom) --data and --layout, as train.py and test.py take them."""
    where = ["--data", str(args.data), "--layout", str(args.layout)] if args.dataset == CUSTOM else []
    return ["-d", args.dataset, "-p", args.protocol, *where]


# --------------------------------------------------------------------------- completeness checks

def demo_ready(root: Path, seed: int, size: str) -> bool:
    marker = root / DEMO_MARKER
    return marker.is_file() and json.loads(marker.read_text()) == {"seed": seed, "size": size}


def current_data(args: argparse.Namespace, part: str, name: str) -> dict | None:
    """What a model of descriptor ``name`` would read now in ``part``: the folder's record, or (from
    skeletons) what such a folder would record; None when nothing says."""
    if args.source == SKELETONS:
        return skeleton_split(args.dspath, args.dataset, args.protocol, part, args.mode).record(args.img_size, name)
    return provenance.read_record(descriptor_dir(args.despth, args.dataset, name, part, args.protocol))


@functools.lru_cache(maxsize=None)
def skeleton_split(seq_dir: Path, dataset: str, protocol: str, part: str, mode: str):
    """A split's sequence files, listed (and their sizes and mtimes read) once per run."""
    from descriptors.skeleton_source import SkeletonSequences
    return SkeletonSequences(seq_dir, dataset, protocol, part, mode)


def data_changed(args: argparse.Namespace, desc: str) -> bool:
    """True when the data a model was trained and tested on are no longer those of its split (a
    sample added, removed or replaced since): the model must be trained again."""
    from models.checkpoint import read_settings

    last = checkpoint_path(args.ckpt, args.dataset, args.protocol, desc, "last")
    recorded = (read_settings(last) or {}).get("data") if last.is_file() else None
    if not recorded:
        return False
    for part in PARTS:
        for name in (FUSION_ORDER if desc == FUSION else (desc,)):
            now = current_data(args, part, name)
            trained = (recorded.get(part) or {}).get(name) or {}
            if now is not None and any(trained.get(k) != now.get(k) for k in ("fingerprint", "sources")):
                return True
    return False


# --------------------------------------------------------------------------- steps

def loader_workers(args: argparse.Namespace) -> list[str]:
    """The demo's tiny cached images load fastest in the training process itself."""
    return ["--workers", "0"] if args.demo else []


def step(name: str, detail: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {detail}", flush=True)


def run_demo_data(args: argparse.Namespace) -> None:
    from demo.generate import generate_coco17, generate_demo

    root = DEMO_CUSTOM if args.dataset == CUSTOM else DEMO_ROOT
    if demo_ready(root, args.seed, args.demo_size):
        step("demo data", f"already in {root} (seed {args.seed}, {args.demo_size})")
        return
    if args.dataset == CUSTOM:
        counts = generate_coco17(root, seed=args.seed, size=args.demo_size)
        made = f"{counts['coco17']} COCO-17 2D samples (a custom dataset) in {root}"
    else:
        counts = generate_demo(root, seed=args.seed, size=args.demo_size)
        made = f"{counts['ntu']} NTU .skeleton and {counts['ucla']} NW-UCLA .json files in {root}"
    write_text_atomic(root / DEMO_MARKER, json.dumps({"seed": args.seed, "size": args.demo_size}))
    step("demo data", made)


def run_convert(args: argparse.Namespace) -> None:
    planned, pending = plan_conversion(args.txt, args.dspath, args.dataset)
    if not pending and planned.ok:
        step("txt2npy", f"complete ({args.dspath})")
        return
    step("txt2npy", f"{len(pending)} files to convert: {args.txt} -> {args.dspath}")
    summary = convert_folder(args.txt, args.dspath, args.dataset, workers=args.workers, progress=True)
    print(summary.report())
    if not summary.ok:
        raise RuntimeError("txt2npy failed for some files (listed above); fix or remove them and run again")


def run_descriptors(args: argparse.Namespace) -> None:
    """Bring both splits' folders in line with the sequence files: extraction itself keeps what is
    right, remakes what changed and refuses folders made in another mode or size."""
    for part in PARTS:
        summary = extract_split(args.dataset, args.protocol, part, args.dspath, args.despth, mode=args.mode,
                                workers=args.workers, img_size=args.img_size, overwrite=args.overwrite)
        if summary.ok and not (summary.written or summary.renamed or summary.removed):
            step(f"descriptors {part}", f"complete ({args.despth}, {summary.total} samples)")
            continue
        step(f"descriptors {part}", f"{args.dataset} {args.protocol} -> {args.despth} ({args.mode} mode, "
                                    f"{args.img_size} px)")
        print("\n".join(summary.lines()))
        if not summary.ok:
            raise RuntimeError(f"descriptor extraction failed for some {part} samples (listed above)")


def run_training(args: argparse.Namespace) -> None:
    """Train the six models; train.py itself skips a finished model, resumes an unfinished one and
    refuses other settings. A model whose images changed is trained again from scratch."""
    for desc in MODELS:
        prefix = checkpoint_prefix(args.dataset, args.protocol, desc)
        argv = [*dataset_argv(args), "-desc", desc, "-gpu", str(args.gpu), *source_argv(args),
                "-ckpt", str(args.ckpt), "--epochs", str(args.epochs),
                "--width", str(args.width), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
                "--bn-stats", args.bn_stats, "--seed", str(args.seed),
                "--mode", args.mode, "--cache", "--no-progress", *loader_workers(args)]
        if args.amp:
            argv.append("--amp")
        if args.overwrite:
            argv.append("--overwrite")
        elif data_changed(args, desc):
            step(f"train {desc}", f"{prefix}: its images changed since it was trained; training it again")
            argv.append("--overwrite")
        if train_script.main(train_script.get_args_parser().parse_args(argv)) != 0:
            raise RuntimeError(f"training {prefix} failed (see above)")


def source_argv(args: argparse.Namespace, size: bool = True) -> list[str]:
    """Where train.py and test.py read the data: the descriptor folders, or the sequence files
    (--source skeletons; train.py also takes the image size there, with no folders to read it from;
    test.py takes it from the checkpoints)."""
    if args.source != SKELETONS:
        return ["-despth", str(args.despth)]
    return ["--source", SKELETONS, "-dspath", str(args.dspath)] + (["--img-size", str(args.img_size)] if size else [])


def run_test(args: argparse.Namespace) -> None:
    step("test", f"{args.dataset} {args.protocol}: five ResNet_c, Fuse5 and their fusions")
    argv = [*dataset_argv(args), "-desc", FUSION, "-gpu", str(args.gpu), *source_argv(args, size=False),
            "-ckpt", str(args.ckpt), "--epoch", args.epoch, *loader_workers(args)]
    if test_script.main(test_script.get_args_parser().parse_args(argv)) != 0:
        raise RuntimeError("evaluation failed (see above)")


def run_figure(args: argparse.Namespace) -> Path:
    """The first test sample beside its five descriptor images (as visualize.py draws it)."""
    from descriptors.figures import file_figure

    ds = get_dataset(args.dataset)
    path = split_from_folder(args.dspath, args.dataset, args.protocol, "test")[0]
    out = args.ckpt / f"{sample_id(path)}_descriptors.png"
    file_figure(path, out, args.mode, args.img_size, kind=ds.kind, layout=ds.layout)
    return out


def main(args: argparse.Namespace) -> int:
    start = time.time()
    try:
        args = resolve(args)
        if args.demo:
            # The demo's tiny networks lose far more to OpenMP threads contending for busy
            # cores than they gain from them (9 vs 490 img/s measured on 2 loaded cores).
            torch.set_num_threads(1)
        if args.demo:
            run_demo_data(args)
        cli.setup_dataset(args)
        args = resolve_paths(args)
        if args.txt is not None:
            run_convert(args)
        if args.source == SKELETONS:
            step("descriptors", "none on disk: made batch by batch while training (--source skeletons)")
        else:
            run_descriptors(args)
        run_training(args)
        run_test(args)
        figure = run_figure(args)
    except (OSError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    step("done", f"{time.time() - start:.0f} s. results JSON and confusion matrix in "
                 f"{args.ckpt}/; a sample and its five descriptor images: {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
