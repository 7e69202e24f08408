"""pipeline.py --demo end to end at test size, its resume, predict.py on the trained models, and
Fuse5's per-descriptor BatchNorm statistics."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import SMALL_DEMO, copy_small_demo, load_script
from torch import nn

from models.networks import ChunkedBatchNorm2d, build_model
from skeletons.datasets import class_names, label_of

REPO = Path(__file__).resolve().parents[1]
# Test size: the small demo data and fewer epochs than the demo's 15.
PIPELINE = [sys.executable, str(REPO / "pipeline.py"), "--demo", "--demo-size", "small", "--epochs", "15", "--batch-size", "4",
            "--workers", "1"]


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    work = tmp_path_factory.mktemp("pipeline")
    return work, run(PIPELINE, work)


def results(work: Path) -> dict:
    (path,) = (work / "data/demo/checkpoints").glob("*_results.json")
    return json.loads(path.read_text())


def test_demo_pipeline_runs_end_to_end_and_beats_chance(demo_run):
    work, proc = demo_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = results(work)
    rows = {r["key"]: r for r in doc["rows"]}
    assert {"GD", "JDD", "ADD", "LAD", "FDD", "all", "mean_softmax.singles", "vote", "oracle"} <= set(rows)
    # 10 demo classes, chance is 10%; at test size (3 training takes a class) the fused honest
    # rows reach about 55%, the full demo about 95%.
    assert rows["mean_softmax.singles+all"]["top1"] >= 0.4, rows["mean_softmax.singles+all"]
    assert rows["all"]["top1"] >= 0.25, rows["all"]  # Fuse5 works in eval (per-descriptor BN statistics)
    assert (work / "data/demo/checkpoints" / "ntu60_csub_all_last_confusion.png").is_file()
    assert len(list((work / "data/demo/checkpoints").glob("ntu60_*_descriptors.png"))) == 1
    assert "mean of softmax" in proc.stdout and "oracle: any of 5 correct" in proc.stdout


def test_second_run_reuses_every_finished_step(demo_run):
    work, first = demo_run
    assert first.returncode == 0
    ckpts = sorted((work / "data/demo/checkpoints").glob("*.tar"))
    before = {p: p.stat().st_mtime_ns for p in ckpts}
    second = run(PIPELINE, work)
    assert second.returncode == 0, second.stderr[-3000:]
    out = second.stdout
    assert "demo data: already in" in out
    assert "txt2npy: complete" in out
    assert out.count(": complete") >= 1 + 2  # convert, two descriptor splits
    assert out.count("already trained: ") == 6   # six models
    assert not re.search(r"^epoch +\d+ lr ", out, re.M)  # nothing trained again (no epoch line)
    assert out.count("nothing trained now") == 6
    assert {p: p.stat().st_mtime_ns for p in ckpts} == before


def predict(work: Path, *extra: str) -> subprocess.CompletedProcess:
    return run([sys.executable, str(REPO / "predict.py"), *extra, "-d", "ntu60", "-p", "csub",
                "-ckpt", "data/demo/checkpoints", "--epoch", "last"], work)


def test_predict_agrees_with_test_script_and_finds_the_class(demo_run):
    work, proc = demo_run
    assert proc.returncode == 0
    doc = results(work)
    fused = doc["predictions"]["mean_softmax.singles+all"]
    by_sample = dict(zip(doc["samples"]["sample"], fused))
    correct = [s for s, p in by_sample.items() if p == label_of(s, "ntu60")]   # 1-based in the JSON
    assert correct, "the fused model got no test sample right"
    names = class_names("ntu60")
    for sample in correct[:2]:
        out = predict(work, str(Path("data/demo/ntu/txt60skel") / f"{sample}.skeleton"), "--images", "imgs")
        assert out.returncode == 0, out.stderr
        first = out.stdout.splitlines()[1]
        # predict.py makes the images in memory; its answer must equal test.py's from the PNG files.
        assert names[label_of(sample, "ntu60") - 1] in first, out.stdout
        assert len(list((work / "imgs").glob(f"{sample}_*.png"))) == 5


def test_predict_malformed_file_is_one_line_error(demo_run, tmp_path, capsys, monkeypatch):
    """The malformed file through predict.py's process (its whole stderr is the one line); the
    other refusals through the scripts' main in this process (their whole stderr, as captured)."""
    work, _ = demo_run
    bad = tmp_path / "S001C001P001R001A008.skeleton"
    bad.write_text("12\n1\nnot a body line\n")
    out = predict(work, str(bad))
    assert out.returncode != 0
    assert len(out.stderr.strip().splitlines()) == 1 and str(bad) in out.stderr
    predict_script, visualize_script = load_script("predict"), load_script("visualize")
    monkeypatch.chdir(work)

    def predict_here(file: Path) -> tuple[int, str]:
        capsys.readouterr()
        status = predict_script.main(predict_script.get_args_parser().parse_args(
            [str(file), "-d", "ntu60", "-p", "csub", "-ckpt", "data/demo/checkpoints", "--epoch", "last"]))
        return status, capsys.readouterr().err

    def visualize_here(file: Path) -> tuple[int, str]:
        capsys.readouterr()
        status = visualize_script.main(visualize_script.parse([str(file)]))
        return status, capsys.readouterr().err

    missing = tmp_path / "S001C001P001R001A009.skeleton"
    for status, err in (predict_here(missing), visualize_here(missing)):
        assert status != 0 and err == f"error: {missing}: skeleton file not found\n"
    os.mkfifo(missing)   # a FIFO would block the reader forever: refused before it is opened
    status, err = predict_here(missing)
    assert status != 0 and err == f"error: {missing}: a FIFO, not a regular file; not read\n"


