"""One command from raw skeletons to results: the README's sequence for one dataset and protocol.

    python pipeline.py --demo                          # synthetic demo data, CPU, about 30 s on 2 cores
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

from cli import test as test_cli, train as train_cli
from cli import options as cli
from common.atomic import write_text_atomic
from common.errors import INTERRUPTED_STATUS, one_line_run
from descriptors import provenance
from descriptors.extract import extract_split
from descriptors.names import DEFAULT_DESCRIPTOR_ROOT, FUSION, descriptor_dir, fused_inputs, is_fused, model_names
from models.names import DEFAULT_CHECKPOINT_DIR, TENSORBOARD_DIR, curves_path, LAST, checkpoint_path, checkpoint_prefix, keep_run_files
from models.config import BN_STATS, DEMO_PRESET, IMAGES, SKELETONS, TestConfig, TrainConfig, preset_settings
from skeletons.convert import convert_folder, plan_conversion, stale_conversions
from skeletons.datasets import CUSTOM, PARTS, Split, default_protocol, get_dataset, sample_id, split_from_folder

DEMO_ROOT = Path("data/demo")
DEMO_MARKER = ".demo.json"  # what generated the demo data (seed, size); regenerated when it differs
# The options pipeline.py leaves open: --preset's values, else the cpu preset's with --demo, else the release's.
PRESET_OPTIONS = ("gpu", "epochs", "width", "batch_size", "img_size", "lr", "bn_stats", "epoch")
DEMO_DATASETS = ("ntu60", "ucla", CUSTOM)   # the first is the demo's without -d
DEMO_LAYOUT = "coco17"                 # the demo's custom dataset: its NTU actions as COCO-17 2D keypoints
DEMO_CUSTOM = DEMO_ROOT / DEMO_LAYOUT


def run_models(args: argparse.Namespace) -> list[str]:
    """The models the pipeline trains: each descriptor of --descriptors (default the five) and
    their fusion network (Fuse5 for the five)."""
    return model_names(cli.model_name(FUSION, args.descriptors))


def preset_help(key: str) -> str:
    """'(default: <release value>; demo and --preset cpu: <its value>)' for an option the presets fill in."""
    return f"(default: {preset_settings('release')[key]}; demo and --preset cpu: {preset_settings(DEMO_PRESET)[key]})"


def get_args_parser() -> argparse.ArgumentParser:
    p = cli.parser(__doc__)
    p.add_argument("--demo", action="store_true", help="generate synthetic demo data in data/demo/ and run on CPU")
    p.add_argument("--demo-size", default="full", choices=["full", "small"], help="demo data size (small: tests)")
    p.add_argument("--seed", type=int, default=0, help="demo data and training seed")
    # Options whose default depends on --demo are None here; resolve() fills them in.
    cli.add_dataset(p)
    cli.add(p, "protocol")
    cli.add(p, "gpu", default=None, help=f"CUDA device index; -1 = CPU {preset_help('gpu')}")
    cli.add(p, "txt", help="folder of raw .skeleton files (default: the README layout; demo: data/demo/ntu/txt60skel)")
    cli.add(p, "dspath")
    cli.add(p, "despth", default=None, help=f"root folder of the descriptor image folders (default: "
                                            f"{DEFAULT_DESCRIPTOR_ROOT}; demo: data/demo/descriptors)")
    cli.add(p, "ckpt", default=None, help=f"checkpoint folder (default: {DEFAULT_CHECKPOINT_DIR}; "
                                          f"demo: data/demo/checkpoints)")
    cli.add(p, "mode")
    cli.add(p, "img_size", default=None, help=f"side of the descriptor images in pixels {preset_help('img_size')}")
    cli.add(p, "descriptors")
    p.add_argument("--ablation", action="store_true",
                   help="the test step also fuses every subset of the single models (test.py --ablation)")
    p.add_argument("--epochs", type=int, help=f"training epochs per model {preset_help('epochs')}")
    p.add_argument("--width", type=float, help=f"network channel multiplier {preset_help('width')}")
    p.add_argument("--lr", type=float, help=f"base learning rate {preset_help('lr')}")
    p.add_argument("--bn-stats", choices=BN_STATS, help=f"Fuse5 BatchNorm statistics, see train.py --help {preset_help('bn_stats')}")
    p.add_argument("--batch-size", type=int, help=f"training batch size {preset_help('batch_size')}")
    cli.add(p, "epoch", default=None, help=f"checkpoint evaluated: best (picked on the test split, as released), "
                                           f"last (no selection on test data) or an epoch number {preset_help('epoch')}")
    cli.add(p, "processes")
    cli.add(p, "preset")
    p.add_argument("--amp", action="store_true", help="mixed precision training on CUDA")
    cli.add(p, "overwrite")
    cli.add(p, "wait")   # the steps' own refusals suggest it
    p.add_argument("--source", default=IMAGES, choices=(IMAGES, SKELETONS),
                   help="images: make the descriptor folders, train and test on them (the README sequence); "
                        "skeletons: no image files, the images are made while training and testing")
    return p


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fill what the command line left open: the demo's small settings or the release's, and the
    demo's custom dataset (--demo --layout coco17, or --demo -d custom)."""
    if args.demo and not args.dataset:
        args.dataset = CUSTOM if args.layout or args.data else DEMO_DATASETS[0]
    settings = preset_settings(args.preset or (DEMO_PRESET if args.demo else "release"))
    for key in PRESET_OPTIONS:
        if getattr(args, key) is None:
            setattr(args, key, settings[key])
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
        raise ValueError(f"-d {args.dataset} reads its sequences from --data {args.data}; drop -dspath {args.dspath}")
    # The demo mirrors the README layout under data/demo/ instead of data/.
    data = DEMO_ROOT if args.demo else Path("data")
    in_data = lambda readme_path: data / Path(readme_path).relative_to("data")  # noqa: E731
    args.txt = Path(args.txt or in_data(ds.raw_dir)) if ds.kind.needs_conversion else None
    args.dspath = Path(ds.seq_dir) if ds.custom is not None else Path(args.dspath or in_data(ds.seq_dir))
    args.despth = Path(args.despth or in_data(DEFAULT_DESCRIPTOR_ROOT))
    args.ckpt = Path(args.ckpt or (DEMO_ROOT / "checkpoints" if args.demo else DEFAULT_CHECKPOINT_DIR))
    return args


