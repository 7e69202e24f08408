"""Loading a .skeleton.npy runs no code, and non-finite coordinates fail at the first step that sees them.

A txt2npy file is a pickle (np.save of a dict); ``load_skeleton_npy`` unpickles it admitting only
numpy's array reconstruction, so crafted files are refused before any of their code runs.
"""
from __future__ import annotations

import json
import operator
import os
import pickletools
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npy_format

from conftest import REPO
from skeletons.reading import load_sequence
from skeletons.ntu import SkeletonFormatError, load_skeleton_npy, parse_skeleton, read_skeleton, save_skeleton_npy
from skeletons.ucla import read_ucla
from test_txt2npy import SAMPLES, assert_only_file_failed, copy_samples, run_txt2npy

VALID = "S001C001P001R001A024"     # a csub training sample with a reference converter output
CRAFTED = "S001C001P001R001A001"   # the crafted file poses as this csub training sample


# ---------------------------------------------------------------------------------------------
# Crafted payloads: each creates `marker` when unpickled by np.load(allow_pickle=True).


class SystemTouch:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class OpenForWriting(SystemTouch):
    def __reduce__(self):
        return open, (str(self.marker), "w")


class PathTouch(SystemTouch):
    def __reduce__(self):   # methodcaller("touch")(Path(marker)): a global that is not a function call
        return operator.methodcaller("touch"), (self.marker,)


class NumpyLoadsAnotherPickle(SystemTouch):
    """numpy.load itself is in the allowed module but is no array reconstruction: refused too."""

    def __reduce__(self):
        inner = self.marker.with_name(self.marker.name + ".inner.npy")
        np.save(inner, {"x": SystemTouch(self.marker)}, allow_pickle=True)
        return np.load, (str(inner), None, True)


PAYLOADS = {"os.system": (SystemTouch, "system"), "open": (OpenForWriting, "io.open"),
            "Path.touch": (PathTouch, "operator.methodcaller"), "numpy.load": (NumpyLoadsAnotherPickle, "numpy.load")}


def crafted_skeleton(path: Path, payload, reference: Path) -> Path:
    """A real converter dict with one extra entry whose unpickling runs ``payload``."""
    data = np.load(reference, allow_pickle=True).item()
    data["comment"] = payload
    np.save(path, data, allow_pickle=True)
    return path


def assert_one_line_error(error: BaseException, path: Path, *fragments: str) -> None:
    message = str(error)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message


def pickle_globals(path: Path) -> set[str]:
    """``module.name`` of every global a .npy pickle references (GLOBAL and STACK_GLOBAL opcodes)."""
    with open(path, "rb") as f:
        version = npy_format.read_magic(f)
        (npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0)(f)
        payload = f.read()
    found, memo, pushed = set(), {}, []    # pushed: the strings (or None) each op left on the stack
    for op, arg, _ in pickletools.genops(payload):
        if op.name == "GLOBAL":
            found.add(arg.replace(" ", "."))
        elif op.name == "STACK_GLOBAL":
            found.add(f"{pushed[-2]}.{pushed[-1]}")
        if op.name == "MEMOIZE":
            memo[len(memo)] = pushed[-1]
        elif op.name in ("BINPUT", "LONG_BINPUT"):
            memo[arg] = pushed[-1]
        elif op.name in ("BINGET", "LONG_BINGET"):
            pushed.append(memo[arg])
        else:
            pushed.append(arg if "UNICODE" in op.name else None)
    return found


# ---------------------------------------------------------------------------------------------
# (a) crafted files run no code


@pytest.mark.parametrize("kind", PAYLOADS)
def test_crafted_pickle_is_refused_and_runs_nothing(kind, reference_dir, tmp_path):
    payload, named = PAYLOADS[kind]
    reference = reference_dir / "npy" / f"{VALID}.skeleton.npy"
    # the payload is real: the unsafe np.load creates its marker
    proof = crafted_skeleton(tmp_path / "proof.skeleton.npy", payload(tmp_path / "proof-marker"), reference)
    np.load(proof, allow_pickle=True)
    assert (tmp_path / "proof-marker").exists()
    marker = tmp_path / "marker"
    path = crafted_skeleton(tmp_path / f"{CRAFTED}.skeleton.npy", payload(marker), reference)
    with pytest.raises(SkeletonFormatError) as info:
        load_skeleton_npy(path)
    assert_one_line_error(info.value, path, "refused to load: the pickle references", named,
                          "only numpy arrays, dict, list, tuple, str, bytes, int, float are allowed")
    assert not marker.exists()


