"""Your own skeletons through the whole pipeline: ``-d custom --data ROOT --layout FILE_OR_NAME`` in
skels2desc, train.py, test.py, predict.py, visualize.py and pipeline.py; the demo's actions as a
COCO-17 2D dataset end to end; a custom 3D folder in the NTU layout gives the NTU images; layouts
recorded and checked; every bad layout or dataset file is a one-line error that writes nothing."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, load_script

from descriptors import provenance
from descriptors.dataset import make_command
from descriptors.extract import extract_split
from cli.skels2desc import main as skels2desc
from skeletons.custom import register_custom_dataset, write_custom_dataset
from skeletons.datasets import Split, get_dataset, label_of
from skeletons.layouts import LAYOUT_DIR, find_layout, layout_record
from descriptors.names import DESCRIPTORS, descriptor_dir
from models.names import checkpoint_prefix

train_script, test_script = load_script("train"), load_script("test")
predict_script, pipeline_script = load_script("predict"), load_script("pipeline")
visualize_script = load_script("visualize")

COCO = find_layout("coco17")
COCO_RECORD = layout_record(COCO)
DEMO = Path("data/demo")
DATA, CKPT, DESC = DEMO / "coco17", DEMO / "checkpoints", DEMO / "descriptors"
CUSTOM_FLAGS = ["-d", "custom", "--data", str(DATA), "--layout", "coco17"]


def run(script: str, *argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / f"{script}.py"), *argv], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def one_line_error(err: str) -> str:
    """The one error line of a script's stderr (notices such as 'running on CPU' may come before it)."""
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and err.endswith(errors[0] + "\n") and "Traceback" not in err, err
    return errors[0].removeprefix("error: ")


# ---------------------------------------------------------------- the demo's COCO-17 data end to end

@pytest.fixture(scope="module")
def coco_demo(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess, float]:
    """``pipeline.py --demo --layout coco17`` as the README gives it (full demo data, width 1/16,
    32 px, 15 epochs, CPU): (work folder, the run, seconds)."""
    work = tmp_path_factory.mktemp("coco_demo")
    start = time.monotonic()
    proc = run("pipeline", "--demo", "--layout", "coco17", cwd=work)
    return work, proc, time.monotonic() - start


def results(work: Path) -> dict:
    return json.loads((work / CKPT / "custom_all_last_results.json").read_text())


def test_the_coco17_demo_runs_end_to_end_with_a_sensible_accuracy(coco_demo):
    work, proc, seconds = coco_demo
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"pipeline.py --demo --layout coco17: {seconds:.0f} s")
    data = work / DATA
    assert (data / "labels.csv").is_file() and len(list((data / "skeletons").glob("*.npy"))) == 300
    assert "txt2npy" not in proc.stdout   # custom sequences are read as they are
    for part in ("train", "test"):
        for desc in DESCRIPTORS:
            record = provenance.read_record(work / DESC / f"custom_{desc}_{part}")
            assert record["complete"] and record["samples"] == 150 and record["layout"] == COCO_RECORD
            assert (record["dataset"], record["protocol"], record["img_size"]) == ("custom", "split", 32)
    doc = results(work)
    assert doc["dataset"] == "custom" and doc["class_names"][:2] == ["sitting down",
                                                                     "standing up (from sitting position)"]
    for name in (*DESCRIPTORS, "all"):
        settings = doc["checkpoints"][name]["settings"]
        assert settings["layout"] == COCO_RECORD and settings["data"]["test"][name if name != "all" else "GD"][
            "layout"] == COCO_RECORD
    rows = {r["key"]: r for r in doc["rows"]}
    # 10 classes (chance 10%); measured 90.7% fused (the NTU demo: about 95%), Fuse5 about 89%.
    assert rows["mean_softmax.singles+all"]["top1"] >= 0.75, rows["mean_softmax.singles+all"]
    assert rows["all"]["top1"] >= 0.6, rows["all"]
    assert (work / CKPT / "custom_all_last_confusion.png").is_file()
    (figure,) = (work / CKPT).glob("custom_*_descriptors.png")   # beside the NTU demo's, not over it
    assert figure.stat().st_size > 10_000
    second = run("pipeline", "--demo", "--layout", "coco17", cwd=work)
    assert second.returncode == 0 and second.stdout.count("already trained: ") == 6
    assert "demo data: already in data/demo/coco17" in second.stdout


