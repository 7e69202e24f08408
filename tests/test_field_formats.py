"""The field's data files as datasets: PYSKL annotation pickles (-d pyskl) and CTR-GCN npz files
(-d ctrgcn) unpacked, split, named and labelled as their own code does; the real fixtures (../shared/
data/formats, made by the peers' preprocessing code from 35 real NTU samples) through extraction,
training from images and from skeletons, test (with score files in their layouts), predict and
pipeline; files the tests write themselves (demo/field_files.py) where ../shared is absent; every
bad file a one-line error that runs nothing and writes nothing."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, SHARED

from demo.field_files import demo_recordings, write_ctrgcn, write_pyskl
from descriptors import provenance
from descriptors.names import descriptor_dir
from skeletons.ctrgcn import read_ctrgcn, register_ctrgcn_dataset
from skeletons.datasets import Split, split_names
from skeletons.pyskl import choose_bodies, protocols_of, register_pyskl_dataset
from skeletons.unpacked import ORIGIN_FILE, unpacked_root

FORMATS = SHARED / "data" / "formats"
PYSKL_FIXTURE = FORMATS / "pyskl" / "ntu60_3danno.pkl"
CTRGCN_CS = FORMATS / "ctrgcn" / "NTU60_CS.npz"
CTRGCN_CV = FORMATS / "ctrgcn" / "NTU60_CV.npz"
CTRGCN_SCORES = FORMATS / "synthetic_scores" / "synthetic_ctrgcn_NTU60_CS_epoch1_test_score.pkl"
needs_fixtures = pytest.mark.skipif(not PYSKL_FIXTURE.is_file(), reason=f"the peers' fixture files are not at "
                                                                       f"{FORMATS} (set IMDAR_SHARED)")
# The 7 CS test samples (the fixtures' README, §4): x_test rows of NTU60_CS.npz = PYSKL's xsub_val.
CS_TEST = ("S002C001P003R001A003", "S004C002P003R001A017", "S017C003P020R002A054", "S017C003P020R002A055",
           "S017C003P020R002A056", "S017C003P020R002A057", "S017C003P020R002A058")
TINY = ["--epochs", "1", "--width", "0.0625", "--img-size", "16", "--batch-size", "8", "-gpu", "-1"]


def run(script: str, *argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / f"{script}.py"), *argv], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return errors[0].removeprefix("error: ")


def names_of(ds) -> list[str]:
    return [p.name for p in Path(ds.seq_dir).glob("*.npy")]


# ---------------------------------------------------------------- the real fixtures

@needs_fixtures
def test_pyskl_fixture_unpacks_as_pyskl_splits_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ds = register_pyskl_dataset(PYSKL_FIXTURE)
    raw = pickle.load(open(PYSKL_FIXTURE, "rb"))
    assert ds.protocols == ("xsub", "xview") and ds.layout.num_joints == 25 and ds.num_classes == 60
    assert ds.class_names[0] == "drink water"   # NTU's A001: frame_dirs are NTU names, labels their actions
    for protocol, sizes in (("xsub", (28, 7)), ("xview", (7, 28))):
        for part, size in zip(("train", "test"), sizes):
            assert len(split_names(names_of(ds), Split.of("pyskl", protocol, part))) == size
    assert ds.custom.row_order("xsub", "test") == list(CS_TEST) == raw["split"]["xsub_val"]
    for item in raw["annotations"]:
        unpacked = np.load(Path(ds.seq_dir) / f"{item['frame_dir']}.npy")
        assert np.array_equal(unpacked, item["keypoint"].astype(np.float32))   # float16 -> float32 exactly
        assert ds.parse_name(item["frame_dir"]).label == item["label"] + 1
    origin = json.loads((unpacked_root(PYSKL_FIXTURE, "pyskl") / ORIGIN_FILE).read_text())
    assert origin["samples"] == 35 and origin["skipped"] == {} and origin["file"] == str(PYSKL_FIXTURE.resolve())


@needs_fixtures
def test_ctrgcn_fixture_names_lengths_and_bodies(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ds = register_ctrgcn_dataset(CTRGCN_CS)
    assert ds.protocols == ("split",) and ds.num_classes == 60
    assert ds.custom.row_order("split", "test") == [f"test_{k}" for k in range(7)]
    pyskl = {item["frame_dir"]: item for item in pickle.load(open(PYSKL_FIXTURE, "rb"))["annotations"]}
    for k, name in enumerate(CS_TEST):
        ours = np.load(Path(ds.seq_dir) / f"test_{k}.npy")
        theirs = pyskl[name]["keypoint"].astype(np.float32)
        assert ds.parse_name(f"test_{k}").label == int(name[-3:])
        # The real length from the trailing zero frames, one body where the second is all zero.
        assert ours.shape == theirs.shape, name
        # Both peers chose the same bodies in the same order: equal up to float16 rounding (0.002 m).
        centred = lambda x: x - x[0, 0, 1]   # noqa: E731  (CTR-GCN's origin: body 0's joint 2, frame 0)
        assert np.abs(centred(ours) - centred(theirs)).max() < 0.004, name


@needs_fixtures
def test_pyskl_fixture_through_every_step(tmp_path):
    """pipeline.py (images), then train/test from skeletons, predict by name; records say the file."""
    data = ["-d", "pyskl", "--data", str(PYSKL_FIXTURE), "-p", "xsub"]
    proc = run("pipeline", *data, *TINY, "--epoch", "last", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Fuse5 main head" in proc.stdout
    record = provenance.read_record(descriptor_dir(tmp_path / "data/descriptors", Split("pyskl", "xsub", "train"), "GD"))
    assert record["origin"]["split"] == "xsub_train" and record["origin_file"] == str(PYSKL_FIXTURE.resolve())
    results = json.loads((tmp_path / "checkpoints/pyskl_xsub_all_last_results.json").read_text())
    assert results["samples"]["sample"] == sorted(CS_TEST) and results["part"] == "test"
    proc = run("predict", CS_TEST[2], *data, "--epoch", "last", "-gpu", "-1", cwd=tmp_path)
    assert proc.returncode == 0 and "true class: point finger at the other person" in proc.stdout, proc.stderr
    ckpt = tmp_path / "skel"
    for script, extra in (("train", ["-desc", "GD", "--epochs", "1", "--width", "0.0625", "--img-size", "16"]),
                          ("test", ["-desc", "GD", "--epoch", "last", "--save-score", "pyskl"])):
        proc = run(script, *data, "--source", "skeletons", "-ckpt", str(ckpt), "-gpu", "-1", *extra, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
    result = pickle.load(open(ckpt / "pyskl_xsub_GD_last_GD_result.pkl", "rb"))
    assert isinstance(result, list) and len(result) == 7 and result[0].shape == (60,)


@needs_fixtures
def test_ctrgcn_fixture_from_skeletons_and_its_score_layout(tmp_path):
    data = ["-d", "ctrgcn", "--data", str(CTRGCN_CS)]
    proc = run("pipeline", *data, *TINY, "--epoch", "last", "--source", "skeletons", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = run("test", *data, "--source", "skeletons", "--epoch", "last", "-gpu", "-1", "--save-score", "ctrgcn",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    scores = pickle.load(open(tmp_path / "checkpoints/ctrgcn_all_last_all_test_score.pkl", "rb"))
    assert list(scores) == [f"test_{k}" for k in range(7)]   # CTR-GCN's names, in its row order
    ours = np.load(tmp_path / "checkpoints/ctrgcn_all_last_scores.npz")
    assert list(ours["ids"]) == list(scores) and list(ours["labels"]) == [int(n[-3:]) - 1 for n in CS_TEST]
    assert np.array_equal(ours["row.all"], np.stack(list(scores.values())))
    ckpt = __import__("torch").load(tmp_path / "checkpoints/ctrgcn_GD_last.tar", weights_only=True)
    assert ckpt["settings"]["data"]["test"]["GD"]["origin"]["split"] == "x_test"
    # The fixture's CTR-GCN score file and ours fuse by id, whatever the row order of either.
    reversed_file = tmp_path / "reversed_score.pkl"
    foreign = pickle.load(open(CTRGCN_SCORES, "rb"))
    reversed_file.write_bytes(pickle.dumps(dict(reversed(list(foreign.items())))))
    outputs = []
    for other in (CTRGCN_SCORES, reversed_file):
        proc = run("ensemble", str(tmp_path / "checkpoints/ctrgcn_all_last_scores.npz#all"), str(other),
                   "--out", str(tmp_path / other.stem), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        outputs.append(np.load(tmp_path / other.stem / "ensemble_scores.npz")["row.fused"])
    assert np.array_equal(*outputs)
    expected = (ours["row.all"] + np.stack([foreign[f"test_{k}"] for k in range(7)])) / 2   # equal weights, as ratios
    assert np.allclose(outputs[0], expected, atol=1e-5)


@needs_fixtures
def test_two_files_never_share_descriptor_folders(tmp_path):
    """NTU60_CS and NTU60_CV are both -d ctrgcn: the second is refused where the first made images."""
    args = ["-despth", "d", "-a", "train", "--img-size", "8", "--no-progress"]
    assert run("skels2desc_custom", "-d", "ctrgcn", "--data", str(CTRGCN_CS), *args, cwd=tmp_path).returncode == 0
    message = one_line_error(run("skels2desc_custom", "-d", "ctrgcn", "--data", str(CTRGCN_CV), *args, cwd=tmp_path))
    assert "made with origin" in message and "--overwrite" in message


# ---------------------------------------------------------------- files the tests write

def test_2d_pyskl_file_keeps_the_two_most_confident_persons(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_pyskl(tmp_path / "two_d.pkl", takes=1, two_d=True)
    raw = pickle.load(open(path, "rb"))
    ds = register_pyskl_dataset(path)
    assert ds.layout.name == "coco17" and ds.protocols == ("xsub", "xview")
    for item in raw["annotations"]:
        unpacked = np.load(Path(ds.seq_dir) / f"{item['frame_dir']}.npy")
        order = np.argsort(-item["keypoint_score"].mean(axis=(1, 2)), kind="stable")[:2]
        if len(item["keypoint"]) <= 2:
            order = np.arange(len(item["keypoint"]))   # one or two persons: the file's order
        assert np.array_equal(unpacked, item["keypoint"][order]), item["frame_dir"]
        assert len(unpacked) == min(2, len(item["keypoint"]))
    bystanders = [item for item in raw["annotations"] if len(item["keypoint"]) == 3]
    assert bystanders, "the demo's 2D file holds samples with a faint third person"


def test_choose_bodies_by_mean_score_and_drops_padding():
    keypoint = np.arange(4 * 2 * 3 * 2, dtype=np.float32).reshape(4, 2, 3, 2) + 1
    keypoint[3] = 0   # a padding person
    score = np.stack([np.full((2, 3), s) for s in (0.1, 0.9, 0.5, 1.0)])
    assert np.array_equal(choose_bodies(keypoint, score), keypoint[[1, 2]])    # 3 is padding, whatever its score
    assert np.array_equal(choose_bodies(keypoint[:3], None), keypoint[:2])     # no scores: the first two
    assert choose_bodies(np.zeros((1, 5, 3, 2)), None).shape[0] == 0


@pytest.mark.parametrize("keys, expected", [
    (("train", "val"), {"split": ("train", "val")}),
    (("train1", "test1", "train2", "test2"), {"split1": ("train1", "test1"), "split2": ("train2", "test2")}),
    (("xsub_train", "xsub_val", "xsub_test", "xset_train", "xset_val"),
     {"xsub": ("xsub_train", "xsub_test"), "xset": ("xset_train", "xset_val")}),
])
def test_protocols_from_split_names(keys, expected):
    protocols = protocols_of({key: [key] for key in keys}, Path("f.pkl"))
    assert {p: (v["names"]["train"], v["names"]["test"]) for p, v in protocols.items()} == expected
    assert all(v["train"] == [v["names"]["train"]] for v in protocols.values())


def test_ctrgcn_file_unpacks_to_the_recordings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_ctrgcn(tmp_path / "NTU60_CS.npz", takes=2)
    compressed = tmp_path / "compressed" / "NTU60_CS.npz"
    compressed.parent.mkdir()
    with np.load(path) as arrays:
        np.savez_compressed(compressed, **{k: arrays[k] for k in arrays.files})
    recordings = {name: bodies for name, _, bodies in demo_recordings(0, 2)}
    unpacked = {}
    for source in (path, compressed):
        data = read_ctrgcn(source)
        unpacked[source] = {name: bodies for name, _, bodies in data.samples}
    assert unpacked[path].keys() == unpacked[compressed].keys()
    assert all(np.array_equal(unpacked[path][k], unpacked[compressed][k]) for k in unpacked[path])
    lengths = sorted((b.shape[0], b.shape[1]) for b in recordings.values())
    assert sorted(b.shape[:2] for b in unpacked[path].values()) == lengths   # bodies and frames recovered


def test_changed_file_rewrites_only_changed_samples(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_pyskl(tmp_path / "ntu.pkl", takes=1)
    ds = register_pyskl_dataset(path)
    files = sorted(Path(ds.seq_dir).glob("*.npy"))
    before = {p.name: p.stat().st_mtime_ns for p in files}
    os.utime(path, ns=(1, 1))                           # touched, not changed: nothing is unpacked again
    register_pyskl_dataset(path)
    assert {p.name: p.stat().st_mtime_ns for p in files} == before
    data = pickle.load(open(path, "rb"))
    changed = data["annotations"][3]
    changed["keypoint"] = changed["keypoint"] + np.float16(0.5)
    path.write_bytes(pickle.dumps(data, protocol=2))
    out = run("skels2desc_custom", "-d", "pyskl", "--data", str(path), "-a", "train", "-p", "xview",
              "-despth", "d", "--img-size", "8", "--no-progress", cwd=tmp_path)
    assert out.returncode == 0 and "unpacking" in out.stderr, out.stderr
    after = {p.name: p.stat().st_mtime_ns for p in files}
    assert [name for name in before if after[name] != before[name]] == [f"{changed['frame_dir']}.npy"]


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"split": {}, "annotations": [Payload()]}, protocol=2))
    proc = run("skels2desc_custom", "-d", "pyskl", "--data", str(evil), "-a", "train", cwd=tmp_path)
    message = one_line_error(proc)
    assert message.startswith(str(evil)) and "refused" in message and "system" in message
    assert not marker.exists()
    assert not (tmp_path / "data/pyskl/evil" / ORIGIN_FILE).exists() and not (tmp_path / "data/descriptors").exists()


def broken_ctrgcn(tmp_path: Path, what: str) -> Path:
    good = write_ctrgcn(tmp_path / "good.npz", takes=2)
    path = tmp_path / f"{what}.npz"
    with np.load(good) as arrays:
        arrays = {k: arrays[k] for k in arrays.files}
    if what == "not_one_hot":
        arrays["y_train"][0] = 0.5
    elif what == "no_x_test":
        del arrays["x_test"]
    elif what == "nan":
        arrays["x_train"][1, 0, 0] = np.nan
    np.savez(path, **arrays)
    if what == "truncated":
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    if what == "not_a_zip":
        path.write_bytes(b"hello")
    return path


@pytest.mark.parametrize("what, words", [("not_one_hot", "one-hot"), ("no_x_test", "no x_test"),
                                         ("truncated", "not an npz"), ("not_a_zip", "not an npz")])
def test_bad_ctrgcn_files_are_one_line_errors_that_write_nothing(tmp_path, what, words):
    path = broken_ctrgcn(tmp_path, what)
    message = one_line_error(run("skels2desc_custom", "-d", "ctrgcn", "--data", str(path), "-a", "train",
                                 cwd=tmp_path))
    assert message.startswith(str(path)) and words in message, message
    assert not (tmp_path / "data/ctrgcn" / what / ORIGIN_FILE).exists() and not (tmp_path / "data/descriptors").exists()


def test_non_finite_sample_is_left_out_and_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    register_ctrgcn_dataset(broken_ctrgcn(tmp_path, "nan"))
    origin = json.loads((tmp_path / "data/ctrgcn/nan" / ORIGIN_FILE).read_text())
    assert origin["skipped"] == {"train_1": "non-finite coordinates"}
    assert not (tmp_path / "data/ctrgcn/nan/skeletons/train_1.npy").exists()


@pytest.mark.parametrize("argv, words", [
    (["-d", "pyskl"], "needs --data FILE"),
    (["-d", "pyskl", "--data", "{pkl}", "-p", "csub"], "protocol 'csub' is not defined for pyskl; choose from xsub, xview"),
    (["-d", "pyskl", "--data", "{pkl}", "--layout", "coco17"], "the coco17 layout has 17 x 2"),
    (["-d", "pyskl", "--data", "{pkl}", "--label-map", "{short_map}"], "2 class names"),
    (["-d", "ntu60", "--label-map", "{short_map}"], "are for -d custom or pyskl or ctrgcn"),
    (["-d", "ctrgcn", "--data", "{missing}"], "no such ctrgcn file"),
])
def test_dataset_flags_refused_in_one_line(tmp_path, argv, words):
    pkl = write_pyskl(tmp_path / "ntu.pkl", takes=1)
    (tmp_path / "short.txt").write_text("a\nb\n")
    values = {"pkl": str(pkl), "short_map": str(tmp_path / "short.txt"), "missing": str(tmp_path / "nope.npz")}
    argv = [a.format(**values) for a in argv]
    message = one_line_error(run("train", *argv, "-desc", "GD", "-gpu", "-1", cwd=tmp_path))
    assert words in message, message
    assert not (tmp_path / "checkpoints").exists()


def test_label_map_names_the_classes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_ctrgcn(tmp_path / "NTU60_CS.npz", takes=2)
    names = [f"action {k}" for k in range(60)]
    (tmp_path / "map.txt").write_text("\n".join(names) + "\n")
    assert register_ctrgcn_dataset(path, label_map=tmp_path / "map.txt").class_names == tuple(names)


def test_score_pickles_read_with_numpy_1_globals(tmp_path):
    """The fixtures were pickled by numpy 1.23 (numpy.core.multiarray): the restricted unpickler maps them."""
    if not CTRGCN_SCORES.is_file():
        pytest.skip(f"no fixture score file at {CTRGCN_SCORES}")
    from common.safe_pickle import load_pickle
    scores = load_pickle(CTRGCN_SCORES)
    assert list(scores) == [f"test_{k}" for k in range(7)]
    assert np.array_equal(scores["test_0"], np.random.default_rng(0).standard_normal((7, 60)).astype(np.float32)[0])
