"""train.py reruns and failures: a finished run is skipped, an unfinished one resumed, other settings
refused (--overwrite starts over); checkpoints record the folders' provenance; a changed PNG
rebuilds the --cache pack; corrupt or wrong-size images, a full disk and --pretrained without
network end in one line, keeping the epochs already saved."""
from __future__ import annotations

import errno
import gc
import os
import subprocess
import sys
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image

import train
from conftest import synthetic_ucla, visible
from descriptors.dataset import CACHE_DIR, CACHE_REMEDY, DescriptorImages, write_synthetic_split
from models import checkpoint
from models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from models.networks import WeightsUnavailableError, build_model
from common.errors import error_line
from models.recipe import make_scheduler
from models.config import TrainConfig
from models.reruns import INFO_KEYS, RUN_KEYS, plan_run, run_settings
from skeletons.layouts import UCLA, layout_record
from descriptors.names import descriptor_dir
from skeletons.datasets import Split

WIDTH = "0.0625"
SIZE = 32
N = 20  # images per split: 2 per class, 10 classes


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """NW-UCLA train and test descriptor folders, 32-pixel class-dependent images; never modified."""
    return synthetic_ucla(tmp_path_factory.mktemp("descriptors"))


@pytest.fixture
def records(monkeypatch) -> dict:
    """{part: {desc: record or None}}: what DescriptorImages reports as its folders' provenance,
    whatever files the folders have beside them."""
    table: dict = {}
    original = DescriptorImages.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if self.part in table:
            self.provenance = {d: table[self.part].get(d) for d in self.descs}

    monkeypatch.setattr(DescriptorImages, "__init__", init)
    return table


UCLA_LAYOUT = layout_record(UCLA)


def record(part: str, mode: str = "paper", img_size: int = SIZE, fingerprint: str = "a" * 20,
           layout: dict = UCLA_LAYOUT) -> dict:
    return {"version": 1, "dataset": "ucla", "protocol": "cview", "part": part, "descriptor": "GD", "mode": mode,
            "img_size": img_size, "layout": layout, "png_level": 1, "samples": N, "fingerprint": fingerprint,
            "complete": True}


def train_cli(root: Path, ckpt: Path, capsys, *extra: str) -> tuple[int, str, str]:
    """train.py's main on a tiny GD model; (exit status, stdout, stderr)."""
    capsys.readouterr()
    args = train.get_args_parser().parse_args(
        ["-d", "ucla", "-desc", "GD", "-gpu", "-1", "-despth", str(root), "-ckpt", str(ckpt), "--width", WIDTH,
         "--workers", "0", "--batch-size", "8", "--lr", "1e-3", "--no-progress", "--epochs", "1", *extra])
    status = train.main(args)
    out, err = capsys.readouterr()
    return status, out, err


def one_line_error(err: str) -> str:
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err.strip()


def last(ckpt: Path):
    return load_checkpoint(ckpt / "ucla_GD_last.tar")


# ----------------------------------------------------------------------------- plan_run

