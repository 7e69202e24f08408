"""Export a run's trained networks to ONNX, each with a JSON of what a predictor needs beside it
(docs/DEPLOYMENT.md).

    python export.py -d ntu60 -p csub -desc all --out exported/         # the five ResNet_c and Fuse5
    python export.py -d ucla -desc GD -ckpt released/ --epoch best --out exported/
    python predict.py FILE -d ntu60 -p csub --onnx exported/             # then classify without torch

Needs the onnx package (pip install -r requirements-extra.txt).
"""
from __future__ import annotations

import argparse
import sys

from cli import options as cli
from common.errors import one_line_run


def get_args_parser() -> argparse.ArgumentParser:
    p = cli.parser(__doc__)
    cli.add_dataset(p, required=True)
    cli.add(p, "protocol")
    cli.add(p, "desc")
    cli.add(p, "descriptors")
    cli.add(p, "ckpt")
    cli.add(p, "epoch")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for <prefix>.onnx and <prefix>.json")
    p.add_argument("--opset", type=int, help="ONNX opset version (default: 17)")
    return p


def main(args: argparse.Namespace) -> int:
    def body() -> int:
        from models.export import DEFAULT_OPSET, export_run
        cli.setup_dataset(args)
        desc = cli.model_name(args.desc, args.descriptors)
        written = export_run(args.ckpt, args.dataset, args.protocol, desc, args.epoch, args.out,
                             args.opset or DEFAULT_OPSET, log=lambda line: print(line, file=sys.stderr))
        for path in written:
            print(f"{path} (+ {path.with_suffix('.json').name})")
        return 0

    return one_line_run(body, (OSError, ValueError), "the files exported so far are complete")


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