def test_predict_agrees_with_test_script_on_a_custom_sample(coco_demo, capsys, monkeypatch):
    work, proc, _ = coco_demo
    assert proc.returncode == 0
    monkeypatch.chdir(work)
    doc = results(work)
    fused = dict(zip(doc["samples"]["sample"], doc["predictions"]["mean_softmax.singles+all"]))
    labels = dict(zip(doc["samples"]["sample"], doc["samples"]["label"]))   # 1-based, as the predictions
    right = [s for s, p in fused.items() if p == labels[s]]
    assert right
    sample = right[0]
    argv = [str(DATA / "skeletons" / f"{sample}.npy"), *CUSTOM_FLAGS, "-ckpt", str(CKPT), "--epoch", "last",
            "--images", "imgs", "--figure", "figure.png"]
    capsys.readouterr()
    assert predict_script.main(predict_script.get_args_parser().parse_args(argv)) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[1]
    assert doc["class_names"][fused[sample] - 1] in first and " A0" not in first, out
    assert len(list(Path("imgs").glob(f"{sample}_*.png"))) == 5 and Path("figure.png").is_file()


def test_test_py_and_visualize_take_the_custom_dataset(coco_demo, capsys, monkeypatch):
    work, proc, _ = coco_demo
    assert proc.returncode == 0
    monkeypatch.chdir(work)
    argv = [*CUSTOM_FLAGS, "-desc", "JDD", "-gpu", "-1", "-despth", str(DESC), "-ckpt", str(CKPT), "--epoch", "last",
            "--workers", "0", "--out", "out"]
    assert test_script.main(test_script.get_args_parser().parse_args(argv)) == 0
    doc = json.loads(Path("out/custom_JDD_last_results.json").read_text())
    jdd = next(r for r in results(work)["rows"] if r["key"] == "JDD")
    assert doc["num_samples"] == 150 and doc["rows"][0]["top1"] == jdd["top1"]
    sample = next((work / DATA / "skeletons").glob("*.npy"))
    args = visualize_script.parse([str(sample), "--layout", "coco17", "-o", "vis.png", "--img-size", "32"])
    assert visualize_script.main(args) == 0 and Path("vis.png").is_file()
    capsys.readouterr()
    assert visualize_script.main(visualize_script.parse([str(sample), "-o", "vis2.png"])) == 2
    assert "a custom .npy sample is read with --layout" in one_line_error(capsys.readouterr().err)
    assert not Path("vis2.png").exists()


def other_coco17(folder: Path) -> Path:
    """A layout file that keeps coco17's joints and name but pairs two joints otherwise."""
    data = json.loads((LAYOUT_DIR / "coco17.json").read_text())
    data["jdd_pairs"][0] = ["left_elbow", "right_knee"]
    path = folder / "other_coco17.json"
    path.write_text(json.dumps(data))
    return path


