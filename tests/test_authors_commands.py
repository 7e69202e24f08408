"""The authors' README commands as people paste them, and the official zips as downloaded.

- ``python txt2npy.py`` with no arguments converts the README layout and says which dataset;
  without the layout it says what to pass. The authors' ``-dspath ./data/npy120skel/`` (their
  README's path for NTU-120, ours is data/ntu/npy120skel) names the folder or the command that makes it.
- ``txt2npy.py -txt nturgbd_skeletons_s001_to_s017.zip`` reads the .skeleton members straight from
  the zip (NTU-120: both zips; a zip and a folder mix), byte for byte as the unzipped folder,
  resumably, a damaged member one named failure among good files.
- A file of another format, or a zip where a folder is expected, is named with the flag that reads it.
"""
from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from conftest import load_script

from cli.skels2desc import main as skels2desc_main
from skeletons.convert import check_complete, convert_folder, list_zip, raw_files
from skeletons.datasets import official_missing

REPO = Path(__file__).resolve().parents[1]
MEMBER_FOLDER = "nturgb+d_skeletons/"     # where the official zips keep their .skeleton files
TXT2NPY = load_script("txt2npy")

# The authors' README (adjkamel/imdar), verbatim: what people paste.
AUTHORS_COMMANDS = [
    "python txt2npy.py",
    "python skels2desc_ntu.py -d ntu60 -p csub -dspath ./data/ntu/npy60skel/ -despth ./data/descriptors/ -a train",
    "python skels2desc_ntu.py -d ntu60 -p cview -dspath ./data/ntu/npy60skel/ -despth ./data/descriptors/ -a test",
    "python skels2desc_ntu.py -d ntu120 -p csub -dspath ./data/npy120skel/ -despth ./data/descriptors/ -a train",
    "python skels2desc_ntu.py -d ntu120 -p csetup -dspath ./data/npy120skel/ -despth ./data/descriptors/ -a test",
    "python skels2desc_ucla.py -d ucla  -dspath ./data/ucla/ -despth ./data/descriptors/ -a train",
    "python train.py -d ntu60 -p csub -desc GD -gpu 0",
    "python train.py -d ntu60 -p csub -desc all -gpu 0",
    "python train.py -d ucla -desc all -gpu 0",
    "python test.py -d ntu60 -p csub -desc all -gpu 0",
    "python test.py -d ucla -desc all -gpu 0",
]


def txt2npy(*argv: str | Path) -> int:
    return TXT2NPY.main(TXT2NPY.get_args_parser().parse_args(["--no-progress", *map(str, argv)]))


def demo_files(demo_raw: Path, count: int) -> list[Path]:
    return sorted((Path(demo_raw) / "ntu" / "txt60skel").glob("*.skeleton"))[:count]


