"""Issue 26's probes of score files and ensembles, each as written: small crafted score files that
declared gigabytes (bounded readers, peak memory measured), --weights that were accepted or
overflowed, class names and what made a file carried with the scores and compared, --out on a
file, and score paths holding '='."""
from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import REPO, load_script
from test_scores_ensemble import ids_of, labels_of, logits

from common.provenance import file_digest
from models import ensemble
from models.evaluation import Row
from models.scores import LOGITS, read_scores, write_ctrgcn, write_ours, write_pyskl
from skeletons.datasets import class_names

CLI = load_script("ensemble")
PEAK_LIMIT = 500 << 20
CLASSES = [f"action {k}" for k in range(10)]


def ours(path, scores, classes=CLASSES, ids=None, labels=None, **meta):
    ids = ids_of(len(scores)) if ids is None else ids
    labels = labels_of(len(scores), scores.shape[1]) if labels is None else labels
    return write_ours(path, ids, labels, {"GD": (scores, LOGITS)}, classes, **meta)


def cli(argv, capsys):
    """ensemble.py as run from a shell (its argv joining included): exit status, stdout, stderr."""
    rc = CLI.main(CLI.parse_args([str(a) for a in argv]))
    out, err = capsys.readouterr()
    return rc, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


# --------------------------------------------------------------------------- item 6: bounded readers

class ZeroStrided:
    """Pickles as numpy.ndarray(shape, float32, 4 zero bytes, 0, strides): rows of stride 0."""

    def __init__(self, shape, strides):
        self.shape, self.strides = shape, strides

    def __reduce__(self):
        return np.ndarray, (self.shape, np.dtype(np.float32), b"\0" * 4, 0, self.strides)


def npy_header(shape, descr="<f8") -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": descr, "fortran_order": False, "shape": shape})
    return header.getvalue()


