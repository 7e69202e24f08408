"""Train ResNet_c on one descriptor, or Fuse5 on all five, as the authors' release does.

  python train.py -d ntu60 -p csub -desc GD -gpu 0
  python train.py -d ntu60 -p csub -desc GD,JDD,ADD,LAD,FDD,all -gpu 0      # six models, one after another
  python train.py -d custom --data ROOT --layout coco17 -desc all -gpu 0      # your own skeletons
  torchrun --nproc_per_node 4 train.py -d ntu120 -p csub -desc all -gpu 0 --amp   # several GPUs

Rerunning the same command skips a finished run and continues an unfinished one exactly from
<prefix>_last.tar; other settings are refused (start over with --overwrite, or use another -ckpt).
"""
from __future__ import annotations

import argparse
import sys

from cli.train import build_parser, main
from cli.options import parse


def get_args_parser() -> argparse.ArgumentParser:
    return build_parser(__doc__)


if __name__ == "__main__":
    sys.exit(main(parse(get_args_parser())))