def test_plan_run_statuses(tmp_path):
    args = TrainConfig(dataset="ucla", protocol="cview", desc="GD", width=0.0625, lr=1e-3, batch_size=8)
    data = {"train": {"GD": {"fingerprint": "a" * 20, "samples": N, "mode": "paper", "img_size": SIZE}},
            "test": {"GD": {"fingerprint": "b" * 20, "samples": N, "mode": "paper", "img_size": SIZE}}}
    settings = run_settings(args, num_classes=10, mode="paper", img_size=SIZE, data=data, amp_dtype=None,
                            world_size=1)
    assert set(settings) == set(RUN_KEYS) | set(INFO_KEYS)
    model = build_model("GD", 10, width=0.0625)
    optimizer = torch.optim.Adam(model.parameters())
    path = tmp_path / "ucla_GD_last.tar"
    assert (plan_run(path, settings, 5).status, plan_run(path, settings, 5).last_epoch) == ("fresh", 0)

    save_checkpoint(path, model=model, optimizer=optimizer, scheduler=make_scheduler(optimizer, "ucla"), epoch=2,
                    best_acc=0.5, settings=settings)
    plan = plan_run(path, settings, 5)
    assert (plan.status, plan.last_epoch, plan.differences, plan.path) == ("resume", 2, [], path)
    assert plan_run(path, settings, 2).status == plan_run(path, settings, 1).status == "finished"

    changed = {**settings, "lr": 0.01, "seed": 3, "amp": "bfloat16",
               "data": {**data, "train": {"GD": {**data["train"]["GD"], "fingerprint": "c" * 20}}}}
    plan = plan_run(path, changed, 5)
    assert plan.status == "mismatch"
    assert plan.differences == ["lr: 0.001 -> 0.01", "seed: 0 -> 3", "amp: None -> bfloat16",
                                "data.train.fingerprint (GD): aaaaaaaaaaaa... -> cccccccccccc..."]
    old = {k: v for k, v in settings.items() if k != "world_size"}  # a file written before world_size was recorded
    save_checkpoint(path, model=model, optimizer=optimizer, scheduler=make_scheduler(optimizer, "ucla"), epoch=2,
                    best_acc=0.5, settings=old)
    assert plan_run(path, settings, 5).differences == ["world_size: (not recorded) -> 1"]

    path.write_bytes(b"truncated")
    with pytest.raises(CheckpointError, match="ucla_GD_last.tar: not a readable .*--overwrite"):
        plan_run(path, settings, 5)


def test_plan_run_without_last_file_checks_the_other_files_of_the_name(tmp_path):
    settings = {"lr": 0.001, "data": {}}
    model = build_model("GD", 10, width=0.0625)
    path = tmp_path / "ucla_GD_last.tar"
    # a run killed before its first _last.tar: its files have these settings, starting again is safe
    save_checkpoint(tmp_path / "ucla_GD_1_epoch.tar", model=model, epoch=1, best_acc=0.1, settings=settings)
    assert plan_run(path, settings, 3).status == "fresh"
    torch.save(model.state_dict(), tmp_path / "ucla_GD_epoch_best.tar")  # as the release writes its weights
    plan = plan_run(path, {**settings, "lr": 0.01}, 3)
    assert plan.status == "mismatch"
    assert plan.differences[0].startswith("ucla_GD_1_epoch.tar: lr: 0.001 -> 0.01")
    assert plan.differences[1].startswith("ucla_GD_epoch_best.tar: not made by train.py")


# ----------------------------------------------------------------------------- reruns

def test_rerun_skips_a_finished_run_and_more_epochs_continue_it(root, tmp_path, capsys):
    assert train_cli(root, tmp_path, capsys, "--epochs", "2")[0] == 0
    stamp = (tmp_path / "ucla_GD_last.tar").stat().st_mtime_ns
    status, out, _ = train_cli(root, tmp_path, capsys, "--epochs", "2", "--resume")  # --resume is still accepted
    assert status == 0 and "epoch   1" not in out
    assert f"\nalready trained: {tmp_path / 'ucla_GD_last.tar'} reached epoch 2 of 2\n" in out
    assert "already trained" in train_cli(root, tmp_path, capsys, "--epochs", "1")[1]
    assert (tmp_path / "ucla_GD_last.tar").stat().st_mtime_ns == stamp

    status, out, _ = train_cli(root, tmp_path, capsys, "--epochs", "3")
    assert status == 0 and "resuming" in out and "epoch   3" in out and "epoch   2" not in out
    assert last(tmp_path).epoch == 3 and [r["epoch"] for r in last(tmp_path).raw["history"]] == [1, 2, 3]


