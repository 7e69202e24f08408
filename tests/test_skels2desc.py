"""skels2desc_ntu.py / skels2desc_ucla.py end to end: folder tree, manifest, resume, bad samples."""
from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from descriptors import provenance
from cli.skels2desc import main
from descriptors.extract import extract_split
from skeletons.reading import load_sequence
from skeletons.datasets import Split, label_of, sample_id, split_from_folder
from descriptors.names import DESCRIPTORS, descriptor_dir, image_name

# Real samples: csub train (P001 one body, P001 spurious second body, P001 two people, P015) and
# csub test (P003, P020 two people).
NTU_SAMPLES = ("S001C001P001R001A001", "S001C001P001R001A024", "S001C001P001R001A050",
               "S003C001P015R001A034", "S002C001P003R001A003", "S017C003P020R002A054")
UCLA_SAMPLES = ("a01_s01_e00_v01", "a02_s09_e04_v02", "a05_s10_e00_v02", "a01_s01_e00_v03", "a02_s09_e04_v03")
SIZE = ["--img-size", "24"]


@pytest.fixture(scope="module")
def npy_dir(tmp_path_factory, ntu_raw_dir) -> Path:
    """txt2npy output of a few real NTU samples."""
    from skeletons.ntu import read_skeleton, save_skeleton_npy
    folder = tmp_path_factory.mktemp("npy")
    for name in NTU_SAMPLES:
        save_skeleton_npy(folder / f"{name}.skeleton.npy", read_skeleton(ntu_raw_dir / f"{name}.skeleton"))
    return folder


def run_cli(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / script), *args, "--quiet"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def read_rows(folder: Path) -> list[dict]:
    with open(provenance.manifest_path(folder), newline="") as f:
        return list(csv.DictReader(f))


def pngs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.glob("*.png")}