# --------------------------------------------------------------------------- completeness checks

def demo_ready(root: Path, seed: int, size: str) -> bool:
    marker = root / DEMO_MARKER
    return marker.is_file() and json.loads(marker.read_text()) == {"seed": seed, "size": size}


def current_data(args: argparse.Namespace, part: str, name: str) -> dict | None:
    """What a model of descriptor ``name`` would read now in ``part``: the folder's record, or (from
    skeletons) what such a folder would record; None when nothing says."""
    split = Split.of(args.dataset, args.protocol, part)
    if args.source == SKELETONS:
        return skeleton_split(args.dspath, split, args.mode).record(args.img_size, name)
    return provenance.read_record(descriptor_dir(args.despth, split, name))


@functools.lru_cache(maxsize=None)
def skeleton_split(seq_dir: Path, split: Split, mode: str):
    """A split's sequence files, listed (and their sizes and mtimes read) once per run."""
    from descriptors.skeleton_source import SkeletonSequences
    return SkeletonSequences(seq_dir, split.dataset, split.protocol, split.part, mode)


def data_changed(args: argparse.Namespace, desc: str) -> bool:
    """True when the data a model was trained and tested on are no longer those of its split (a
    sample added, removed or replaced since): the model must be trained again."""
    from models.checkpoint import read_settings

    last = checkpoint_path(args.ckpt, args.dataset, args.protocol, desc, LAST)
    recorded = (read_settings(last) or {}).get("data") if last.is_file() else None
    if not recorded:
        return False
    for part in PARTS:
        for name in (fused_inputs(desc) if is_fused(desc) else (desc,)):
            now = current_data(args, part, name)
            trained = (recorded.get(part) or {}).get(name) or {}
            if now is not None and any(trained.get(k) != now.get(k) for k in ("fingerprint", "sources")):
                return True
    return False


# --------------------------------------------------------------------------- steps

class StepInterrupted(Exception):
    """Ctrl-C during training or testing, which told the user in their own line."""


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
    """Make the converted folder follow its raw folder: convert what is new or changed, and remove
    what no raw file stands for any more (as skels2desc makes the descriptor folders follow)."""
    orphans, outdated = stale_conversions(args.txt, args.dspath)
    for path in orphans + outdated:
        path.unlink()
    if orphans:
        step("txt2npy", f"removed {len(orphans)} converted file(s) whose .skeleton is gone from {args.txt} "
                        f"(first: {orphans[0].name})")
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
                                workers=args.workers, img_size=args.img_size, overwrite=args.overwrite,
                                descs=cli.descriptor_set(args.descriptors), wait=args.wait, on_wait=lambda line: step(f"descriptors {part}", f"waiting: {line}"))
        if summary.ok and not (summary.written or summary.renamed or summary.removed):
            step(f"descriptors {part}", f"complete ({args.despth}, {summary.total} samples)")
            continue
        step(f"descriptors {part}", f"{args.dataset} {args.protocol} -> {args.despth} ({args.mode} mode, "
                                    f"{args.img_size} px)")
        print("\n".join(summary.lines()))
        if not summary.ok:
            raise RuntimeError(f"descriptor extraction failed for some {part} samples (listed above)")


