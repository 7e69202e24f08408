"""test.py on a researcher's second day (issue 27): several -desc names in one command, each its
own evaluation; --no-progress; the best honest row by its table label; --save-score listing the
files it wrote, with no '+' in their names; --paper-table saying what it found; run-wide notices
said once."""
from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_script

from cli.options import desc_names
from cli.test import report
from common.notices import forget_notices
from descriptors.dataset import write_synthetic_split
from descriptors.names import FUSION
from models import ensemble, evaluation as ev
from models.checkpoint import save_checkpoint
from models.names import checkpoint_path
from models.networks import build_model
from models.scores import read_scores, row_file_name
from skeletons.datasets import Split, official_split_size

test_script = load_script("test")
TINY_WIDTH = 0.03
CPU_NOTICE = "notice: running on CPU"
RELEASE_WORDS = "record neither the descriptor mode nor the image size"
PRESENCE_WORDS = "fewer samples than the official split"


def run_test_py(*argv: str) -> int:
    return test_script.main(test_script.get_args_parser().parse_args(list(argv)))


def tiny_checkpoints(ckpt: Path, dataset: str, protocol: str | None, classes: int, names) -> None:
    """Small ResNet_c / Fuse5 models in our checkpoint format (random weights)."""
    for i, name in enumerate(names):
        torch.manual_seed(i)
        model = build_model(name, classes, width=TINY_WIDTH)
        save_checkpoint(checkpoint_path(ckpt, dataset, protocol, name), model=model, epoch=1, best_acc=0.1 * i,
                        settings={"dataset": dataset, "protocol": protocol or "cview", "descriptor": name,
                                  "num_classes": classes, "arch": "resnet_c", "width": TINY_WIDTH})


def ucla_args(desc_root: Path, ckpt: Path, desc: str, *more: str) -> list[str]:
    return ["-d", "ucla", "-desc", desc, "-gpu", "-1", "-despth", str(desc_root), "-ckpt", str(ckpt),
            "--workers", "0", *more]


# --------------------------------------------------------------------------- -desc lists

def test_a_desc_list_is_read_in_order_and_a_bad_name_refused_before_anything_runs(own_root, tmp_path, capsys):
    assert desc_names("GD,JDD,ADD,LAD,FDD,all") == ["GD", "JDD", "ADD", "LAD", "FDD", FUSION]
    assert desc_names("all") == [FUSION] and desc_names("LAD, GD,LAD") == ["LAD", "GD"]
    tiny_checkpoints(tmp_path, "ucla", None, 10, ["GD"])
    assert run_test_py(*ucla_args(own_root, tmp_path, "GD,gd")) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        "error: -desc GD,gd: 'gd' is not a model name (did you mean GD?); give one or more of GD, JDD, ADD, LAD, "
        "FDD, all, comma-separated (-desc GD,JDD,all)"]
    assert not captured.out and not list(tmp_path.glob(f"*{ev.RESULTS_SUFFIX}"))   # GD was not evaluated first


def test_each_desc_name_is_its_own_evaluation_and_the_worst_status_is_returned(own_root, tmp_path, capsys):
    """-desc GD,LAD,JDD with no LAD model: GD and JDD evaluated, each with its own results files as a
    run of its own name writes them; LAD's one-line error; exit status 2; the CPU notice said once."""
    forget_notices()
    tiny_checkpoints(tmp_path / "ckpt", "ucla", None, 10, ["GD", "JDD"])
    assert run_test_py(*ucla_args(own_root, tmp_path / "ckpt", "GD,LAD,JDD", "--out", str(tmp_path / "list"),
                                  "--no-progress")) == 2
    out, err = capsys.readouterr()
    assert out.index("== -desc GD (1 of 3)") < out.index("== -desc LAD (2 of 3)") < out.index("== -desc JDD (3 of 3)")
    assert "evaluated 2 of 3 (-desc GD,LAD,JDD); failed: LAD" in out
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "ucla_LAD_epoch_best.tar" in errors[0] and "Traceback" not in err
    assert err.count(CPU_NOTICE) == 1 and "%|" not in err   # said once; no progress bar
    for name in ("GD", "JDD"):
        listed = json.loads((tmp_path / "list" / f"ucla_{name}_best{ev.RESULTS_SUFFIX}").read_text())
        assert listed["desc"] == name and list(listed["checkpoints"]) == [name]
    # the same files and figures as a run of that name alone (the last of the list: nothing carried over)
    assert run_test_py(*ucla_args(own_root, tmp_path / "ckpt", "JDD", "--out", str(tmp_path / "alone"))) == 0
    alone = json.loads((tmp_path / "alone" / f"ucla_JDD_best{ev.RESULTS_SUFFIX}").read_text())
    assert listed["rows"] == alone["rows"] and listed["predictions"] == alone["predictions"]
    assert sorted(p.name for p in (tmp_path / "alone").iterdir()) == \
        sorted(p.name for p in (tmp_path / "list").glob("ucla_JDD_*"))
    assert not list((tmp_path / "list").glob("ucla_LAD*"))
    err = capsys.readouterr().err
    assert "%|" in err and CPU_NOTICE not in err   # a progress bar without --no-progress; the notice said already


