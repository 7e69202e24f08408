"""txt2npy.py end to end (CLI in a subprocess) and skeletons.convert on the real samples."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from skeletons.convert import check_complete, convert_folder, stale_conversions
from skeletons.datasets import official_missing
from skeletons.ntu import load_skeleton_npy

REPO = Path(__file__).resolve().parents[1]
# Two CRLF files, one LF two-body file, one setup-17 two-body file; all have a reference output.
SAMPLES = ("S001C001P001R001A001", "S002C001P003R001A003", "S001C001P001R001A050", "S017C003P020R002A054")


def run_txt2npy(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "txt2npy.py"), "--no-progress", *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def assert_only_file_failed(result: subprocess.CompletedProcess, npy: Path, failure: str) -> None:
    """txt2npy exited 1 naming ``failure`` (one line, no traceback) and converted the two good files."""
    assert result.returncode == 1
    assert "converted: 2," in result.stdout and "failed: 1" in result.stdout
    assert f"FAILED {failure}" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert sorted(p.name for p in npy.iterdir()) == sorted(f"{s}.skeleton.npy" for s in SAMPLES[:2])


def copy_samples(ntu_raw_dir: Path, folder: Path, samples=SAMPLES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for sample in samples:
        shutil.copy(ntu_raw_dir / f"{sample}.skeleton", folder)
    return folder


def assert_equals_reference(npy: Path, reference_dir: Path) -> None:
    ours = load_skeleton_npy(npy)
    theirs = np.load(reference_dir / "npy" / npy.name, allow_pickle=True).item()
    assert list(ours) == list(theirs)
    assert all(ours[k].tobytes() == theirs[k].tobytes() if isinstance(theirs[k], np.ndarray) else ours[k] == theirs[k]
               for k in theirs)


def test_cli_converts_like_the_official_converter_and_resumes(ntu_raw_dir, reference_dir, tmp_path):
    txt, npy = copy_samples(ntu_raw_dir, tmp_path / "txt"), tmp_path / "npy"
    first = run_txt2npy("-d", "ntu60", "-txt", txt, "-npy", npy, "-workers", "2")
    assert first.returncode == 0, first.stderr
    assert "converted: 4," in first.stdout and "failed: 0" in first.stdout
    assert sorted(p.name for p in npy.iterdir()) == sorted(f"{s}.skeleton.npy" for s in SAMPLES)  # no temp files
    for sample in SAMPLES:
        assert_equals_reference(npy / f"{sample}.skeleton.npy", reference_dir)
    stamps = {p.name: p.stat().st_mtime_ns for p in npy.iterdir()}
    second = run_txt2npy("-d", "ntu60", "-txt", txt, "-npy", npy)
    assert second.returncode == 0 and "converted: 0," in second.stdout and "already done: 4," in second.stdout
    assert stamps == {p.name: p.stat().st_mtime_ns for p in npy.iterdir()}


def test_truncated_file_is_named_others_convert_exit_nonzero(ntu_raw_dir, tmp_path):
    txt, npy = copy_samples(ntu_raw_dir, tmp_path / "txt", SAMPLES[:2]), tmp_path / "npy"
    truncated = txt / "S001C001P001R001A011.skeleton"
    lines = (ntu_raw_dir / truncated.name).read_bytes().splitlines(keepends=True)
    truncated.write_bytes(b"".join(lines[:500]) + lines[500][:20])       # cut in the middle of line 501
    result = run_txt2npy("-d", "ntu60", "-txt", txt, "-npy", npy, "-workers", "1")
    assert_only_file_failed(result, npy, f"{truncated}:502: unexpected end of file")


@pytest.mark.parametrize("entry", ["link loop", "fifo", "folder"])
def test_an_entry_that_is_not_a_file_is_named_others_convert(ntu_raw_dir, tmp_path, entry):
    txt, npy = copy_samples(ntu_raw_dir, tmp_path / "txt", SAMPLES[:2]), tmp_path / "npy"
    bad = txt / "S001C001P001R001A011.skeleton"
    {"link loop": lambda: bad.symlink_to(bad.name), "fifo": lambda: os.mkfifo(bad), "folder": bad.mkdir}[entry]()
    result = run_txt2npy("-d", "ntu60", "-txt", txt, "-npy", npy, "-workers", "2")   # a FIFO read would hang
    reason = {"link loop": "unreadable link or entry (Too many levels of symbolic links)",
              "fifo": "a FIFO, not a regular file; not read", "folder": "a folder, not a regular file; not read"}
    assert_only_file_failed(result, npy, f"{bad}: {reason[entry]}")


def test_a_huge_file_is_refused_before_it_is_read(ntu_raw_dir, tmp_path):
    txt, npy = copy_samples(ntu_raw_dir, tmp_path / "txt", SAMPLES[:2]), tmp_path / "npy"
    huge = txt / "S001C001P001R001A011.skeleton"
    with huge.open("wb") as f:   # 2 GiB, sparse: no disk, but reading it whole would take 2 GiB of memory
        f.truncate(2 * 2**30)
    result = run_txt2npy("-d", "ntu60", "-txt", txt, "-npy", npy, "-workers", "1")
    assert_only_file_failed(result, npy, f"{huge}: 2,048 MiB, far larger than any NTU RGB+D .skeleton file "
                                         f"(at most a few MB); not read")


def test_missing_list_samples_are_skipped_or_fail_cleanly_when_forced(ntu_raw_dir, tmp_path):
    txt = ntu_raw_dir / "missing_skeletons"
    assert {p.name.split(".")[0] for p in txt.glob("*.skeleton")} <= official_missing("ntu60")
    skipped = run_txt2npy("-d", "ntu60", "-txt", txt, "-npy", tmp_path / "npy")
    assert skipped.returncode == 0 and "skipped (missing list): 2," in skipped.stdout
    forced = run_txt2npy("-d", "ntu60", "-txt", txt, "-npy", tmp_path / "npy", "--include-missing")
    assert forced.returncode == 1 and "failed: 2" in forced.stdout
    assert forced.stdout.count("no frame has a body") == 2
    assert "Traceback" not in forced.stdout + forced.stderr
    assert not list((tmp_path / "npy").iterdir())


def test_missing_list_file_forms_and_dataset_filter(ntu_raw_dir, shared_data, tmp_path):
    txt = copy_samples(ntu_raw_dir / "missing_skeletons", tmp_path / "txt",
                       ("S001C002P006R001A008", "S001C003P005R002A004"))
    copy_samples(ntu_raw_dir, txt, SAMPLES[:1])
    # a setup-18 sample belongs to NTU-120 only
    shutil.copy(ntu_raw_dir / f"{SAMPLES[0]}.skeleton", txt / "S018C001P008R001A061.skeleton")
    for form in ("NTU_RGBD_samples_with_missing_skeletons.txt", "ntu_rgb120_missings.txt"):
        summary = convert_folder(txt, tmp_path / form, "ntu60", missing=shared_data / "meta" / form,
                                 workers=1, progress=False)
        assert summary.ok and len(summary.skipped_missing) == 2
        assert summary.converted == [SAMPLES[0]] and summary.not_in_dataset == ["S018C001P008R001A061"]
    summary = convert_folder(txt, tmp_path / "120", "ntu120", workers=1, progress=False)
    assert summary.converted == [SAMPLES[0], "S018C001P008R001A061"]


def test_cli_errors_are_one_line(tmp_path):
    absent = run_txt2npy("-d", "ntu60", "-txt", tmp_path / "absent", "-npy", tmp_path / "npy")
    assert absent.returncode != 0 and absent.stderr.strip().count("\n") == 0
    assert "absent: folder of .skeleton files does not exist" in absent.stderr
    empty_list = tmp_path / "list.txt"
    empty_list.write_text("nothing here\n")
    (tmp_path / "txt").mkdir()
    bad_list = run_txt2npy("-d", "ntu60", "-txt", tmp_path / "txt", "-npy", tmp_path / "npy", "-missing", empty_list)
    assert bad_list.returncode != 0 and "list.txt: no NTU sample names found" in bad_list.stderr
    assert "Traceback" not in absent.stderr + bad_list.stderr


def test_a_folder_without_skeleton_files_is_an_error_that_finds_the_unzipped_folder(ntu_raw_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    empty = run_txt2npy("-d", "ntu60", "-txt", tmp_path / "empty", "-npy", tmp_path / "npy")
    assert empty.returncode == 2 and empty.stderr == f"txt2npy.py: error: {tmp_path / 'empty'}: no .skeleton files\n"
    unzipped = copy_samples(ntu_raw_dir, tmp_path / "raw" / "nturgb+d_skeletons", SAMPLES[:1])   # as the zip unpacks
    parent = run_txt2npy("-d", "ntu60", "-txt", tmp_path / "raw", "-npy", tmp_path / "npy")
    assert parent.returncode == 2 and parent.stderr == (f"txt2npy.py: error: {tmp_path / 'raw'}: no .skeleton files "
                                                        f"(they are in {unzipped}: pass that folder instead)\n")
    assert not (tmp_path / "npy").exists()


def test_bad_name_fails_without_stopping_others(ntu_raw_dir, tmp_path):
    txt = copy_samples(ntu_raw_dir, tmp_path / "txt", SAMPLES[:1])
    shutil.copy(txt / f"{SAMPLES[0]}.skeleton", txt / "S001C009P001R001A001.skeleton")   # camera 9
    summary = convert_folder(txt, tmp_path / "npy", "ntu60", workers=1, progress=False)
    assert summary.converted == [SAMPLES[0]] and len(summary.failed) == 1
    assert "S001C009P001R001A001.skeleton: field out of range" in summary.report()


def test_check_complete_lists_absent_samples(ntu_raw_dir, tmp_path):
    txt, npy = copy_samples(ntu_raw_dir, tmp_path / "txt", SAMPLES[:2]), tmp_path / "npy"
    convert_folder(txt, npy, "ntu60", workers=1, progress=False)
    result = check_complete(npy, "ntu60")
    assert (result.expected, result.present) == (56_578, 2) and len(result.absent) == 56_576
    assert result.absent[0] == "S001C001P001R001A002" and not set(SAMPLES[:2]) & set(result.absent)
    cli = run_txt2npy("-d", "ntu120", "-npy", npy, "--check-complete", "--show", "3")
    assert cli.returncode == 1
    assert "2 of 113,945 expected samples present, 113,943 absent" in cli.stdout
    assert "... and 113,940 more" in cli.stdout


def test_stale_conversions_are_those_without_a_raw_file_or_older_than_it(ntu_raw_dir, tmp_path):
    txt, npy = copy_samples(ntu_raw_dir, tmp_path / "txt", SAMPLES[:3]), tmp_path / "npy"
    assert convert_folder(txt, npy, "ntu60", workers=1, progress=False).ok
    assert stale_conversions(txt, npy) == ([], [])
    (txt / f"{SAMPLES[0]}.skeleton").unlink()                          # removed from the raw folder
    changed = txt / f"{SAMPLES[1]}.skeleton"                            # replaced after its conversion
    later = (npy / f"{SAMPLES[1]}.skeleton.npy").stat().st_mtime_ns + 10**9
    os.utime(changed, ns=(later, later))
    assert stale_conversions(txt, npy) == ([npy / f"{SAMPLES[0]}.skeleton.npy"], [npy / f"{SAMPLES[1]}.skeleton.npy"])