def test_other_settings_are_refused_listing_every_difference(root, tmp_path, capsys):
    assert train_cli(root, tmp_path, capsys)[0] == 0
    stamp = (tmp_path / "ucla_GD_last.tar").stat().st_mtime_ns
    status, _, err = train_cli(root, tmp_path, capsys, "--epochs", "2", "--lr", "0.01", "--seed", "3",
                               "--batch-size", "4", "--workers", "1")  # workers are not a setting of the run
    assert status == 2
    line = one_line_error(err)
    assert line.startswith(f"error: {tmp_path / 'ucla_GD_last.tar'}: recorded other settings")
    assert "lr: 0.001 -> 0.01" in line and "batch_size: 8 -> 4" in line and "seed: 0 -> 3" in line
    assert "workers" not in line and "--overwrite" in line and "another -ckpt" in line
    assert (tmp_path / "ucla_GD_last.tar").stat().st_mtime_ns == stamp


def test_overwrite_removes_the_old_run_only(root, tmp_path, capsys):
    assert train_cli(root, tmp_path, capsys, "--epochs", "3")[0] == 0
    others = ["ucla_JDD_1_epoch.tar", "ucla_all_last.tar", "ucla_GD_notes.txt"]
    for name in others:
        (tmp_path / name).write_bytes(b"not this run's")
    status, out, _ = train_cli(root, tmp_path, capsys, "--overwrite", "--lr", "0.01")
    assert status == 0 and "removed the 8 file(s)" in out   # 3 epochs kept, best, last, log, curves, TensorBoard's
    assert visible(tmp_path) == sorted(
        ["ucla_GD_1_epoch.tar", "ucla_GD_epoch_best.tar", "ucla_GD_last.tar", "ucla_GD_log.csv", *others])
    assert (tmp_path / "ucla_GD_curves.png").is_file()   # the new run's own
    assert last(tmp_path).settings["lr"] == 0.01 and last(tmp_path).epoch == 1
    assert len((tmp_path / "ucla_GD_log.csv").read_text().splitlines()) == 2


def test_files_of_another_run_without_last_file_are_refused(root, tmp_path, capsys):
    released = tmp_path / "ucla_GD_epoch_best.tar"
    torch.save(build_model("GD", 10, width=0.0625).state_dict(), released)  # the authors' weights, say
    status, _, err = train_cli(root, tmp_path, capsys)
    assert status == 2 and "ucla_GD_epoch_best.tar: not made by train.py" in one_line_error(err)
    assert released.is_file()


# ----------------------------------------------------------------------------- provenance

def test_checkpoint_records_the_folders_provenance(root, tmp_path, records, capsys):
    records["train"] = {"GD": record("train", mode="clean", fingerprint="f" * 20)}
    records["test"] = {"GD": record("test", mode="clean", fingerprint="e" * 20)}
    status, out, _ = train_cli(root, tmp_path, capsys)
    assert status == 0 and "assuming" not in out
    settings = last(tmp_path).settings
    assert set(settings) == set(RUN_KEYS) | set(INFO_KEYS)
    assert (settings["mode"], settings["img_size"], settings["layout"]) == ("clean", SIZE, UCLA_LAYOUT)
    facts = {"samples": N, "mode": "clean", "img_size": SIZE, "layout": UCLA_LAYOUT, "sources": None}
    assert settings["data"] == {"train": {"GD": {"fingerprint": "f" * 20, **facts}},
                                "test": {"GD": {"fingerprint": "e" * 20, **facts}}}

    records["train"] = {"GD": record("train", mode="clean", fingerprint="0" * 20)}  # other training data
    status, _, err = train_cli(root, tmp_path, capsys, "--epochs", "2")
    assert status == 2 and "data.train.fingerprint (GD): ffffffffffff... -> 000000000000..." in one_line_error(err)
    assert train_cli(root, tmp_path, capsys, "--epochs", "2", "--overwrite")[0] == 0


