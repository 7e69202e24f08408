"""Convert NTU RGB+D .skeleton files to the official <id>.skeleton.npy format (docs/METHOD.md §1).

    python txt2npy.py                               # as the authors ran it: the README layout, said in one line
                                                    # (data/ntu/txt60skel -> data/ntu/npy60skel; NTU-120 if only
                                                    # data/ntu/txt120skel is there)
    python txt2npy.py -d ntu60 -txt nturgbd_skeletons_s001_to_s017.zip      # the download itself, no unzip
    python txt2npy.py -d ntu120 -txt nturgbd_skeletons_s001_to_s017.zip nturgbd_skeletons_s018_to_s032.zip
    python txt2npy.py -d ntu120 -txt DIR -npy DIR -workers 8
    python txt2npy.py -d ntu60 --check-complete     # list the samples absent from the npy folder

-txt takes folders and zips, one or more (-txt A.zip B.zip, or the flag repeated). Without -d: NTU-120
when a source is NTU-120's (its s018_to_s032 zip, a txt120skel folder), else NTU-60.
"""
from __future__ import annotations

import argparse
import os
import sys

from cli import options as cli
from common.errors import one_line_run
from skeletons.convert import check_complete, convert_folder, default_dataset
from skeletons.datasets import DATASETS

NTU_DATASETS = [name for name, ds in DATASETS.items() if ds.seq_suffix == ".skeleton.npy"]
PREFIX = "txt2npy.py: error: "


class JoinedSources(argparse.Action):
    """-txt A.zip B.zip (a shell glob), -txt A.zip -txt B.zip and -txt A.zip,B.zip all give
    "A.zip,B.zip": one string, as every script's -txt is (``sources`` splits it)."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = [getattr(namespace, self.dest)] if getattr(namespace, self.dest) else []
        setattr(namespace, self.dest, ",".join([*given, *values]))


def sources(txt: str | None) -> list[str] | None:
    """The folders and zips of -txt: split at commas, unless the whole is one existing path."""
    if not txt:
        return None
    return [txt] if os.path.exists(txt) else [part for part in txt.split(",") if part]


def get_args_parser() -> argparse.ArgumentParser:
    parser = cli.parser(__doc__)
    cli.add(parser, "dataset", choices=NTU_DATASETS)   # optional: without it, a line says which (default_dataset)
    cli.add(parser, "txt", nargs="+", action=JoinedSources, metavar="DIR_OR_ZIP")
    cli.add(parser, "npy")
    cli.add(parser, "missing")
    cli.add(parser, "processes")
    cli.add(parser, "overwrite")
    parser.add_argument("--include-missing", action="store_true",
                        help="also convert samples on the missing list (they fail: their frames have no body)")
    parser.add_argument("--check-complete", action="store_true",
                        help="only compare the npy folder with the official sample list and list what is absent")
    parser.add_argument("--show", type=int, default=20, help="ids listed by --check-complete (default 20)")
    cli.add(parser, "no_progress")
    return parser


def choose_dataset(args: argparse.Namespace) -> int:
    """Without -d: the dataset the sources or the README layout say, in one printed line."""
    if not args.dataset:
        args.dataset, line = default_dataset(sources(args.txt), args.npy, args.check_complete)
        print(line, flush=True)
    return 0


def main(args: argparse.Namespace) -> int:
    status = one_line_run(lambda: choose_dataset(args), (ValueError,), "nothing was converted", prefix=PREFIX)
    if status:
        return status
    ds = DATASETS[args.dataset]
    txt, npy_dir = sources(args.txt) or [ds.raw_dir], args.npy or ds.seq_dir

    def convert() -> int:
        if args.check_complete:
            result = check_complete(npy_dir, args.dataset, missing=args.missing)
            print(result.report(npy_dir, show=args.show))
            return 0 if not result.absent else 1
        summary = convert_folder(txt, npy_dir, args.dataset, missing=args.missing, workers=args.workers,
                                 overwrite=args.overwrite, include_missing=args.include_missing,
                                 progress=not args.no_progress)
        print(summary.report())
        return 0 if summary.ok else 1

    # every file converted before a stop is complete (written atomically)
    return one_line_run(convert, (OSError, ValueError), f"the files converted so far are kept in {npy_dir}",
                        prefix=PREFIX)


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
