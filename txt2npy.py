"""Convert NTU RGB+D .skeleton files to the official <id>.skeleton.npy format (docs/METHOD.md §1).

    python txt2npy.py -d ntu60                      # data/ntu/txt60skel -> data/ntu/npy60skel
    python txt2npy.py -d ntu120 -txt DIR -npy DIR -workers 8
    python txt2npy.py -d ntu60 --check-complete     # list the samples absent from the npy folder
"""
from __future__ import annotations

import argparse
import sys

from cli import options as cli
from common.errors import one_line_run
from skeletons.convert import check_complete, convert_folder
from skeletons.datasets import DATASETS

NTU_DATASETS = [name for name, ds in DATASETS.items() if ds.seq_suffix == ".skeleton.npy"]


def get_args_parser() -> argparse.ArgumentParser:
    parser = cli.parser(__doc__)
    cli.add(parser, "dataset", required=True, choices=NTU_DATASETS)
    cli.add(parser, "txt")
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


def main(args: argparse.Namespace) -> int:
    ds = DATASETS[args.dataset]
    txt_dir, npy_dir = args.txt or ds.raw_dir, args.npy or ds.seq_dir

    def convert() -> int:
        if args.check_complete:
            result = check_complete(npy_dir, args.dataset, missing=args.missing)
            print(result.report(npy_dir, show=args.show))
            return 0 if not result.absent else 1
        summary = convert_folder(txt_dir, npy_dir, args.dataset, missing=args.missing, workers=args.workers,
                                 overwrite=args.overwrite, include_missing=args.include_missing,
                                 progress=not args.no_progress)
        print(summary.report())
        return 0 if summary.ok else 1

    # every file converted before a stop is complete (written atomically)
    return one_line_run(convert, (OSError, ValueError), f"the files converted so far are kept in {npy_dir}",
                        prefix="txt2npy.py: error: ")


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
