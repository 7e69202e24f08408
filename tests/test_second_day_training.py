"""Issue 27 for train.py: many models in one command (-desc GD,JDD,...: each its own run, the
worst exit status, a bad name refused before anything is trained), training that says how it
ended (best epoch and on what split it was chosen, last epoch, files, time, images/s; also for a
run already finished), notices that hold for the whole run said once per process, NW-UCLA's
partial splits named as NTU's are, a slow epoch's rate as s/image, and Ctrl-C that takes effect
within seconds while the main thread is inside one long call into torch."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import train
from cli.train import run as train_run
from common.notices import forget_notices
from conftest import REPO, synthetic_ucla
from models import curves
from models.checkpoint import load_checkpoint
from models.config import TrainConfig
from models.logs import Ending, format_epoch_line, rate_text
from models.loop import RunOptions, train_one_epoch
from models.networks import build_model
from models.recipe import make_criterion
from skeletons.datasets import Split, official_split_size, presence_note

TINY = ["-gpu", "-1", "--width", "0.0625", "--workers", "0", "--batch-size", "8", "--lr", "1e-3", "--no-progress"]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """NW-UCLA train and test descriptor folders (20 images each, 32 px); never modified."""
    return synthetic_ucla(tmp_path_factory.mktemp("descriptors"))


@pytest.fixture(autouse=True)
def fresh_notices(monkeypatch):
    """Each test starts as a new process would: no notice said yet; no curves drawn (0.3-1 s a model;
    tests/test_curves.py covers them)."""
    monkeypatch.setattr(curves, "write_curves", lambda rows, ckpt, prefix: True)
    forget_notices()
    yield
    forget_notices()


def train_py(root: Path, ckpt: Path, desc: str, *extra: str) -> int:
    args = ["-d", "ucla", "-desc", desc, "-despth", str(root), "-ckpt", str(ckpt), *TINY, *extra]
    return train.main(train.get_args_parser().parse_args(args))


# ----------------------------------------------------------------------------- -desc lists

def table_rows(out: str, names: str) -> list[list[str]]:
    """(model, first word of how it ended) of each row of the table a -desc list ends with."""
    return [row.split()[:2] for row in out[out.index(f"-desc {names}: "):].splitlines()[2:]]


def test_a_desc_list_trains_each_model_as_its_own_run_with_notices_once_and_a_table(root, tmp_path, capsys):
    assert train_py(root, tmp_path, "GD,all", "--epochs", "1") == 0
    out = capsys.readouterr().out
    for prefix in ("ucla_GD", "ucla_all"):   # each its own run: checkpoints, log, summary
        assert load_checkpoint(tmp_path / f"{prefix}_last.tar").epoch == 1
        assert (tmp_path / f"{prefix}_log.csv").is_file()
        assert f"{prefix}: finished at epoch 1 (epoch 1 trained now):" in out
    assert out.index("== -desc GD (1 of 2)") < out.index("ucla_GD: finished") < out.index("== -desc all (2 of 2)")
    # notices that hold for the whole run: once, not once per model
    assert out.count("notice: running on CPU") == 1
    assert out.count("notice: fewer samples than the official splits (ucla cview train: 20 of 1,020") == 1
    table = out[out.index("-desc GD,all: 2 of 2 trained or already finished"):].splitlines()
    assert table[1].split() == ["model", "how", "it", "ended", "best", "epoch", "best", "acc", "chosen", "on",
                                "last", "epoch", "last", "test", "acc", "time"]
    assert table_rows(out, "GD,all") == [["ucla_GD", "trained"], ["ucla_all", "trained"]]

    # a finished model is skipped and summarised from its checkpoint; a repeated name is one run
    assert train_py(root, tmp_path, "all,JDD,all", "--epochs", "1") == 0
    out = capsys.readouterr().out
    assert "== -desc all (1 of 2)" in out and "notice: running on CPU" not in out   # said once per process
    summary = out[out.index("ucla_all: already finished at epoch 1; nothing trained now (from its checkpoint):"):]
    lines = summary.splitlines()
    assert lines[1].startswith("  best epoch 1: test accuracy ") and "(chosen on the test split" in lines[1]
    assert lines[2].startswith("  last epoch 1: test accuracy ")
    assert lines[3].startswith("  time: training took ") and "in earlier runs" in lines[3]
    assert lines[5].startswith(f"    {tmp_path / 'ucla_all_1_epoch.tar'}")
    assert table_rows(out, "all,JDD") == [["ucla_all", "already"], ["ucla_JDD", "trained"]]

    # one refused (other settings), the next still trained: the exit status is the worst, 2
    assert train_py(root, tmp_path, "GD,ADD", "--epochs", "1", "--seed", "1") == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith(f"error: {tmp_path / 'ucla_GD_last.tar'}: recorded other settings")
    assert table_rows(out, "GD,ADD") == [["ucla_GD", "failed"], ["ucla_ADD", "trained"]]


def test_ctrl_c_stops_the_list(root, tmp_path, capsys, monkeypatch):
    from models import training

    run_epoch = training.run_epoch

    def interrupted_in_jdd(epoch, run, *args):
        if run.config.desc == "JDD":
            raise KeyboardInterrupt
        return run_epoch(epoch, run, *args)

    monkeypatch.setattr(training, "run_epoch", interrupted_in_jdd)
    assert train_py(root, tmp_path, "GD,JDD,ADD", "--epochs", "1") == 130
    out, err = capsys.readouterr()
    assert err == "interrupted; the epochs saved so far are kept; rerun the same command to continue\n"
    assert "== -desc JDD (2 of 3)" in out and "ADD" not in out and "-desc GD,JDD,ADD: " not in out
    assert (tmp_path / "ucla_GD_last.tar").is_file() and not (tmp_path / "ucla_JDD_last.tar").exists()


def test_a_bad_name_in_the_list_is_refused_before_anything_is_trained(root, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    assert train_py(root, ckpt, "GD,jdd", "--epochs", "1") == 2
    out, err = capsys.readouterr()
    assert err == ("error: -desc GD,jdd: 'jdd' is not a model name (did you mean JDD?); give one or more of GD, "
                   "JDD, ADD, LAD, FDD, all, comma-separated (-desc GD,JDD,all)\n")
    assert out == "" and not ckpt.exists()
    assert train_run(TrainConfig(dataset="ucla", protocol="csub", desc="GD", ckpt=str(ckpt))) == 2
    assert "csub" in capsys.readouterr().err and not ckpt.exists()


# ----------------------------------------------------------------------------- how it ended

def rows(*accs: tuple[float, float | str]) -> list[dict]:
    """Log rows of epochs 1.. with (test_acc, val_acc), 10 s and 50 images each."""
    return [{"epoch": k, "test_acc": test, "val_acc": val, "seconds": 10.0, "images_per_s": 5.0}
            for k, (test, val) in enumerate(accs, start=1)]


def test_the_best_epoch_is_the_first_best_on_the_split_that_chose_it(tmp_path):
    history = rows((0.5, ""), (0.7, ""), (0.7, ""), (0.6, ""))
    ending = Ending("ntu60_csub_GD", "fresh", history, 0.7, 0.0, 1, 45.0, [tmp_path / "ntu60_csub_GD_epoch_best.tar"])
    assert (ending.best["epoch"], ending.last["epoch"], ending.chosen_on) == (2, 4, "test")
    assert ending.lines()[:4] == [
        "ntu60_csub_GD: finished at epoch 4 (epochs 1-4 trained now):",
        "  best epoch 2: test accuracy 70.00% (chosen on the test split, as the release does; --val-fraction "
        "chooses on held-out training samples)",
        "  last epoch 4: test accuracy 60.00%",
        "  time: 45.0 s (training 40.0 s, 5 img/s)"]
    assert ending.lines()[5].endswith("the best epoch (2): test.py and predict.py use it")
    held = Ending("ucla_GD", "resume", rows((0.9, 0.2), (0.1, 0.6), (0.8, 0.4)), 0.6, 0.1, 3, 12.0)
    assert held.best["epoch"] == 2 and held.chosen_on == "held-out"
    assert held.lines()[:2] == ["ucla_GD: finished at epoch 3 (epoch 3 trained now, resumed):",
                                "  best epoch 2: held-out accuracy 60.00%, test accuracy 10.00% (chosen on the 10% "
                                "of train held out by --val-fraction 0.1)"]
    assert held.lines()[3] == "  time: 12.0 s (training 10.0 s, 5 img/s)"   # the epoch trained now only


def test_a_slow_epoch_says_seconds_per_image():
    assert rate_text(35.2) == "35 img/s" and rate_text(0.25) == "4.0 s/image"
    row = {"epoch": 1, "lr": 1e-4, "train_loss": 4.1, "train_acc": 0.1, "test_loss": 4.0, "test_acc": 0.1,
           "best_acc": 0.1, "seconds": 3200.0, "images_per_s": 0.4}
    assert format_epoch_line(row).endswith("(3200 s, 2.5 s/image)")
    ending = Ending("ntu60_csub_all", "fresh", [{**row, "val_acc": ""}], 0.1, 0.0, 1, 3300.0)
    assert ending.lines()[3] == "  time: 55 min 00 s (training 53 min 20 s, 2.5 s/image)"


def test_the_progress_bar_counts_images_and_says_seconds_per_image_when_slow(capsys, monkeypatch):
    clock = iter(range(0, 10**6, 3))   # tqdm's clock: 3 s between its readings, as a full-width CPU batch
    monkeypatch.setattr("tqdm.std.time", lambda: float(next(clock)))
    torch.manual_seed(0)
    data = TensorDataset(torch.rand(4, 3, 32, 32) * 255, torch.tensor([0, 1, 2, 0]))
    model = build_model("GD", 3, width=0.0625)
    train_one_epoch(model, make_criterion(None), torch.optim.Adam(model.parameters()), DataLoader(data, batch_size=2),
                    torch.device("cpu"), 1, RunOptions(progress=True))
    err = capsys.readouterr().err
    assert "4/4" in err and "s/image" in err   # images, not batches; under 1 image/s as s/image


# ----------------------------------------------------------------------------- notices

def test_nw_ucla_partial_splits_get_the_official_split_notice():
    train_split, test_split = Split.of("ucla", None, "train"), Split.of("ucla", None, "test")
    assert (official_split_size(train_split), official_split_size(test_split)) == (1020, 464)   # docs/METHOD.md
    assert presence_note({train_split: 1020, test_split: 464}) is None
    assert presence_note({train_split: 1020, test_split: 100}) == (
        "notice: fewer samples than the official split (ucla cview test: 100 of 464 (21.6%)); the figures are not "
        "comparable with published ones")


def test_the_tensorboard_notice_is_said_once_for_all_models(tmp_path, monkeypatch):
    monkeypatch.setattr(curves, "write_curves", lambda rows, ckpt, prefix: False)   # as without tensorboard
    said = []
    for prefix in ("ucla_GD", "ucla_JDD"):
        writer = curves.CurveWriter(tmp_path, prefix, said.append)
        writer.update(rows((0.5, "")))
        writer.close()
    assert said == [f"notice: tensorboard is not installed, so the training curves are only drawn as "
                    f"<model>_curves.png in {tmp_path} (pip install -r requirements-extra.txt)"]


# ----------------------------------------------------------------------------- Ctrl-C

# Stall the ``call``-th batch in the main thread as one long call into torch does: SIGINT blocked
# there, so Python's handler cannot run until the call returns (a full-width backward pass on the
# CPU is one such call of 30 s and more). STALLED is said once the main thread is inside the call.
STALL = """import signal, threading, time, models.loop as loop
loop.INTERRUPT_GRACE = 0.5
real, calls = loop.forward_loss, [0]
def stalling(*args, **kwargs):
    calls[0] += 1
    if calls[0] == {call}:
        signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGINT}})
        threading.Timer(0.5, lambda: print('STALLED', flush=True)).start()
        time.sleep(60)
    return real(*args, **kwargs)
loop.forward_loss = stalling
"""


def test_ctrl_c_inside_a_long_native_call_ends_training_within_seconds(root, tmp_path):
    args = ["-d", "ucla", "-desc", "GD", "-despth", str(root), "-ckpt", str(tmp_path), *TINY, "--epochs", "3"]
    code = (f"import sys\nsys.path.insert(0, {str(REPO)!r})\n{STALL.format(call=1)}\nimport train\n"
            f"sys.exit(train.main(train.get_args_parser().parse_args({args!r})))\n")
    process = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        seen = []
        while (line := process.stdout.readline()) and "STALLED" not in line:
            seen.append(line)
        assert line, f"never stalled: {''.join(seen)} {process.stderr.read()}"
        os.killpg(process.pid, signal.SIGINT)
        sent = time.monotonic()
        out, err = process.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130 and took < 10, (took, err)
    assert err == "interrupted; the epochs saved so far are kept; rerun the same command to continue\n"
    assert "training ucla_GD: " in "".join(seen) and not list(tmp_path.glob("*.tar"))   # stopped in epoch 1
