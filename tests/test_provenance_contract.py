"""The provenance contract (common/provenance.py): files say what made them and readers compare it.

A one-file dataset changed after its images were made reaches training and testing (refused until
skels2desc has brought the images up to date, which it does without --overwrite); the contract's
one wording and its bounded counts; argparse never completes an abbreviated flag."""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from conftest import load_script

import cli.test

from common import provenance
from demo.field_files import write_pyskl
from descriptors.dataset import DescriptorImages
from descriptors.extract import extract_split
from skeletons.pyskl import register_pyskl_dataset

train_script = load_script("train")


def test_a_pyskl_file_changed_after_its_images_were_made_reaches_training(tmp_path, monkeypatch):
    """Remove one test sample from the file: the images (made before) are refused by train.py's and
    test.py's reader, naming the digest and the skels2desc command, which then brings them up to date
    without --overwrite, remaking no image of the unchanged train part."""
    monkeypatch.chdir(tmp_path)
    path = write_pyskl(tmp_path / "F.pkl", takes=1)
    ds = register_pyskl_dataset(path)
    for part in ("train", "test"):
        assert extract_split("pyskl", "xview", part, ds.seq_dir, "d", workers=1, img_size=8, progress=False).ok
    before = len(DescriptorImages("d", "pyskl", "xview", "test", "GD"))
    train_images = {p: p.stat().st_mtime_ns for p in Path("d/pyskl_GD_train_xview").iterdir()}

    data = pickle.loads(path.read_bytes())
    removed = data["split"]["xview_val"].pop(0)
    data["annotations"] = [a for a in data["annotations"] if a["frame_dir"] != removed]
    path.write_bytes(pickle.dumps(data, protocol=2))
    ds = register_pyskl_dataset(path)   # what train.py's -d pyskl --data F.pkl does: the file is unpacked again
    for part in ("test", "train"):
        with pytest.raises(provenance.ProvenanceError) as refused:
            DescriptorImages("d", "pyskl", "xview", part, "all")
        line = str(refused.value)
        assert "\n" not in line and line.startswith(f"d/pyskl_GD_{part}_xview: made from other data")
        assert "sha256: " in line and "python skels2desc_custom.py -d pyskl" in line and "--overwrite" not in line

    for part in ("train", "test"):
        assert extract_split("pyskl", "xview", part, ds.seq_dir, "d", workers=1, img_size=8, progress=False).ok
    assert len(DescriptorImages("d", "pyskl", "xview", "test", "GD")) == before - 1
    assert removed not in {s.sample for s in DescriptorImages("d", "pyskl", "xview", "test", "GD").samples}
    assert {p: p.stat().st_mtime_ns for p in Path("d/pyskl_GD_train_xview").iterdir()} == train_images


def test_the_contract_refuses_in_one_wording():
    recorded = {"mode": "paper", "img_size": 112, "sha256": "ab" * 32, "epochs": None}
    now = {"mode": "clean", "img_size": 112, "sha256": "cd" * 32, "epochs": 40}
    provenance.check(recorded, dict(recorded), ("mode", "img_size", "sha256"), file="f", fix="fix")
    provenance.check(None, now, ("mode",), file="f", fix="fix")   # a file that records nothing
    with pytest.raises(provenance.ProvenanceError) as refused:
        provenance.check(recorded, now, ("mode", "img_size", "sha256", "epochs"), file="x.onnx", fix="re-export")
    assert str(refused.value) == ("x.onnx: made from other inputs than this step uses (mode: paper -> clean; "
                                  f"sha256: {'ab' * 6} -> {'cd' * 6}, recorded -> now); re-export")
    assert provenance.first_difference(["a", "b", "c"], ["a", "c", "b"]) == "class 1: 'b' -> 'c'"
    assert provenance.first_difference(["a", "b"], ["a", "b", "c"]) == "2 classes -> 3"
    assert provenance.first_difference(["a"], ["a"]) is None


@pytest.mark.parametrize("value, words", [(10**9, "outside 0..100,000"), (-1, "outside"), ("3", "not a whole"),
                                          (True, "not a whole")])
def test_declared_counts_are_bounded_before_anything_is_made(value, words):
    with pytest.raises(ValueError, match=words):
        provenance.checked_count(value, provenance.MAX_CLASSES, file="f.pkl", what="class count")
    with pytest.raises(ValueError, match="declares"):
        provenance.checked_allocation((2, 10**7, 25, 3), 4, 4, file="f.pkl", what="keypoint")
    assert provenance.checked_allocation((2, 10, 25, 3), 4, None, file="f.pkl", what="keypoint") == 6000


def test_an_abbreviated_flag_is_never_completed(capsys):
    """`--epoch 20` (test.py's flag) given to train.py was read as `--epochs 20`, extending a
    finished model; every parser refuses abbreviations."""
    parser = train_script.get_args_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["-d", "ucla", "-desc", "GD", "--epoch", "20"])
    assert "unrecognized arguments: --epoch 20" in capsys.readouterr().err
    assert parser.parse_args(["-d", "ucla", "-desc", "GD", "--epochs", "20"]).epochs == 20


test_script, pipeline_script = load_script("test"), load_script("pipeline")


def test_test_py_checks_its_results_folder_before_evaluating(tmp_path, capsys, monkeypatch):
    """--out where results cannot be written is refused before the (long) evaluation, in one line."""
    in_the_way = tmp_path / "results.txt"
    in_the_way.write_text("not a folder")
    evaluated = []
    monkeypatch.setattr(cli.test, "evaluate", lambda config: evaluated.append(config))
    argv = ["-d", "ucla", "-ckpt", str(tmp_path / "ckpt"), "--out", str(in_the_way / "out")]
    assert test_script.main(test_script.get_args_parser().parse_args(argv)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{in_the_way / 'out'}: cannot write the results there" in err
    assert not evaluated and in_the_way.read_text() == "not a folder"


def test_pipeline_takes_the_wait_its_steps_suggest(tmp_path):
    """The steps' lock refusals end 'or pass --wait': pipeline.py takes it and hands it to them."""
    args = pipeline_script.get_args_parser().parse_args(["--demo", "--wait"])
    assert args.wait and pipeline_script.run_place(pipeline_script.resolve(args))["wait"] is True
