"""Trained models leave the lab: export.py writes ONNX graphs that onnxruntime runs to torch's
logits on the demo test split (every row, ours and the release's checkpoints), and predict.py
--onnx classifies raw files as the torch path does, in a process where torch cannot be imported."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO

from descriptors.core import network_input
from descriptors.dataset import DescriptorImages
from descriptors.names import DESCRIPTORS, FUSION, FUSION_ORDER
from models.checkpoint import load_model
from models.evaluation import model_outputs
from test_checkpoint import release_file

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -r requirements-extra.txt)")
DEMO = Path("data/demo")
CKPT, DESCRIPTORS_ROOT, RAW = DEMO / "checkpoints", DEMO / "descriptors", DEMO / "ntu" / "txt60skel"
NTU = ["-d", "ntu60", "-p", "csub"]


def run(script: str, *argv: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / f"{script}.py"), *argv], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env=env)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return errors[0].removeprefix("error: ")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """The small demo trained for 2 epochs (its six NTU models at width 1/16, 32 px), exported."""
    work = tmp_path_factory.mktemp("export_demo")
    proc = run("pipeline", "--demo", "--demo-size", "small", "--epochs", "2", cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (work / "pipeline.out").write_text(proc.stdout)
    proc = run("export", *NTU, "-ckpt", str(CKPT), "--epoch", "last", "--out", "onnx", cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work


def graph_outputs(path: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, inputs)))


def assert_close(onnx_logits: np.ndarray, torch_logits: np.ndarray, what: str) -> None:
    assert np.array_equal(onnx_logits.argmax(1), torch_logits.argmax(1)), what
    scale = np.abs(torch_logits).max()
    assert np.abs(onnx_logits - torch_logits).max() <= 1e-4 * scale, what


def test_every_network_and_head_gives_torchs_logits_on_the_test_split(demo):
    data = DescriptorImages(demo / DESCRIPTORS_ROOT, "ntu60", "csub", "test", list(FUSION_ORDER), uint8=True)
    batch = [torch.stack([data[i][0][k] for i in range(len(data))]) for k in range(len(FUSION_ORDER))]
    images = dict(zip(FUSION_ORDER, batch))
    for name in (*DESCRIPTORS, FUSION):
        meta = json.loads((demo / "onnx" / f"ntu60_csub_{name}.json").read_text())
        assert meta["model"] == name and meta["img_size"] == 32 and meta["mode"] == "paper"
        assert meta["class_names"][0] == "drink water" and meta["checkpoint"]["kind"] == "ours"
        assert meta["data"]["test"]  # the provenance the checkpoint recorded
        model, _ = load_model(demo / CKPT / f"ntu60_csub_{name}_last.tar", desc=name, num_classes=60)
        reference = model_outputs({name: model}, [(tuple(batch), None)], FUSION_ORDER, torch.device("cpu"))[name]
        inputs = [images[d].float().numpy() for d in meta["inputs"]] if name == FUSION else \
            [images[name].float().numpy()]
        got = graph_outputs(demo / "onnx" / f"ntu60_csub_{name}.onnx", inputs)
        if name == FUSION:
            heads = [reference["main"], *reference["single"], reference["g12"], reference["g345"]]
            assert meta["outputs"][0] == "main" and len(got) == len(heads) == 8
            for head, onnx_head, torch_head in zip(meta["outputs"], got, heads):
                assert_close(onnx_head, torch_head, head)
        else:
            assert_close(got[0], reference, name)
        assert got[0].shape == (len(data), 60)


def test_release_checkpoints_export_too(tmp_path):
    folder = tmp_path / "released"
    folder.mkdir()
    for desc in ("GD", FUSION):
        release_file(folder, desc, 60)
    proc = run("export", *NTU, "-desc", "all", "-ckpt", str(folder), "--out", "onnx", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "missing JDD, ADD, LAD, FDD" in proc.stderr   # the release's files that are not there are named
    for desc in ("GD", FUSION):
        meta = json.loads((tmp_path / "onnx" / f"ntu60_csub_{desc}.json").read_text())
        assert meta["checkpoint"]["kind"] == "release" and meta["img_size"] == 112
        model, _ = load_model(folder / f"ntu60_csub_{desc}_epoch_best.tar", desc=desc, num_classes=60)
        x = [torch.rand(3, 3, 112, 112) * 255 for _ in range(5 if desc == FUSION else 1)]
        with torch.no_grad():
            out = model(x) if desc == FUSION else model(x[0])
        reference = out["main"] if desc == FUSION else out
        got = graph_outputs(tmp_path / "onnx" / f"ntu60_csub_{desc}.onnx", [t.numpy() for t in x])[0]
        assert_close(got, reference.numpy(), desc)


def test_predict_onnx_equals_torch_and_runs_without_torch(demo, tmp_path):
    fake = tmp_path / "no_torch" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('torch is not installed here')\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(fake.parent), "OMP_NUM_THREADS": "1"}
    samples = sorted((demo / RAW).glob("*.skeleton"))[:3]
    for sample in samples:
        torch_run = run("predict", str(sample), *NTU, "-ckpt", str(CKPT), "--epoch", "last", "-gpu", "-1", cwd=demo)
        onnx_run = run("predict", str(sample), *NTU, "--onnx", "onnx", cwd=demo, env=env)
        assert torch_run.returncode == 0 and onnx_run.returncode == 0, onnx_run.stderr
        assert "torch" not in onnx_run.stderr
        ours, theirs = torch_run.stdout.splitlines(), onnx_run.stdout.splitlines()
        assert ours[:2] == theirs[:2]   # the sample, the models used (and the true class)
        rank = lambda lines: [line.split("%")[1] for line in lines if line.startswith("  ") and "%" in line]  # noqa: E731
        assert rank(ours) == rank(theirs)
        probability = lambda lines: [float(line.split("%")[0].split()[-1]) for line in lines  # noqa: E731
                                     if line.startswith("  ") and "%" in line]
        assert np.allclose(probability(ours), probability(theirs), atol=0.11)
    probe = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0   # the predictor above really ran where torch cannot be imported


def test_network_input_is_the_loaders_tensor(demo):
    data = DescriptorImages(demo / DESCRIPTORS_ROOT, "ntu60", "csub", "test", list(FUSION_ORDER), uint8=True)
    from descriptors.core import descriptor_images
    from skeletons.reading import load_sequence
    sample = data.samples[0].sample
    images = descriptor_images(load_sequence(demo / DEMO / "ntu/npy60skel" / f"{sample}.skeleton.npy", "paper"),
                               mode="paper", img_size=32)
    for k, desc in enumerate(FUSION_ORDER):
        assert np.array_equal(network_input(images[desc]), data[0][0][k].float().numpy()), desc


@pytest.mark.parametrize("case", ["not_a_network", "opset", "unwritable"])
def test_export_refusals_are_one_line_and_leave_nothing(demo, tmp_path, case):
    ckpt, out, extra = str(demo / CKPT), tmp_path / "out", []
    if case == "not_a_network":
        folder = tmp_path / "ckpt"
        folder.mkdir()
        (folder / "ntu60_csub_GD_epoch_best.tar").write_bytes(b"not a checkpoint at all")
        ckpt = str(folder)
    elif case == "opset":
        extra = ["--opset", "99"]
    else:
        out.write_text("a file where the folder should be")
    proc = run("export", *NTU, "-desc", "GD", "-ckpt", ckpt, "--epoch", "best" if case == "not_a_network" else "last",
               "--out", str(out), *extra, cwd=demo)
    message = one_line_error(proc)
    assert {"not_a_network": "ntu60_csub_GD_epoch_best.tar", "opset": "--opset 99",
            "unwritable": "cannot be written"}[case] in message, message
    if out.is_dir():
        assert not list(out.iterdir()), list(out.iterdir())   # nothing half-written


def test_the_demo_writes_curves_and_says_where(demo):
    """pipeline.py --demo leaves each model's curves beside its checkpoints, and names them."""
    from models.names import curves_path, tensorboard_dir
    for name in (*DESCRIPTORS, FUSION):
        assert curves_path(demo / CKPT, f"ntu60_csub_{name}").read_bytes()[:4] == b"\x89PNG", name
        assert any("tfevents" in p.name for p in tensorboard_dir(demo / CKPT, f"ntu60_csub_{name}").iterdir()), name
    assert f"training curves: {CKPT}/ntu60_csub_<DESC>_curves.png" in (demo / "pipeline.out").read_text()