def test_per_descriptor_bn_statistics_equal_separate_batchnorms():
    torch.manual_seed(0)
    chunks, channels = 5, 4
    bn = ChunkedBatchNorm2d(channels, chunks)
    bn.enable_per_chunk_stats(chunks)
    nn.init.uniform_(bn.weight)
    nn.init.uniform_(bn.bias)
    separate = [nn.BatchNorm2d(channels) for _ in range(chunks)]
    for ref in separate:
        ref.load_state_dict({k: v for k, v in bn.state_dict().items() if not k.startswith("chunk_")})
    # Descriptor-like chunks with different statistics.
    batches = [torch.randn(6, channels, 5, 5) * (i + 1) + 10 * i for i in range(chunks)]
    for _ in range(3):
        bn.train()
        out = bn(torch.cat(batches))
        for ref in separate:
            ref.train()
        expected = torch.cat([ref(b) for ref, b in zip(separate, batches)])
        torch.testing.assert_close(out, expected)
    bn.eval()
    for ref in separate:
        ref.eval()
    torch.testing.assert_close(bn(torch.cat(batches)), torch.cat([ref(b) for ref, b in zip(separate, batches)]))
    torch.testing.assert_close(bn.chunk_running_mean, torch.stack([ref.running_mean for ref in separate]))


def test_shared_bn_keeps_release_keys_and_per_descriptor_adds_buffers():
    shared = build_model("all", 10, width=1 / 32).state_dict()
    per = build_model("all", 10, width=1 / 32, bn_stats="per-descriptor").state_dict()
    assert not any("chunk_running" in k for k in shared)
    assert set(per) - set(shared) == {k for k in per if k.endswith(("chunk_running_mean", "chunk_running_var"))}
    with pytest.raises(ValueError, match="bn_stats"):
        build_model("all", 10, bn_stats="bogus")


def test_release_reference_path_refuses_per_descriptor_statistics():
    model = build_model("all", 10, width=1 / 32, bn_stats="per-descriptor")
    images = [torch.rand(2, 3, 32, 32) for _ in range(5)]
    with pytest.raises(ValueError, match="per-descriptor"):
        model.forward_separately(images)
    assert model(images)["main"].shape == (2, 10)


