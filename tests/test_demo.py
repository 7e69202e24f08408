"""Demo data generator: real formats, readers and txt2npy unchanged, every split, determinism,
realistic bodies (compared with the real samples), CLI errors."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from skeletons.datasets import DATASETS, Split, UCLA_ACTIONS, label_of, parse_ntu_name, split_names
from demo.generate import DEMO_NTU_ACTIONS, NTU_ACTIONS, UCLA_ACTION_TABLE, generate_demo
from skeletons.layouts import NTU, UCLA
from skeletons.ntu import load_skeleton_npy, paper_sequence, read_skeleton
from skeletons.ucla import read_ucla

# A number as the Kinect SDK prints it (and as the real files hold it): 7 significant digits at most.
NTU_NUMBER = re.compile(rb"^-?(\d+|\d+\.\d*[1-9]|\d\.\d*[1-9]E-\d\d|\dE-\d\d)$")
TWO_PERSON = tuple(a for a, action in NTU_ACTIONS.items() if action.persons == 2)


def ntu_files(demo_raw: Path) -> list[Path]:
    return sorted((demo_raw / "ntu" / "txt60skel").glob("*.skeleton"))


def ucla_files(demo_raw: Path) -> list[Path]:
    return sorted((demo_raw / "ucla").glob("*.json"))


@pytest.fixture(scope="module")
def ntu_dicts(demo_raw) -> dict[str, dict]:
    return {p.name.split(".")[0]: read_skeleton(p) for p in ntu_files(demo_raw)}


def bone_lengths(X: np.ndarray, bones) -> np.ndarray:
    """(frames, bones) lengths of one body's (T, V, 3) joints."""
    i, j = np.array(bones).T
    return np.linalg.norm(X[:, i] - X[:, j], axis=-1)


def test_tables_cover_the_documented_actions():
    assert tuple(UCLA_ACTION_TABLE) == UCLA_ACTIONS
    assert len(DEMO_NTU_ACTIONS) == 10 and max(DEMO_NTU_ACTIONS) <= 60
    assert set(TWO_PERSON) == {55, 58}


def test_ntu_files_parse_and_have_the_right_bodies(demo_raw, ntu_dicts):
    assert {parse_ntu_name(n).action for n in ntu_dicts} == set(DEMO_NTU_ACTIONS)
    spurious = 0
    for name, data in ntu_dicts.items():
        action = parse_ntu_name(name).action
        T = len(data["skel_body0"])
        assert data["file_name"] == name and len(data["nbodys"]) == T >= 20
        bodies = set(data["nbodys"])
        assert len(bodies) == 1, f"{name}: body count changes between frames"
        if action in TWO_PERSON:
            assert bodies == {2}, name
        spurious += action not in TWO_PERSON and bodies == {2}
        skel = data["skel_body0"]
        assert np.all(skel[..., 2] > 1.0) and np.all(skel[..., 2] < 6.0), f"{name}: not 1-6 m from the sensor"
        # depth and colour pixels are a projection of x, y, z: inside the Kinect v2 frames
        assert np.all((data["depth_body0"] > 0) & (data["depth_body0"] < [512, 424])), name
        assert np.all((data["rgb_body0"] > 0) & (data["rgb_body0"] < [1920, 1080])), name
    single = sum(parse_ntu_name(n).action not in TWO_PERSON for n in ntu_dicts)
    assert 0 < spurious < single / 2, "spurious second bodies should be occasional"


def test_spurious_bodies_stand_aside_and_partners_come_close(ntu_dicts):
    for name, data in ntu_dicts.items():
        if "skel_body1" not in data:
            continue
        pelvis_gap = np.linalg.norm(data["skel_body0"][:, 0] - data["skel_body1"][:, 0], axis=-1)
        if parse_ntu_name(name).action in TWO_PERSON:
            assert pelvis_gap.min() < 0.9 and pelvis_gap.max() > 1.0, f"{name}: partners never approach"
        else:
            assert pelvis_gap.min() > 1.0, f"{name}: spurious body too close to the performer"


def test_ntu_text_layout_matches_the_real_files(demo_raw, ntu_raw_dir):
    """CRLF lines; 10-value body lines with a Kinect body id; 12-value joint lines whose numbers are
    printed like the real ones (the same pattern accepts every number of a real CRLF file)."""
    real = (ntu_raw_dir / "S001C001P001R001A001.skeleton").read_bytes()
    generated = ntu_files(demo_raw)[0].read_bytes()
    for raw in (real, generated):
        lines = raw.split(b"\r\n")
        assert lines[-1] == b"" and b"\n" not in b"".join(lines)
        joint_lines = [ln.split(b" ") for ln in lines if ln.count(b" ") == 11]
        numbers = {tok for ln in joint_lines for tok in ln[:7]}
        assert all(NTU_NUMBER.match(tok) for tok in numbers), [t for t in numbers if not NTU_NUMBER.match(t)][:5]
        body_lines = [ln.split(b" ") for ln in lines if ln.count(b" ") == 9]
        assert body_lines and all(int(ln[0]) >= 2 ** 56 and ln[-1] == b"2" for ln in body_lines)