# --------------------------------------------------------------------------- what test.py prints and writes

def test_best_honest_row_is_named_by_its_table_label_and_score_files_are_listed():
    doc = {"rows": [{"key": "GD", "label": "ResNet_c GD", "honest": True, "top1": 0.5, "top5": None,
                     "mean_class": 0.5},
                    {"key": "mean_softmax.singles+all", "label": "mean of softmax: GD+JDD+Fuse5", "honest": True,
                     "top1": 0.75, "top5": None, "mean_class": 0.7}],
           "best_honest_row": "mean_softmax.singles+all", "scores_file": "out/x_scores.npz",
           "score_files": {"npz": "out/x_scores.npz",
                           "ctrgcn mean_softmax.singles+all": "out/x_mean_softmax.singles_all_test_score.pkl"}}
    text = report(type("C", (), {"on": "test"})(), doc, "out/x_results.json", "out/x_confusion.png")
    assert ("best honest row (the highest on this test split: a choice made on its labels): mean of softmax: "
            "GD+JDD+Fuse5 (top-1 75.00%)") in text
    assert "  ctrgcn scores of mean of softmax: GD+JDD+Fuse5: out/x_mean_softmax.singles_all_test_score.pkl" in text
    assert text.splitlines()[-1] == "  confusion matrix: out/x_confusion.png"
    assert "singles+all" not in text.replace("singles_all", "")
    assert row_file_name("mean_softmax.singles+all") == "mean_softmax.singles_all"
    assert row_file_name("all.single.GD") == "all.single.GD"


def test_save_score_lists_its_files_without_plus_and_ensemble_reads_them(own_root, tmp_path, capsys):
    tiny_checkpoints(tmp_path, "ucla", None, 10, ["GD", "JDD", FUSION])
    assert run_test_py(*ucla_args(own_root, tmp_path, FUSION, "--save-score", "ctrgcn", "pyskl", "--no-progress")) == 0
    out = capsys.readouterr().out
    doc = json.loads((tmp_path / f"ucla_all_best{ev.RESULTS_SUFFIX}").read_text())
    best = next(r for r in doc["rows"] if r["key"] == doc["best_honest_row"])
    assert f"a choice made on its labels): {best['label']} (top-1 {100 * best['top1']:.2f}%)" in out
    listed = re.findall(r"^  (.+?): (\S+)$", out, flags=re.M)
    paths = [Path(p) for _, p in listed]
    assert all(p.is_file() for p in paths) and set(map(str, paths)) >= set(doc["score_files"].values())
    assert len([p for p in paths if p.suffix == ".pkl"]) == 2 * sum(r["scores"] is not None for r in doc["rows"])
    written = [p.name for p in tmp_path.iterdir()]
    assert not [n for n in written if "+" in n]
    fused = tmp_path / "ucla_all_best_mean_softmax.singles_all_test_score.pkl"
    assert ("ctrgcn scores of " + next(r["label"] for r in doc["rows"]
                                       if r["key"] == "mean_softmax.singles+all"), str(fused)) in listed
    ours = read_scores(tmp_path / "ucla_all_best_scores.npz")
    peer = pickle.load(open(fused, "rb"))
    assert np.allclose(np.stack(list(peer.values())), ours.streams["mean_softmax.singles+all"], atol=1e-6)
    data = ensemble.run([f"{tmp_path / 'ucla_all_best_scores.npz'}#GD", str(fused)]).data
    assert [s.name for s in data.streams] == ["ucla_all_best#GD", fused.stem]