def check_split(root: Path, seq_dir: Path, dataset: str, protocol: str | None, part: str, mode: str = "paper"):
    """Five folders with one image per sample of the split, the same names in each, and manifests."""
    paths = split_from_folder(seq_dir, Split.of(dataset, protocol, part))
    expected = {image_name(i, label_of(sample_id(p), dataset)) for i, p in enumerate(paths)}
    folders = [descriptor_dir(root, Split.of(dataset, protocol, part), desc) for desc in DESCRIPTORS]
    for folder in folders:
        assert set(pngs(folder)) == expected, folder
        assert [p.name for p in folder.iterdir() if p.suffix != ".png"] == []   # only images inside
        record = provenance.read_record(folder)
        assert record["complete"] and record["mode"] == mode and record["samples"] == len(paths)
    rows = read_rows(folders[0])
    assert all(read_rows(folder) == rows for folder in folders)
    assert [r["sample"] for r in rows] == [sample_id(p) for p in paths]
    for row, path in zip(rows, paths):
        X = load_sequence(path, mode)
        assert (int(row["frames"]), int(row["bodies"])) == (X.shape[0], X.shape[1] // (25 if dataset != "ucla" else 20))
        assert image_name(int(row["index"]), int(row["label"])) in expected
    return folders


def test_ntu_cli_end_to_end_and_resume(tmp_path, npy_dir):
    out = tmp_path / "desc"
    args = ["-d", "ntu60", "-p", "csub", "-dspath", str(npy_dir), "-despth", str(out), *SIZE]
    first = run_cli("skels2desc_ntu.py", *args, "-a", "train", "--workers", "2")
    assert first.returncode == 0, first.stderr
    assert "4 samples, 4 written, 0 already done, 0 failed" in first.stdout
    assert run_cli("skels2desc_ntu.py", *args, "-a", "test").returncode == 0
    train = check_split(out, npy_dir, "ntu60", "csub", "train")
    check_split(out, npy_dir, "ntu60", "csub", "test")
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(
        descriptor_dir(out, Split.of("ntu60", "csub", part), d).name for d in DESCRIPTORS for part in ("train", "test"))
    rows = read_rows(train[0])
    assert [r["bodies"] for r in rows] == ["1", "2", "2", "1"]   # paper mode keeps the spurious body
    before = {folder: pngs(folder) for folder in train}

    # A second run does nothing.
    again = run_cli("skels2desc_ntu.py", *args, "-a", "train")
    assert again.returncode == 0 and "0 written, 4 already done" in again.stdout

    # An interrupted run resumes: its manifests list the two samples finished; one more sample's
    # images were partly written and a temp file was left behind.
    rows = provenance.read_manifest(train[0])
    for folder in train:
        provenance.write_manifest(folder, rows[:2])
        (folder / "3_34.png").unlink(missing_ok=True)
    (train[2] / "2_50.png").write_bytes(b"half an image")
    (train[0] / ".0_1.png.999.tmp").write_bytes(b"partial")
    resumed = run_cli("skels2desc_ntu.py", *args, "-a", "train", "--workers", "2")
    assert resumed.returncode == 0 and "2 written, 2 already done" in resumed.stdout, resumed.stdout
    assert {folder: pngs(folder) for folder in train} == before
    check_split(out, npy_dir, "ntu60", "csub", "train")


def test_clean_mode_needs_overwrite_and_selects_bodies(tmp_path, npy_dir):
    out = tmp_path / "desc"
    args = ["-d", "ntu60", "-p", "csub", "-dspath", str(npy_dir), "-despth", str(out), "-a", "train", *SIZE]
    assert run_cli("skels2desc_ntu.py", *args, "--workers", "1").returncode == 0
    mixed = run_cli("skels2desc_ntu.py", *args, "--mode", "clean")
    assert mixed.returncode == 2 and "--overwrite" in mixed.stderr and "Traceback" not in mixed.stderr
    clean = run_cli("skels2desc_ntu.py", *args, "--mode", "clean", "--overwrite", "--workers", "1")
    assert clean.returncode == 0 and "4 written" in clean.stdout
    folders = check_split(out, npy_dir, "ntu60", "csub", "train", mode="clean")
    assert [r["bodies"] for r in read_rows(folders[0])] == ["1", "1", "2", "1"]   # spurious body dropped


def test_bad_samples_are_reported_and_skipped(tmp_path, npy_dir):
    seq = tmp_path / "npy"
    shutil.copytree(npy_dir, seq)
    (seq / "S002C001P003R001A003.skeleton.npy").write_bytes(b"not a numpy file")
    data = np.load(npy_dir / "S017C003P020R002A054.skeleton.npy", allow_pickle=True).item()
    data["skel_body0"][3, 4, 0] = np.nan
    np.save(seq / "S017C003P020R002A054.skeleton.npy", data)
    empty = dict(data, skel_body0=np.zeros((0, 25, 3)), skel_body1=np.zeros((0, 25, 3)))
    np.save(seq / "S004C002P003R001A017.skeleton.npy", empty)
    result = run_cli("skels2desc_ntu.py", "-d", "ntu60", "-p", "csub", "-dspath", str(seq),
                     "-despth", str(tmp_path / "desc"), "-a", "test", *SIZE)
    assert result.returncode == 1
    assert "3 samples, 0 written, 0 already done, 3 failed" in result.stdout
    for name, reason in (("S002C001P003R001A003", "not a readable .npy"), ("S017C003P020R002A054", "NaN"),
                         ("S004C002P003R001A017", "no frames")):
        assert any(line.startswith(f"  failed {name}:") and reason in line for line in result.stdout.splitlines())
    assert "Traceback" not in result.stdout + result.stderr
    assert read_rows(descriptor_dir(tmp_path / "desc", Split.of("ntu60", "csub", "test"), "JDD")) == []


def test_cli_errors_are_one_line(tmp_path):
    missing = run_cli("skels2desc_ntu.py", "-d", "ntu60", "-p", "csub", "-dspath", str(tmp_path / "nope"),
                      "-despth", str(tmp_path), "-a", "train")
    assert missing.returncode == 2 and str(tmp_path / "nope") in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    empty = run_cli("skels2desc_ntu.py", "-d", "ntu60", "-p", "csub", "-dspath", str(tmp_path),
                    "-despth", str(tmp_path), "-a", "train")
    assert empty.returncode == 2 and "no .skeleton.npy files" in empty.stderr and "txt2npy" in empty.stderr
    wrong = run_cli("skels2desc_ntu.py", "-d", "ntu60", "-p", "csetup", "-dspath", str(tmp_path),
                    "-despth", str(tmp_path), "-a", "train")
    assert wrong.returncode == 2 and "csetup" in wrong.stderr


def test_ucla_split(tmp_path, ucla_dir):
    seq = tmp_path / "ucla"
    seq.mkdir()
    for name in UCLA_SAMPLES:
        shutil.copy(ucla_dir / f"{name}.json", seq)
    out = tmp_path / "desc"
    for part in ("train", "test"):
        assert main(["-d", "ucla", "-dspath", str(seq), "-despth", str(out), "-a", part, "--workers", "1",
                     "--quiet", *SIZE], datasets=("ucla",)) == 0
        check_split(out, seq, "ucla", None, part)
    assert sorted(p.name for p in out.iterdir() if p.is_dir())[:2] == ["ucla_ADD_test", "ucla_ADD_train"]
    # The 1-frame sample still gets its five images (GD and ADD all zeros), and is named.
    summary = extract_split("ucla", None, "test", seq, out, workers=1, img_size=24, progress=False)
    assert (summary.written, summary.skipped, summary.failed) == (0, 2, [])
    assert [name for name, _ in summary.degenerate] == ["a02_s09_e04_v03"]


def test_visualize_writes_figure_and_images(tmp_path, ntu_raw_dir):
    from PIL import Image

    import visualize
    from descriptors.core import descriptor_images
    sample = ntu_raw_dir / "S001C001P001R001A050.skeleton"
    out = tmp_path / "figure.png"
    assert visualize.main(visualize.parse([str(sample), "-o", str(out), "--images", str(tmp_path / "img"),
                                           "--img-size", "32"])) == 0
    figure = Image.open(out)
    assert figure.format == "PNG" and figure.width > 800
    expected = descriptor_images(load_sequence(sample), img_size=32)
    for desc in DESCRIPTORS:
        saved = np.asarray(Image.open(tmp_path / "img" / f"S001C001P001R001A050_{desc}.png"))
        np.testing.assert_array_equal(saved, expected[desc])
    assert visualize.main(visualize.parse([str(tmp_path / "bad.txt")])) == 2


def test_a_folder_whose_sequences_are_one_level_down_is_named(ucla_dir, tmp_path):
    """CTR-GCN's NW-UCLA data unpacks to ucla/all_sqe/*.json."""
    inner = tmp_path / "ucla" / "all_sqe"
    inner.mkdir(parents=True)
    for path in sorted(Path(ucla_dir).glob("*.json"))[:3]:
        shutil.copy(path, inner)
    with pytest.raises(ValueError) as error:
        extract_split("ucla", None, "train", tmp_path / "ucla", tmp_path / "desc", workers=1, progress=False)
    assert str(error.value) == (f"{tmp_path / 'ucla'}: no .json files of the ucla cview train split "
                                f"(they are in {inner}: pass that folder instead)")


def test_a_partial_split_is_named_in_the_summary(demo_raw, tmp_path):
    from skeletons.convert import convert_folder

    npy = tmp_path / "npy"
    convert_folder(Path(demo_raw) / "ntu" / "txt60skel", npy, "ntu60", workers=1, progress=False)
    summary = extract_split("ntu60", "csub", "test", npy, tmp_path / "desc", workers=1, img_size=16, progress=False)
    present = len(split_from_folder(npy, Split.of("ntu60", "csub", "test")))
    line = f"notice: fewer samples than the official split (ntu60 csub test: {present:,} of 16,487"
    assert summary.presence.startswith(line) and f"  {summary.presence}" in summary.lines()


def test_a_rerun_with_nothing_to_make_shows_no_progress_bar(ucla_dir, tmp_path, capsys):
    seq = tmp_path / "ucla"
    seq.mkdir()
    for name in UCLA_SAMPLES:
        shutil.copy(ucla_dir / f"{name}.json", seq)
    extract_split("ucla", None, "test", seq, tmp_path / "desc", workers=1, img_size=16, progress=True)
    assert "ucla cview test: 100%" in capsys.readouterr().err   # the first run draws its bar
    again = extract_split("ucla", None, "test", seq, tmp_path / "desc", workers=1, img_size=16, progress=True)
    assert again.written == 0 and capsys.readouterr().err == ""
