"""Runs that would mix or lose each other's results: two trainings of the same checkpoints,
skels2desc rewriting folders a training reads, data changed under a training on another machine,
a pack deleted while another process maps it. Second runs are real processes."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import train
from common.locks import LockHeldError, folder_lock
from conftest import REPO
from descriptors import provenance
from descriptors.dataset import CACHE_DIR, DescriptorImages
from descriptors.extract import extract_split
from descriptors.names import descriptor_dir, split_lock_path
from models import training
from models.checkpoint import load_checkpoint
from models.names import checkpoint_path, run_lock_path
from skeletons.datasets import Split

SIZE = 32
TRAIN = Split.of("ucla", None, "train")


@pytest.fixture
def ucla(demo_raw, tmp_path) -> tuple[Path, Path]:
    """(sequence folder, descriptor root) of the demo's NW-UCLA split, both this test's to change."""
    seq = tmp_path / "ucla"
    shutil.copytree(Path(demo_raw) / "ucla", seq)
    root = tmp_path / "descriptors"
    for part in ("train", "test"):
        assert extract_split("ucla", None, part, seq, root, workers=1, img_size=SIZE, progress=False).ok
    return seq, root


def train_argv(root: Path, ckpt: Path, *extra: str) -> list[str]:
    return ["-d", "ucla", "-desc", "GD", "-gpu", "-1", "-despth", str(root), "-ckpt", str(ckpt), "--width", "0.0625",
            "--workers", "0", "--batch-size", "8", "--lr", "1e-3", "--no-progress", "--epochs", "2", *extra]


def holder(code: str) -> subprocess.Popen:
    """A process that runs ``code`` (which prints 'held' once it holds what it takes, then reads a
    line from stdin); returned once it holds."""
    process = subprocess.Popen([sys.executable, "-c", f"import sys\nsys.path.insert(0, {str(REPO)!r})\n{code}"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert process.stdout.readline().strip() == "held"
    return process


def release(process: subprocess.Popen) -> str:
    out, _ = process.communicate("go\n", timeout=120)
    assert process.returncode == 0
    return out


def test_a_second_training_of_the_same_checkpoints_is_refused_or_waits(ucla, tmp_path):
    _, root = ucla
    ckpt = tmp_path / "ckpt"
    first = holder(f"from common.locks import folder_lock\nwith folder_lock({str(run_lock_path(ckpt, 'ucla_GD'))!r}):\n"
                   f"    print('held', flush=True)\n    sys.stdin.readline()\n")
    try:
        command = [sys.executable, str(REPO / "train.py"), *train_argv(root, ckpt)]
        second = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert second.returncode == 2 and second.stderr.count("\n") == 1
        assert f"held by process {first.pid}" in second.stderr and "--wait" in second.stderr
        assert not checkpoint_path(ckpt, "ucla", None, "GD", "last").exists()
        waiting = subprocess.Popen(command + ["--wait"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        lines = [waiting.stdout.readline() for _ in range(2)]   # the CPU notice, then the wait
        assert lines[-1].startswith(f"waiting: {run_lock_path(ckpt, 'ucla_GD')}: held by process {first.pid}")
        assert waiting.poll() is None
        release(first)
        out, err = waiting.communicate(timeout=300)
        assert waiting.returncode == 0, err
        assert load_checkpoint(checkpoint_path(ckpt, "ucla", None, "GD", "last")).epoch == 2
    finally:
        first.kill()
        first.wait()


def test_a_training_holds_its_checkpoints_and_the_folders_it_reads(ucla, tmp_path, monkeypatch):
    seq, root = ucla
    ckpt = tmp_path / "ckpt"
    seen = []
    run_epoch = training.run_epoch

    def epoch_with_intruders(epoch, *args):
        if epoch == 1:   # what a second training and a skels2desc run meet while this one trains
            with pytest.raises(LockHeldError) as held:
                with folder_lock(run_lock_path(ckpt, "ucla_GD")):
                    pass
            seen.append(str(held.value))
            with pytest.raises(LockHeldError) as read:
                extract_split("ucla", None, "train", seq, root, mode="clean", overwrite=True, img_size=SIZE,
                              progress=False)
            seen.append(str(read.value))
        return run_epoch(epoch, *args)

    monkeypatch.setattr(training, "run_epoch", epoch_with_intruders)
    assert train.main(train.get_args_parser().parse_args(train_argv(root, ckpt))) == 0
    assert f"held by process {os.getpid()}" in seen[0]
    assert f"in use by process {os.getpid()}" in seen[1] and "which reads these files" in seen[1]
    assert provenance.read_record(descriptor_dir(root, TRAIN, "GD"))["mode"] == "paper"   # untouched
    # released at the end: a rewrite goes through now
    assert extract_split("ucla", None, "train", seq, root, mode="clean", overwrite=True, img_size=SIZE,
                         progress=False).ok


def test_skels2desc_is_refused_while_another_process_reads_the_split(ucla):
    seq, root = ucla
    reader = holder(f"from descriptors.dataset import reading_splits\nfrom skeletons.datasets import Split\n"
                    f"with reading_splits({str(root)!r}, [Split.of('ucla', None, 'train')]):\n"
                    f"    print('held', flush=True)\n    sys.stdin.readline()\n")
    try:
        command = [sys.executable, str(REPO / "skels2desc_ucla.py"), "-d", "ucla", "-dspath", str(seq),
                   "-despth", str(root), "-a", "train", "--img-size", str(SIZE), "--mode", "clean", "--overwrite",
                   "--quiet"]
        refused = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1
        assert f"in use by process {reader.pid}" in refused.stderr
        assert provenance.read_record(descriptor_dir(root, TRAIN, "GD"))["mode"] == "paper"
        waiting = subprocess.Popen(command + ["--wait"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        assert waiting.stderr.readline().startswith("waiting: ") and waiting.poll() is None
        release(reader)
        waiting.communicate(timeout=120)
        assert waiting.returncode == 0
        assert provenance.read_record(descriptor_dir(root, TRAIN, "GD"))["mode"] == "clean"
        assert not list(provenance.record_path(split_lock_path(root, TRAIN)).parent.glob("*.readers/*"))
    finally:
        reader.kill()
        reader.wait()


def rewrite_record(folder: Path) -> None:
    """What skels2desc on another machine does to a folder's record (here: the same content, rewritten)."""
    path = provenance.record_path(folder)
    path.write_text(json.dumps(json.loads(path.read_text()), indent=1) + "\n")