def test_models_refuse_skeletons_of_another_layout(coco_demo, capsys, monkeypatch):
    """The same joints with one other JDD pair make other images: predict.py and test.py refuse
    the coco17 models for them in one line, naming both layouts, and write nothing."""
    work, proc, _ = coco_demo
    assert proc.returncode == 0
    monkeypatch.chdir(work)
    other = other_coco17(work)
    theirs = layout_record(find_layout(other))
    assert theirs["name"] == "coco17" and theirs["digest"] != COCO_RECORD["digest"]
    shown = f"layout: coco17 (digest {COCO_RECORD['digest'][:8]}) -> coco17 (digest {theirs['digest'][:8]})"
    flags = ["-d", "custom", "--data", str(DATA), "--layout", str(other)]
    before = sorted(p.name for p in (work / CKPT).iterdir())

    sample = DATA / "skeletons" / "S001C001P032R001A058.npy"
    capsys.readouterr()
    argv = [str(sample), *flags, "-ckpt", str(CKPT), "--epoch", "last", "--figure", "no.png"]
    assert predict_script.main(predict_script.get_args_parser().parse_args(argv)) == 2
    line = one_line_error(capsys.readouterr().err)
    assert line.startswith(str(CKPT / "custom_GD_last.tar")) and shown in line and "model -> data" in line
    assert "python train.py -d custom -p split --data data/demo/coco17 --layout" in line

    # test.py on the coco17 images, told the data is in the other layout: the folders say otherwise
    test_argv = [*flags, "-desc", "GD", "-gpu", "-1", "-despth", str(DESC), "-ckpt", str(CKPT), "--epoch", "last",
                 "--workers", "0"]
    assert test_script.main(test_script.get_args_parser().parse_args(test_argv)) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "custom_GD_test: made from skeletons of another layout" in line and "this run -> folder" in line

    # skels2desc refuses to mix layouts in a folder; images of the other layout in their own folders
    # are refused by the coco17 models
    argv = ["--data", str(DATA), "--layout", str(other), "-despth", str(DESC), "-a", "test", "--img-size", "32",
            "--workers", "1", "--quiet"]
    assert skels2desc(argv, ("custom",)) == 2
    assert "layout: coco17 (digest" in one_line_error(capsys.readouterr().err)
    assert skels2desc([*argv[:5], "other_desc", *argv[6:]], ("custom",)) == 0
    test_argv[test_argv.index(str(DESC))] = "other_desc"
    assert test_script.main(test_script.get_args_parser().parse_args(test_argv)) == 2
    line = one_line_error(capsys.readouterr().err)
    assert f"trained on skeletons of another layout than other_desc/custom_GD_test ({shown}" in line
    assert sorted(p.name for p in (work / CKPT).iterdir()) == before and not Path("no.png").exists()


# ---------------------------------------------------------------- a custom 3D folder in the NTU layout

def test_a_custom_ntu25_folder_gives_the_ntu_images(ntu_raw_dir, tmp_path):
    """The real NTU samples written as a custom 3D dataset (layout ntu25, labels = actions, split =
    cross-subject) make, through the custom path, byte for byte the images skels2desc_ntu makes."""
    from skeletons.convert import convert_folder
    from skeletons.datasets import ntu120_class_names
    from skeletons.ntu import load_skeleton_npy

    ntu60 = get_dataset("ntu60")
    npy = tmp_path / "npy"
    convert_folder(ntu_raw_dir, npy, "ntu60", workers=1, progress=False)
    arrays, labels, splits = {}, {}, {}
    for path in sorted(npy.iterdir()):
        data, name = load_skeleton_npy(path), path.name.split(".")[0]
        arrays[name] = np.stack([data[k] for k in ("skel_body0", "skel_body1") if k in data])   # camera space
        labels[name], splits[name] = label_of(name, "ntu60"), "train" if ntu60.is_train(name, "csub") else "test"
    root = write_custom_dataset(tmp_path / "mine", arrays, labels, splits, ntu120_class_names()[:60])
    register_custom_dataset(root, "ntu25")
    for part in ("train", "test"):
        ours = extract_split("custom", None, part, root / "skeletons", tmp_path / "desc", workers=1, img_size=24,
                             progress=False)
        theirs = extract_split("ntu60", "csub", part, npy, tmp_path / "desc", workers=1, img_size=24, progress=False)
        assert ours.ok and theirs.ok and ours.written == theirs.written > 0
        for desc in DESCRIPTORS:
            mine = descriptor_dir(tmp_path / "desc", Split.of("custom", None, part), desc)
            ntu = descriptor_dir(tmp_path / "desc", Split.of("ntu60", "csub", part), desc)
            assert {p.name: p.read_bytes() for p in mine.iterdir()} == {p.name: p.read_bytes() for p in ntu.iterdir()}
            assert provenance.read_record(mine)["layout"] == provenance.read_record(ntu)["layout"] == layout_record(
                find_layout("ntu25"))


