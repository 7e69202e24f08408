"""NTU .skeleton reader, .npy I/O, paper sequence and NW-UCLA reader, on the real samples."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from skeletons.ntu import (SkeletonFormatError, load_skeleton_npy, paper_sequence, parse_skeleton,
                           read_skeleton, save_skeleton_npy)
from skeletons.ucla import read_ucla, ucla_sequence

CRLF_SAMPLE = "S001C001P001R001A001"     # CRLF in ntu/, LF in ntu/lf_variant/
TWO_BODY_SAMPLE = "S001C001P001R001A050"


def assert_same_dict(ours: dict, theirs: dict) -> None:
    """Same keys in the same order, same Python types, bit-identical arrays."""
    assert list(ours) == list(theirs)
    for key, expected in theirs.items():
        got = ours[key]
        assert type(got) is type(expected), key
        if isinstance(expected, np.ndarray):
            assert got.dtype == expected.dtype and got.shape == expected.shape, key
            assert got.tobytes() == expected.tobytes(), key      # exact, -0.0 included
        else:
            assert got == expected, key
            if isinstance(expected, list):
                assert all(type(a) is type(b) for a, b in zip(got, expected)), key


def skeleton_lines(ntu_raw_dir: Path, sample: str) -> list[str]:
    return (ntu_raw_dir / f"{sample}.skeleton").read_text().splitlines()


def write_variant(tmp_path: Path, lines: list[str], sample: str = CRLF_SAMPLE) -> Path:
    path = tmp_path / f"{sample}.skeleton"
    path.write_text("\n".join(lines) + "\n")
    return path


def reference_files(reference_dir: Path) -> list[Path]:
    files = sorted((reference_dir / "npy").glob("*.skeleton.npy"))
    assert len(files) >= 6
    return files


def test_matches_official_converter_output(ntu_raw_dir, reference_dir):
    for ref in reference_files(reference_dir):
        sample = ref.name.split(".")[0]
        expected = np.load(ref, allow_pickle=True).item()
        assert_same_dict(read_skeleton(ntu_raw_dir / f"{sample}.skeleton"), expected)


def test_skeleton_only_official_file_matches(ntu_raw_dir, shared_data):
    # meta/ holds a real txt2npy output made with the rgb/depth flags off.
    expected = np.load(shared_data / "meta" / f"{CRLF_SAMPLE}.skeleton.npy", allow_pickle=True).item()
    ours = read_skeleton(ntu_raw_dir / f"{CRLF_SAMPLE}.skeleton")
    assert_same_dict({k: ours[k] for k in expected}, expected)


def test_crlf_and_lf_give_identical_output(ntu_raw_dir):
    crlf = ntu_raw_dir / f"{CRLF_SAMPLE}.skeleton"
    lf = ntu_raw_dir / "lf_variant" / f"{CRLF_SAMPLE}.skeleton"
    assert b"\r\n" in crlf.read_bytes() and b"\r\n" not in lf.read_bytes()
    assert_same_dict(read_skeleton(lf), read_skeleton(crlf))


def test_exponent_notation_values_are_exact(ntu_raw_dir, tmp_path):
    lines = skeleton_lines(ntu_raw_dir, CRLF_SAMPLE)
    # line 4 is frame 1's first joint line; put exponents and odd forms in the kept columns
    tokens = lines[4].split()
    tokens[:7] = ["1.973144E-05", "-4.63308e-05", "+3.5", ".5", "-7.", "12345678901234567", "1e3"]
    lines[4] = " ".join(tokens)
    data = read_skeleton(write_variant(tmp_path, lines))
    expected = [float(t) for t in tokens[:7]]
    assert data["skel_body0"][0, 0].tolist() == expected[:3]
    assert data["depth_body0"][0, 0].tolist() == expected[3:5]
    assert data["rgb_body0"][0, 0].tolist() == expected[5:7]


def test_empty_frames_and_extra_bodies(ntu_raw_dir, tmp_path):
    lines = skeleton_lines(ntu_raw_dir, CRLF_SAMPLE)
    body = lines[2:29]                       # info line, "25", 25 joint lines of frame 1
    # 3 frames: no body, five bodies (more than the official converter's 4 slots), one body
    variant = ["3", "0", "5"] + body * 5 + ["1"] + body
    data = read_skeleton(write_variant(tmp_path, variant))
    assert data["nbodys"] == [5, 1]          # empty frames are not counted
    assert [k for k in data if k.startswith("skel")] == [f"skel_body{i}" for i in range(5)]
    first = read_skeleton(ntu_raw_dir / f"{CRLF_SAMPLE}.skeleton")["skel_body0"][0]
    assert not data["skel_body0"][0].any()   # the empty frame stays zero
    assert all((data[f"skel_body{i}"][1] == first).all() for i in range(5))
    assert (data["skel_body0"][2] == first).all() and not data["skel_body1"][2].any()


@pytest.mark.parametrize("edit, line, problem", [
    (lambda ls: ls[:1000], 1001, "unexpected end of file"),                     # truncated at a line end
    (lambda ls: ls[:999] + [ls[999][:12]], 1001, "of 25 joint lines"),           # truncated mid-line
    (lambda ls: ls[:999] + [ls[999][:12]] + ls[1000:], 1000, "has 2 values, expected 12"),
    (lambda ls: ls[:3] + ["24"] + ls[4:], 4, "joint count 24"),
    (lambda ls: ls[:10] + [ls[10].replace(" ", " abc ", 1)] + ls[11:], 11, "has 13 values"),
    (lambda ls: ls[:10] + [ls[10].replace(" ", " 0.1x", 1)] + ls[11:], 11, "'0.1x"),
    (lambda ls: ls[:10] + [ls[10].replace(" ", " 1.2.3 ", 1).rsplit(" ", 1)[0]] + ls[11:], 11, "'1.2.3'"),
    (lambda ls: ls[:10] + [ls[10].rsplit(" ", 1)[0] + " two"] + ls[11:], 11, "'two'"),   # unused column
    (lambda ls: ["many"] + ls[1:], 1, "expected the frame count"),
    (lambda ls: ls[:1] + ["-1"] + ls[2:], 2, "negative body count"),
])
def test_malformed_files_name_file_and_line(ntu_raw_dir, tmp_path, edit, line, problem):
    path = write_variant(tmp_path, edit(skeleton_lines(ntu_raw_dir, CRLF_SAMPLE)))
    with pytest.raises(SkeletonFormatError) as info:
        read_skeleton(path)
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert problem in str(info.value)


def test_all_empty_and_empty_files(ntu_raw_dir, tmp_path):
    for path in sorted((ntu_raw_dir / "missing_skeletons").glob("*.skeleton")):
        with pytest.raises(SkeletonFormatError, match="no frame has a body.*missing-skeleton list"):
            read_skeleton(path)
    with pytest.raises(SkeletonFormatError, match=":1: empty file"):
        parse_skeleton(b"", tmp_path / "x.skeleton")


def test_npy_round_trip_is_atomic_and_exact(ntu_raw_dir, tmp_path):
    data = read_skeleton(ntu_raw_dir / f"{TWO_BODY_SAMPLE}.skeleton")
    target = tmp_path / f"{TWO_BODY_SAMPLE}.skeleton.npy"
    save_skeleton_npy(target, data)
    assert [p.name for p in tmp_path.iterdir()] == [target.name]    # no temp file left
    assert_same_dict(load_skeleton_npy(target), data)


def test_load_rejects_wrong_files(tmp_path):
    garbage = tmp_path / "garbage.skeleton.npy"
    garbage.write_bytes(b"not numpy at all")
    plain = tmp_path / "plain.skeleton.npy"
    np.save(plain, np.zeros((4, 25, 3)))
    for path, problem in ((garbage, "not a readable .npy"), (plain, "not a txt2npy skeleton file")):
        with pytest.raises(SkeletonFormatError, match=problem) as info:
            load_skeleton_npy(path)
        assert str(info.value).startswith(str(path))
    with pytest.raises(FileNotFoundError, match="absent.skeleton.npy"):
        load_skeleton_npy(tmp_path / "absent.skeleton.npy")


def test_paper_sequence(ntu_raw_dir, tmp_path):
    one = read_skeleton(ntu_raw_dir / f"{CRLF_SAMPLE}.skeleton")
    two = read_skeleton(ntu_raw_dir / f"{TWO_BODY_SAMPLE}.skeleton")
    x1, x2 = paper_sequence(one), paper_sequence(two)
    assert x1.shape == (103, 25, 3) and x2.shape == (74, 50, 3) and x2.dtype == np.float64
    origin = two["skel_body0"][0, 1]
    assert (x2[:, :25] == two["skel_body0"] - origin).all()
    assert (x2[:, 25:] == two["skel_body1"] - origin).all()          # body 1 centred on body 0
    assert not x1[0, 1].any() and (x1 == one["skel_body0"] - one["skel_body0"][0, 1]).all()
    save_skeleton_npy(tmp_path / "two.skeleton.npy", two)
    assert (paper_sequence(tmp_path / "two.skeleton.npy") == x2).all()


def test_ucla_reader(ucla_dir, tmp_path):
    files = sorted(ucla_dir.glob("*.json"))
    for path in files:
        name, skeletons, label = read_ucla(path)
        record = json.loads(path.read_text())
        assert name == path.stem and label == record["label"]
        assert skeletons.dtype == np.float64 and skeletons.shape == (len(record["skeletons"]), 20, 3)
    x = ucla_sequence(files[0])
    assert (x == read_ucla(files[0])[1] - read_ucla(files[0])[1][0, 1]).all() and not x[0, 1].any()


@pytest.mark.parametrize("change, problem", [
    (lambda r: {**r, "label": r["label"] % 10 + 1}, "disagrees with the file name"),
    (lambda r: {**r, "skeletons": []}, "zero frames"),
    (lambda r: {**r, "skeletons": [f[:19] for f in r["skeletons"]]}, "shape"),
    (lambda r: {**r, "skeletons": [r["skeletons"][0][:19]] + r["skeletons"][1:]}, "ragged"),
    (lambda r: {**r, "file_name": "a01_s01_e00_v09"}, "is not the file's id"),
])
def test_ucla_reader_rejects_bad_files(ucla_dir, tmp_path, change, problem):
    source = sorted(ucla_dir.glob("*.json"))[0]
    path = tmp_path / source.name
    path.write_text(json.dumps(change(json.loads(source.read_text()))))
    with pytest.raises(SkeletonFormatError, match=problem) as info:
        read_ucla(path)
    assert str(info.value).startswith(str(path))


def test_ucla_reader_bad_json_names_line(ucla_dir, tmp_path):
    source = sorted(ucla_dir.glob("*.json"))[0]
    path = tmp_path / source.name
    path.write_text('{"file_name": "x",\n "skeletons": [[1, 2,\n')
    with pytest.raises(SkeletonFormatError, match=rf"^{path}:\d+: not valid JSON"):
        read_ucla(path)
