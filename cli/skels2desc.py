"""skels2desc_ntu.py, skels2desc_ucla.py and skels2desc_custom.py: one front end over
descriptors.extract.extract_split (the README's flags, each also in the double-dash form)."""
from __future__ import annotations

import argparse
import sys

from common.errors import one_line_run
from common.locks import LockHeldError
from descriptors.extract import DEFAULT_PNG_LEVEL, ENGINES, default_device, extract_split
from skeletons.datasets import CUSTOM, default_protocol, get_dataset

from . import options as cli


def build_parser(datasets: tuple[str, ...], doc: str | None = None) -> argparse.ArgumentParser:
    """The README's flags (each also in the double-dash form); NW-UCLA (one dataset) needs no -d or -p,
    a custom dataset its --data and --layout instead of -dspath."""
    parser = cli.parser(doc or "Turn a split's skeleton sequences into descriptor image folders (the paper's "
                               "five, GD, JDD, ADD, LAD, FDD, or the --descriptors set).")
    default = len(datasets) == 1 or CUSTOM in datasets   # skels2desc_custom.py: -d custom unless told
    cli.add(parser, "dataset", choices=datasets, required=not default, default=datasets[0] if default else None)
    if CUSTOM in datasets:
        cli.add(parser, "data", required=True)
        cli.add(parser, "layout")
        cli.add(parser, "label_map")
        cli.add(parser, "protocol")
    else:
        if len(get_dataset(datasets[0]).protocols) > 1:
            cli.add(parser, "protocol")
        cli.add(parser, "dspath")
    cli.add(parser, "despth")
    cli.add(parser, "part", required=True)
    cli.add(parser, "mode")
    cli.add(parser, "processes")
    cli.add(parser, "img_size")
    cli.add(parser, "descriptors")
    parser.add_argument("--engine", default="numpy", choices=ENGINES,
                        help="numpy: sample by sample in -workers processes; torch: batches on --device "
                             "(the same images either way)")
    parser.add_argument("--device", default=None,
                        help="torch engine's device: cpu, cuda or cuda:N (default: cuda when there is one, else cpu)")
    parser.add_argument("--png-level", type=int, default=DEFAULT_PNG_LEVEL,
                        help="zlib level 0..9 (1: about twice as fast as Pillow's default, same pixels)")
    cli.add(parser, "overwrite")
    cli.add(parser, "wait")
    cli.add(parser, "no_progress")
    parser.add_argument("--quiet", dest="no_progress", action="store_true", help="the same as --no-progress")
    return parser


def main(argv: list[str] | None, datasets: tuple[str, ...], doc: str | None = None) -> int:
    args = build_parser(datasets, doc).parse_args(argv)
    return one_line_run(lambda: extract(args), (OSError, ValueError, LockHeldError),
                        "the images written so far are kept and listed")


def extract(args: argparse.Namespace) -> int:
    """One split's extraction as the options say; its summary printed; 1 when a sample failed."""
    cli.setup_dataset(args)
    ds = get_dataset(args.dataset)
    protocol = default_protocol(args.dataset, getattr(args, "protocol", None))
    seq_dir = getattr(args, "dspath", None) or ds.seq_dir
    summary = extract_split(args.dataset, protocol, args.part, seq_dir, args.despth, mode=args.mode,
                            workers=args.workers, img_size=args.img_size, png_level=args.png_level,
                            overwrite=args.overwrite, progress=not args.no_progress, wait=args.wait,
                            on_wait=lambda message: print(f"waiting: {message}", file=sys.stderr),
                            engine=args.engine, device=args.device or default_device(),
                            descs=cli.descriptor_set(args.descriptors))
    print("\n".join(summary.lines()))
    if ds.custom is not None and ds.custom.unlisted:
        unlisted = ds.custom.unlisted
        print(f"  note: {len(unlisted)} file(s) in {seq_dir} not listed in labels.csv, not used "
              f"(first: {unlisted[0]}.npy)")
    return 0 if summary.ok else 1
