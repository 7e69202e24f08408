"""test.py's front end: its options (their defaults are ``TestConfig``'s) and one evaluation per
-desc name, each with expected errors as one line."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from common.atomic import check_writable
from common.errors import INTERRUPTED_STATUS, one_line_run
from common.locks import LockHeldError
from descriptors.names import FUSION, is_fused
from models import ablation, evaluation as ev, scores
from models.config import IMAGES, SKELETONS, TestConfig, from_args, set_parser_defaults
from models.testing import evaluate, paper_table, write_outputs

from . import options as cli

def build_parser(doc: str | None = None) -> argparse.ArgumentParser:
    """test.py's options, each default taken from TestConfig."""
    p = cli.parser(doc)
    cli.add_dataset(p)
    cli.add(p, "protocol")
    cli.add_desc_list(p)
    for name in ("descriptors", "gpu", "despth", "ckpt", "wait", "preset", "epoch"):
        cli.add(p, name)
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
                        "<prefix>_<epoch>_<ROW>_result.pkl), ROW the row's key with '+' written '_' "
                        "(mean_softmax.singles_all); our <prefix>_<epoch>_scores.npz is always written; the files "
                        "written are listed (docs/ENSEMBLES.md)")
    p.add_argument("--ablation", action="store_true",
                   help="also fuse (mean of softmax) every non-empty subset of the single models evaluated (31 for "
                        "the five), sorted by top-1 beside the fusion network's row, in the table, the results JSON "
                        "and --paper-table (docs/WORKFLOW.md); needs -desc all")
    p.add_argument("--paper-table", action="store_true",
                   help="tabulate every results JSON in -ckpt and --out in the paper's layout (this project's "
                        "figures only; the paper's published numbers are not included)")
    cli.add(p, "no_progress")
    return set_parser_defaults(p, TestConfig)


def report(config: TestConfig, doc: dict, json_path: str | Path, png: str | Path) -> str:
    """What an evaluation found and wrote: the table, the best honest row by its label, each file."""
    rows = {m["key"]: m for m in doc["rows"]}
    best = rows[doc["best_honest_row"]]
    files = [f"  results: {json_path}", f"  scores of every row: {doc['scores_file']}"]
    for what, path in doc["score_files"].items():
        if what != "npz":
            fmt, key = what.split(" ", 1)
            files.append(f"  {fmt} scores of {rows[key]['label']}: {path}")
    files.append(f"  confusion matrix: {png}")
    subsets = [ablation.format_ablation(doc["ablation"], doc["rows"]), ""] if doc.get("ablation") else []
    return "\n".join([ev.format_table(doc["rows"]), "", *subsets,
                      f"best honest row (the highest on this {config.on} split: a choice made on its labels): "
                      f"{best['label']} (top-1 {100 * best['top1']:.2f}%)", "written:", *files])


def evaluate_one(config: TestConfig) -> int:
    """One evaluation (one -desc name); 2 with the one-line error of an expected failure, 130 on Ctrl-C."""
    def test() -> int:
        doc, rows = evaluate(config)
        json_path, png = write_outputs(config, doc, rows)
        print(report(config, doc, json_path, png))
        return 0

    return one_line_run(test, (ValueError, OSError, LockHeldError), "nothing was written")


def evaluate_all(config: TestConfig, names: list[str]) -> int:
    """Each name's evaluation as if test.py were run once per name; the worst exit status (a
    Ctrl-C stops them all)."""
    statuses: dict[str, int] = {}
    for k, name in enumerate(names):
        if len(names) > 1:   # a blank line between one evaluation's table and the next one's start
            print(("\n" if k else "") + f"== -desc {name} ({k + 1} of {len(names)})", flush=True)
        statuses[name] = evaluate_one(dataclasses.replace(config, desc=name))
        if statuses[name] == INTERRUPTED_STATUS:
            return INTERRUPTED_STATUS
    failed = [name for name, status in statuses.items() if status]
    if len(names) > 1:
        print(f"\nevaluated {len(names) - len(failed)} of {len(names)} (-desc {','.join(names)})"
              + (f"; failed: {', '.join(failed)} (each error is above)" if failed else ""), flush=True)
    return max(statuses.values())


def check_ablation(config: TestConfig, names: list[str]) -> None:
    """--ablation fuses the single models of one evaluation: refused, before anything runs, for a
    -desc name that evaluates one model alone."""
    alone = [name for name in names if not is_fused(name)]
    if config.ablation and alone:
        raise ValueError(f"--ablation: -desc {','.join(alone)} evaluates one single model, which has no subsets to "
                         f"fuse; use -desc {FUSION} (the single models and their fusion network), or leave out "
                         f"--ablation")


def run(config: TestConfig) -> int:
    """The evaluation of each -desc name (or the paper table); 2 when one of them failed with a
    one-line error, 130 on Ctrl-C."""
    def start() -> int:
        if config.paper_table:
            print(paper_table(config))
            return 0
        if not config.dataset:
            raise ValueError("-d is required (or use --paper-table)")
        names = cli.desc_names(config.desc, config.descriptors)
        check_ablation(config, names)
        cli.setup_dataset(config)
        # the results folder is checked before the evaluations, which may take hours
        check_writable(config.out or config.ckpt, "the results", "pass another --out")
        return evaluate_all(config, names)

    return one_line_run(start, (ValueError, OSError, LockHeldError), "nothing was written")


def main(args: argparse.Namespace) -> int:
    return run(from_args(TestConfig, args))