def run_training(args: argparse.Namespace) -> None:
    """Train the six models (or the --descriptors set's and their fusion network); training itself skips a
    finished model, resumes an unfinished one and refuses other settings. A model whose images
    changed is trained again from scratch."""
    for desc in run_models(args):
        prefix = checkpoint_prefix(args.dataset, args.protocol, desc)
        config = TrainConfig(**run_place(args), desc=desc, epochs=args.epochs, width=args.width,
                             batch_size=args.batch_size, lr=args.lr, bn_stats=args.bn_stats, seed=args.seed,
                             mode=args.mode, cache=True, no_progress=True, amp=args.amp, overwrite=args.overwrite,
                             **({"img_size": args.img_size} if args.source == SKELETONS else {}))
        if not args.overwrite and data_changed(args, desc):   # said, and the finished model kept
            kept = keep_run_files(args.ckpt, prefix)
            step(f"train {desc}", f"{prefix}: its images changed since it was trained; the earlier model's files "
                                  f"are kept in {kept}; training it again")
        if (status := train_cli.run(config)) == INTERRUPTED_STATUS:
            raise StepInterrupted()
        if status != 0:
            raise RuntimeError(f"training {prefix} failed (see above)")


def run_place(args: argparse.Namespace) -> dict:
    """Where training and testing find the data and the models, as RunConfig fields: the descriptor
    folders, or the sequence files (--source skeletons); the demo's tiny cached images load fastest
    in the process itself (no loader workers)."""
    place = {"dataset": args.dataset, "protocol": args.protocol, "gpu": args.gpu, "ckpt": str(args.ckpt),
             "source": args.source, "wait": args.wait, **({"workers": 0} if args.demo else {})}
    if get_dataset(args.dataset).custom is not None:   # a custom or one-file dataset: where it is
        place.update(data=args.data, layout=args.layout, label_map=args.label_map)
    if args.source == SKELETONS:
        return {**place, "dspath": str(args.dspath)}
    return {**place, "despth": str(args.despth)}


def run_test(args: argparse.Namespace) -> None:
    *singles, fused = run_models(args)
    step("test", f"{args.dataset} {args.protocol}: ResNet_c of {', '.join(singles)}, "
                 f"{'Fuse5' if fused == FUSION else fused} and their fusions")
    config = TestConfig(**run_place(args), desc=FUSION, descriptors=args.descriptors, epoch=args.epoch,
                        ablation=args.ablation)
    if (status := test_cli.run(config)) == INTERRUPTED_STATUS:
        raise StepInterrupted()
    if status != 0:
        raise RuntimeError("evaluation failed (see above)")


def run_figure(args: argparse.Namespace) -> Path:
    """The first test sample beside its descriptor images (the --descriptors set's, as visualize.py
    draws them); in clean mode the first one it does not exclude."""
    from descriptors.core import ExcludedSequence
    from descriptors.figures import file_figure

    ds = get_dataset(args.dataset)
    for path in split_from_folder(args.dspath, Split.of(args.dataset, args.protocol, "test")):
        # named with the dataset too: the demo's NTU actions and their COCO-17 copies share sample ids
        out = args.ckpt / f"{args.dataset}_{sample_id(path)}_descriptors.png"
        try:
            file_figure(path, out, args.mode, args.img_size, kind=ds.kind, layout=ds.layout, dataset=args.dataset,
                        descs=cli.descriptor_set(args.descriptors))
        except ExcludedSequence:
            continue
        return out
    raise ValueError(f"{args.dspath}: no test sample to draw")


def main(args: argparse.Namespace) -> int:
    return one_line_run(lambda: run_steps(args), (OSError, ValueError, RuntimeError),
                        "finished steps and saved epochs are kept")


def run_steps(args: argparse.Namespace) -> int:
    """Every step of the README's sequence, each skipped when its outputs are complete."""
    start = time.time()
    args = resolve(args)
    if args.demo:
        # The demo's tiny networks lose far more to OpenMP threads contending for busy
        # cores than they gain from them (9 vs 490 img/s measured on 2 loaded cores).
        torch.set_num_threads(1)
        run_demo_data(args)
    cli.setup_dataset(args)
    args = resolve_paths(args)
    if args.txt is not None:
        run_convert(args)
    if args.source == SKELETONS:
        step("descriptors", "none on disk: made batch by batch while training (--source skeletons)")
    else:
        run_descriptors(args)
    try:
        run_training(args)
        run_test(args)
    except StepInterrupted:   # the step said so in its own line
        return INTERRUPTED_STATUS
    figure = run_figure(args)
    fuse5 = checkpoint_prefix(args.dataset, args.protocol, FUSION)
    curves = curves_path(args.ckpt, fuse5.removesuffix(FUSION) + "<DESC>")
    step("done", f"{time.time() - start:.0f} s. results JSON and confusion matrix in "
                 f"{args.ckpt}/; a sample and its descriptor images: {figure}; training curves: {curves} "
                 f"(TensorBoard: tensorboard --logdir {Path(args.ckpt) / TENSORBOARD_DIR})")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
