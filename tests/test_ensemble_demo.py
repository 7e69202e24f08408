"""The real use of ensemble.py, on the demo written as a PYSKL file (so it needs no ../shared):
our five descriptor models and Fuse5, plus a model of another kind (a torchvision network trained
on the same split, its scores written in CTR-GCN's layout and read back as a foreign file), fused
with weights tuned on the held-out part of train, the gain over the best single stream printed."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from cli import skels2desc, test as test_cli, train as train_cli
from cli.options import parse
from demo.field_files import write_pyskl
from descriptors.names import DESCRIPTORS, FUSION
from skeletons.datasets import CUSTOM
from skeletons.formats import FILE_DATASETS

DATA = ["-d", "pyskl", "-p", "xsub"]
TRAIN = ["--epochs", "2", "--width", "0.0625", "--batch-size", "16", "--lr", "1e-3", "--val-fraction", "0.25",
         "-gpu", "-1", "--no-progress", "-workers", "0"]


def run(script: str, *argv: str, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(REPO / f"{script}.py"), *argv], cwd=cwd, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"{script} {' '.join(argv)}\n{proc.stderr[-3000:]}"
    return proc


def in_process(cli_module, *argv: str) -> None:
    """A front end's main in this process (the steps' own code, without 13 interpreter starts)."""
    assert cli_module.main(parse(cli_module.build_parser(), list(argv))) == 0, argv


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> Path:
    """The demo as a PYSKL file; our six models and a resnet18 trained on it with a held-out
    quarter of train; each scored on test and on the held-out part."""
    work = tmp_path_factory.mktemp("ensemble_demo")
    write_pyskl(work / "ntu60_3danno.pkl", takes=2)   # python -m demo --format pyskl --size small
    data = [*DATA, "--data", str(work / "ntu60_3danno.pkl")]
    here = os.getcwd()
    os.chdir(work)   # the steps' default folders (data/, checkpoints/) are relative, as for a user
    try:
        for part in ("train", "test"):
            assert skels2desc.main([*data, "-a", part, "--img-size", "32", "--no-progress", "-workers", "1"],
                                   (CUSTOM, *FILE_DATASETS)) == 0
        for desc in (*DESCRIPTORS, FUSION):
            in_process(train_cli, *data, "-desc", desc, *TRAIN)
        in_process(train_cli, *data, "-desc", "GD", "--arch", "resnet18", "-ckpt", "foreign", *TRAIN)
        for on in ("test", "heldout"):
            in_process(test_cli, *data, "--epoch", "last", "--on", on, "-gpu", "-1", "-workers", "0")
            in_process(test_cli, *data, "-desc", "GD", "-ckpt", "foreign", "--epoch", "last", "--on", on, "-gpu",
                       "-1", "-workers", "0", "--save-score", "ctrgcn")
    finally:
        os.chdir(here)
    return work


def test_tuned_ensemble_of_ours_and_a_foreign_model(scored):
    ours, foreign = scored / "checkpoints", scored / "foreign"
    test_files = [str(ours / "pyskl_xsub_all_last_scores.npz"), f"resnet18={foreign / 'pyskl_xsub_GD_last_GD_test_score.pkl'}"]
    tune_files = [str(ours / "pyskl_xsub_all_last_heldout_scores.npz"),
                  str(foreign / "pyskl_xsub_GD_last_GD_heldout_score.pkl")]
    proc = run("ensemble", *test_files, "--tune-on", *tune_files, "--out", str(scored / "fused"), cwd=scored)
    assert "over the best single stream" in proc.stdout and "tuned on" in proc.stdout
    doc = json.loads((scored / "fused" / "ensemble_results.json").read_text())
    keys = [row["key"] for row in doc["rows"]]
    assert keys == [f"pyskl_xsub_all_last#{d}" for d in (*DESCRIPTORS, FUSION)] + ["resnet18", "fused"]
    assert doc["weights_source"].startswith("tuned on") and not doc["optimistic"]
    # The fused row is what the recorded weights give on the test scores, matched by sample id.
    test = np.load(ours / "pyskl_xsub_all_last_scores.npz")
    foreign_scores = pickle.load(open(foreign / "pyskl_xsub_GD_last_GD_test_score.pkl", "rb"))
    weights = list(doc["weights"].values())
    fused = sum(w * test[f"row.{d}"] for w, d in zip(weights, (*DESCRIPTORS, FUSION)))
    fused = fused + weights[-1] * np.stack([foreign_scores[i] for i in test["ids"]])
    labels = test["labels"]
    assert doc["rows"][-1]["top1"] == pytest.approx(float((fused.argmax(1) == labels).mean()))
    best_single = max(row["top1"] for row in doc["rows"][:-1])
    assert f"{100 * (doc['rows'][-1]['top1'] - best_single):+.2f} points" in doc["gain"]


def test_heldout_scores_are_the_held_out_training_samples(scored):
    held = np.load(scored / "checkpoints" / "pyskl_xsub_all_last_heldout_scores.npz")
    test = np.load(scored / "checkpoints" / "pyskl_xsub_all_last_scores.npz")
    meta = json.loads(str(held["meta"]))
    assert meta["part"] == "heldout" and json.loads(str(test["meta"]))["part"] == "test"
    train = pickle.load(open(scored / "ntu60_3danno.pkl", "rb"))["split"]["xsub_train"]
    assert set(held["ids"]) <= set(train) and not set(held["ids"]) & set(test["ids"])
    assert len(held["ids"]) == round(0.25 * len(train))
    results = json.loads((scored / "checkpoints" / "pyskl_xsub_all_last_heldout_results.json").read_text())
    assert results["part"] == "heldout" and results["samples"]["sample"] == sorted(held["ids"])


def test_tuning_on_test_scores_is_refused(scored):
    ours, foreign = scored / "checkpoints", scored / "foreign"
    files = [str(ours / "pyskl_xsub_all_last_scores.npz"), str(foreign / "pyskl_xsub_GD_last_GD_test_score.pkl")]
    proc = subprocess.run([sys.executable, str(REPO / "ensemble.py"), *files, "--tune-on", *files, "--out",
                           str(scored / "refused")], cwd=scored, capture_output=True, text=True)
    assert proc.returncode == 2 and "--allow-test-tuning" in proc.stderr and "Traceback" not in proc.stderr
    assert not (scored / "refused").exists()


def test_a_torchvision_model_exports_too(scored):
    """export.py on the resnet18 (a torchvision --arch model): onnxruntime gives torch's logits."""
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (requirements-extra.txt)")
    import torch

    from models.checkpoint import load_model
    proc = subprocess.run([sys.executable, str(REPO / "export.py"), *DATA, "--data", "ntu60_3danno.pkl", "-desc", "GD",
                           "-ckpt", "foreign", "--epoch", "last", "--out", "foreign_onnx"], cwd=scored,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((scored / "foreign_onnx" / "pyskl_xsub_GD.json").read_text())
    assert meta["arch"] == "resnet18" and meta["img_size"] == 32
    model, _ = load_model(scored / "foreign" / "pyskl_xsub_GD_last.tar", desc="GD", num_classes=60)
    images = torch.rand(4, 3, 32, 32) * 255
    with torch.no_grad():
        reference = model(images).numpy()
    session = ort.InferenceSession(str(scored / "foreign_onnx" / "pyskl_xsub_GD.onnx"),
                                   providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": images.numpy()})[0]
    assert np.array_equal(got.argmax(1), reference.argmax(1))
    assert np.abs(got - reference).max() <= 1e-4 * np.abs(reference).max()