# ---------------------------------------------------------------- the table row and its names

def small_dataset(root: Path) -> Path:
    rng = np.random.default_rng(0)
    arrays = {f"clip{k}": rng.uniform(0, 600, (8 + k, 17, 2)) for k in range(6)}
    return write_custom_dataset(root, arrays, {s: 1 + k % 3 for k, s in enumerate(arrays)},
                                {s: ("train", "test")[k % 2] for k, s in enumerate(arrays)}, ["walk", "wave", "sit"])


def test_a_custom_dataset_is_a_row_of_the_table(tmp_path, capsys):
    root = small_dataset(tmp_path / "mine")
    np.save(root / "skeletons" / "stray.npy", np.zeros((4, 17, 2)))
    ds = register_custom_dataset(root, "coco17")
    assert get_dataset("custom") is ds and (ds.num_classes, ds.protocols, ds.layout) == (3, ("split",), COCO)
    assert ds.class_names == ("walk", "wave", "sit") and label_of("clip4", "custom") == 2
    assert descriptor_dir("d", Split.of("custom", None, "train"), "GD").name == "custom_GD_train"
    assert checkpoint_prefix("custom", None, "all") == "custom_all"
    assert make_command(Split.of("custom", "split", "test"), Path("d")) == \
        f"python skels2desc_custom.py -d custom --data {root} --layout coco17 -despth d -a test"
    assert skels2desc(["--data", str(root), "--layout", "coco17", "-despth", str(tmp_path / "d"), "-a", "train",
                       "--img-size", "16", "--workers", "1", "--quiet"], ("custom",)) == 0
    out = capsys.readouterr().out
    assert "custom split train: 3 samples, 3 written" in out and "1 file(s)" in out and "(first: stray.npy)" in out
    rows = provenance.read_manifest(descriptor_dir(tmp_path / "d", Split.of("custom", None, "train"), "GD"))
    assert [(r["sample"], r["label"], r["frames"]) for r in rows] == [("clip0", 1, 8), ("clip2", 3, 10),
                                                                      ("clip4", 2, 12)]


def test_layout_digest_follows_the_definition_not_the_file(tmp_path):
    data = json.loads((LAYOUT_DIR / "coco17.json").read_text())
    data["comment"] = "reworded"
    (tmp_path / "same.json").write_text(json.dumps(data, indent=4))
    assert layout_record(find_layout(tmp_path / "same.json")) == COCO_RECORD
    assert layout_record(find_layout(other_coco17(tmp_path)))["digest"] != COCO_RECORD["digest"]


def test_the_readme_example_writes_a_dataset_that_skels2desc_reads(tmp_path, monkeypatch, capsys):
    section = (REPO / "docs" / "CUSTOM_DATA.md").read_text()   # the README's "Your own skeletons" links there
    (example,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert 15 <= len(example.strip().splitlines()) <= 25 and "write_custom_dataset(" in example
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "docs/CUSTOM_DATA.md", "exec"), {})
    assert capsys.readouterr().out == "60 samples, 3 classes: sit, walk, wave\n"
    assert skels2desc(["--data", "my_data", "--layout", "coco17", "-despth", "d", "-a", "test", "--img-size", "16",
                       "--workers", "1", "--quiet"], ("custom",)) == 0
    assert "custom split test: 12 samples, 12 written, 0 already done, 0 failed" in capsys.readouterr().out


# ---------------------------------------------------------------- bad layouts and dataset files