def test_mode_flag_and_records_must_agree(root, tmp_path, records, capsys):
    train_folder = descriptor_dir(root, Split.of("ucla", None, "train"), "GD")
    records["train"] = {"GD": record("train", mode="clean")}
    records["test"] = {"GD": record("test", mode="clean")}
    status, _, err = train_cli(root, tmp_path, capsys, "--mode", "paper")
    line = one_line_error(err)
    assert status == 2 and f"{train_folder}: images are clean mode, --mode paper given" in line
    assert "skels2desc_ucla.py" in line and "--mode paper --img-size 32 --overwrite" in line and "drop --mode" in line

    records["test"] = {"GD": record("test", mode="paper")}
    status, _, err = train_cli(root, tmp_path, capsys)
    test_folder = descriptor_dir(root, Split.of("ucla", None, "test"), "GD")
    assert status == 2 and f"{train_folder} and {test_folder} differ in mode (clean vs paper)" in one_line_error(err)
    records["test"] = {"GD": record("test", mode="clean", layout={"name": "mine", "digest": "0123456789abcdef"})}
    status, _, err = train_cli(root, tmp_path, capsys)
    ucla = f"ucla (ucla20.json, digest {UCLA_LAYOUT['digest'][:8]})"
    assert status == 2 and (f"{train_folder} and {test_folder} differ in layout ({ucla} vs mine (digest 01234567))"
                            in one_line_error(err))
    assert not visible(tmp_path)


def test_folders_without_a_record_assume_a_mode_and_say_so(root, tmp_path, records, capsys):
    records["train"], records["test"] = {"GD": None}, {"GD": None}
    status, out, _ = train_cli(root, tmp_path / "default", capsys)
    assert status == 0 and out.count("assuming paper mode") == 1
    settings = last(tmp_path / "default").settings
    assert (settings["mode"], settings["img_size"]) == ("paper", SIZE)
    assert settings["data"]["train"]["GD"] == {"fingerprint": None, "sources": None, "samples": N, "mode": None,
                                               "img_size": SIZE, "layout": None}
    status, out, _ = train_cli(root, tmp_path / "clean", capsys, "--mode", "clean")
    assert status == 0 and "assuming clean mode (as --mode says)" in out
    assert last(tmp_path / "clean").settings["mode"] == "clean"


def test_train_and_test_images_of_other_sizes_are_refused(tmp_path, records, capsys):
    write_synthetic_split(tmp_path, "ucla", None, "train", per_class=1, num_classes=10, size=SIZE)
    write_synthetic_split(tmp_path, "ucla", None, "test", per_class=1, num_classes=10, size=16)
    records["train"], records["test"] = {"GD": None}, {"GD": None}
    status, _, err = train_cli(tmp_path, tmp_path / "ckpt", capsys)
    assert status == 2 and "differ in img_size (32 vs 16)" in one_line_error(err)


# ----------------------------------------------------------------------------- images and the cache