def zip_of(path: Path, files: list[Path], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """A zip laid out as the official download: the .skeleton files under nturgb+d_skeletons/."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        for file in files:
            archive.write(file, MEMBER_FOLDER + file.name)
    return path


def npy_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


# ------------------------------------------------------------------------ the authors' commands

def test_every_authors_command_parses():
    from cli.skels2desc import build_parser
    parsers = {"txt2npy": TXT2NPY.get_args_parser(), "skels2desc_ntu": build_parser(("ntu60", "ntu120")),
               "skels2desc_ucla": build_parser(("ucla",)), "train": load_script("train").get_args_parser(),
               "test": load_script("test").get_args_parser()}
    for command in AUTHORS_COMMANDS:
        words = shlex.split(command)
        parsers[Path(words[1]).stem].parse_args(words[2:])   # SystemExit (a failure) if a flag is unknown


def test_txt2npy_without_arguments_converts_the_readme_layout_and_says_which(demo_raw, tmp_path):
    txt = tmp_path / "data" / "ntu" / "txt60skel"
    txt.mkdir(parents=True)
    for file in demo_files(demo_raw, 3):
        shutil.copy(file, txt)
    result = subprocess.run([sys.executable, str(REPO / "txt2npy.py")], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == ("no -d given: converting NTU RGB+D 60, data/ntu/txt60skel -> "
                                             "data/ntu/npy60skel (pass -d ntu120 for NTU RGB+D 120)")
    assert "converted: 3," in result.stdout
    assert len(list((tmp_path / "data" / "ntu" / "npy60skel").glob("*.skeleton.npy"))) == 3


def test_txt2npy_without_arguments_or_layout_says_what_to_pass(demo_raw, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert txt2npy() == 2
    assert one_line(capsys.readouterr().err) == (
        "txt2npy.py: error: no -d given and no README layout folder (data/ntu/txt60skel or data/ntu/txt120skel): "
        "pass -d and -txt, e.g. python txt2npy.py -d ntu60 -txt nturgbd_skeletons_s001_to_s017.zip (the download, "
        "or its unzipped folder; NTU-120: -d ntu120 and both zips)")
    (tmp_path / "data" / "ntu").mkdir(parents=True)
    for name in ("nturgbd_skeletons_s001_to_s017.zip", "nturgbd_skeletons_s018_to_s032.zip"):
        zip_of(tmp_path / "data" / "ntu" / name, demo_files(demo_raw, 1))
    assert txt2npy() == 2
    assert one_line(capsys.readouterr().err).endswith(
        "; the download is here: python txt2npy.py -d ntu120 -txt data/ntu/nturgbd_skeletons_s001_to_s017.zip "
        "data/ntu/nturgbd_skeletons_s018_to_s032.zip")
    assert not (tmp_path / "data" / "ntu" / "npy60skel").exists()


def test_txt2npy_without_d_takes_ntu120_for_its_sources(demo_raw, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    txt = tmp_path / "data" / "ntu" / "txt120skel"                # the README's NTU-120 folder alone
    txt.mkdir(parents=True)
    shutil.copy(demo_files(demo_raw, 1)[0], txt / "S018C001P008R001A061.skeleton")
    assert txt2npy() == 0
    out = capsys.readouterr().out
    assert out.startswith("no -d given: converting NTU RGB+D 120, data/ntu/txt120skel -> data/ntu/npy120skel "
                          "(pass -d ntu60 for NTU RGB+D 60)\nconverted: 1,")
    second = zip_of(tmp_path / "nturgbd_skeletons_s018_to_s032.zip", [txt / "S018C001P008R001A061.skeleton"])
    assert txt2npy("-txt", second, "-npy", "out") == 0
    assert "converting NTU RGB+D 120" in capsys.readouterr().out and (tmp_path / "out").is_dir()


@pytest.mark.parametrize("dataset", ["ntu60", "ntu120"])
def test_authors_dspath_names_the_layout_folder_or_the_command_that_makes_it(dataset, tmp_path, monkeypatch,
                                                                             capsys):
    monkeypatch.chdir(tmp_path)
    folder = "npy60skel" if dataset == "ntu60" else "npy120skel"
    argv = ["-d", dataset, "-p", "csub", "-dspath", f"./data/{folder}/", "-despth", "./data/descriptors/", "-a",
            "train", "--quiet"]
    assert skels2desc_main(argv, ("ntu60", "ntu120")) == 2
    assert one_line(capsys.readouterr().err) == (
        f"error: {tmp_path}/data/{folder}: sequence folder does not exist (python txt2npy.py -d {dataset} makes the "
        f"README layout's data/ntu/{folder}: run it, then pass -dspath data/ntu/{folder} or leave -dspath out)")
    (tmp_path / "data" / "ntu" / folder).mkdir(parents=True)
    assert skels2desc_main(argv, ("ntu60", "ntu120")) == 2
    assert one_line(capsys.readouterr().err) == (
        f"error: {tmp_path}/data/{folder}: sequence folder does not exist (the README layout's folder is "
        f"data/ntu/{folder}: pass -dspath data/ntu/{folder}, or leave -dspath out)")
    assert not (tmp_path / "data" / "descriptors").exists()


def test_authors_ntu60_extraction_line_runs_on_the_converted_layout(demo_raw, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    convert_folder(zip_of(tmp_path / "nturgbd_skeletons_s001_to_s017.zip", demo_files(demo_raw, 60)),
                   "data/ntu/npy60skel", "ntu60", workers=1, progress=False)
    words = shlex.split(AUTHORS_COMMANDS[1])[2:]
    assert skels2desc_main([*words, "--quiet", "--img-size", "16", "-workers", "1"], ("ntu60", "ntu120")) == 0
    assert len(list((tmp_path / "data/descriptors/ntu60_GD_train_csub").glob("*.png"))) > 0


# ------------------------------------------------------------------------ the official zips

def test_zip_converts_byte_for_byte_as_its_unzipped_folder_with_workers(demo_raw, tmp_path):
    files = demo_files(demo_raw, 12)
    archive = zip_of(tmp_path / "nturgbd_skeletons_s001_to_s017.zip", files)
    folder = convert_folder(files[0].parent, tmp_path / "from_folder", "ntu60", workers=1, progress=False)
    zipped = convert_folder(archive, tmp_path / "from_zip", "ntu60", workers=2, progress=False)
    assert zipped.ok and len(zipped.converted) == 12 and folder.converted[:12] == zipped.converted
    from_folder = npy_bytes(tmp_path / "from_folder")
    assert npy_bytes(tmp_path / "from_zip") == {name: from_folder[name] for name in npy_bytes(tmp_path / "from_zip")}


def test_real_samples_from_a_zip_match_the_folder_and_skip_the_missing_list(ntu_raw_dir, tmp_path):
    files = sorted(ntu_raw_dir.glob("*.skeleton")) + sorted((ntu_raw_dir / "missing_skeletons").glob("*.skeleton"))
    archive = zip_of(tmp_path / "nturgbd_skeletons_s001_to_s017.zip", files, zipfile.ZIP_STORED)
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(archive) as opened:
        opened.extractall(folder)
    from_folder = convert_folder(folder / MEMBER_FOLDER, tmp_path / "a", "ntu60", workers=1, progress=False)
    from_zip = convert_folder(archive, tmp_path / "b", "ntu60", workers=1, progress=False)
    assert from_zip.ok and from_zip.converted == from_folder.converted and len(from_zip.converted) == len(files) - 2
    assert from_zip.skipped_missing == from_folder.skipped_missing
    assert set(from_zip.skipped_missing) <= official_missing("ntu60") and len(from_zip.skipped_missing) == 2
    assert npy_bytes(tmp_path / "b") == npy_bytes(tmp_path / "a")


def test_zip_rerun_skips_what_is_done_and_converts_a_changed_member_again(demo_raw, tmp_path, capsys):
    files = demo_files(demo_raw, 3)
    archive = zip_of(tmp_path / "n.zip", files)
    npy = tmp_path / "npy"
    assert txt2npy("-d", "ntu60", "-txt", archive, "-npy", npy) == 0
    stamps = {p.name: p.stat().st_mtime_ns for p in npy.iterdir()}
    assert txt2npy("-d", "ntu60", "-txt", archive, "-npy", npy) == 0
    assert "converted: 0, skipped (missing list): 0, already done: 3," in capsys.readouterr().out
    assert stamps == {p.name: p.stat().st_mtime_ns for p in npy.iterdir()}
    # the download replaced: one member dated after its conversion (unzip would give it that mtime)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as rewritten:
        for k, file in enumerate(files):
            day = 86400 if k == 1 else -86400
            info = zipfile.ZipInfo(MEMBER_FOLDER + file.name, time.localtime(time.time() + day)[:6])
            rewritten.writestr(info, file.read_bytes(), zipfile.ZIP_DEFLATED)
    assert txt2npy("-d", "ntu60", "-txt", archive, "-npy", npy) == 0
    out = capsys.readouterr().out
    changed = files[1].name.removesuffix(".skeleton")
    assert "converted: 1, skipped (missing list): 0, already done: 2," in out
    assert f"(raw file newer than its .skeleton.npy; first: {changed})" in out


def damage(archive: Path, member: str) -> None:
    """Flip bytes in the middle of ``member``'s data (its compressed data, for a deflated member)."""
    with zipfile.ZipFile(archive) as opened:
        info = opened.getinfo(member)
    data = bytearray(archive.read_bytes())
    name_length, extra_length = int.from_bytes(data[info.header_offset + 26:info.header_offset + 28], "little"), \
        int.from_bytes(data[info.header_offset + 28:info.header_offset + 30], "little")
    middle = info.header_offset + 30 + name_length + extra_length + info.compress_size // 2
    data[middle:middle + 8] = bytes(b ^ 0x5A for b in data[middle:middle + 8])
    archive.write_bytes(bytes(data))


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED], ids=["stored", "deflated"])
def test_damaged_member_is_one_named_failure_among_good_files(demo_raw, tmp_path, capsys, compression):
    files = demo_files(demo_raw, 4)
    archive = zip_of(tmp_path / "nturgbd_skeletons_s001_to_s017.zip", files, compression)
    damage(archive, MEMBER_FOLDER + files[2].name)
    assert txt2npy("-d", "ntu60", "-txt", archive, "-npy", tmp_path / "npy", "-workers", "2") == 1
    out = capsys.readouterr().out
    assert "converted: 3," in out and "failed: 1" in out
    failure = next(line for line in out.splitlines() if line.startswith("FAILED "))
    assert failure.startswith(f"FAILED {archive}/{MEMBER_FOLDER}{files[2].name}: ")
    stored = compression == zipfile.ZIP_STORED
    assert ("damaged zip member (Bad CRC-32" if stored else "damaged zip member (") in failure
    assert failure.endswith("; download the zip again")
    assert sorted(p.name for p in (tmp_path / "npy").iterdir()) == sorted(
        f.name + ".npy" for k, f in enumerate(files) if k != 2)