def bad_layout(problem: str):
    def make(root: Path) -> tuple[Path, str]:
        data = json.loads((LAYOUT_DIR / "coco17.json").read_text())
        if problem == "unknown joint":
            data["lad_triplets"][1] = ["right_knee", "right_anckle", "right_hip"]
            expected = "lad_triplets[1]: joint 'right_anckle' is not in joints"
        elif problem == "index out of range":
            data["jdd_pairs"][3] = ["left_ankle", 17]
            expected = "jdd_pairs[3]: index 17 is out of range 0..16"
        else:
            data["lad_triplets"][4] = ["left_elbow", "left_shoulder", "left_elbow"]
            expected = "lad_triplets[4]: repeats joint 'left_elbow'"
        path = root.parent / "layout.json"
        path.write_text(json.dumps(data))
        return path, f"{path}: {expected}"
    return make


def bad_data(change):
    def make(root: Path) -> tuple[str, str]:
        return "coco17", f"{root}/{change(root)}"
    return make


def missing_classes(root: Path) -> str:
    (root / "classes.txt").unlink()
    return "classes.txt: missing (one class name per line)"


def label_out_of_range(root: Path) -> str:
    text = (root / "labels.csv").read_text().replace("clip1,2,test", "clip1,7,test")
    (root / "labels.csv").write_text(text)
    return "labels.csv:3: label 7 is out of range 1..3 (classes.txt has 3 classes)"


def listed_without_file(root: Path) -> str:
    (root / "skeletons" / "clip3.npy").unlink()
    return "labels.csv:5: sample 'clip3' has no file skeletons/clip3.npy"


def wrong_joint_count(root: Path) -> str:
    np.save(root / "skeletons" / "clip2.npy", np.zeros((5, 18, 2)))
    return "skeletons/clip2.npy: shape (5, 18, 2): 18 joints, the coco17 layout has 17"


def three_values(root: Path) -> str:
    np.save(root / "skeletons" / "clip0.npy", np.zeros((5, 17, 3)))
    return "skeletons/clip0.npy: shape (5, 17, 3): 3 values per joint, the coco17 layout has dims 2"


BAD = {"unknown joint": bad_layout("unknown joint"), "index out of range": bad_layout("index out of range"),
       "repeated joint in a triplet": bad_layout("repeated joint"), "no classes.txt": bad_data(missing_classes),
       "label out of range": bad_data(label_out_of_range), "sample without file": bad_data(listed_without_file),
       "wrong joint count": bad_data(wrong_joint_count), "3D array for a 2D layout": bad_data(three_values)}


def script_runs(root: Path, layout: str, out: Path) -> dict:
    """Each script's main with -d custom on ``root``, writing (if it wrote) under ``out``."""
    flags = ["-d", "custom", "--data", str(root), "--layout", layout]
    where = ["-despth", str(out / "desc"), "-ckpt", str(out / "ckpt")]
    sample = str(root / "skeletons" / "clip0.npy")
    return {
        "skels2desc": lambda: skels2desc([*flags, "-despth", str(out / "desc"), "-a", "train", "--quiet"], ("custom",)),
        "train": lambda: train_script.main(train_script.get_args_parser().parse_args(
            [*flags, "-desc", "GD", "-gpu", "-1", *where, "--epochs", "1", "--no-progress"])),
        "test": lambda: test_script.main(test_script.get_args_parser().parse_args([*flags, "-gpu", "-1", *where])),
        "predict": lambda: predict_script.main(predict_script.get_args_parser().parse_args(
            [sample, *flags, "-ckpt", str(out / "ckpt"), "--figure", str(out / "figure.png")])),
        "pipeline": lambda: pipeline_script.main(pipeline_script.get_args_parser().parse_args(
            [*flags, "-gpu", "-1", *where, "--epochs", "1"])),
    }