def test_the_skeleton_route_writes_no_images_and_predicts_the_same(demo_run, tmp_path):
    """pipeline.py --demo --source skeletons: no descriptor folders, and since its images are
    bit-equal to the PNGs and the runs seeded alike, the same predictions as the image route."""
    work, first = demo_run
    assert first.returncode == 0
    skeletons = run(PIPELINE + ["--source", "skeletons"], tmp_path)
    assert skeletons.returncode == 0, skeletons.stderr[-3000:]
    assert not (tmp_path / "data/demo/descriptors").exists()
    assert results(tmp_path)["predictions"] == results(work)["predictions"]
    assert results(tmp_path)["checkpoints"]["all"]["settings"]["source"] == "skeletons"


def test_other_mode_or_size_is_refused_and_a_new_sample_retrains_every_model(small_demo_run, tmp_path):
    """On a copy of the session's small demo (2 epochs: the retrainings below are its command's).
    Another --mode or --img-size than the folders were made with is refused in one line; one more
    .skeleton file remakes the split's images and retrains the six models, since the data they saw
    changed."""
    from models.checkpoint import read_settings
    from skeletons.datasets import get_dataset

    work = copy_small_demo(small_demo_run, tmp_path)   # asserts the first run succeeded
    pipeline = [sys.executable, str(REPO / "pipeline.py"), "--demo", *SMALL_DEMO]   # small_demo_run's command
    for flag, shown in ((["--mode", "clean"], "mode: paper (this run: clean)"),
                        (["--img-size", "24"], "img_size: 32 (this run: 24)")):
        refused = run(pipeline + flag, work)
        assert refused.returncode == 2 and shown in refused.stderr and "--overwrite" in refused.stderr
        assert [line for line in refused.stderr.splitlines() if line.startswith("error:")] == \
            [refused.stderr.strip().splitlines()[-1]]

    raw = work / "data/demo/ntu/txt60skel"
    ntu = get_dataset("ntu60")
    source = next(p for p in sorted(raw.iterdir()) if ntu.is_train(p.name, "csub"))
    new = next(raw / f"S{s:03d}{source.name[4:]}" for s in range(17, 0, -1)
               if not (raw / f"S{s:03d}{source.name[4:]}").exists())
    new.write_bytes(source.read_bytes())
    ckpt = work / "data/demo/checkpoints"
    before = {p.name: read_settings(p)["data"]["train"] for p in ckpt.glob("*_last.tar")}
    again = run(pipeline, work)
    assert again.returncode == 0, again.stderr[-3000:]
    out = again.stdout
    assert "txt2npy: 1 files to convert" in out and "descriptors test: complete" in out
    assert out.count("its images changed since it was trained; the earlier model's files are kept in") == 6
    after = {p.name: read_settings(p)["data"]["train"] for p in ckpt.glob("*_last.tar")}
    assert before.keys() == after.keys() and len(after) == 6
    for name in after:
        assert all(after[name][d]["samples"] == before[name][d]["samples"] + 1 for d in after[name])
    kept = {p.name: read_settings(p)["data"]["train"] for p in (ckpt / "superseded").glob("*/*_last.tar")}
    assert kept == before   # the finished models are kept, not deleted
    third = run(pipeline, work)
    assert third.returncode == 0 and third.stdout.count("already trained: ") == 6
    # the converted folder follows its raw folder: the .skeleton removed, its .npy goes, the models retrain
    new.unlink()
    fourth = run(pipeline, work)
    assert fourth.returncode == 0, fourth.stderr[-3000:]
    assert "txt2npy: removed 1 converted file(s) whose .skeleton is gone from" in fourth.stdout
    assert not (work / "data/demo/ntu/npy60skel" / f"{new.name}.npy").exists()
    assert fourth.stdout.count("its images changed since it was trained") == 6
    assert all(read_settings(p)["data"]["train"] == before[p.name] for p in ckpt.glob("*_last.tar"))