def test_cache_is_rebuilt_when_a_png_changes_in_place(own_root):
    folder = descriptor_dir(own_root, Split.of("ucla", None, "train"), "GD")
    first = DescriptorImages(own_root, "ucla", None, "train", "GD", cache=True, uint8=True)
    name, before = first.names[4], first[4][0]
    image = np.asarray(Image.open(folder / name))
    Image.fromarray(255 - image).save(folder / name)  # same name, same size, new pixels
    st = (folder / name).stat()
    os.utime(folder / name, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # coarse-clock file systems
    again = DescriptorImages(own_root, "ucla", None, "train", "GD", cache=True, uint8=True)
    png = DescriptorImages(own_root, "ucla", None, "train", "GD")
    assert torch.equal(again[4][0].float(), png[4][0]) and not torch.equal(again[4][0], before)
    packs = sorted(p.name for p in (own_root / CACHE_DIR).glob(f"{folder.name}_*.npy"))
    # the superseded pack stays while ``first`` (a training started before the change) maps it...
    assert packs == sorted([first.cache_paths[0].name, again.cache_paths[0].name])
    assert torch.equal(first[4][0], before)
    del first
    gc.collect()
    # ...and the next run over the folder removes it
    DescriptorImages(own_root, "ucla", None, "train", "GD", cache=True, uint8=True)
    packs = sorted(p.name for p in (own_root / CACHE_DIR).glob(f"{folder.name}_*.npy"))
    assert packs == [again.cache_paths[0].name]


def test_a_cache_that_cannot_be_written_is_named(own_root, capsys):
    (own_root / CACHE_DIR).write_text("")   # a file where the packs' folder goes (as a read-only root would)
    message = f"{own_root / CACHE_DIR}: cannot write the --cache pack there (File exists); make it writable with room to spare, or leave out --cache"
    with pytest.raises(ValueError) as error:
        DescriptorImages(own_root, "ucla", None, "train", "GD", cache=True)
    assert str(error.value) == message
    status, _, err = train_cli(own_root, own_root / "ckpt", capsys, "--cache")
    assert status == 2 and one_line_error(err) == f"error: {message}"


def test_a_cache_bigger_than_the_disk_allows_is_named_and_leaves_nothing(own_root):
    """Writes failing part way (here a file-size limit, as a full disk would): one line, no temp file."""
    code = ("import resource, signal\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))\n"
            "from descriptors.dataset import DescriptorImages\n"
            "try:\n"
            f"    DescriptorImages({str(own_root)!r}, 'ucla', None, 'train', 'GD', cache=True)\n"
            "except ValueError as error:\n"
            "    print(error)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert run.stdout == f"{own_root / CACHE_DIR}: cannot write the --cache pack there (File too large); {CACHE_REMEDY}\n"
    assert list((own_root / CACHE_DIR).iterdir()) == []


def test_a_png_of_another_size_is_named(own_root, capsys):
    folder = descriptor_dir(own_root, Split.of("ucla", None, "train"), "GD")
    ds = DescriptorImages(own_root, "ucla", None, "train", "GD")
    bad = ds.names[3]
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(folder / bad)
    with pytest.raises(ValueError, match=rf"{bad}: image is 16x16 pixels, expected 32x32 \(the size of "):
        DescriptorImages(own_root, "ucla", None, "train", "GD")[3]
    with pytest.raises(ValueError, match=rf"{bad}: image is 16x16 pixels, expected 32x32"):
        DescriptorImages(own_root, "ucla", None, "train", "GD", cache=True)
    status, _, err = train_cli(own_root, own_root / "ckpt", capsys)
    assert status == 2 and f"{folder / bad}: image is 16x16 pixels, expected 32x32" in one_line_error(err)


def test_a_record_sets_the_expected_size(own_root, records):
    records["train"] = {"GD": record("train", img_size=64)}
    with pytest.raises(ValueError, match=r"0_\d+.png: image is 32x32 pixels, expected 64x64 \(the folder's record"):
        DescriptorImages(own_root, "ucla", None, "train", "GD")[0]


def test_a_corrupt_png_in_a_worker_is_one_line_and_keeps_saved_epochs(own_root, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    assert train_cli(own_root, ckpt, capsys)[0] == 0
    names = DescriptorImages(own_root, "ucla", None, "train", "GD").names
    bad = descriptor_dir(own_root, Split.of("ucla", None, "train"), "GD") / names[5]
    bad.write_bytes(b"not a png")
    status, _, err = train_cli(own_root, ckpt, capsys, "--epochs", "2", "--workers", "1")
    line = one_line_error(err)
    assert status == 2 and line.startswith(f"error: {bad}: unreadable descriptor image") and "Caught" not in line
    assert last(ckpt).epoch == 1 and load_checkpoint(ckpt / "ucla_GD_1_epoch.tar").epoch == 1


def test_error_line_keeps_a_worker_errors_own_message():
    from torch._utils import ExceptionWrapper

    try:
        raise ValueError("/d/ucla_GD_train/3_1.png: unreadable descriptor image (cannot identify image file)")
    except ValueError:
        wrapped = ExceptionWrapper(where="in DataLoader worker process 0")
    with pytest.raises(ValueError) as caught:
        wrapped.reraise()
    assert "\n" in str(caught.value)
    assert error_line(caught.value) == ("/d/ucla_GD_train/3_1.png: unreadable descriptor image "
                                        "(cannot identify image file)")
    assert error_line(ValueError("a\n  b")) == "a b"


# ----------------------------------------------------------------------------- full disk, no network

def test_a_real_full_disk_is_named_and_the_same_command_continues_after_room_is_made(root, small_disk, capsys):
    small_disk = small_disk("1m")
    status, _, err = train_cli(root, small_disk, capsys, "--epochs", "3", "--width", "0.125")
    line = one_line_error(err)
    assert status == 2 and f"checkpoint not written (no space left on {small_disk})" in line
    assert not [p for p in small_disk.iterdir() if ".tmp" in p.name]   # no half-written file
    saved = [load_checkpoint(small_disk / n).epoch for n in visible(small_disk) if n.endswith("_last.tar")]
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)   # room made
    status, out, _ = train_cli(root, small_disk, capsys, "--epochs", "3", "--width", "0.125")
    assert status == 0 and last(small_disk).epoch == 3
    assert ("resuming" in out) == bool(saved)


def test_a_checkpoint_folder_that_cannot_be_written_stops_the_run_before_it_trains(root, tmp_path, capsys):
    in_the_way = tmp_path / "checkpoints"
    in_the_way.write_text("a file where the folder goes (as a read-only folder would refuse it)")
    status, out, err = train_cli(root, in_the_way, capsys)
    assert status == 2 and "epoch   1" not in out
    assert one_line_error(err) == (f"error: {in_the_way}: cannot write checkpoints there (File exists); "
                                   f"choose another -ckpt, or make it writable")


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
                                     OSError(errno.EIO, os.strerror(errno.EIO))])
