"""Ctrl-C and a full disk in the middle of txt2npy, skels2desc and train.py: one line, no
traceback (from the front end or its workers), everything finished kept, and the same command
continues. Each run is a real process group interrupted as a terminal's Ctrl-C interrupts it."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from descriptors import provenance
from descriptors.names import descriptor_dir, image_name
from skeletons.datasets import Split, split_names
from skeletons.ntu import load_skeleton_npy

SIZE = 32


def stalled(patch: str, entry: str) -> list[str]:
    """A command that runs ``entry`` after ``patch`` made one call stall (printing 'stalled'
    first), so the test interrupts it mid-run, when part of the work is done."""
    code = f"import sys, time\nsys.path.insert(0, {str(REPO)!r})\n{patch}\n{entry}\n"
    return [sys.executable, "-c", code]


def stall_on(module: str, function: str, call: int) -> str:
    """Patch ``module.function`` to stall at its ``call``-th call in a process (forked workers inherit it)."""
    return (f"import {module} as target\nreal, calls = target.{function}, [0]\n"
            f"def stalling(*args, **kwargs):\n"
            f"    calls[0] += 1\n"
            f"    if calls[0] == {call}:\n"
            f"        print('stalled', flush=True)\n"
            f"        time.sleep(120)\n"
            f"    return real(*args, **kwargs)\n"
            f"target.{function} = stalling\n")


def default_sigint() -> None:
    """In the child before it starts: Ctrl-C's default action, whatever pytest inherited (nohup and a
    shell's background jobs start with SIGINT ignored, and Python then keeps it ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt(command: list[str]) -> tuple[int, str, str]:
    """Run ``command`` in its own process group, Ctrl-C the group once it stalls; (status, stdout, stderr)."""
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, preexec_fn=default_sigint)
    try:
        seen = []
        # the marker alone on its line ("stalled" is also inside words such as "installed")
        while (line := process.stdout.readline()) and line.strip() != "stalled":   # workers may print at once
            seen.append(line)
        assert line, f"never stalled: {''.join(seen)} {process.stderr.read()}"
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode, "".join(seen) + out, err


def assert_one_interrupted_line(status: int, err: str) -> None:
    assert status == 130, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("interrupted; ") and err.strip().endswith("rerun the same command to continue")


def test_txt2npy_interrupted_keeps_every_converted_file(demo_raw, tmp_path):
    txt, npy = Path(demo_raw) / "ntu" / "txt60skel", tmp_path / "npy"
    args = ["-d", "ntu60", "-txt", str(txt), "-npy", str(npy), "--no-progress", "-workers", "2"]
    status, _, err = interrupt(stalled(stall_on("skeletons.convert", "convert_file", 4),
                                       f"import txt2npy\nsys.exit(txt2npy.main(txt2npy.get_args_parser()"
                                       f".parse_args({args!r})))"))
    assert_one_interrupted_line(status, err)
    done = sorted(npy.glob("*.skeleton.npy"))
    # a worker stopped mid-write leaves at most a hidden temp file, never a half-written .skeleton.npy
    assert done and all(p.name.startswith(".") and ".tmp" in p.name for p in npy.iterdir() if p not in done)
    for path in done:
        assert load_skeleton_npy(path)["nbodys"]   # each one complete
    rerun = subprocess.run([sys.executable, "txt2npy.py", *args], cwd=REPO, capture_output=True, text=True)
    assert rerun.returncode == 0 and f"already done: {len(done)}" in rerun.stdout


def test_skels2desc_interrupted_lists_the_images_it_wrote(demo_raw, tmp_path):
    seq, root = Path(demo_raw) / "ucla", tmp_path / "descriptors"
    args = ["-d", "ucla", "-dspath", str(seq), "-despth", str(root), "-a", "train", "--img-size", str(SIZE),
            "--quiet", "-workers", "2"]
    # the front end stalls as it lists the fourth image: three are listed, more may be on disk
    status, _, err = interrupt(stalled(stall_on("descriptors.extract", "SplitWriter.add", 4),
                                       f"from cli.skels2desc import main\nsys.exit(main({args!r}, "
                                       f"datasets=('ucla',)))"))
    assert_one_interrupted_line(status, err)
    folder = descriptor_dir(root, Split.of("ucla", None, "train"), "GD")
    rows = provenance.read_manifest(folder)
    assert len(rows) == 3 and {image_name(row["index"], row["label"]) for row in rows} <= \
        set(provenance.list_image_names(folder))   # an image still on its way from a worker is remade
    rerun = subprocess.run([sys.executable, "skels2desc_ucla.py", *args], cwd=REPO, capture_output=True, text=True)
    assert rerun.returncode == 0 and f"{len(rows)} already done" in rerun.stdout, rerun.stdout + rerun.stderr