def crafted_files(folder):
    """Small score files that declare gigabytes: the issue's 112 GiB list of zero-strided rows, a
    zero-strided (1e7, 60) matrix, 2,000 references to one 50,000-class row (a 200 KB pickle, an
    800 MB matrix), npz members whose header declares (1e7, 60) on 8 bytes, and one that really
    inflates to 270 MB of zeros."""
    files = {"zero_stride_rows.pkl": pickle.dumps([ZeroStrided((10**9,), (0,))] * 30, protocol=2),
             "zero_stride_matrix.pkl": pickle.dumps(ZeroStrided((10**7, 60), (0, 0)), protocol=2),
             "shared_rows.pkl": pickle.dumps([np.zeros(50_000, np.float32)] * 2000, protocol=2)}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    assert len(files["zero_stride_rows.pkl"]) < 1500
    with zipfile.ZipFile(folder / "declared.npz", "w") as archive:
        archive.writestr("ids.npy", npy_header((10**7,), "<U10") + bytes(8))
        archive.writestr("scores.npy", npy_header((10**7, 60)) + bytes(8))
    shape = (1_120_000, 60)   # float32: 269 MB of zeros, a 1.2 MB file
    with zipfile.ZipFile(folder / "inflating.npz", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("ids.npy", npy_header((1,), "<U1") + "a".encode("utf-32-le"))
        with archive.open("scores.npy", "w", force_zip64=True) as member:
            member.write(npy_header(shape, "<f4"))
            chunk, left = bytes(1 << 22), shape[0] * shape[1] * 4
            while left > 0:
                member.write(chunk[:min(left, len(chunk))])
                left -= len(chunk)
    return [folder / name for name in (*files, "declared.npz", "inflating.npz")]


# Reads each file under an address-space limit of what is mapped now + 500 MB; prints each
# outcome and how much the resident peak grew.
PROBE = r"""
import json, resource, sys
from models.scores import read_scores
mapped = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (mapped + int(sys.argv[1]), resource.getrlimit(resource.RLIMIT_AS)[1]))
start, outcomes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, {}
for path in sys.argv[2:]:
    try:
        read_scores(path)
        outcomes[path] = "read"
    except MemoryError:
        outcomes[path] = "MemoryError"
    except ValueError as error:
        outcomes[path] = str(error)
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start) * 1024
print(json.dumps({"outcomes": outcomes, "grown": grown}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_small_score_files_declaring_gigabytes_are_refused_in_bounded_memory(tmp_path):
    files = crafted_files(tmp_path)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", PROBE, str(PEAK_LIMIT), *map(str, files)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["grown"] < PEAK_LIMIT, report
    for path in map(str, files):
        message = report["outcomes"][path]
        assert message.startswith(path) and "\n" not in message, (path, message)
        assert "memory" not in message.lower(), message   # refused for what it declares, not for failing
    shared = report["outcomes"][str(tmp_path / "shared_rows.pkl")]
    assert "declares (2000, 50000)" in shared and "crafted" in shared


def test_shared_rows_within_the_file_and_limit_are_read(tmp_path):
    """The bound refuses only what neither the file nor the limit allows: rows shared a few times
    (a list of one array repeated) are still scores."""
    row = np.arange(10, dtype=np.float32)
    path = tmp_path / "result.pkl"
    path.write_bytes(pickle.dumps([row] * 5))
    data = read_scores(path)
    np.testing.assert_array_equal(data.streams["scores"], np.tile(row, (5, 1)))


def test_results_json_naming_itself_is_refused_in_one_line(tmp_path):
    path = tmp_path / "x_results.json"
    path.write_text(json.dumps({"scores_file": path.name}))
    with pytest.raises(ValueError, match="another JSON") as info:
        read_scores(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


# --------------------------------------------------------------------------- item 8: weights

def test_negative_weights_as_written_are_refused_naming_the_flag(tmp_path, capsys):
    files = [ours(tmp_path / f"{n}_scores.npz", logits(seed=k)) for k, n in enumerate("abc")]
    for weights in (["--weights", "-1,-1,-1"], ["--weights=-1,-1,-1"], ["--weights", "1,-1,1"],
                    ["--weights", "inf,1,1"], ["--weights", "0,0,0"]):
        rc, out, err = cli([*files, *weights, "--out", tmp_path / "out"], capsys)
        assert rc == 2 and "--weights" in one_line(err) and "non-negative" in err and not out, weights
    assert not (tmp_path / "out").exists()


def test_huge_weights_are_ratios_equal_to_ones(tmp_path, capsys):
    files = [str(ours(tmp_path / f"{n}_scores.npz", logits(seed=k))) for k, n in enumerate("abc")]
    ones, huge = ensemble.run(files, weights="1,1,1"), ensemble.run(files, weights="1e308,1e308,1e308")
    np.testing.assert_array_equal(huge.fused, ones.fused)
    assert huge.rows == ones.rows and np.allclose(huge.weights, 1 / 3)
    scaled = ensemble.run(files, weights="2,4,6")
    np.testing.assert_allclose(scaled.fused, ensemble.run(files, weights="1,2,3").fused, rtol=1e-12)
    # the file it writes is one ensemble.py reads again, with the same scores
    rc, _, err = cli([*files, "--weights", "1e308,1e308,1e308", "--out", tmp_path / "out"], capsys)
    assert rc == 0, err
    again = ensemble.run([str(tmp_path / "out" / "ensemble_scores.npz")])
    np.testing.assert_allclose(again.fused, ones.fused, rtol=1e-6)


def test_scores_beyond_float32_are_written_readable(tmp_path):
    ids, labels = ids_of(4), labels_of(4, 3)
    big = np.array([[1e300, 0, -1e300], [0, 1e300, 0], [1, 2, 3], [3, 2, 1]], dtype=np.float64)
    plain = tmp_path / "big.npz"
    np.savez(plain, ids=np.array(ids), labels=labels, scores=big)
    result = ensemble.run([str(plain)])
    ensemble.write(result, tmp_path / "out", ("ctrgcn", "pyskl"))
    for name in ("ensemble_scores.npz", "ensemble_fused_test_score.pkl", "ensemble_fused_result.pkl"):
        np.testing.assert_array_equal(read_scores(tmp_path / "out" / name).streams[
            "fused" if name.endswith(".npz") else "scores"], big)


# --------------------------------------------------------------------------- class names and records

def test_class_names_travel_with_the_scores(tmp_path):
    path = ours(tmp_path / "a_scores.npz", logits())
    assert read_scores(path).classes == CLASSES


@pytest.mark.parametrize("other, difference", [
    ([*CLASSES[:3], CLASSES[4], CLASSES[3], *CLASSES[5:]], "class 3: 'action 4' -> 'action 3'"),
    ([*CLASSES[:9], "wave"], "class 9: 'wave' -> 'action 9'")], ids=["swapped", "renamed"])
def test_files_of_other_class_names_are_refused_naming_the_first_difference(tmp_path, capsys, other, difference):
    first = ours(tmp_path / "a_scores.npz", logits(seed=1))
    second = ours(tmp_path / "b_scores.npz", logits(seed=2), classes=other)
    rc, out, err = cli([first, second, "--out", tmp_path / "out"], capsys)
    line = one_line(err)
    assert rc == 2 and str(second) in line and difference in line and not out
    assert not (tmp_path / "out").exists()


def test_files_without_class_names_are_accepted_as_before(tmp_path):
    first = ours(tmp_path / "a_scores.npz", logits(seed=1))
    older = ours(tmp_path / "b_scores.npz", logits(seed=2), classes=None)
    peer = write_ctrgcn(tmp_path / "c_test_score.pkl", ids_of(7), logits(seed=3))
    result = ensemble.run([str(first), str(older), str(peer)])
    assert result.data.classes == CLASSES and len(result.data.streams) == 3


def test_class_names_of_another_count_are_refused_on_reading(tmp_path):
    path = ours(tmp_path / "a_scores.npz", logits(), classes=CLASSES[:9])
    with pytest.raises(ValueError, match="names of its 10 classes"):
        read_scores(path)


ORIGIN_TEST = {"format": "ctrgcn", "sha256": "a" * 64, "split": "x_test"}


@pytest.mark.parametrize("field, recorded", [
    ("dataset", {"dataset": "ucla"}), ("protocol", {"protocol": "xview"}),
    ("data", {"origin": {**ORIGIN_TEST, "sha256": "b" * 64}})], ids=["dataset", "protocol", "data-file"])
def test_files_made_from_other_samples_are_refused(tmp_path, capsys, field, recorded):
    same = {"dataset": "ctrgcn", "protocol": "default", "part": "test", "origin": ORIGIN_TEST}
    first = ours(tmp_path / "a_scores.npz", logits(seed=1), **same)
    second = ours(tmp_path / "b_scores.npz", logits(seed=2), **{**same, **recorded})
    rc, _, err = cli([first, second], capsys)
    line = one_line(err)
    assert rc == 2 and str(second) in line and "made from other inputs" in line and f"{field}: " in line


def test_tuning_on_held_out_scores_of_another_data_file_is_refused(tmp_path):
    test_record = {"dataset": "ctrgcn", "protocol": "default", "part": "test", "origin": ORIGIN_TEST}
    held = {**test_record, "part": "heldout", "origin": {**ORIGIN_TEST, "split": "x_train"}}
    test = [str(ours(tmp_path / f"{n}_scores.npz", logits(seed=k), **test_record)) for k, n in enumerate("ab")]
    tune = [str(ours(tmp_path / f"{n}_heldout_scores.npz", logits(seed=k + 5), ids=ids_of(7, "train"), **held))
            for k, n in enumerate("ab")]
    assert ensemble.run(test, tune_on=tune).weights_source.startswith("tuned on")   # another split: fine
    other = {**held, "origin": {**held["origin"], "sha256": "c" * 64}}
    tune = [str(ours(tmp_path / f"{n}_other_scores.npz", logits(seed=k + 5), ids=ids_of(7, "train"), **other))
            for k, n in enumerate("ab")]
    with pytest.raises(ValueError, match="made from other inputs .*data: "):
        ensemble.run(test, tune_on=tune)


def test_the_fused_file_records_what_made_it(tmp_path):
    record = {"dataset": "ctrgcn", "protocol": "default", "part": "test", "origin": ORIGIN_TEST}
    first = ours(tmp_path / "a_scores.npz", logits(seed=1), **record)
    peer = write_pyskl(tmp_path / "b_result.pkl", logits(seed=2))
    result = ensemble.run([f"mine={first}", str(peer)], weights="3,1", by_position=True)
    ensemble.write(result, tmp_path / "out", ())
    fused = read_scores(tmp_path / "out" / "ensemble_scores.npz")
    assert fused.classes == CLASSES and fused.part == "test"
    assert {k: fused.meta[k] for k in ("dataset", "protocol")} == {"dataset": "ctrgcn", "protocol": "default"}
    assert fused.meta["origin"] == {"sha256": "a" * 64, "split": "x_test"}
    inputs = fused.meta["inputs"]
    assert inputs["mine"] == {"file": str(first), "sha256": file_digest(first), "scores": LOGITS, "weight": 0.75}
    assert inputs["b_result"]["sha256"] == file_digest(peer) and inputs["b_result"]["weight"] == 0.25
    doc = json.loads((tmp_path / "out" / "ensemble_results.json").read_text())
    assert doc["inputs"] == inputs and doc["classes"] == CLASSES
    # and it fuses again with the files it was made from (the same samples and classes)
    assert len(ensemble.run([str(tmp_path / "out" / "ensemble_scores.npz"), str(first)]).data.streams) == 2


def test_test_py_writes_class_names_and_the_samples_record(tmp_path):
    """models/testing.py's write_scores: the npz carries the dataset's ordered class names."""
    testing = pytest.importorskip("models.testing")
    names = list(class_names("ucla"))
    ids, labels = ids_of(4), np.array([1, 2, 3, 4])
    config = SimpleNamespace(dataset="ucla", protocol="cview", on="test", epoch="last", save_score=())
    doc = {"samples": {"sample": ids, "label": labels.tolist()}, "class_names": names, "desc": "GD"}
    rows = [Row("GD", "GD", np.zeros(4, int), logits(4, len(names)), kind=LOGITS)]
    data = read_scores(testing.write_scores(config, doc, rows, tmp_path)["npz"])
    assert data.classes == names and data.ids == ids
    assert ensemble.sample_record(data.meta) == {"dataset": "ucla", "protocol": "cview", "part": "test"}


# --------------------------------------------------------------------------- unclear messages

@pytest.mark.parametrize("out, words", [
    ("a_file", "a file, not a folder"), ("fused.npz", "not a file"), ("a_file/sub", "is a file, not a folder")],
    ids=["existing-file", "file-name", "file-on-the-way"])
def test_out_that_is_no_folder_is_refused_before_reading(tmp_path, capsys, out, words):
    (tmp_path / "a_file").write_text("keep me")
    missing = tmp_path / "missing_scores.npz"   # refused for --out first: nothing is read
    rc, text, err = cli([missing, "--out", tmp_path / out], capsys)
    line = one_line(err)
    assert rc == 2 and "--out" in line and words in line and not text
    assert (tmp_path / "a_file").read_text() == "keep me" and not (tmp_path / "fused.npz").exists()


def test_a_score_path_holding_equals_is_a_path(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "runs" / "lr=0.1"
    folder.mkdir(parents=True)
    first = ours(folder / "scores.npz", logits(seed=1))
    second = write_ctrgcn(tmp_path / "gcn_test_score.pkl", ids_of(7), logits(seed=2))
    assert ensemble.parse_spec(str(first)) == (None, first, None)
    rc, out, err = cli([first, second], capsys)
    assert rc == 0 and out.startswith("row") and "scores#GD" in out, err
    monkeypatch.chdir(tmp_path / "runs")   # 'lr=0.1/scores.npz': a plain name left of '=', and a file
    assert ensemble.parse_spec("lr=0.1/scores.npz") == (None, ensemble.Path("lr=0.1/scores.npz"), None)
    # NAME=FILE still names a stream, also when the file's path holds '=' itself
    assert ensemble.parse_spec("lr=lr=0.1/scores.npz#GD") == ("lr", ensemble.Path("lr=0.1/scores.npz"), ["GD"])
    (stream,) = ensemble.file_streams("fast=lr=0.1/scores.npz#GD")[1]
    assert stream.name == "fast"
    with pytest.raises(FileNotFoundError, match="read 'lr=0.2/scores.npz' as NAME=FILE"):
        ensemble.file_streams("lr=0.2/scores.npz")