def test_two_zips_and_a_zip_beside_a_folder(demo_raw, tmp_path, capsys):
    files = demo_files(demo_raw, 4)
    later = tmp_path / "later"            # an NTU-120 sample of the second zip (setup 18)
    later.mkdir()
    shutil.copy(files[3], later / "S018C001P008R001A061.skeleton")
    first = zip_of(tmp_path / "nturgbd_skeletons_s001_to_s017.zip", files[:3])
    second = zip_of(tmp_path / "nturgbd_skeletons_s018_to_s032.zip", [later / "S018C001P008R001A061.skeleton"])
    assert txt2npy("-d", "ntu120", "-txt", first, second, "-npy", tmp_path / "both") == 0
    assert "converted: 4," in capsys.readouterr().out
    assert txt2npy("-d", "ntu120", "-txt", first, "-txt", later, "-npy", tmp_path / "mixed") == 0   # zip + folder
    assert npy_bytes(tmp_path / "mixed") == npy_bytes(tmp_path / "both")
    assert txt2npy("-d", "ntu60", "-txt", f"{first},{second}", "-npy", tmp_path / "60") == 0
    assert "converted: 3, skipped (missing list): 0, already done: 0, not in dataset: 1," in capsys.readouterr().out
    unzipped = tmp_path / "unzipped"
    with zipfile.ZipFile(first) as opened:
        opened.extractall(unzipped)
    assert txt2npy("-d", "ntu60", "-txt", first, unzipped / MEMBER_FOLDER, "-npy", tmp_path / "twice") == 2
    assert one_line(capsys.readouterr().err) == (
        f"txt2npy.py: error: {first}/{MEMBER_FOLDER}{files[0].name} and {unzipped / MEMBER_FOLDER / files[0].name}: "
        f"the same sample (and 2 more samples found twice): give each folder or zip once, and not a zip beside its "
        f"unzipped folder")


