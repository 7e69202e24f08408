"""test.py's front end: its options (their defaults are ``TestConfig``'s) and one evaluation with
expected errors as one line."""
from __future__ import annotations

import argparse

from common.atomic import check_writable
from common.errors import one_line_run
from common.locks import LockHeldError
from models import evaluation as ev, scores
from models.config import IMAGES, SKELETONS, TestConfig, from_args, set_parser_defaults
from models.testing import evaluate, paper_table, write_outputs

from . import options as cli


def build_parser(doc: str | None = None) -> argparse.ArgumentParser:
    """test.py's options, each default taken from TestConfig."""
    p = cli.parser(doc)
    cli.add_run_place(p, required=False)
    cli.add(p, "epoch")
    p.add_argument("--source", choices=(IMAGES, SKELETONS),
                   help="images: the test descriptor folders; skeletons: images made on the device from -dspath "
                        "in the models' mode and size (bit-equal to the PNGs)")
    cli.add(p, "dspath")
    p.add_argument("--batch-size", type=int, help="samples per batch (Fuse5 runs 5 images each)")
    cli.add(p, "loader_workers")
    p.add_argument("--priority", help="vote tie-break order, most trusted first, e.g. all,GD,FDD,JDD,ADD,LAD")
    p.add_argument("--out", help="folder for results JSON / PNG / paper table (default: -ckpt)")
    p.add_argument("--on", choices=("test", ev.HELDOUT),
                   help="test: the test split; heldout: the part of train the models' --val-fraction held out (scores "
                        "to tune ensemble weights on, ensemble.py --tune-on), written as <prefix>_<epoch>_heldout_*")
    p.add_argument("--save-score", nargs="+", choices=scores.SAVE_FORMATS, metavar="FORMAT",
                   help="also write each row's scores as CTR-GCN's --save-score pickle (ctrgcn: "
                        "<prefix>_<epoch>_<ROW>_test_score.pkl) and/or PYSKL's --out list (pyskl: "
                        "<prefix>_<epoch>_<ROW>_result.pkl); our <prefix>_<epoch>_scores.npz is always written "
                        "(docs/ENSEMBLES.md)")
    p.add_argument("--paper-table", action="store_true",
                   help="tabulate every results JSON in -ckpt and --out in the paper's layout (this project's "
                        "figures only; the paper's published numbers are not included)")
    return set_parser_defaults(p, TestConfig)


def run(config: TestConfig) -> int:
    """One evaluation (or the paper table); 2 with the one-line error of an expected failure, 130 on Ctrl-C."""
    def test() -> int:
        if config.paper_table:
            print(paper_table(config))
            return 0
        if not config.dataset:
            raise ValueError("-d is required (or use --paper-table)")
        cli.setup_dataset(config)
        # the results folder is checked before the evaluation, which may take an hour
        check_writable(config.out or config.ckpt, "the results", "pass another --out")
        doc, rows = evaluate(config)
        json_path, png = write_outputs(config, doc, rows)
        print(ev.format_table(doc["rows"]))
        print(f"\nbest honest row (the highest on this {config.on} split: a choice made on its labels): "
              f"{doc['best_honest_row']}; results: {json_path}; scores: {doc['scores_file']}; confusion matrix: {png}")
        return 0

    return one_line_run(test, (ValueError, OSError, LockHeldError), "nothing was written")


def main(args: argparse.Namespace) -> int:
    return run(from_args(TestConfig, args))