def test_train_interrupted_keeps_the_saved_epochs_and_continues(demo_descriptors, tmp_path):
    ckpt = tmp_path / "ckpt"
    args = ["-d", "ucla", "-desc", "GD", "-gpu", "-1", "-despth", str(demo_descriptors), "-ckpt", str(ckpt),
            "--width", "0.0625", "--workers", "0", "--batch-size", "8", "--lr", "1e-3", "--no-progress",
            "--epochs", "3"]
    status, out, err = interrupt(stalled(stall_on("models.training", "run_epoch", 2),
                                         f"import train\nsys.exit(train.main(train.get_args_parser()"
                                         f".parse_args({args!r})))"))
    assert_one_interrupted_line(status, err)
    assert "epoch   1" in out and (ckpt / "ucla_GD_last.tar").is_file()
    rerun = subprocess.run([sys.executable, "train.py", *args], cwd=REPO, capture_output=True, text=True)
    assert rerun.returncode == 0 and "resuming" in rerun.stdout and "epoch   3" in rerun.stdout


def test_skels2desc_on_a_full_disk_names_it_and_the_same_command_finishes_later(demo_raw, small_disk):
    small_disk = small_disk("256k")
    seq = Path(demo_raw) / "ucla"
    command = [sys.executable, "skels2desc_ucla.py", "-d", "ucla", "-dspath", str(seq), "-despth", str(small_disk),
               "-a", "train", "--img-size", "112", "--quiet", "-workers", "1"]
    full = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert full.returncode == 2 and "Traceback" not in full.stderr and full.stderr.count("\n") == 1, full.stderr
    assert re.match(rf"error: no space left on {re.escape(str(small_disk))}; \d+ sample\(s\) written before it are "
                    rf"kept; rerun the same command once there is room", full.stderr), full.stderr
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)   # room made
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    total = len(split_names(seq.iterdir(), Split.of("ucla", None, "train")))
    folder = descriptor_dir(small_disk, Split.of("ucla", None, "train"), "GD")
    assert len(provenance.read_manifest(folder)) == len(provenance.list_image_names(folder)) == total
    assert provenance.read_record(folder)["complete"]


def test_predict_names_missing_and_unfinished_models_and_the_true_class(demo_raw, demo_descriptors, tmp_path,
                                                                        monkeypatch, capsys):
    import predict
    import train
    from models import training

    ckpt = tmp_path / "ckpt"
    run_epoch = training.run_epoch

    def stop_at_epoch_two(epoch, *args):
        if epoch == 2:
            raise KeyboardInterrupt
        return run_epoch(epoch, *args)

    monkeypatch.setattr(training, "run_epoch", stop_at_epoch_two)
    argv = ["-d", "ucla", "-desc", "GD", "-gpu", "-1", "-despth", str(demo_descriptors), "-ckpt", str(ckpt),
            "--width", "0.0625", "--workers", "0", "--no-progress", "--epochs", "3"]
    assert train.main(train.get_args_parser().parse_args(argv)) == 130   # Ctrl-C in epoch 2
    sample = sorted((Path(demo_raw) / "ucla").glob("a01_*.json"))[0]
    capsys.readouterr()
    assert predict.main(predict.get_args_parser().parse_args(
        [str(sample), "-d", "ucla", "-ckpt", str(ckpt), "--epoch", "last", "-gpu", "-1"])) == 0
    out, err = capsys.readouterr()
    assert "note: using GD; missing JDD, ADD, LAD, FDD, all" in err
    assert "warning: GD's training stopped at epoch 1 of 3 (unfinished)" in err
    assert "  true class: pick up with one hand\n" in out