def test_unreadable_zips_are_refused_in_one_line(demo_raw, tmp_path):
    archive = zip_of(tmp_path / "n.zip", demo_files(demo_raw, 2), zipfile.ZIP_STORED)
    cut = tmp_path / "cut.zip"                       # an interrupted download: no central directory
    cut.write_bytes(archive.read_bytes()[:archive.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"cut.zip: not a readable zip file \(.*\); an incomplete or damaged "
                                         r"download\? download it again$"):
        list_zip(str(cut))
    deflate64 = tmp_path / "deflate64.zip"           # as Windows compresses large files: zipfile cannot read it
    data = bytearray(archive.read_bytes())
    central = data.index(b"PK\x01\x02")
    data[central + 10:central + 12] = (9).to_bytes(2, "little")
    deflate64.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"is compressed with Deflate64, which Python's zipfile cannot read: unzip "
                                         r"it \(unzip or 7z x\) and pass the folder with -txt$"):
        raw_files(str(deflate64))
    empty = tmp_path / "empty.zip"
    zipfile.ZipFile(empty, "w").close()
    with pytest.raises(FileNotFoundError, match=r"empty.zip: no .skeleton files in the zip$"):
        raw_files(str(empty), require_files=True)


# ------------------------------------------------------------------------ a zip or file where it does not go