# --------------------------------------------------------------------------- --paper-table

def test_paper_table_without_matching_results_says_what_it_found(own_root, tmp_path, capsys):
    tiny_checkpoints(tmp_path, "ucla", None, 10, ["GD"])
    assert run_test_py(*ucla_args(own_root, tmp_path, "GD", "--no-progress")) == 0
    made = tmp_path / f"ucla_GD_best{ev.RESULTS_SUFFIX}"
    doc = json.loads(made.read_text())
    other = tmp_path / "other"
    other.mkdir()
    # results of a dataset the paper has no column for (a custom dataset's), and of a held-out part
    (other / f"custom_GD_last{ev.RESULTS_SUFFIX}").write_text(json.dumps({**doc, "dataset": "custom",
                                                                           "protocol": "split", "epoch": "last"}))
    (other / f"ucla_GD_best_heldout{ev.RESULTS_SUFFIX}").write_text(made.read_text())
    capsys.readouterr()
    assert run_test_py("--paper-table", "-ckpt", str(other)) == 2
    out, err = capsys.readouterr()
    assert not out and len(err.strip().splitlines()) == 1 and not (other / ev.PAPER_TABLE_NAME).exists()
    assert f"no results for the paper's table in {other}" in err and "ntu60 csub" in err
    assert f"custom_GD_last{ev.RESULTS_SUFFIX} (custom split, --epoch last)" in err
    assert f"not of a test split: ucla_GD_best_heldout{ev.RESULTS_SUFFIX}" in err
    assert "-d ntu60, ntu120 or ucla on the test split" in err
    # with results of the paper's data beside them: the table of those, the others named as left out
    assert run_test_py("--paper-table", "-ckpt", str(tmp_path), "--out", str(other)) == 0
    out = capsys.readouterr().out
    assert "| ResNet_c GD |" in out and "custom" not in (other / ev.PAPER_TABLE_NAME).read_text()
    assert f"left out, as the paper has no column for their data: custom_GD_last{ev.RESULTS_SUFFIX}" in out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_test_py("--paper-table", "-ckpt", str(empty)) == 2
    assert f"no *{ev.RESULTS_SUFFIX} in {empty}; run test.py first" in capsys.readouterr().err


# --------------------------------------------------------------------------- notices once

def test_release_note_and_partial_split_notice_are_said_once_per_command(tmp_path, capsys):
    """Two release-format NTU-60 models on a partial test split, in one command: the release note
    and 'fewer samples than the official split' once each."""
    forget_notices()
    write_synthetic_split(tmp_path / "desc", "ntu60", "csub", "test", per_class=1, num_classes=12, size=32)
    for name in ("GD", "JDD"):   # the release's files: a bare state dict (width 1/16: inferable), no settings
        torch.save(build_model(name, 60, width=0.0625).state_dict(), checkpoint_path(tmp_path, "ntu60", "csub", name))
    assert run_test_py("-d", "ntu60", "-desc", "GD,JDD", "-gpu", "-1", "-despth", str(tmp_path / "desc"),
                       "-ckpt", str(tmp_path), "--workers", "0", "--no-progress") == 0
    err = capsys.readouterr().err
    assert err.count(RELEASE_WORDS) == 1 and err.count(CPU_NOTICE) == 1
    presence = [line for line in err.splitlines() if PRESENCE_WORDS in line]
    assert presence == [f"notice: {PRESENCE_WORDS} (ntu60 csub test: 12 of 16,487 (0.1%)); the figures are not "
                        f"comparable with published ones"]


def test_nw_ucla_partial_test_split_gets_the_same_notice(own_root, tmp_path, capsys):
    if official_split_size(Split.of("ucla", None, "test")) is None:
        pytest.skip("skeletons.datasets.presence_note does not know NW-UCLA's official split sizes yet")
    forget_notices()
    tiny_checkpoints(tmp_path, "ucla", None, 10, ["GD", "JDD"])
    assert run_test_py(*ucla_args(own_root, tmp_path, "GD,JDD", "--no-progress")) == 0
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if PRESENCE_WORDS in line and "ucla" in line]) == 1