def test_txt2npy_converts_the_demo_unchanged(demo_raw, ntu_dicts, tmp_path):
    npy = tmp_path / "npy"
    run = subprocess.run([sys.executable, "txt2npy.py", "-d", "ntu60", "-txt", str(demo_raw / "ntu" / "txt60skel"),
                          "-npy", str(npy), "-workers", "1", "--no-progress"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in npy.iterdir()) == sorted(f"{n}.skeleton.npy" for n in ntu_dicts)
    for name in list(ntu_dicts)[::7]:
        converted = load_skeleton_npy(npy / f"{name}.skeleton.npy")
        assert list(converted) == list(ntu_dicts[name])
        assert all(np.array_equal(converted[k], v) for k, v in ntu_dicts[name].items())
        X = paper_sequence(converted)
        assert X.shape[1] == NTU.num_joints * max(converted["nbodys"]) and np.all(X[0, NTU.root] == 0)


def test_ucla_files_parse_like_the_real_ones(demo_raw, ucla_dir):
    files = ucla_files(demo_raw)
    real_text = next(ucla_dir.glob("*.json")).read_text()
    for path in files:
        name, X, label = read_ucla(path)
        assert X.shape[1:] == (UCLA.num_joints, 3) and len(X) >= 10 and label == label_of(name, "ucla")
        text = path.read_text()
        assert list(json.loads(text)) == list(json.loads(real_text)) == ["file_name", "skeletons", "label"]
        assert not text.endswith("\n") and not real_text.endswith("\n")
    # every take is filmed from the three views, as in NW-UCLA
    takes = {p.name[:-9] for p in files}
    assert {p.name for p in files} == {f"{t}_v{v:02d}.json" for t in takes for v in (1, 2, 3)}


@pytest.mark.parametrize("dataset, protocol", [(name, protocol) for name, ds in DATASETS.items()
                                               for protocol in ds.protocols])
def test_every_split_holds_every_class(demo_raw, dataset, protocol):
    folder = demo_raw / ("ucla" if dataset == "ucla" else "ntu/txt60skel")
    names = [p.name for p in folder.iterdir()]
    expected = set(range(1, 11)) if dataset == "ucla" else set(DEMO_NTU_ACTIONS)
    parts = {part: split_names(names, Split.of(dataset, protocol, part)) for part in ("train", "test")}
    for part, split in parts.items():
        assert {label_of(n, dataset) for n in split} == expected, f"{dataset} {protocol} {part}"
    assert len(parts["train"]) + len(parts["test"]) == len(names)


def test_bone_lengths_are_those_of_real_people(ntu_dicts, demo_raw, ntu_raw_dir, ucla_dir):
    """Median length of every bone within 15% (1.5 cm for the short hand and hip bones, whose
    length noise inflates) of the real samples' median; performers differ in size."""
    real_ntu = np.concatenate([read_skeleton(p)["skel_body0"] for p in sorted(ntu_raw_dir.glob("*.skeleton"))])
    demo_ntu = np.concatenate([d["skel_body0"] for d in ntu_dicts.values()])
    real_ucla = np.concatenate([read_ucla(p)[1] for p in sorted(ucla_dir.glob("*.json"))])
    demo_ucla = np.concatenate([read_ucla(p)[1] for p in ucla_files(demo_raw)])
    for layout, real, demo in ((NTU, real_ntu, demo_ntu), (UCLA, real_ucla, demo_ucla)):
        want = np.median(bone_lengths(real, layout.bones), axis=0)
        got = np.median(bone_lengths(demo, layout.bones), axis=0)
        assert np.all(np.abs(got - want) < np.maximum(0.15 * want, 0.015)), \
            dict(zip(layout.bones, (got / want).round(2)))
    sizes = [bone_lengths(d["skel_body0"][:1], NTU.size_bones).sum() for d in ntu_dicts.values()]
    assert np.std(sizes) / np.mean(sizes) > 0.03


def test_same_seed_same_bytes_other_seed_other_data(demo_raw, tmp_path):
    again = tmp_path / "again"
    summary = generate_demo(again, seed=0, size="small")
    ours = sorted(p.relative_to(demo_raw) for p in demo_raw.rglob("*") if p.is_file())
    theirs = sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert ours == theirs and summary["ntu"] + summary["ucla"] == len(ours)
    assert all((demo_raw / p).read_bytes() == (again / p).read_bytes() for p in ours)
    other = tmp_path / "other"
    generate_demo(other, seed=1, size="small")
    ucla_name = ucla_files(demo_raw)[0].name
    assert (other / "ucla" / ucla_name).read_bytes() != (demo_raw / "ucla" / ucla_name).read_bytes()


def test_cli_writes_and_reports_bad_output_in_one_line(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    run = subprocess.run([sys.executable, "-m", "demo", "--out", str(blocker / "demo"), "--size", "small"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "a_file" in run.stderr
    run = subprocess.run([sys.executable, "-m", "demo", "--out", str(tmp_path / "demo"), "--size", "nope"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "invalid choice" in run.stderr