@pytest.mark.parametrize("source", ["images", "skeletons"])
def test_a_training_whose_data_changes_under_it_stops_before_saving(ucla, tmp_path, monkeypatch, capsys, source):
    seq, root = ucla
    ckpt = tmp_path / "ckpt"
    run_epoch = training.run_epoch

    def epoch_then_change(epoch, *args):
        out = run_epoch(epoch, *args)
        if epoch == 2:
            if source == "images":
                rewrite_record(descriptor_dir(root, TRAIN, "GD"))
            else:
                first = sorted(seq.iterdir())[0]
                os.utime(first, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns + 10**9))
        return out

    monkeypatch.setattr(training, "run_epoch", epoch_then_change)
    extra = ("--source", "skeletons", "-dspath", str(seq), "--img-size", str(SIZE)) if source == "skeletons" else ()
    status = train.main(train.get_args_parser().parse_args(train_argv(root, ckpt, "--epochs", "3", *extra)))
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "training stopped before saving epoch 2 (epoch 1 saved" in err
    assert ("rewritten while this training read it" if source == "images" else "sequence files changed") in err
    assert load_checkpoint(checkpoint_path(ckpt, "ucla", None, "GD", "last")).epoch == 1
    assert not checkpoint_path(ckpt, "ucla", None, "GD", 2).exists()


def test_a_pack_another_process_maps_is_kept_until_it_lets_go(ucla):
    _, root = ucla
    folder = descriptor_dir(root, TRAIN, "GD")
    user = holder(f"from descriptors.dataset import DescriptorImages\n"
                  f"data = DescriptorImages({str(root)!r}, 'ucla', None, 'train', 'GD', cache=True, uint8=True)\n"
                  f"print('held', flush=True)\nsys.stdin.readline()\n"
                  f"print(data.cache_paths[0].name, int(data[3][0].sum()))\n")
    try:
        (old,) = (root / CACHE_DIR).glob(f"{folder.name}_*.npy")
        name = sorted(p.name for p in folder.iterdir())[3]
        image = np.asarray(Image.open(folder / name))
        Image.fromarray(255 - image).save(folder / name)   # the folder changes: a new pack is made
        st = (folder / name).stat()
        os.utime(folder / name, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        new = DescriptorImages(root, "ucla", None, "train", "GD", cache=True, uint8=True)
        assert new.cache_paths[0] != old and old.exists()   # the other process still maps it
        pack_name, total = release(user).split()
        assert pack_name == old.name and total.isdigit()     # and read it to the end
        DescriptorImages(root, "ucla", None, "train", "GD", cache=True, uint8=True)
        assert not old.exists() and new.cache_paths[0].exists()
    finally:
        user.kill()
        user.wait()
