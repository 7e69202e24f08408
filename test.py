"""Evaluate trained checkpoints honestly (top-1, top-5, mean per-class; fusion rules; the release's
oracle under its true name) and collect results into the paper's table.

  python test.py -d ntu60 -p csub -desc all -gpu 0 [-despth DIR] [-ckpt DIR] [--epoch best|last|K]
  python test.py -d custom --data ROOT --layout coco17 -desc all    # your own skeletons
  python test.py --paper-table [-ckpt DIR] [--out DIR]
"""
from __future__ import annotations

import argparse
import sys

from models import evaluation as ev
from models.testing import evaluate, paper_table, write_outputs
from models.run_data import IMAGES, SKELETONS
from cli import options as cli


def get_args_parser() -> argparse.ArgumentParser:
    p = cli.parser(__doc__)
    cli.add_dataset(p)
    cli.add(p, "protocol")
    cli.add(p, "desc")
    cli.add(p, "gpu")
    cli.add(p, "despth")
    cli.add(p, "ckpt")
    cli.add(p, "epoch")
    p.add_argument("--source", default=IMAGES, choices=(IMAGES, SKELETONS),
                   help="images: the test descriptor folders; skeletons: images made on the device from -dspath "
                        "in the models' mode and size (bit-equal to the PNGs)")
    cli.add(p, "dspath")
    p.add_argument("--batch-size", type=int, default=32, help="samples per batch (Fuse5 runs 5 images each)")
    cli.add(p, "loader_workers")
    p.add_argument("--priority", help="vote tie-break order, most trusted first, e.g. all,GD,FDD,JDD,ADD,LAD")
    p.add_argument("--out", help="folder for results JSON / PNG / paper table (default: -ckpt)")
    p.add_argument("--paper-table", action="store_true",
                   help="tabulate every results JSON in -ckpt and --out in the paper's layout (this project's "
                        "figures only; the paper's published numbers are not included)")
    return p


def main(args: argparse.Namespace) -> int:
    try:
        if args.paper_table:
            print(paper_table(args))
            return 0
        if not args.dataset:
            raise ValueError("-d is required (or use --paper-table)")
        cli.setup_dataset(args)
        doc, rows = evaluate(args)
        json_path, png = write_outputs(args, doc, rows)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(ev.format_table(doc["rows"]))
    print(f"\nbest honest row: {doc['best_honest_row']}; results: {json_path}; confusion matrix: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
