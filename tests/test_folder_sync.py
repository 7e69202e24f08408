"""Descriptor folders that know what they hold: reruns equal fresh runs, manifests and records
beside the folders, refusals of folders out of line with their manifests, locks, bad names and
degenerate input, on the real NW-UCLA samples."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from descriptors import provenance
from descriptors.dataset import DescriptorImages
from descriptors.extract import extract_split
from descriptors.names import DESCRIPTORS, descriptor_dir, split_lock_path
from skeletons.datasets import Split

SIZE = 16


def extract(seq: Path, out: Path, part: str = "train", **kw):
    return extract_split("ucla", None, part, seq, out, workers=1, img_size=SIZE, progress=False, **kw)


def folder_bytes(out: Path, part: str = "train") -> dict[str, dict[str, bytes]]:
    """Every file inside the five folders, by folder and name."""
    return {desc: {p.name: p.read_bytes() for p in descriptor_dir(out, Split.of("ucla", None, part), desc).iterdir()}
            for desc in DESCRIPTORS}


def manifests(out: Path, part: str = "train") -> dict[str, str]:
    return {desc: provenance.manifest_path(descriptor_dir(out, Split.of("ucla", None, part), desc)).read_text()
            for desc in DESCRIPTORS}


@pytest.fixture()
def seq(tmp_path, ucla_dir) -> Path:
    folder = tmp_path / "ucla"
    shutil.copytree(ucla_dir, folder)
    return folder


def test_rerun_after_adding_removing_or_changing_a_sample_equals_a_fresh_run(seq, tmp_path):
    out, held = tmp_path / "desc", tmp_path / "held"
    held.mkdir()
    shutil.move(seq / "a01_s01_e00_v01.json", held)           # the first train sample: every index shifts
    first = extract(seq, out)
    assert first.ok and first.written == 41
    shutil.move(held / "a01_s01_e00_v01.json", seq)
    added = extract(seq, out)
    assert (added.written, added.skipped, added.renamed, added.removed) == (1, 41, 41, 0)
    fresh = extract(seq, tmp_path / "fresh")
    assert folder_bytes(out) == folder_bytes(tmp_path / "fresh")
    assert manifests(out) == manifests(tmp_path / "fresh")
    assert len(DescriptorImages(out, "ucla", None, "train", "all")) == 42 == fresh.written

    shutil.move(seq / "a05_s10_e00_v02.json", held)           # a sample goes away
    removed = extract(seq, out)
    assert (removed.written, removed.removed) == (0, 1)
    shutil.rmtree(tmp_path / "fresh")
    extract(seq, tmp_path / "fresh")
    assert folder_bytes(out) == folder_bytes(tmp_path / "fresh")

    # A sample file replaced by other content under the same name is remade, nothing else.
    other = json.loads((held / "a05_s10_e00_v02.json").read_text())
    target = seq / "a01_s01_e00_v02.json"
    mine = json.loads(target.read_text())
    mine["skeletons"] = other["skeletons"]
    target.write_text(json.dumps(mine))
    changed = extract(seq, out)
    assert (changed.written, changed.skipped) == (1, 40)
    shutil.rmtree(tmp_path / "fresh")
    extract(seq, tmp_path / "fresh")
    assert folder_bytes(out) == folder_bytes(tmp_path / "fresh")


def test_the_summary_counts_samples_gone_not_image_names(seq, tmp_path):
    """Removing the first sample renumbers the rest: names are freed and reused in ways that have
    nothing to do with how many samples went."""
    out, held = tmp_path / "desc", tmp_path / "held"
    held.mkdir()
    first = extract(seq, out)
    names = sorted(os.listdir(descriptor_dir(out, Split.of("ucla", None, "train"), "GD")), key=lambda n: int(n.split("_")[0]))
    assert first.written == 42 and names[0].endswith("_1.png") and names[-1] != "41_1.png"
    shutil.move(seq / "a01_s01_e00_v01.json", held)
    removed = extract(seq, out)
    assert (removed.written, removed.removed, removed.renamed) == (0, 1, 41)
    shutil.move(seq / "a05_s10_e00_v02.json", held)
    shutil.move(seq / "a12_s10_e00_v02.json", held)
    assert extract(seq, out).removed == 2


def test_folders_hold_only_images_for_the_release_loader(seq, tmp_path):
    out = tmp_path / "desc"
    extract(seq, out)
    for desc in DESCRIPTORS:
        folder = descriptor_dir(out, Split.of("ucla", None, "train"), desc)
        # The release's loader: every entry of the folder, label parsed from its name.
        labels = [int(name.split("_")[1].split(".")[0]) for name in sorted(os.listdir(folder))]
        assert len(labels) == 42 and set(labels) <= set(range(1, 11))
        record = provenance.read_record(folder)
        assert {k: record[k] for k in ("dataset", "protocol", "part", "descriptor", "mode", "img_size")} == \
            {"dataset": "ucla", "protocol": "cview", "part": "train", "descriptor": desc, "mode": "paper",
             "img_size": SIZE}
        assert record["complete"] and record["samples"] == 42
        assert record["fingerprint"] == provenance.fingerprint(provenance.read_manifest(folder))


def test_folders_of_older_versions_are_read_and_moved_out(seq, tmp_path):
    out = tmp_path / "desc"
    extract(seq, out)
    for desc in DESCRIPTORS:       # the layout older versions wrote: manifest and settings inside
        folder = descriptor_dir(out, Split.of("ucla", None, "train"), desc)
        provenance.manifest_path(folder).rename(folder / provenance.LEGACY_MANIFEST)
        provenance.record_path(folder).unlink()
        (folder / provenance.LEGACY_SETTINGS).write_text(json.dumps({"mode": "paper", "img_size": SIZE}))
    data = DescriptorImages(out, "ucla", None, "train", "GD")
    assert len(data) == 42 and data.samples[0].sample == "a01_s01_e00_v01" and data.provenance["GD"] is None
    with pytest.raises(ValueError, match="mode: paper \\(this run: clean\\).*--overwrite"):
        extract(seq, out, mode="clean")
    before = folder_bytes(out)
    rerun = extract(seq, out)
    assert (rerun.written, rerun.skipped) == (0, 42)
    after = folder_bytes(out)
    for desc in DESCRIPTORS:
        assert set(before[desc]) - set(after[desc]) == {provenance.LEGACY_MANIFEST, provenance.LEGACY_SETTINGS}
        assert all(after[desc][name] == before[desc][name] for name in after[desc])
        assert provenance.read_record(descriptor_dir(out, Split.of("ucla", None, "train"), desc))["complete"]


@pytest.fixture()
def made(seq, tmp_path) -> Path:
    out = tmp_path / "desc"
    assert extract(seq, out).ok
    return out


def refused(out: Path, pattern: str, descs="all") -> None:
    with pytest.raises(ValueError, match=pattern) as error:
        DescriptorImages(out, "ucla", None, "train", descs)
    assert "\n" not in str(error.value)


def test_extra_image_is_refused(made):
    gd = descriptor_dir(made, Split.of("ucla", None, "train"), "GD")
    for desc in DESCRIPTORS:
        shutil.copy(gd.parent / f"ucla_{desc}_train" / "0_1.png", gd.parent / f"ucla_{desc}_train" / "42_1.png")
    refused(made, "ucla_GD_train: 1 image.s. not in its manifest .first 42_1.png")


def test_missing_image_is_refused(made):
    for desc in DESCRIPTORS:
        (descriptor_dir(made, Split.of("ucla", None, "train"), desc) / "3_1.png").unlink()
    refused(made, "ucla_GD_train: 1 image.s. of its manifest missing .first 3_1.png")


def test_duplicate_index_in_manifest_is_refused(made):
    for desc in DESCRIPTORS:
        folder = descriptor_dir(made, Split.of("ucla", None, "train"), desc)
        rows = provenance.read_manifest(folder)
        provenance.write_manifest(folder, rows + [dict(rows[0], sample="a99")])
    refused(made, "manifest lists index 0 twice")


def test_manifest_disagreeing_with_record_is_refused(made):
    folder = descriptor_dir(made, Split.of("ucla", None, "train"), "GD")
    rows = provenance.read_manifest(folder)
    rows[5]["sample"] = "a12_s01_e00_v01"
    provenance.write_manifest(folder, rows)
    refused(made, "ucla_GD_train: its manifest and its record disagree", "GD")


def test_interrupted_folder_is_refused_until_finished(made, seq):
    folder = descriptor_dir(made, Split.of("ucla", None, "train"), "JDD")
    record = provenance.read_record(folder)
    provenance.write_record(folder, dict(record, complete=False))
    refused(made, "ucla_JDD_train: incomplete .* finish it with: python skels2desc_ucla.py")
    assert extract(seq, made).written == 0
    assert len(DescriptorImages(made, "ucla", None, "train", "all")) == 42


def test_folder_copied_under_another_name_is_refused(made):
    jdd, gd = (descriptor_dir(made, Split.of("ucla", None, "train"), d) for d in ("JDD", "GD"))
    shutil.rmtree(gd)
    shutil.copytree(jdd, gd)
    shutil.copy(provenance.manifest_path(jdd), provenance.manifest_path(gd))
    shutil.copy(provenance.record_path(jdd), provenance.record_path(gd))
    refused(made, "ucla_GD_train: its record says it holds other data .descriptor: GD -> JDD", "GD")


def test_folders_of_different_modes_are_not_read_together(made, seq):
    extract(seq, made.parent / "clean", mode="clean")
    for desc in ("GD", "FDD"):   # two of the five folders swapped for clean-mode ones
        folder = descriptor_dir(made, Split.of("ucla", None, "train"), desc)
        shutil.rmtree(folder)
        source = descriptor_dir(made.parent / "clean", Split.of("ucla", None, "train"), desc)
        shutil.copytree(source, folder)
        for path in (provenance.manifest_path, provenance.record_path):
            shutil.copy(path(source), path(folder))
    with pytest.raises(ValueError, match="mode clean in ucla_GD_train, paper in ucla_JDD_train"):
        DescriptorImages(made, "ucla", None, "train", "all")


def test_bad_names_and_duplicate_ids_are_named_and_skipped(seq, tmp_path):
    shutil.copy(seq / "a01_s01_e00_v01.json", seq / "a01_s01_e00_v01 (copy).json")   # not a sample name
    shutil.copy(seq / "a01_s01_e00_v01.json", seq / "a01_s01_e00_v01.bak.json")      # same sample id
    shutil.copy(seq / "a01_s01_e00_v02.json", seq / "a13_s01_e00_v02.json")          # no action 13
    shutil.copy(seq / "a01_s01_e00_v02.json", seq / "a01_s15_e00_v02.json")          # no subject 15
    result = subprocess.run([sys.executable, str(REPO / "skels2desc_ucla.py"), "-d", "ucla", "-dspath", str(seq),
                             "-despth", str(tmp_path / "desc"), "-a", "train", "--img-size", str(SIZE), "--quiet"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert "46 samples, 41 written" in out and "5 failed" in out, out
    for name in ("a01_s01_e00_v01 (copy).json", "a01_s01_e00_v01.json", "a01_s01_e00_v01.bak.json",
                 "a13_s01_e00_v02.json", "a01_s15_e00_v02.json"):
        assert re.search(rf"failed .*{re.escape(name)}: ", out), name
    rows = provenance.read_manifest(descriptor_dir(tmp_path / "desc", Split.of("ucla", None, "train"), "GD"))
    assert "a01_s01_e00_v01" not in {r["sample"] for r in rows} and len(rows) == 41


def test_second_run_on_a_split_is_refused_while_the_first_holds_it(seq, tmp_path):
    out = tmp_path / "desc"
    lock = split_lock_path(out, Split.of("ucla", None, "train"))
    # The holder keeps the split locked until a line arrives on its stdin.
    holder = subprocess.Popen([sys.executable, "-c", f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from common.locks import folder_lock
with folder_lock({str(lock)!r}):
    print("locked", flush=True)
    sys.stdin.readline()
"""], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        command = [sys.executable, str(REPO / "skels2desc_ucla.py"), "-d", "ucla", "-dspath", str(seq),
                   "-despth", str(out), "-a", "train", "--img-size", str(SIZE), "--quiet"]
        second = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and f"held by process {holder.pid}" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        waiting = subprocess.Popen(command + ["--wait"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        assert waiting.stderr.readline().startswith("waiting: ")   # it waits while the holder holds
        assert waiting.poll() is None and not (out / "ucla_GD_train").exists()
        holder.stdin.write("release\n")
        holder.stdin.flush()
        stdout, _ = waiting.communicate(timeout=120)
        assert waiting.returncode == 0 and "42 written" in stdout
    finally:
        holder.kill()
        holder.wait()


def test_overflowing_and_degenerate_input_are_named(seq, tmp_path):
    path = seq / "a01_s01_e00_v02.json"
    record = json.loads(path.read_text())
    record["skeletons"][2][4][1] = 1e308
    path.write_text(json.dumps(record))
    summary = extract(seq, tmp_path / "desc")
    assert [name for name, _ in summary.failed] == ["a01_s01_e00_v02"]
    assert "a01_s01_e00_v02.json: coordinate 1e+308 is beyond" in summary.failed[0][1]
    assert [name for name, _ in summary.degenerate] == ["a02_s09_e04_v02"]   # 1 frame, kept in paper mode
    assert any("1 degenerate sample(s)" in line for line in summary.lines())
    clean = extract(seq, tmp_path / "clean", mode="clean")
    assert "a02_s09_e04_v02" in {name for name, _ in clean.excluded}   # clean mode leaves it out


def test_clean_mode_excludes_degenerate_samples_in_every_path_alike(seq, tmp_path):
    from descriptors.figures import file_figure
    from descriptors.skeleton_source import SkeletonSequences

    out = tmp_path / "clean"
    clean = extract(seq, out, mode="clean")
    assert clean.ok and [name for name, _ in clean.excluded] == ["a02_s09_e04_v02"]
    assert clean.excluded[0][1].startswith("1 frame") and any("1 degenerate sample(s) excluded" in line
                                                                for line in clean.lines())
    folder = descriptor_dir(out, Split.of("ucla", None, "train"), "GD")
    record = provenance.read_record(folder)
    assert list(record["excluded"]) == ["a02_s09_e04_v02"]
    assert "a02_s09_e04_v02" not in {row["sample"] for row in provenance.read_manifest(folder)}
    again = extract(seq, out, mode="clean")   # a rerun: nothing to make, the same sample left out
    assert (again.written, again.excluded) == (0, clean.excluded) and again.ok
    for pack in (False, True):   # from skeletons: the same samples out, the same fingerprint as the folders
        data = SkeletonSequences(seq, "ucla", None, "train", "clean", pack=pack)
        assert data.excluded == dict(clean.excluded) and "a02_s09_e04_v02" not in data.samples
        assert data.record(SIZE, "GD")["fingerprint"] == record["fingerprint"]
        assert np.array_equal(data[len(data) - 1].sequence, SkeletonSequences(seq, "ucla", None, "train", "clean")[
            len(data) - 1].sequence)
    assert SkeletonSequences(seq, "ucla", None, "train", "paper").excluded == {}   # paper mode keeps it
    with pytest.raises(ValueError, match="a02_s09_e04_v02.json: 1 frame.*clean mode excludes such sequences"):
        file_figure(seq / "a02_s09_e04_v02.json", tmp_path / "figure.png", "clean", SIZE)


def test_clean_images_give_a_clean_checkpoint_and_clean_predictions(seq, tmp_path, capsys):
    """train.py records the mode of the folders it read (no --mode given); predict.py then makes
    clean-mode images for that model."""
    import train
    from models.checkpoint import load_checkpoint
    from models.inference import predict_file

    out, ckpt = tmp_path / "desc", tmp_path / "ckpt"
    for part in ("train", "test"):
        extract(seq, out, part, mode="clean")
    assert train.main(train.get_args_parser().parse_args(
        ["-d", "ucla", "-desc", "GD", "-gpu", "-1", "-despth", str(out), "-ckpt", str(ckpt), "--epochs", "1",
         "--width", "0.0625", "--workers", "0", "--no-progress"])) == 0
    settings = load_checkpoint(ckpt / "ucla_GD_epoch_best.tar").settings
    assert (settings["mode"], settings["img_size"]) == ("clean", SIZE)
    assert settings["data"]["train"]["GD"]["fingerprint"] == \
        provenance.read_record(descriptor_dir(out, Split.of("ucla", None, "train"), "GD"))["fingerprint"]
    result = predict_file(seq / "a01_s01_e00_v03.json", ckpt, "ucla", desc="GD")
    assert result.mode == "clean" and result.images["GD"].shape[:2] == (SIZE, SIZE)
    with pytest.raises(ValueError, match="1 frame.*clean mode excludes such sequences"):
        predict_file(seq / "a02_s09_e04_v03.json", ckpt, "ucla", desc="GD")   # a 1-frame test sample
    import test as test_script
    capsys.readouterr()
    assert test_script.main(test_script.get_args_parser().parse_args(
        ["-d", "ucla", "-desc", "GD", "-gpu", "-1", "-despth", str(out), "-ckpt", str(ckpt), "--workers", "0"])) == 0
    err = capsys.readouterr().err
    assert "note: 1 test sample(s) excluded in clean mode" in err
    doc = json.loads(next(ckpt.glob("*_results.json")).read_text())
    assert list(doc["excluded"]) == ["a02_s09_e04_v03"] and "a02_s09_e04_v03" not in doc["samples"]["sample"]


def test_a_folder_whose_record_names_another_descriptor_is_not_written_into(made, seq):
    jdd, gd = (descriptor_dir(made, Split.of("ucla", None, "train"), d) for d in ("JDD", "GD"))
    shutil.copy(provenance.record_path(jdd), provenance.record_path(gd))
    with pytest.raises(ValueError, match="ucla_GD_train: made with descriptor: JDD .this run: GD.*--overwrite"):
        extract(seq, made)
    assert extract(seq, made, overwrite=True).written == 42
    assert provenance.read_record(gd)["descriptor"] == "GD"


def test_the_torch_engine_writes_the_same_folders(seq, tmp_path):
    """skels2desc --engine torch: the same files, bytes and manifests as the numpy engine."""
    result = subprocess.run([sys.executable, str(REPO / "skels2desc_ucla.py"), "-dspath", str(seq), "-despth",
                             str(tmp_path / "torch"), "-a", "train", "--img-size", str(SIZE), "--engine", "torch",
                             "--device", "cpu", "--no-progress"], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "42 written" in result.stdout and "a02_s09_e04_v02: 1 frame" in result.stdout
    extract(seq, tmp_path / "numpy")
    assert folder_bytes(tmp_path / "torch") == folder_bytes(tmp_path / "numpy")
    assert manifests(tmp_path / "torch") == manifests(tmp_path / "numpy")
