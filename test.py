"""Evaluate trained checkpoints honestly (top-1, top-5, mean per-class; fusion rules; the release's
oracle under its true name) and collect results into the paper's table.

  python test.py -d ntu60 -p csub -desc all -gpu 0 [-despth DIR] [-ckpt DIR] [--epoch best|last|K]
  python test.py -d custom --data ROOT --layout coco17 -desc all    # your own skeletons
  python test.py --paper-table [-ckpt DIR] [--out DIR]
"""
from __future__ import annotations

import argparse
import sys

from cli.test import build_parser, main
from cli.options import parse


def get_args_parser() -> argparse.ArgumentParser:
    return build_parser(__doc__)


if __name__ == "__main__":
    sys.exit(main(parse(get_args_parser())))