def test_a_zip_given_as_a_folder_says_what_to_do(demo_raw, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    download = zip_of(tmp_path / "nturgbd_skeletons_s001_to_s017.zip", demo_files(demo_raw, 1))
    assert txt2npy("-d", "ntu60", "-txt", download, "-npy", "npy60.zip") == 2
    assert one_line(capsys.readouterr().err) == (
        "txt2npy.py: error: npy60.zip: named as a zip, not a folder: -npy is the folder the .skeleton.npy files "
        "are written to (e.g. data/ntu/npy60skel); a downloaded zip is read with -txt")
    with pytest.raises(ValueError, match="-npy is the folder"):
        check_complete(download, "ntu60")
    argv = ["-d", "ntu60", "-p", "csub", "-dspath", str(download), "-a", "train", "--quiet"]
    assert skels2desc_main(argv, ("ntu60", "ntu120")) == 2
    assert one_line(capsys.readouterr().err) == (
        f"error: {download}: a zip of raw .skeleton files, not a folder of .skeleton.npy files: convert it with: "
        f"python txt2npy.py -d ntu60 -txt {download} -npy data/ntu/npy60skel, then pass -dspath data/ntu/npy60skel")
    assert txt2npy("-d", "ntu60", "-txt", download, "-npy", "data/ntu/npy60skel") == 0
    capsys.readouterr()
    shutil.make_archive("npy60skel", "zip", "data/ntu", "npy60skel")        # the converted folder, zipped
    assert skels2desc_main([*argv[:5], "npy60skel.zip", *argv[6:]], ("ntu60", "ntu120")) == 2
    assert one_line(capsys.readouterr().err) == (
        "error: npy60skel.zip: a zip file, not a folder of .skeleton.npy files: unzip it and pass the folder that "
        "holds them")


def test_field_files_given_to_the_other_format_are_named_by_content(tmp_path, monkeypatch):
    from demo.field_files import write_ctrgcn, write_pyskl
    from skeletons.formats import FILE_DATASETS

    monkeypatch.chdir(tmp_path)
    npz, pkl = write_ctrgcn(tmp_path / "NTU60_CS.npz"), write_pyskl(tmp_path / "ntu60_3danno.pkl")
    renamed_npz, renamed_pkl = tmp_path / "npz_named.pkl", tmp_path / "pkl_named.npz"   # the suffix says nothing
    shutil.copy(npz, renamed_npz)
    shutil.copy(pkl, renamed_pkl)
    for path in (npz, renamed_npz):
        with pytest.raises(ValueError) as error:
            FILE_DATASETS["pyskl"][1](path, None, None)
        assert str(error.value) == f"{path}: a CTR-GCN npz, not a PYSKL pickle: use -d ctrgcn --data {path}"
    for path in (pkl, renamed_pkl):
        with pytest.raises(ValueError) as error:
            FILE_DATASETS["ctrgcn"][1](path, None, None)
        assert str(error.value) == (f"{path}: a pickle (PYSKL's annotation format), not a CTR-GCN npz: use -d pyskl "
                                    f"--data {path}")
    assert not (tmp_path / "data").exists()          # nothing unpacked
    assert FILE_DATASETS["ctrgcn"][1](renamed_npz, None, None).name == "ctrgcn"   # read by content, any suffix