def test_crafted_file_fails_alone_in_skels2desc_and_predict(reference_dir, tmp_path):
    seq = tmp_path / "npy"
    seq.mkdir()
    shutil.copy(reference_dir / "npy" / f"{VALID}.skeleton.npy", seq)
    marker = tmp_path / "marker"
    crafted = crafted_skeleton(seq / f"{CRAFTED}.skeleton.npy", SystemTouch(marker),
                               reference_dir / "npy" / f"{VALID}.skeleton.npy")
    result = subprocess.run([sys.executable, str(REPO / "skels2desc_ntu.py"), "-d", "ntu60", "-p", "csub",
                             "-dspath", str(seq), "-despth", str(tmp_path / "desc"), "-a", "train",
                             "--img-size", "24", "--workers", "1", "--quiet"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "2 samples, 1 written, 0 already done, 1 failed" in result.stdout
    failed = [line for line in result.stdout.splitlines() if line.strip().startswith(f"failed {CRAFTED}")]
    assert len(failed) == 1 and str(crafted) in failed[0] and "refused to load" in failed[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert not marker.exists()
    # predict.py's loading path
    with pytest.raises(ValueError) as info:
        load_sequence(crafted)
    assert_one_line_error(info.value, crafted, "refused to load", "system")
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------
# (b) genuine files load exactly as np.load does


def assert_identical(ours: dict, theirs: dict) -> None:
    assert list(ours) == list(theirs)
    for key, value in theirs.items():
        assert type(ours[key]) is type(value), key
        if isinstance(value, np.ndarray):
            assert (ours[key].dtype, ours[key].shape) == (value.dtype, value.shape), key
            assert ours[key].tobytes() == value.tobytes(), key
        else:
            assert ours[key] == value, key


def test_official_and_our_files_load_like_np_load(reference_dir, shared_data, ntu_raw_dir, tmp_path):
    official = sorted((reference_dir / "npy").glob("*.skeleton.npy")) + sorted((shared_data / "meta").glob("*.npy"))
    ours = tmp_path / f"{SAMPLES[3]}.skeleton.npy"
    save_skeleton_npy(ours, read_skeleton(ntu_raw_dir / f"{SAMPLES[3]}.skeleton"))
    assert len(official) >= 7
    for path in [*official, ours]:
        assert_identical(load_skeleton_npy(path), np.load(path, allow_pickle=True).item())
    # numpy 1.x module paths (the official converter's file) and this numpy's are both covered
    assert "numpy.core.multiarray._reconstruct" in pickle_globals(shared_data / "meta" / f"{SAMPLES[0]}.skeleton.npy")
    allowed = {"numpy.ndarray", "numpy.dtype"} | {f"numpy.{core}.multiarray.{name}" for core in ("core", "_core")
                                                  for name in ("_reconstruct", "scalar")}
    for path in [*official, ours]:
        assert pickle_globals(path) <= allowed, path


def test_numpy_scalars_in_the_dict_are_allowed(reference_dir, tmp_path):
    data = np.load(reference_dir / "npy" / f"{VALID}.skeleton.npy", allow_pickle=True).item()
    data["njoints"] = np.int64(25)           # a numpy scalar pickles through numpy's `scalar`
    path = tmp_path / f"{VALID}.skeleton.npy"
    np.save(path, data, allow_pickle=True)
    assert any(name.endswith("multiarray.scalar") for name in pickle_globals(path))
    assert_identical(load_skeleton_npy(path), np.load(path, allow_pickle=True).item())


# ---------------------------------------------------------------------------------------------
# (c) wrong and damaged files: one line naming the file


def test_plain_array_and_non_dict_are_rejected(tmp_path):
    plain = tmp_path / "plain.skeleton.npy"
    np.save(plain, np.zeros((4, 25, 3)))
    with pytest.raises(SkeletonFormatError) as info:
        load_skeleton_npy(plain)
    assert_one_line_error(info.value, plain, "not a txt2npy skeleton file", "float64 array of shape (4, 25, 3)")
    listed = tmp_path / "list.skeleton.npy"
    np.save(listed, np.array([1.0, "x"], dtype=object), allow_pickle=True)   # an object array, not 0-d
    with pytest.raises(SkeletonFormatError) as info:
        load_skeleton_npy(listed)
    assert_one_line_error(info.value, listed, "not a txt2npy skeleton file", "object array of shape (2,)")
    not_dict = tmp_path / "notdict.skeleton.npy"
    holder = np.empty((), dtype=object)
    holder[()] = [1, 2]
    np.save(not_dict, holder, allow_pickle=True)
    with pytest.raises(SkeletonFormatError) as info:
        load_skeleton_npy(not_dict)
    assert_one_line_error(info.value, not_dict, "not a txt2npy skeleton file", "found list")


@pytest.mark.parametrize("keep", [0, 5, 30, 200, 0.5, -1])
def test_truncated_files_give_one_line(keep, reference_dir, tmp_path):
    source = (reference_dir / "npy" / f"{VALID}.skeleton.npy").read_bytes()
    cut = int(len(source) * keep) if isinstance(keep, float) else keep % len(source)
    path = tmp_path / f"{VALID}.skeleton.npy"
    path.write_bytes(source[:cut])
    with pytest.raises(SkeletonFormatError) as info:
        load_skeleton_npy(path)
    assert_one_line_error(info.value, path, "not a readable .npy file: truncated or corrupt")


def test_npy_with_infinite_coordinate_names_file_and_key(reference_dir, tmp_path):
    data = np.load(reference_dir / "npy" / "S017C003P020R002A054.skeleton.npy", allow_pickle=True).item()
    data["skel_body1"][10, 4, 2] = np.inf
    path = tmp_path / "S017C003P020R002A054.skeleton.npy"
    save_skeleton_npy(path, data)
    with pytest.raises(SkeletonFormatError) as info:
        load_skeleton_npy(path)
    assert_one_line_error(info.value, path, "skel_body1 has NaN or infinite coordinates", "inf at frame 11, joint 5")
    data["skel_body1"][10, 4, 2] = 1e308       # huge but finite: the descriptor step's concern
    save_skeleton_npy(path, data)
    assert load_skeleton_npy(path)["skel_body1"][10, 4, 2] == 1e308


# ---------------------------------------------------------------------------------------------
# Non-finite values in .skeleton text and NW-UCLA json


def with_token(lines: list[bytes], line: int, column: int, token: bytes) -> bytes:
    """The file with value ``column`` of 1-based ``line`` replaced by ``token``."""
    edited = list(lines)
    values = edited[line - 1].split()
    values[column] = token
    edited[line - 1] = b" ".join(values) + b"\r\n"
    return b"".join(edited)


@pytest.mark.parametrize("token", [b"nan", b"NaN", b"inf", b"-inf", b"Infinity", b"1e999", b"-1E400"])
@pytest.mark.parametrize("column", [0, 2, 3, 6])   # x, z, depthX, colorY: all kept by the converter
def test_non_finite_joint_value_names_its_line(token, column, ntu_raw_dir):
    path = ntu_raw_dir / f"{SAMPLES[0]}.skeleton"
    lines = path.read_bytes().splitlines(keepends=True)
    raw = with_token(with_token(lines, 90, 1, b"inf").splitlines(keepends=True), 40, column, token)
    with pytest.raises(SkeletonFormatError) as info:
        parse_skeleton(raw, path)
    assert str(info.value) == f"{path}:40: joint value {token.decode()!r} is NaN or infinite"


def test_non_finite_in_dropped_columns_and_huge_finite_values_are_accepted(ntu_raw_dir):
    path = ntu_raw_dir / f"{SAMPLES[0]}.skeleton"
    lines = path.read_bytes().splitlines(keepends=True)
    expected = read_skeleton(path)
    dropped = parse_skeleton(with_token(lines, 40, 8, b"nan"), path)          # orientation: not kept
    assert all((dropped[k] == expected[k]).all() for k in expected if k.endswith("body0"))
    huge = parse_skeleton(with_token(lines, 40, 0, b"1e308"), path)   # line 40: frame 2, joint 8
    assert huge["skel_body0"][1, 7, 0] == 1e308


def test_txt2npy_fails_the_non_finite_file_only(ntu_raw_dir, tmp_path):
    txt, npy = copy_samples(ntu_raw_dir, tmp_path / "txt", SAMPLES[:2]), tmp_path / "npy"
    bad = txt / "S001C001P001R001A011.skeleton"
    bad.write_bytes(with_token((ntu_raw_dir / bad.name).read_bytes().splitlines(keepends=True), 77, 1, b"nan"))
    result = run_txt2npy("-d", "ntu60", "-txt", txt, "-npy", npy, "-workers", "1")
    assert_only_file_failed(result, npy, f"{bad}:77: joint value 'nan' is NaN or infinite")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_ucla_json_with_non_finite_coordinate_fails(literal, ucla_dir, tmp_path):
    source = sorted(ucla_dir.glob("*.json"))[0]
    record = json.loads(source.read_text())
    record["skeletons"][2][5][1] = 12345.5
    path = tmp_path / source.name
    path.write_text(json.dumps(record).replace("12345.5", literal))
    with pytest.raises(SkeletonFormatError) as info:
        read_ucla(path)
    assert_one_line_error(info.value, path, "NaN or infinite coordinates", "skeletons[2][5][1]")
