"""Sample names, protocols, splits, missing lists and class names (skeletons/datasets.py)."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from skeletons.datasets import (Split, check_protocol, class_names, get_dataset, label_of, official_missing,
                                official_samples, official_split_size, parse_ntu_name, parse_ucla_name,
                                presence_note, read_name_list, scan_split_folder, split_from_folder, split_names)

# docs/METHOD.md §2: (train, test) sizes after removing the missing samples.
NTU_SPLIT_SIZES = {
    ("ntu60", "csub"): (40_091, 16_487),
    ("ntu60", "cview"): (37_646, 18_932),
    ("ntu120", "csub"): (63_026, 50_919),
    ("ntu120", "csetup"): (54_468, 59_477),
}


def available_names(shared_data: Path, dataset: str) -> list[str]:
    return (shared_data / "meta" / f"{dataset}_skes_available_name.txt").read_text().split()


@pytest.mark.parametrize("dataset, protocol", sorted(NTU_SPLIT_SIZES))
def test_ntu_split_sizes_equal_spec(shared_data, dataset, protocol):
    names = available_names(shared_data, dataset)
    train = split_names(names, Split.of(dataset, protocol, "train"))
    test = split_names(names, Split.of(dataset, protocol, "test"))
    assert (len(train), len(test)) == NTU_SPLIT_SIZES[dataset, protocol]
    assert train == sorted(train) and not set(train) & set(test)


def test_ntu60_run_drops_ntu120_only_samples(shared_data):
    names = available_names(shared_data, "ntu120")
    both = split_names(names, Split.of("ntu60", "csub", "train")) + split_names(names, Split.of("ntu60", "csub", "test"))
    assert sorted(both) == sorted(available_names(shared_data, "ntu60"))


def test_ucla_split_sizes(shared_data):
    with open(shared_data / "ucla" / "all_sqe_index.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    names = [row["file_name"] for row in rows]
    assert len(split_names(names, Split.of("ucla", None, "train"))) == 1_020
    assert len(split_names(names, Split.of("ucla", "cview", "test"))) == 464
    assert all(label_of(row["file_name"], "ucla") == int(row["label"]) for row in rows)


def test_split_from_folder_keeps_only_sequence_files(tmp_path):
    for name in ("S001C002P001R001A001.skeleton.npy", "S001C001P003R002A060.skeleton.npy",
                 "S001C003P002R001A002.skeleton.npy", "S018C001P008R001A061.skeleton.npy", "notes.txt",
                 ".S001C002P001R001A002.skeleton.npy.x.tmp.npy"):
        (tmp_path / name).touch()
    train = split_from_folder(tmp_path, Split.of("ntu60", "cview", "train"))
    assert [p.name for p in train] == ["S001C002P001R001A001.skeleton.npy", "S001C003P002R001A002.skeleton.npy"]
    assert [p.name for p in split_from_folder(tmp_path, Split.of("ntu60", "cview", "test"))] == \
        ["S001C001P003R002A060.skeleton.npy"]
    with pytest.raises(FileNotFoundError, match="absent"):
        split_from_folder(tmp_path / "absent", Split.of("ntu60", "csub", "train"))


def test_name_parsing_fields_and_errors():
    s = parse_ntu_name("data/x/S017C003P020R002A054.skeleton.npy")
    assert (s.setup, s.camera, s.performer, s.replication, s.action, s.label) == (17, 3, 20, 2, 54, 54)
    u = parse_ucla_name("a12_s10_e03_v02.json")
    assert (u.action, u.subject, u.episode, u.view, u.label) == (12, 10, 3, 2, 10)
    for bad in ("S001C004P001R001A001", "S001C001P001R003A001", "S033C001P001R001A001",
                "S001C001P001R001A121", "S001C001P001R001A01", "s001c001p001r001a001"):
        with pytest.raises(ValueError, match=bad):
            parse_ntu_name(bad)
    for bad in ("a07_s01_e00_v01", "a01_s01_e00_v04", "a01_s11_e00_v01", "a1_s01_e00_v01"):
        with pytest.raises(ValueError, match=bad):
            parse_ucla_name(bad)


def test_protocol_and_dataset_errors():
    assert check_protocol("ucla", None) == "cview"
    with pytest.raises(ValueError, match="csetup.*ntu60"):
        check_protocol("ntu60", "csetup")
    with pytest.raises(ValueError, match="unknown dataset 'ntu90'"):
        get_dataset("ntu90")
    with pytest.raises(ValueError, match="part"):
        split_names([], Split.of("ntu60", "csub", "val"))


def test_both_missing_list_forms_parse(shared_data):
    meta = shared_data / "meta"
    official60 = read_name_list(meta / "NTU_RGBD_samples_with_missing_skeletons.txt")   # 3-line header
    official120 = read_name_list(meta / "NTU_RGBD120_samples_with_missing_skeletons.txt")
    python_form = read_name_list(meta / "ntu_rgb120_missings.txt")                       # no final newline
    assert not (meta / "ntu_rgb120_missings.txt").read_bytes().endswith(b"\n")
    assert len(official60) == 302 and len(official120) == 535
    assert python_form[-1] == "S032C003P067R002A077" and set(python_form) == set(official120)
    assert official_missing("ntu60") == frozenset(official60)
    assert official_missing("ntu120") == frozenset(official120)


def test_official_sample_roster(shared_data):
    for dataset, total in (("ntu60", 56_880), ("ntu120", 114_480)):
        everything = official_samples(dataset)
        assert len(everything) == total
        available = set(available_names(shared_data, dataset))
        assert everything - official_missing(dataset) == available


def test_class_names(shared_data, ucla_dir):
    meta = shared_data / "meta"
    ntu120 = [line.rstrip(".") for line in (meta / "label_map_ntu120.txt").read_text().splitlines() if line]
    assert list(class_names("ntu120")) == ntu120
    assert list(class_names("ntu60")) == (meta / "label_map_ntu60.txt").read_text().splitlines()
    with open(shared_data / "ucla" / "labels.csv", newline="") as f:
        assert list(class_names("ucla")) == [row["name"] for row in csv.DictReader(f)]
    assert class_names("ntu60")[label_of("S001C001P001R001A058", "ntu60") - 1] == "handshaking"


def touch_all(folder: Path, names) -> None:
    for name in names:
        (folder / name).touch()


def test_scan_skips_and_names_bad_and_duplicate_files(tmp_path):
    touch_all(tmp_path, (
        "S001C002P001R001A001.skeleton.npy",          # cview train
        "S001C003P002R001A002.skeleton.npy",          # cview train
        "S001C001P003R002A060.skeleton.npy",          # cview test
        "S001C002P001R001A001 (copy).skeleton.npy",   # bad name
        "S033C002P001R001A001.skeleton.npy",          # setup out of range
        "S002C002P005R001A007.skeleton.npy",          # train id, twice
        "S002C002P005R001A007.bak.skeleton.npy",
        "S002C001P005R001A007.skeleton.npy",          # test id, twice
        "S002C001P005R001A007.old.skeleton.npy",
        "S018C002P008R001A061.skeleton.npy",          # NTU-120 only: outside an NTU-60 split
        ".S001C002P009R001A003.skeleton.npy.1f2e.tmp.skeleton.npy",   # a writer's temp
    ))
    train = scan_split_folder(tmp_path, Split.of("ntu60", "cview", "train"))
    assert train.paths == [tmp_path / "S001C002P001R001A001.skeleton.npy",
                           tmp_path / "S001C003P002R001A002.skeleton.npy"]
    bad_names = [(tmp_path / "S001C002P001R001A001 (copy).skeleton.npy",
                  "not a valid ntu60 sample name: not an NTU RGB+D sample name (expected SsssCcccPpppRrrrAaaa)"),
                 (tmp_path / "S033C002P001R001A001.skeleton.npy",
                  "not a valid ntu60 sample name: field out of range in NTU RGB+D sample name "
                  "(NtuSample(setup=33, camera=2, performer=1, replication=1, action=1))")]
    assert train.problems == [
        bad_names[0],
        (tmp_path / "S002C002P005R001A007.bak.skeleton.npy",
         "same sample id as S002C002P005R001A007.skeleton.npy; neither is used"),
        (tmp_path / "S002C002P005R001A007.skeleton.npy",
         "same sample id as S002C002P005R001A007.bak.skeleton.npy; neither is used"),
        bad_names[1],
    ]
    # Bad names belong to no part, so the test scan names them too; duplicates only where their id is.
    test = scan_split_folder(tmp_path, Split.of("ntu60", "cview", "test"))
    assert test.paths == [tmp_path / "S001C001P003R002A060.skeleton.npy"]
    assert [(p.name, reason.split(";")[0]) for p, reason in test.problems] == [
        (bad_names[0][0].name, bad_names[0][1]),
        ("S002C001P005R001A007.old.skeleton.npy", "same sample id as S002C001P005R001A007.skeleton.npy"),
        ("S002C001P005R001A007.skeleton.npy", "same sample id as S002C001P005R001A007.old.skeleton.npy"),
        (bad_names[1][0].name, bad_names[1][1]),
    ]
    # NTU-120 scans the same folder: S018 is in its split now, the rest as above.
    ntu120 = scan_split_folder(tmp_path, Split.of("ntu120", "csetup", "train"))
    assert [p.name for p in ntu120.paths] == ["S018C002P008R001A061.skeleton.npy"]
    assert {p.name for p, _ in ntu120.problems} >= {bad_names[0][0].name, bad_names[1][0].name}


def test_scan_names_out_of_range_ucla_fields(tmp_path):
    touch_all(tmp_path, ("a01_s01_e00_v01.json", "a12_s10_e03_v03.json", "a13_s01_e00_v01.json",
                         "a01_s15_e00_v01.json", "a01_s01_e00_v01.json.txt", "a02_s01_e00_v02.json"))
    train = scan_split_folder(tmp_path, Split.of("ucla", None, "train"))
    assert [p.name for p in train.paths] == ["a01_s01_e00_v01.json", "a02_s01_e00_v02.json"]
    assert [p.name for p, _ in train.problems] == ["a01_s15_e00_v01.json", "a13_s01_e00_v01.json"]
    assert all(r.startswith("not a valid ucla sample name: field out of range") for _, r in train.problems)
    assert "subject=15" in train.problems[0][1] and "action=13" in train.problems[1][1]
    test = scan_split_folder(tmp_path, Split.of("ucla", "cview", "test"))
    assert [p.name for p in test.paths] == ["a12_s10_e03_v03.json"] and test.problems == train.problems


def test_three_copies_of_one_id_are_all_named(tmp_path):
    touch_all(tmp_path, ("a01_s01_e00_v01.json", "a01_s01_e00_v01.b.json", "a01_s01_e00_v01.c.json"))
    scan = scan_split_folder(tmp_path, Split.of("ucla", None, "train"))
    assert scan.paths == [] and len(scan.problems) == 3
    assert scan.problems[0][1] == "same sample id as a01_s01_e00_v01.c.json, a01_s01_e00_v01.json; none is used"


def test_split_from_folder_stays_strict(tmp_path):
    touch_all(tmp_path, ("S001C002P001R001A001.skeleton.npy", "S001C002P001R001A001.bak.skeleton.npy",
                         "S001C001P001R001A001.skeleton.npy"))
    # The duplicates are train (camera 2) ids under cross-view, so only that part fails.
    assert split_from_folder(tmp_path, Split.of("ntu60", "cview", "test")) == [tmp_path / "S001C001P001R001A001.skeleton.npy"]
    with pytest.raises(ValueError) as info:
        split_from_folder(tmp_path, Split.of("ntu60", "cview", "train"))
    assert str(info.value) == (f"{tmp_path}: S001C002P001R001A001.bak.skeleton.npy: same sample id as "
                               "S001C002P001R001A001.skeleton.npy; neither is used (and 1 more); "
                               "rename or remove the file")
    (tmp_path / "S001C002P001R001A001.bak.skeleton.npy").rename(tmp_path / "bad name.skeleton.npy")
    with pytest.raises(ValueError, match="bad name.skeleton.npy: not a valid ntu60 sample name"):
        split_from_folder(tmp_path, Split.of("ntu60", "cview", "test"))
    with pytest.raises(FileNotFoundError, match="absent: sequence folder does not exist"):
        scan_split_folder(tmp_path / "absent", Split.of("ntu60", "csub", "train"))


def test_entries_that_are_not_files_are_named_in_their_split_and_never_opened(tmp_path):
    """A FIFO (reading it would block forever), a looping link and a folder among sequence files."""
    good = ["S001C002P001R001A001.skeleton.npy", "S001C001P001R001A001.skeleton.npy"]
    for name in good:
        (tmp_path / name).write_bytes(b"")
    os.mkfifo(tmp_path / "S001C002P001R001A002.skeleton.npy")                       # cview train
    (tmp_path / "S001C002P001R001A003.skeleton.npy").symlink_to("S001C002P001R001A003.skeleton.npy")
    (tmp_path / "S001C001P001R001A004.skeleton.npy").mkdir()                         # cview test
    train = scan_split_folder(tmp_path, Split.of("ntu60", "cview", "train"))
    assert [p.name for p in train.paths] == [good[0]]
    assert [(p.name, reason) for p, reason in train.problems] == [
        ("S001C002P001R001A002.skeleton.npy", "a FIFO, not a regular file; not read"),
        ("S001C002P001R001A003.skeleton.npy", "unreadable link or entry (Too many levels of symbolic links)")]
    test = scan_split_folder(tmp_path, Split.of("ntu60", "cview", "test"))
    assert [p.name for p in test.paths] == [good[1]]
    assert [(p.name, reason) for p, reason in test.problems] == [
        ("S001C001P001R001A004.skeleton.npy", "a folder, not a regular file; not read")]


def test_official_split_sizes_are_the_published_ones_and_partial_splits_are_named():
    """Computed from the shipped sample and missing lists alone (no ../shared needed)."""
    sizes = {(d, p): (official_split_size(Split.of(d, p, "train")), official_split_size(Split.of(d, p, "test")))
             for d, p in NTU_SPLIT_SIZES}
    assert sizes == NTU_SPLIT_SIZES
    train, test = Split.of("ntu60", "csub", "train"), Split.of("ntu60", "csub", "test")
    assert presence_note({train: 40091, test: 16487}) is None
    assert presence_note({train: 28, test: 16487}) == ("notice: fewer samples than the official split (ntu60 csub "
                                                       "train: 28 of 40,091 (0.1%)); the figures are not comparable "
                                                       "with published ones")
    # NTU-60's folder given for NTU-120: its 40,091 training samples are 64% of NTU-120's
    assert "ntu120 csub train: 40,091 of 63,026 (63.6%)" in presence_note({Split.of("ntu120", "csub", "train"): 40091})
    assert official_split_size(Split.of("ucla", None, "train")) == 1020   # docs/METHOD.md: views 1 and 2
    assert official_split_size(Split.of("ucla", None, "test")) == 464     # view 3
