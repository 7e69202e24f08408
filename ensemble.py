"""Fuse the class scores of several models, ours and others' (CTR-GCN, PYSKL, any npz of ids and
scores), and print each stream's accuracy and the fusion's (docs/ENSEMBLES.md).

    python ensemble.py checkpoints/ntu60_csub_all_last_scores.npz ctrgcn_joint/epoch1_test_score.pkl
    python ensemble.py ours=checkpoints/ntu60_csub_all_last_scores.npz#GD,all gcn=epoch1_test_score.pkl \\
        --tune-on checkpoints/ntu60_csub_all_last_heldout_scores.npz gcn_heldout_score.pkl --out results/
    (FILE: [NAME=]PATH[#ROW,ROW]; a file of ours gives its five descriptor models and Fuse5 unless
    #ROW names rows; samples are matched by id)
"""
from __future__ import annotations

import argparse
import re
import sys

from cli import options as cli
from common.errors import one_line_run
from models import ensemble
from models.evaluation import format_table
from models.scores import SAVE_FORMATS


def get_args_parser() -> argparse.ArgumentParser:
    p = cli.parser(__doc__)
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="score files: ours (*_scores.npz, or the *_results.json beside one), CTR-GCN's --save-score "
                        "pickles, PYSKL's --out pickles, or an npz of ids, scores (and labels)")
    p.add_argument("--weights", help="one weight per stream, in the table's order, e.g. 0.6,0.6,0.4,0.4: finite, "
                                     "non-negative, not all zero, used as ratios (default: equal, or tuned with "
                                     "--tune-on)")
    p.add_argument("--tune-on", nargs="+", metavar="FILE",
                   help="the same streams' scores on a held-out part of train (test.py --on heldout): weights are "
                        "searched there for the best top-1, never on the test split")
    p.add_argument("--allow-test-tuning", action="store_true",
                   help="let --tune-on files score the test samples; the results are then labelled optimistic")
    p.add_argument("--softmax", action="store_true",
                   help="turn each stream into probabilities before the weighted sum (default: sum the scores as "
                        "stored, the rule of CTR-GCN's and PYSKL's ensemble scripts)")
    p.add_argument("--by-position", action="store_true",
                   help="match files that name no samples (PYSKL's result lists) by position with the first file "
                        "that does; counts (and labels, where known) must agree")
    p.add_argument("--out", metavar="DIR", help="a folder: write ensemble_results.json and ensemble_scores.npz "
                                                "there (created if missing)")
    p.add_argument("--save-score", nargs="+", choices=SAVE_FORMATS, metavar="FORMAT",
                   help="with --out: also the fused scores as CTR-GCN's (ctrgcn) and/or PYSKL's (pyskl) pickle")
    return p


def main(args: argparse.Namespace) -> int:
    def body() -> int:
        if args.save_score and not args.out:
            raise ValueError("--save-score writes into --out DIR; add --out")
        if args.out:
            ensemble.check_out(args.out)   # before anything is read
        result = ensemble.run(args.files, args.weights, args.softmax, args.by_position, args.tune_on,
                              args.allow_test_tuning)
        for note in result.notes:
            print(note, file=sys.stderr)
        print(format_table(result.rows))
        weights = ", ".join(f"{s.name} {w:g}" for s, w in zip(result.data.streams, result.weights))
        print(f"\n{len(result.data.ids)} samples; weights {result.weights_source}: {weights}")
        print(result.gain_line())
        if args.out:
            files = ensemble.write(result, args.out, tuple(args.save_score or ()))
            print(f"results: {args.out}/ensemble_results.json; fused scores: {', '.join(files.values())}")
        return 0

    return one_line_run(body, (ValueError, OSError), "nothing was written")


def joined_weights(argv: list[str]) -> list[str]:
    """``--weights -1,2`` as ``--weights=-1,2``: argparse takes a value that starts with '-' (and is
    not one plain negative number) for an option and stops with its usage; joined, the weights
    reach ensemble.py's own one-line check."""
    joined: list[str] = []
    for arg in argv:
        if joined and joined[-1] == "--weights" and re.match(r"-\.?\d", arg):
            joined[-1] = f"--weights={arg}"
        else:
            joined.append(arg)
    return joined


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return get_args_parser().parse_args(joined_weights(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main(parse_args()))