@pytest.mark.parametrize("case", list(BAD))
def test_bad_layouts_and_dataset_files_are_one_line_errors_in_every_script(case, tmp_path, capsys):
    root = small_dataset(tmp_path / "mine")
    layout, expected = BAD[case](root)
    out = tmp_path / "out"
    for script, call in script_runs(root, str(layout), out).items():
        capsys.readouterr()
        assert call() == 2, script
        assert one_line_error(capsys.readouterr().err) == expected, script
        assert not out.exists(), f"{script} wrote {sorted(out.rglob('*'))}"


def test_custom_flags_must_come_together(tmp_path, capsys):
    root = small_dataset(tmp_path / "mine")
    argv = [str(root / "skeletons" / "clip0.npy"), "-ckpt", str(tmp_path / "ckpt")]
    for flags, expected in ((["-d", "custom", "--data", str(root)], "-d custom needs --data ROOT (the dataset folder) "
                                                                     "and --layout FILE_OR_NAME"),
                            (["-d", "ntu60", "--layout", "coco17"], "--data, --layout and --label-map are for -d custom "
                                                                    "or pyskl or ctrgcn: add -d, or drop them"),
                            (["-d", "custom", "--data", str(root), "--layout", "coco18"],
                             "coco18: no such layout; give a layout .json file or one of coco17, ntu25, openpose18, "
                             "ucla20")):
        capsys.readouterr()
        assert predict_script.main(predict_script.get_args_parser().parse_args([*argv, *flags])) == 2
        assert one_line_error(capsys.readouterr().err).startswith(expected)
    assert not (tmp_path / "ckpt").exists()
    capsys.readouterr()
    assert pipeline_script.main(pipeline_script.get_args_parser().parse_args(
        ["--demo", "--layout", "openpose18", "-despth", str(tmp_path / "d")])) == 2
    assert "--demo makes its own custom dataset, data/demo/coco17 with --layout coco17" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def swapped_classes_copy(work: Path) -> Path:
    """The coco17 demo dataset copied with classes 1 and 6 swapped: lines 1 and 6 of classes.txt and
    labels 1 and 6 in labels.csv (the same data, the classes in another order)."""
    import csv
    import shutil

    copy = work / "coco17_swapped"
    shutil.copytree(work / DATA, copy)
    names = (copy / "classes.txt").read_text().splitlines()
    names[0], names[5] = names[5], names[0]
    (copy / "classes.txt").write_text("\n".join(names) + "\n")
    with open(copy / "labels.csv", newline="") as f:
        rows = list(csv.reader(f))
    column = rows[0].index("label")
    swap = {"1": "6", "6": "1"}
    for row in rows[1:]:
        row[column] = swap.get(row[column], row[column])
    with open(copy / "labels.csv", "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return copy


def test_models_refuse_data_whose_classes_are_in_another_order(coco_demo, capsys, monkeypatch):
    """Class names travel with the models: on a copy of the dataset with two classes swapped,
    predict.py and test.py refuse in one line naming the first differing class, instead of printing
    the wrong names or another accuracy."""
    work, proc, _ = coco_demo
    assert proc.returncode == 0
    monkeypatch.chdir(work)
    copy = swapped_classes_copy(work)
    original = (work / DATA / "classes.txt").read_text().splitlines()
    first = f"class 0: {original[0]!r} -> {original[5]!r}"
    flags = ["-d", "custom", "--data", str(copy), "--layout", "coco17", "-ckpt", str(CKPT), "--epoch", "last"]
    sample = next((copy / "skeletons").glob("*.npy"))
    capsys.readouterr()
    assert predict_script.main(predict_script.get_args_parser().parse_args([str(sample), *flags])) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "trained on other classes than this data has" in line and first in line and "model -> data" in line
    argv = [*flags, "-desc", "GD", "-gpu", "-1", "-despth", str(DESC), "--workers", "0", "--out", "swapped"]
    assert test_script.main(test_script.get_args_parser().parse_args(argv)) == 2
    assert first in one_line_error(capsys.readouterr().err) and not Path("swapped").exists()
