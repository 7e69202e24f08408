"""Training: the released schedule and loss, the descriptor-image dataset, end-to-end train.py runs
(learning, exact resume, two-process torchrun) on small class-dependent descriptor folders."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import train
from conftest import visible
from descriptors.dataset import DescriptorImages, write_synthetic_split
from models.checkpoint import load_checkpoint
from models.recipe import lr_factor, make_criterion, make_scheduler, soft_targets, total_loss
from descriptors.names import FUSION_ORDER, descriptor_dir
from models.names import checkpoint_path
from skeletons.datasets import Split

REPO = Path(__file__).resolve().parents[1]
WIDTH = "0.0625"

# The release, NTU, epochs 1..20: 1e-4 (1-5), 5e-5 (6), 2.5e-5 (7), 1.25e-5 (8-10), then halved every 3 epochs.
NTU_LR_1_TO_20 = [1e-4] * 5 + [5e-5, 2.5e-5] + [1.25e-5] * 3 + [6.25e-6] * 3 + [3.125e-6] * 3 \
    + [1.5625e-6] * 3 + [7.8125e-7]


@pytest.mark.parametrize("dataset", ["ntu60", "ntu120", "ucla"])
def test_learning_rate_per_epoch(dataset):
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-4)
    sched = make_scheduler(opt, dataset)
    rates = []
    for _ in range(20):
        rates.append(opt.param_groups[0]["lr"])
        opt.step(), sched.step()
    expected = [1e-4] * 20 if dataset == "ucla" else NTU_LR_1_TO_20
    assert rates == pytest.approx(expected, rel=1e-12)
    assert (lr_factor(dataset, 41) * 1e-4 < 1e-8) == (dataset != "ucla")


def test_soft_target_loss_and_fuse5_sum():
    logits, labels = torch.randn(4, 5), torch.tensor([0, 3, 1, 4])
    targets = soft_targets(labels, 5)
    assert targets[1].tolist() == pytest.approx([0.1, 0.1, 0.1, 0.8, 0.1])  # not renormalised
    expected = -(targets * F.log_softmax(logits, 1)).sum(1).mean()
    criterion = make_criterion()
    assert criterion(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)
    heads = {"main": logits, "single": [logits * k for k in range(5)], "g12": -logits, "g345": logits + 1}
    eight = sum(criterion(h, labels) for h in [logits, *heads["single"], -logits, logits + 1])
    assert total_loss(heads, labels, criterion).item() == pytest.approx(eight.item(), rel=1e-6)
    smooth = make_criterion(0.1)(logits, labels)
    assert smooth.item() == pytest.approx(F.cross_entropy(logits, labels, label_smoothing=0.1).item())


@pytest.fixture(scope="module")
def desc_root(tmp_path_factory) -> Path:
    """NW-UCLA and NTU-60 csub descriptor folders with class-dependent images (10 classes each)."""
    root = tmp_path_factory.mktemp("descriptors")
    for part in ("train", "test"):
        write_synthetic_split(root, "ucla", None, part, per_class=8, num_classes=10, size=112)
        write_synthetic_split(root, "ntu60", "csub", part, per_class=1, num_classes=10, size=112)
    return root


def test_dataset_bgr_convention_and_labels(tmp_path):
    gd, jdd = descriptor_dir(tmp_path, Split.of("ucla", None, "test"), "GD"), descriptor_dir(tmp_path, Split.of("ucla", None, "test"), "JDD")
    gd.mkdir(parents=True), jdd.mkdir()
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0], rgb[..., 2] = 200, 7  # red 200, blue 7
    for name in ("1_3.png", "0_10.png"):
        Image.fromarray(rgb).save(gd / name)
        Image.fromarray(np.full((4, 4), 9, np.uint8)).save(jdd / name)
    (gd / "manifest.csv").write_text("index,sample,label,frames,bodies\n0,a12_s01_e00_v03,10,5,1\n"
                                     "1,a03_s01_e00_v03,3,5,1\n")
    ds = DescriptorImages(tmp_path, "ucla", None, "test", ["GD", "JDD"])
    (img_gd, img_jdd), label0 = ds[0]
    assert label0 == 9 and ds[1][1] == 2
    assert img_gd.dtype == torch.float32 and img_gd.shape == (3, 4, 4)
    assert img_gd[:, 0, 0].tolist() == [7, 0, 200]  # B, G, R as OpenCV reads it
    assert img_jdd.shape == (3, 4, 4) and bool((img_jdd == 9).all())  # gray -> three equal channels
    assert [(s.index, s.label, s.sample) for s in ds.samples] == [(0, 10, "a12_s01_e00_v03"), (1, 3, "a03_s01_e00_v03")]


def test_dataset_cache_equals_png_and_five_are_aligned(desc_root):
    png = DescriptorImages(desc_root, "ucla", None, "test", "all")
    cached = DescriptorImages(desc_root, "ucla", None, "test", "all", cache=True, uint8=True)
    assert len(png) == len(cached) == 80
    for i in (0, 41, 79):
        (a, la), (b, lb) = png[i], cached[i]
        assert la == lb and len(a) == len(FUSION_ORDER)
        assert all(torch.equal(x, y.float()) for x, y in zip(a, b)) and b[0].dtype == torch.uint8
    single = DescriptorImages(desc_root, "ucla", None, "test", "FDD")
    assert torch.equal(single[5][0], png[5][0][FUSION_ORDER.index("FDD")])


def test_dataset_errors_name_the_problem(desc_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="skels2desc_ntu.py -d ntu60 -p cview .* -a train"):
        DescriptorImages(desc_root, "ntu60", "cview", "train", "GD")
    for desc in FUSION_ORDER:
        descriptor_dir(tmp_path, Split.of("ucla", None, "train"), desc).mkdir(parents=True)
    with pytest.raises(ValueError, match="empty split"):
        DescriptorImages(tmp_path, "ucla", None, "train", "all")
    for desc in FUSION_ORDER:
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(descriptor_dir(tmp_path, Split.of("ucla", None, "train"), desc) / "0_1.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(descriptor_dir(tmp_path, Split.of("ucla", None, "train"), "ADD") / "1_2.png")
    with pytest.raises(ValueError, match=r"ucla_JDD_train: 1_2.png is not in|ucla_ADD_train"):
        DescriptorImages(tmp_path, "ucla", None, "train", "all")


def run_train(root: Path, ckpt: Path, *extra: str) -> dict:
    from models.training import fit

    args = train.get_args_parser().parse_args(
        ["-d", "ucla", "-desc", "GD", "-gpu", "-1", "-despth", str(root), "-ckpt", str(ckpt), "--width", WIDTH,
         "--workers", "0", "--batch-size", "16", "--lr", "1e-3", "--no-progress", *extra])
    return fit(args)


def test_training_lowers_loss_and_beats_chance(desc_root, tmp_path):
    result = run_train(desc_root, tmp_path, "--epochs", "3")
    losses = [row["train_loss"] for row in result["history"]]
    assert losses[-1] < losses[0]
    assert result["best_acc"] > 0.3  # 10 classes: chance is 0.1
    names = visible(tmp_path)
    assert names == ["ucla_GD_1_epoch.tar", "ucla_GD_2_epoch.tar", "ucla_GD_3_epoch.tar", "ucla_GD_epoch_best.tar",
                     "ucla_GD_last.tar", "ucla_GD_log.csv"]
    assert len((tmp_path / "ucla_GD_log.csv").read_text().splitlines()) == 4
    best = load_checkpoint(checkpoint_path(tmp_path, "ucla", None, "GD", "best"))
    assert best.best_acc == pytest.approx(result["best_acc"]) and best.settings["width"] == float(WIDTH)


def test_resume_equals_uninterrupted_run(desc_root, tmp_path):
    run_train(desc_root, tmp_path / "whole", "--epochs", "3")
    run_train(desc_root, tmp_path / "split", "--epochs", "2", "--keep-last", "1")
    resumed = run_train(desc_root, tmp_path / "split", "--epochs", "3", "--keep-last", "1")  # continues by itself
    assert [row["epoch"] for row in resumed["history"]] == [1, 2, 3]
    whole = load_checkpoint(checkpoint_path(tmp_path / "whole", "ucla", None, "GD", "last"))
    split = load_checkpoint(checkpoint_path(tmp_path / "split", "ucla", None, "GD", "last"))
    assert split.epoch == whole.epoch == 3
    for key, value in whole.state_dict.items():
        assert torch.equal(value, split.state_dict[key]), key
    assert sorted(p.name for p in (tmp_path / "split").glob("*_epoch.tar")) == ["ucla_GD_3_epoch.tar"]


def test_fuse5_trains_with_val_fraction(desc_root, tmp_path):
    result = run_train(desc_root, tmp_path, "-desc", "all", "--epochs", "1", "--val-fraction", "0.25",
                       "--max-steps", "2", "--cache")
    row = result["history"][0]
    assert row["val_acc"] != "" and np.isfinite(row["train_loss"])
    assert load_checkpoint(checkpoint_path(tmp_path, "ucla", None, "all", "best")).is_fusion


def test_cli_errors_are_one_line(tmp_path, capsys):
    args = train.get_args_parser().parse_args(["-d", "ntu60", "-p", "csub", "-desc", "LAD", "-gpu", "-1",
                                              "-despth", str(tmp_path), "-ckpt", str(tmp_path)])
    assert train.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "skels2desc_ntu.py" in err and "\n" not in err


def test_two_process_torchrun_writes_one_set(desc_root, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(REPO / "train.py"), "-d", "ntu60", "-p", "csub", "-desc", "JDD", "-gpu", "-1",
           "-despth", str(desc_root), "-ckpt", str(tmp_path), "--width", WIDTH, "--epochs", "1",
           "--workers", "0", "--batch-size", "4", "--no-progress"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("epoch   1 ") == 1  # only rank 0 logs
    names = visible(tmp_path)
    assert names == ["ntu60_csub_JDD_1_epoch.tar", "ntu60_csub_JDD_epoch_best.tar", "ntu60_csub_JDD_last.tar",
                     "ntu60_csub_JDD_log.csv"]
    assert load_checkpoint(tmp_path / "ntu60_csub_JDD_last.tar").raw["history"][0]["test_acc"] >= 0


def test_training_on_demo_descriptors(request, tmp_path):
    """The demo skeletons' real descriptor images (32 px) train end to end; loss goes down."""
    try:
        demo_descriptors = request.getfixturevalue("demo_descriptors")
    except pytest.FixtureLookupError as e:  # conftest's demo fixtures are still being written
        pytest.skip(f"demo descriptor fixture unavailable: {e.argname}")
    args = train.get_args_parser().parse_args(
        ["-d", "ucla", "-desc", "all", "-gpu", "-1", "-despth", str(demo_descriptors), "-ckpt", str(tmp_path),
         "--width", WIDTH, "--workers", "0", "--batch-size", "8", "--lr", "1e-3", "--no-progress", "--epochs", "3"])
    from models.training import fit

    history = fit(args)["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert load_checkpoint(tmp_path / "ucla_all_last.tar").settings["img_size"] == 32


def test_soft_target_loss_floor_is_what_the_demo_prints():
    """The release's targets do not sum to 1: no prediction brings the loss below this floor."""
    from models.recipe import soft_target_floor
    labels = torch.tensor([3])
    criterion = make_criterion()
    best = torch.log(soft_targets(labels, 60) / soft_targets(labels, 60).sum())   # logits of q = t / sum(t)
    assert criterion(best, labels).item() == pytest.approx(soft_target_floor(60), rel=1e-6)
    assert criterion(best + 0.01 * torch.randn(1, 60), labels).item() > soft_target_floor(60)
    assert 26 < soft_target_floor(60) < 27


def test_a_full_width_cpu_run_says_what_it_costs():
    """One line with the parameter count, the disk an epoch writes and the settings to use instead;
    nothing for the demo's width."""
    from models.networks import build_model
    from models.training import cpu_cost_notice
    line = cpu_cost_notice(build_model("GD", 60), keep_last=3)
    assert "\n" not in line and "42.0 M parameters" in line and "168 MB a checkpoint" in line
    assert "--keep-last 3" in line and "--preset cpu" in line and "--img-size 32" in line
    assert "every epoch kept" in cpu_cost_notice(build_model("all", 60), keep_last=0)
    assert cpu_cost_notice(build_model("GD", 60, width=0.0625), keep_last=3) is None
