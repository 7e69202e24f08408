"""Training curves people can look at: every run writes <prefix>_curves.png and TensorBoard event
files from its CSV log after each epoch, Fuse5 with its eight head losses, and a resumed run
continues the same curves with no duplicate or missing epoch."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from models.logs import HEAD_FIELDS
from models.names import curves_path, tensorboard_dir

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                                        reason="tensorboard is not installed (pip install -r requirements-extra.txt)")
TINY = ["--width", "0.0625", "--batch-size", "16", "--lr", "1e-3", "-gpu", "-1", "--no-progress", "-workers", "0"]


def train(root: Path, ckpt: Path, desc: str, epochs: int) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(REPO / "train.py"), "-d", "ucla", "-desc", desc, "-despth", str(root),
                           "-ckpt", str(ckpt), "--epochs", str(epochs), *TINY], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def log_rows(ckpt: Path, prefix: str) -> list[dict]:
    with open(ckpt / f"{prefix}_log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def scalars(ckpt: Path, prefix: str) -> dict[str, list[tuple[int, float]]]:
    folder = tensorboard_dir(ckpt, prefix)
    files = [p for p in folder.iterdir() if "tfevents" in p.name]
    assert len(files) == 1, files   # rewritten whole: one file, never one per resume
    events = event_accumulator.EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_resumed_run_continues_the_same_curves(demo_descriptors, tmp_path):
    ckpt = tmp_path / "ckpt"
    train(demo_descriptors, ckpt, "GD", 2)
    assert [step for step, _ in scalars(ckpt, "ucla_GD")["loss/train"]] == [1, 2]
    proc = train(demo_descriptors, ckpt, "GD", 4)   # resumes at epoch 3
    assert "resum" in proc.stdout + proc.stderr
    rows = log_rows(ckpt, "ucla_GD")
    found = scalars(ckpt, "ucla_GD")
    for tag, column in (("loss/train", "train_loss"), ("accuracy/test", "test_acc"), ("lr", "lr"),
                        ("images_per_s", "images_per_s")):
        assert [step for step, _ in found[tag]] == [1, 2, 3, 4], tag
        assert [value for _, value in found[tag]] == pytest.approx([float(r[column]) for r in rows], rel=1e-6), tag
    png = curves_path(ckpt, "ucla_GD")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fuse5_logs_its_eight_head_losses(demo_descriptors, tmp_path):
    ckpt = tmp_path / "ckpt"
    train(demo_descriptors, ckpt, "all", 1)
    row = log_rows(ckpt, "ucla_all")[0]
    heads = [float(row[field]) for field in HEAD_FIELDS]
    assert len(heads) == 8 and sum(heads) == pytest.approx(float(row["train_loss"]), rel=1e-4)
    found = scalars(ckpt, "ucla_all")
    assert {tag for tag in found if tag.startswith("fuse5_loss/")} == {f"fuse5_loss/{f[5:]}" for f in HEAD_FIELDS}
    assert curves_path(ckpt, "ucla_all").is_file()