def test_a_full_disk_is_one_line_and_keeps_the_saved_epochs(root, tmp_path, capsys, monkeypatch, failure):
    real_write, calls = checkpoint.write_bytes_atomic, []

    def write(path, data, *args, **kwargs):
        calls.append(path)
        if len(calls) == 4:  # epoch 1 writes its epoch file, best and last; epoch 2's epoch file fails
            raise failure    # (write_bytes_atomic leaves no temp file behind)
        return real_write(path, data, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "write_bytes_atomic", write)
    status, _, err = train_cli(root, tmp_path, capsys, "--epochs", "3")
    line = one_line_error(err)
    assert status == 2 and line.startswith(f"error: {tmp_path / 'ucla_GD_2_epoch.tar'}: checkpoint not written (")
    assert (f"(no space left on {tmp_path})" if failure.errno == errno.ENOSPC else "Input/output error)") in line
    assert visible(tmp_path) == ["ucla_GD_1_epoch.tar", "ucla_GD_epoch_best.tar",
                                 "ucla_GD_last.tar", "ucla_GD_log.csv"]
    assert [load_checkpoint(tmp_path / n).epoch for n in ("ucla_GD_1_epoch.tar", "ucla_GD_last.tar")] == [1, 1]

    monkeypatch.setattr(checkpoint, "write_bytes_atomic", real_write)  # space freed: the same command continues
    status, out, _ = train_cli(root, tmp_path, capsys, "--epochs", "3")
    assert status == 0 and "resuming" in out and last(tmp_path).epoch == 3


def test_pretrained_without_network_is_one_line(root, tmp_path, capsys, monkeypatch):
    import torchvision.models._api as api

    def offline(url, *args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsUnavailableError) as caught:
        build_model("GD", 10, arch="shufflenet_v2_x0_5", pretrained=True)
    where = Path(torch.hub.get_dir()) / "checkpoints" / "shufflenetv2_x0.5-f707e7126e.pth"
    assert f"from {where}" in str(caught.value) and "\n" not in str(caught.value)
    status, _, err = train_cli(root, tmp_path, capsys, "--arch", "shufflenet_v2_x0_5", "--pretrained")
    line = one_line_error(err)
    assert status == 2 and "shufflenet_v2_x0_5 weights could not be downloaded" in line
    assert "name resolution" in line and "without --pretrained" in line
    assert not visible(tmp_path)


def test_default_workers_fit_the_cpus():
    args = train.get_args_parser().parse_args(["-d", "ucla", "-desc", "GD"])
    assert args.workers == min(4, len(os.sched_getaffinity(0))) and args.mode is None and not args.overwrite
