"""test.py end to end: tiny checkpoints on a small descriptor tree, missing checkpoints, the CLI's
errors, the paper table, and full-size release-format state dicts."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_script
from PIL import Image

from descriptors.dataset import DescriptorImages, write_synthetic_split
from models import evaluation as ev
from models.checkpoint import load_checkpoint, load_model, save_checkpoint
from models.networks import build_model
from descriptors.names import DESCRIPTORS, FUSION, FUSION_ORDER, descriptor_dir, image_name
from models.names import checkpoint_path
from models.reruns import SETTING_FLAGS
from skeletons.datasets import Split

REPO = Path(__file__).resolve().parents[1]


test_script, train_script = load_script("test"), load_script("train")
TINY_WIDTH = 0.03
UCLA_CLASSES = 10


def run_test_py(*argv: str) -> int:
    return test_script.main(test_script.get_args_parser().parse_args(list(argv)))


def make_tiny_checkpoints(ckpt_dir: Path, names, seed: int = 0) -> None:
    """Small ResNet_c / Fuse5 models in our checkpoint format (random weights, recorded accuracy)."""
    for i, name in enumerate(names):
        torch.manual_seed(seed + i)
        model = build_model(name, UCLA_CLASSES, width=TINY_WIDTH)
        save_checkpoint(checkpoint_path(ckpt_dir, "ucla", None, name), model=model, epoch=1, best_acc=0.1 * i,
                        settings={"dataset": "ucla", "protocol": "cview", "descriptor": name,
                                  "num_classes": UCLA_CLASSES, "arch": "resnet_c", "width": TINY_WIDTH})


def ucla_descriptor_root(request, root: Path) -> Path:
    """The demo data's NW-UCLA descriptor folders (conftest's demo_descriptors), or, while that
    fixture is unavailable, a small synthetic tree with the same names (10 train, 20 test)."""
    try:
        return request.getfixturevalue("demo_descriptors")
    except pytest.FixtureLookupError:
        for part, per_class in (("train", 1), ("test", 2)):
            write_synthetic_split(root / "desc", "ucla", None, part, per_class=per_class, num_classes=UCLA_CLASSES)
        return root / "desc"


@pytest.fixture(scope="module")
def tiny_run(request, tmp_path_factory):
    """Five ResNet_c + Fuse5 tiny checkpoints trained by train.py (1 epoch) on NW-UCLA descriptor
    folders, then one test.py run on them: (work folder, descriptor root, results JSON)."""
    root = tmp_path_factory.mktemp("tiny")
    desc_root = ucla_descriptor_root(request, root)
    for name in list(DESCRIPTORS) + [FUSION]:
        assert train_script.main(train_script.get_args_parser().parse_args(
            ["-d", "ucla", "-desc", name, "-gpu", "-1", "-despth", str(desc_root), "-ckpt", str(root / "ckpt"),
             "--epochs", "1", "--width", str(TINY_WIDTH), "--lr", "3e-3", "--workers", "0", "--no-progress"])) == 0
    rc = run_test_py("-d", "ucla", "-desc", "all", "-gpu", "-1", "-despth", str(desc_root),
                     "-ckpt", str(root / "ckpt"), "--out", str(root / "out"), "--workers", "0",
                     "--batch-size", "7")   # a last partial batch: batching must not change anything
    assert rc == 0
    return root, desc_root, json.loads((root / "out" / f"ucla_all_best{ev.RESULTS_SUFFIX}").read_text())


def direct_logits(root: Path, desc_root: Path, name: str) -> np.ndarray:
    """Logits of one checkpoint computed here, without test.py (single descriptor or Fuse5 main)."""
    model, _ = load_model(checkpoint_path(root / "ckpt", "ucla", None, name), desc=name, num_classes=UCLA_CLASSES)
    data = DescriptorImages(desc_root, "ucla", None, "test", name)
    with torch.inference_mode():
        outs = [model(x if name != FUSION else list(x)) for x, _ in torch.utils.data.DataLoader(data, batch_size=32)]
    return torch.cat([o["main"] if name == FUSION else o for o in outs]).numpy()


def test_results_json_holds_every_row_and_matches_direct_computation(tiny_run):
    root, desc_root, doc = tiny_run
    keys = [r["key"] for r in doc["rows"]]
    assert keys[:6] == list(DESCRIPTORS) + [FUSION]
    assert {f"{FUSION}.g12", f"{FUSION}.g345", "mean_softmax.singles", "mean_softmax.singles+all", "vote"} <= set(keys)
    assert [f"{FUSION}.single.{d}" in keys for d in FUSION_ORDER] == [True] * 5
    assert keys[-1] == "oracle" and doc["rows"][-1]["label"] == ev.ORACLE_LABEL and not doc["rows"][-1]["honest"]
    labels = np.array(doc["samples"]["label"]) - 1   # the JSON's labels are 1-based, as the image names
    n = len(DescriptorImages(desc_root, "ucla", None, "test", "GD"))
    assert labels.size == n == doc["num_samples"] and len(doc["samples"]["sample"]) == n and not doc["missing"]
    assert set(doc["predictions"]) == set(keys) and all(len(p) == n for p in doc["predictions"].values())
    assert {c["kind"] for c in doc["checkpoints"].values()} == {"ours"}
    # Tie-break priority: Fuse5, then singles by the accuracy their checkpoints record (ties: FUSION_ORDER).
    recorded = {d: doc["checkpoints"][d]["best_acc"] for d in DESCRIPTORS}
    assert doc["vote_priority"] == [FUSION] + sorted(DESCRIPTORS, key=lambda d: (-recorded[d], FUSION_ORDER.index(d)))

    rows = {r["key"]: r for r in doc["rows"]}
    logits = {m: direct_logits(root, desc_root, m) for m in list(DESCRIPTORS) + [FUSION]}
    for name, z in logits.items():
        np.testing.assert_array_equal(np.array(doc["predictions"][name]) - 1, z.argmax(1))
        assert rows[name]["top1"] == pytest.approx((z.argmax(1) == labels).mean())
        assert rows[name]["top5"] == pytest.approx(ev.topk_correct(z, labels, 5).mean())
        present = np.unique(labels)
        per_class = [(z.argmax(1)[labels == c] == c).mean() for c in present]
        assert [rows[name]["per_class"][c] for c in present] == pytest.approx(per_class)
        assert rows[name]["mean_class"] == pytest.approx(np.mean(per_class))
    fused = np.mean([ev.softmax(logits[d]) for d in DESCRIPTORS], axis=0)
    np.testing.assert_array_equal(np.array(doc["predictions"]["mean_softmax.singles"]) - 1, fused.argmax(1))
    any_right = np.any([logits[d].argmax(1) == labels for d in DESCRIPTORS], axis=0)
    assert rows["oracle"]["top1"] == pytest.approx(any_right.mean())


def test_confusion_png_is_written_for_the_best_honest_row(tiny_run):
    root, _, doc = tiny_run
    honest = [r for r in doc["rows"] if r["honest"]]
    assert doc["best_honest_row"] in {r["key"] for r in honest if r["top1"] == max(h["top1"] for h in honest)}
    png = Path(doc["confusion_png"]["path"])
    assert png.parent == root / "out" and png.read_bytes()[:4] == b"\x89PNG"
    with Image.open(png) as im:
        assert min(im.size) >= 400


def test_paper_table_collects_results(tiny_run, capsys):
    root, _, doc = tiny_run
    assert run_test_py("--paper-table", "-ckpt", str(root / "ckpt"), "--out", str(root / "out")) == 0
    table = (root / "out" / ev.PAPER_TABLE_NAME).read_text()
    assert table in capsys.readouterr().out
    gd = next(line for line in table.splitlines() if line.startswith("| ResNet_c GD "))
    assert gd.rstrip(" |").endswith(f"{100 * doc['rows'][0]['top1']:.2f}")
    assert table.splitlines()[-1].startswith(f"| {ev.ORACLE_LABEL}")


def test_missing_checkpoints_are_named_and_the_rest_evaluated(tiny_run, tmp_path, capsys):
    _, desc_root, _ = tiny_run
    make_tiny_checkpoints(tmp_path, ["GD", FUSION])
    assert run_test_py("-d", "ucla", "-desc", "all", "-gpu", "-1", "-despth", str(desc_root),
                       "-ckpt", str(tmp_path), "--workers", "0") == 0
    err = capsys.readouterr().err
    assert "ucla_JDD_epoch_best.tar" in err and "python train.py -d ucla" in err
    doc = json.loads((tmp_path / f"ucla_all_best{ev.RESULTS_SUFFIX}").read_text())
    assert sorted(doc["missing"]) == ["ADD", "FDD", "JDD", "LAD"]
    keys = [r["key"] for r in doc["rows"]]
    assert keys[:2] == ["GD", FUSION] and "oracle" not in keys and "vote" not in keys


def test_cli_errors_are_one_line_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "test.py", "-d", "ucla", "-desc", "GD", "-gpu", "-1",
                           "-ckpt", str(tmp_path), "-despth", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "ucla_GD_epoch_best.tar" in proc.stderr and "python train.py -d ucla -p cview -desc GD" in proc.stderr


def test_missing_descriptor_folder_names_the_command(tmp_path, capsys):
    make_tiny_checkpoints(tmp_path, ["LAD"])
    assert run_test_py("-d", "ucla", "-desc", "LAD", "-gpu", "-1", "-despth", str(tmp_path / "none"),
                       "-ckpt", str(tmp_path), "--workers", "0") == 2
    err = capsys.readouterr().err
    assert "ucla_LAD_test" in err and "skels2desc_ucla.py" in err and "Traceback" not in err


def release_state_dict(keys: dict[str, list[int]], seed: int) -> dict[str, torch.Tensor]:
    """A full-size state dict with the release's keys and shapes and random values.

    Large weights are views of one shared random buffer, so torch.save writes that buffer once
    (a few MB instead of 350 MB); BatchNorm statistics are valid (positive variances)."""
    g = torch.Generator().manual_seed(seed)
    pool = torch.randn(max(int(np.prod(s)) for s in keys.values()), generator=g) * 0.02
    state = {}
    for name, shape in keys.items():
        n = int(np.prod(shape))
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(100)
        elif name.endswith("running_var"):
            state[name] = torch.rand(shape, generator=g) + 0.5
        elif len(shape) == 1:   # BatchNorm weight (~1), bias and running mean (~0); the unused fc.bias
            state[name] = torch.randn(shape, generator=g) * 0.1 + (1.0 if name.endswith("weight") else 0.0)
        else:
            offset = int(torch.randint(0, pool.numel() - n + 1, (1,), generator=g))
            state[name] = pool[offset:offset + n].view(shape)
    return state


def test_release_format_state_dicts_load_and_evaluate(reference_dir, tmp_path):
    keys = json.loads((reference_dir / "released_state_dict_keys_60classes.json").read_text())
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    torch.save(release_state_dict(keys["ResNet_c"], 0), checkpoint_path(ckpt, "ntu60", "csub", "GD"))
    torch.save(release_state_dict(keys["Fuse5"], 1), checkpoint_path(ckpt, "ntu60", "csub", FUSION))
    rng = np.random.default_rng(0)
    for desc in FUSION_ORDER:   # two test images per descriptor: full-size models are slow on CPU
        folder = descriptor_dir(tmp_path / "desc", Split.of("ntu60", "csub", "test"), desc)
        folder.mkdir(parents=True)
        for index, label in enumerate((3, 41)):
            shape = (112, 112, 3) if desc in ("GD", "FDD") else (112, 112)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / image_name(index, label))
    assert run_test_py("-d", "ntu60", "-p", "csub", "-desc", "all", "-gpu", "-1", "-despth", str(tmp_path / "desc"),
                       "-ckpt", str(ckpt), "--workers", "0") == 0
    doc = json.loads((ckpt / f"ntu60_csub_all_best{ev.RESULTS_SUFFIX}").read_text())
    assert {n: c["kind"] for n, c in doc["checkpoints"].items()} == {"GD": "release", FUSION: "release"}
    assert doc["samples"]["label"] == [3, 41] and doc["num_classes"] == 60   # as the image names say
    assert [r["key"] for r in doc["rows"]][:2] == ["GD", FUSION]
    model, _ = load_model(checkpoint_path(ckpt, "ntu60", "csub", "GD"), desc="GD", num_classes=60)
    images = torch.stack([x for x, _ in DescriptorImages(tmp_path / "desc", "ntu60", "csub", "test", "GD")])
    with torch.inference_mode():
        expected = model(images).argmax(1)
    assert doc["predictions"]["GD"] == (expected + 1).tolist()


def test_checkpoints_that_do_not_fit_the_images_are_refused(tiny_run, tmp_path, capsys):
    """A JDD model under the GD name, a model of 112-px images on 32-px ones, a clean-mode model on
    paper-mode images: one line each, naming the field and the fix; nothing evaluated."""
    root, desc_root, _ = tiny_run
    from models.checkpoint import load_checkpoint

    def run_gd(ckpt: Path) -> tuple[int, str]:
        rc = run_test_py("-d", "ucla", "-desc", "GD", "-gpu", "-1", "-despth", str(desc_root), "-ckpt", str(ckpt),
                         "--out", str(tmp_path / "out"), "--workers", "0")
        return rc, capsys.readouterr().err

    copied = tmp_path / "copied"
    copied.mkdir()
    (copied / "ucla_GD_epoch_best.tar").write_bytes((root / "ckpt" / "ucla_JDD_epoch_best.tar").read_bytes())
    rc, err = run_gd(copied)
    assert rc == 2 and "holds a model trained for descriptor JDD, not ucla cview GD" in err
    assert "python train.py -d ucla -p cview -desc GD" in err and "Traceback" not in err

    trained = load_checkpoint(root / "ckpt" / "ucla_GD_epoch_best.tar")
    assert (trained.settings["mode"], trained.settings["img_size"]) == ("paper", 32)   # from the folders
    for field, value, shown in (("img_size", 112, "img_size: 112 -> 32"), ("mode", "clean", "mode: clean -> paper")):
        other = tmp_path / field
        model = build_model("GD", UCLA_CLASSES, width=trained.settings["width"])
        model.load_state_dict(trained.state_dict)
        save_checkpoint(checkpoint_path(other, "ucla", None, "GD"), model=model, epoch=1, best_acc=0.5,
                        settings=dict(trained.settings, **{field: value}))
        rc, err = run_gd(other)
        assert rc == 2 and shown in err and "ucla_GD_test" in err, err
        assert "python skels2desc_ucla.py -d ucla" in err and f"--{field.replace('_', '-')} {value}" in err
        assert [line for line in err.splitlines() if line.startswith("error:")] == [err.splitlines()[-1]]
        assert not (tmp_path / "out").exists()


def test_release_checkpoints_are_accepted_with_one_note(tiny_run, tmp_path, capsys):
    """The note holds for every release file: said once per process (common/notices.py)."""
    from common.notices import forget_notices

    _, desc_root, _ = tiny_run
    release = tmp_path / "release"
    release.mkdir()
    for name in ("GD", "JDD"):   # the release's files: a bare state dict (width 1/16: inferable), no settings
        torch.save(build_model(name, UCLA_CLASSES, width=0.0625).state_dict(), release / f"ucla_{name}_epoch_best.tar")
    forget_notices()
    for name, notes in (("GD", 1), ("JDD", 0)):
        assert run_test_py("-d", "ucla", "-desc", name, "-gpu", "-1", "-despth", str(desc_root),
                           "-ckpt", str(release), "--workers", "0") == 0
        err = capsys.readouterr().err
        assert err.count("record neither the descriptor mode nor the image size") == notes


def test_a_missing_models_suggested_command_trains_it_with_the_others_settings(own_root, tmp_path, capsys):
    """The command test.py prints for a missing model, run as printed, trains a model that can be
    fused with the existing ones: the same non-default settings (width, rate, batch, epochs, seed)."""
    import shlex
    import train

    ckpt = tmp_path / "ckpt"
    assert train.main(train.get_args_parser().parse_args(
        ["-d", "ucla", "-desc", "GD", "-gpu", "-1", "-despth", str(own_root), "-ckpt", str(ckpt), "--width", "0.0625",
         "--lr", "1e-3", "--batch-size", "8", "--epochs", "2", "--seed", "3", "--workers", "0", "--no-progress"])) == 0
    capsys.readouterr()
    assert run_test_py("-d", "ucla", "-desc", "all", "-gpu", "-1", "-despth", str(own_root), "-ckpt", str(ckpt),
                       "--epoch", "last", "--workers", "0") == 0
    err = capsys.readouterr().err
    command = re.search(r"missing \S+ucla_JDD_last\.tar: skipped; make it with: (.*)", err).group(1)
    assert "--width 0.0625 --lr 0.001 --batch-size 8 --epochs 2 --seed 3" in command
    argv = shlex.split(command)
    assert argv[:2] == ["python", "train.py"]
    done = subprocess.run([sys.executable, *argv[1:], "-gpu", "-1"], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    made = load_checkpoint(ckpt / "ucla_JDD_last.tar").settings
    gd = load_checkpoint(ckpt / "ucla_GD_last.tar").settings
    assert {k: made[k] for k in SETTING_FLAGS} == {k: gd[k] for k in SETTING_FLAGS}
    assert run_test_py("-d", "ucla", "-desc", "all", "-gpu", "-1", "-despth", str(own_root), "-ckpt", str(ckpt),
                       "--epoch", "last", "--workers", "0") == 0   # GD and JDD now fuse


def test_an_epoch_removed_by_keep_last_is_said_so_not_blamed_on_settings(own_root, tmp_path, capsys):
    import train

    ckpt = tmp_path / "ckpt"
    assert train.main(train.get_args_parser().parse_args(
        ["-d", "ucla", "-desc", "GD", "-gpu", "-1", "-despth", str(own_root), "-ckpt", str(ckpt), "--width", "0.0625",
         "--epochs", "3", "--keep-last", "1", "--workers", "0", "--no-progress"])) == 0
    assert not (ckpt / "ucla_GD_1_epoch.tar").exists() and (ckpt / "ucla_GD_3_epoch.tar").exists()
    capsys.readouterr()
    assert run_test_py("-d", "ucla", "-desc", "GD", "-gpu", "-1", "-despth", str(own_root), "-ckpt", str(ckpt),
                       "--epoch", "1", "--workers", "0") == 2
    err = capsys.readouterr().err
    assert "epoch 1 was trained (its log goes to epoch 3) and its file removed by train.py --keep-last" in err
    assert "make it with" not in err
    assert run_test_py("-d", "ucla", "-desc", "GD", "-gpu", "-1", "-despth", str(own_root), "-ckpt", str(ckpt),
                       "--epoch", "3", "--workers", "0") == 0
