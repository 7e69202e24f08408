"""The commands that errors print are built from what made the folders, and do what the message
says when run as printed: an interrupted extraction is finished with the sequence folder, mode and
size that started it; a model trained on other images than a folder holds is sent to a folder of
its own, never to --overwrite a folder other models read."""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from descriptors import provenance
from descriptors.dataset import DescriptorImages
from descriptors.extract import extract_split
from descriptors.names import DESCRIPTORS, descriptor_dir
from skeletons.convert import convert_folder
from skeletons.datasets import Split


def run_printed(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """A printed command as a user pastes it (python -> this interpreter; scripts from the checkout)."""
    words = shlex.split(command)
    assert words[0] == "python"
    words[1] = str(REPO / words[1])
    return subprocess.run([sys.executable, *words[1:]], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_an_interrupted_extraction_is_finished_as_it_was_started(demo_raw, tmp_path):
    seqs, root = tmp_path / "my_npy", tmp_path / "desc"
    convert_folder(Path(demo_raw) / "ntu" / "txt60skel", seqs, "ntu60", workers=1, progress=False)
    summary = extract_split("ntu60", "csub", "test", seqs, root, mode="clean", img_size=32, workers=1, progress=False)
    assert summary.ok
    split = Split("ntu60", "csub", "test")
    for desc in DESCRIPTORS:   # as a killed run leaves them: listed so far, not complete
        folder = descriptor_dir(root, split, desc)
        record = provenance.read_record(folder)
        provenance.write_record(folder, {**record, "complete": False})
    with pytest.raises(ValueError) as info:
        DescriptorImages(root, "ntu60", "csub", "test", "GD")
    message = str(info.value)
    command = message.split("finish it with: ")[1]
    assert f"-dspath {seqs}" in command and "--mode clean" in command and "--img-size 32" in command, message
    proc = run_printed(command, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(DescriptorImages(root, "ntu60", "csub", "test", "GD")) == summary.total


def test_a_model_of_other_images_gets_a_folder_of_its_own(demo_raw, demo_descriptors, tmp_path):
    ckpt, other = tmp_path / "ckpt", tmp_path / "desc48"
    for part in ("train", "test"):   # someone else's folders: 48-px images, which their models read
        assert extract_split("ucla", None, part, Path(demo_raw) / "ucla", other, img_size=48, workers=1,
                             progress=False).ok
    train = [sys.executable, str(REPO / "train.py"), "-d", "ucla", "-desc", "GD", "-despth", str(demo_descriptors),
             "-ckpt", str(ckpt), "--epochs", "1", "--width", "0.0625", "-gpu", "-1", "--no-progress", "-workers", "0"]
    assert subprocess.run(train, capture_output=True, text=True, timeout=600).returncode == 0
    test = [sys.executable, str(REPO / "test.py"), "-d", "ucla", "-desc", "GD", "-ckpt", str(ckpt), "--epoch", "last",
            "-gpu", "-1", "-workers", "0"]
    proc = subprocess.run([*test, "-despth", str(other)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and "--overwrite" not in proc.stderr, proc.stderr
    command = proc.stderr.split("make the model's images in another folder with: ")[1].split(", and evaluate")[0]
    elsewhere = proc.stderr.split("evaluate with -despth ")[1].split(";")[0]
    assert "--img-size 32" in command and f"-despth {elsewhere}" in command
    made = subprocess.run([sys.executable, str(REPO / shlex.split(command)[1]), *shlex.split(command)[2:]],
                          capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr
    proc = subprocess.run([*test, "-despth", elsewhere], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(provenance.record_path(descriptor_dir(other, Split("ucla", "cview", "test"), "GD")).read_text())
    assert record["img_size"] == 48   # the other models' folder is untouched
