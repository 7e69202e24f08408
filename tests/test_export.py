"""Trained models leave the lab: export.py writes ONNX graphs that onnxruntime runs to torch's
logits on the demo test split (every row, ours and the release's checkpoints), and predict.py
--onnx classifies raw files as the torch path does, in a process where torch cannot be imported."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, copy_small_demo, load_script

from common.provenance import file_digest
from demo.generate import generate_coco17
from descriptors.core import network_input
from descriptors.dataset import DescriptorImages
from descriptors.names import DESCRIPTORS, FUSION, FUSION_ORDER
from models.checkpoint import load_model, save_checkpoint
from models.evaluation import model_outputs
from models.export import ExportError, check_opset, export_graph, export_run
from models.names import checkpoint_path
from models.networks import build_model
from models.onnx_predict import RECORD_FIELDS, RECORD_KEY, predict_file_onnx
from skeletons.custom import register_custom_dataset
from skeletons.datasets import DATASETS, get_dataset
from skeletons.layouts import layout_record
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
def demo(small_demo_run, tmp_path_factory) -> Path:
    """The small demo trained for 2 epochs (its six NTU models at width 1/16, 32 px: the session's
    ``pipeline.py --demo --demo-size small --epochs 2``, copied), exported."""
    work = copy_small_demo(small_demo_run, tmp_path_factory.mktemp("export_demo"))   # asserts it ran
    (work / "pipeline.out").write_text(small_demo_run[1].stdout)
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


def test_predict_onnx_equals_torch_and_runs_without_torch(demo, tmp_path, capsys, monkeypatch):
    """predict.py --onnx in a process where torch cannot be imported; the torch path's predict.py
    main in this process (its printed lines, as captured)."""
    predict_script = load_script("predict")
    monkeypatch.chdir(demo)
    fake = tmp_path / "no_torch" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('torch is not installed here')\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(fake.parent), "OMP_NUM_THREADS": "1"}
    samples = sorted((demo / RAW).glob("*.skeleton"))[:3]
    for sample in samples:
        capsys.readouterr()
        torch_status = predict_script.main(predict_script.get_args_parser().parse_args(
            [str(sample), *NTU, "-ckpt", str(CKPT), "--epoch", "last", "-gpu", "-1"]))
        torch_stdout = capsys.readouterr().out
        onnx_run = run("predict", str(sample), *NTU, "--onnx", "onnx", cwd=demo, env=env)
        assert torch_status == 0 and onnx_run.returncode == 0, onnx_run.stderr
        assert "torch" not in onnx_run.stderr
        ours, theirs = torch_stdout.splitlines(), onnx_run.stdout.splitlines()
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
            "unwritable": "cannot write the exported graphs there"}[case] in message, message
    if out.is_dir():
        assert not list(out.iterdir()), list(out.iterdir())   # nothing half-written


def test_the_demo_writes_curves_and_says_where(demo):
    """pipeline.py --demo leaves each model's curves beside its checkpoints, and names them."""
    from models.names import curves_path, tensorboard_dir
    for name in (*DESCRIPTORS, FUSION):
        assert curves_path(demo / CKPT, f"ntu60_csub_{name}").read_bytes()[:4] == b"\x89PNG", name
        assert any("tfevents" in p.name for p in tensorboard_dir(demo / CKPT, f"ntu60_csub_{name}").iterdir()), name
    assert f"training curves: {CKPT}/ntu60_csub_<DESC>_curves.png" in (demo / "pipeline.out").read_text()


# ---------------------------------------------------------------- an export is bound as a whole (issue 26)

def copied_export(demo: Path, tmp_path: Path, names: tuple[str, ...] = ("GD", "JDD")) -> Path:
    """Some of the demo's exports (.onnx and .json) copied to a folder of their own."""
    folder = tmp_path / "exported"
    folder.mkdir()
    for name in names:
        for suffix in (".onnx", ".json"):
            shutil.copy(demo / "onnx" / f"ntu60_csub_{name}{suffix}", folder)
    return folder


def demo_sample(demo: Path) -> Path:
    return sorted((demo / RAW).glob("*.skeleton"))[0]


def test_the_graph_carries_the_record_and_the_json_binds_the_graph(demo):
    """The JSON records the .onnx's SHA-256 (of the final file, metadata included) and the graph's
    metadata holds the JSON's whole record: what it is, what it was made from and for."""
    onnx = pytest.importorskip("onnx")
    for name in ("GD", FUSION):
        path = demo / "onnx" / f"ntu60_csub_{name}.onnx"
        meta = json.loads(path.with_suffix(".json").read_text())
        assert meta["onnx_digest"] == file_digest(path)
        props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert json.loads(props[RECORD_KEY]) == {k: meta[k] for k in RECORD_FIELDS}
        assert meta["checkpoint"]["digest"] == file_digest(demo / CKPT / f"ntu60_csub_{name}_last.tar")
        assert (meta["epochs_done"], meta["epochs_planned"]) == (2, 2)
        assert meta["class_names"] == list(get_dataset("ntu60").class_names)
        assert meta["command"].startswith(f"python export.py -d ntu60 -p csub -desc {name} -ckpt ")


@pytest.mark.parametrize("case", ["swapped", "mode", "img_size", "inputs", "dataset", "digest", "garbage",
                                  "truncated", "older"])
def test_a_swapped_damaged_or_edited_export_is_refused(demo, tmp_path, case):
    """`cp ntu60_csub_JDD.onnx ntu60_csub_GD.onnx` no longer predicts with the JDD network under the
    GD name, and no edit of the JSON is taken: one line naming the file and the export.py command."""
    folder = copied_export(demo, tmp_path)
    graph, sidecar_path = folder / "ntu60_csub_GD.onnx", folder / "ntu60_csub_GD.json"
    meta = json.loads(sidecar_path.read_text())
    edits = {"mode": "clean", "img_size": 64, "inputs": ["GD"], "dataset": "ntu120", "digest": "0" * 64,
             "older": "skeleton-descriptors onnx 1"}
    if case == "swapped":
        shutil.copy(folder / "ntu60_csub_JDD.onnx", graph)
    elif case == "garbage":
        graph.write_bytes(b"not a graph at all\n" * 10)
    elif case == "truncated":
        graph.write_bytes(graph.read_bytes()[:len(graph.read_bytes()) // 2])
    else:
        meta[{"digest": "onnx_digest", "older": "format"}.get(case, case)] = edits[case]
        sidecar_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError) as refused:
        predict_file_onnx(demo_sample(demo), folder, "ntu60", "csub", "GD")
    line = str(refused.value)
    named = sidecar_path if case in ("mode", "img_size", "inputs", "dataset", "older") else graph
    assert "\n" not in line and line.startswith(f"{named}: "), line
    assert "re-export it: python export.py -d ntu60 -p csub -desc GD -ckpt " in line, line
    expected = {"swapped": "onnx_digest: ", "digest": "onnx_digest: ", "garbage": "not an ONNX graph",
                "truncated": "not an ONNX graph", "older": "written by another export.py",
                "mode": "mode: paper -> clean", "img_size": "img_size: 32 -> 64",
                "inputs": "inputs: ['images'] -> ['GD']",
                "dataset": "dataset: ntu60 -> ntu120"}[case]
    assert expected in line, line


def test_predict_onnx_refuses_a_swapped_graph_in_one_line(demo, tmp_path):
    """The issue's reproduction as written, through predict.py."""
    folder = copied_export(demo, tmp_path)
    shutil.copy(folder / "ntu60_csub_JDD.onnx", folder / "ntu60_csub_GD.onnx")
    proc = run("predict", str(demo_sample(demo)), *NTU, "-desc", "GD", "--onnx", str(folder), cwd=demo)
    message = one_line_error(proc)
    assert message.startswith(f"{folder / 'ntu60_csub_GD.onnx'}: made from other inputs") and not proc.stdout


def test_an_unfinished_training_is_said_by_export_and_by_predict_onnx(demo, tmp_path):
    """A training started for 5 epochs and stopped after 2: export.py says so as torch predict.py
    does, records the epochs done and planned, and predict.py --onnx says it again."""
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    raw = torch.load(demo / CKPT / "ntu60_csub_GD_last.tar", map_location="cpu", weights_only=True)
    raw["settings"]["epochs"] = 5
    torch.save(raw, ckpt / "ntu60_csub_GD_last.tar")
    shutil.copy(demo / CKPT / "ntu60_csub_GD_log.csv", ckpt)
    said = []
    export_run(ckpt, "ntu60", "csub", "GD", "last", tmp_path / "out", log=said.append)
    warning = "warning: GD's training stopped at epoch 2 of 5 (unfinished); rerun its train.py command to finish it"
    assert said == [warning]
    meta = json.loads((tmp_path / "out" / "ntu60_csub_GD.json").read_text())
    assert (meta["epochs_done"], meta["epochs_planned"]) == (2, 5)
    assert predict_file_onnx(demo_sample(demo), tmp_path / "out", "ntu60", "csub", "GD").notes == [warning]
    finished = predict_file_onnx(demo_sample(demo), demo / "onnx", "ntu60", "csub", "GD")
    assert finished.notes == []   # the demo's 2 epochs of 2: no word


def swap_classes(root: Path, copy: Path) -> Path:
    """A custom dataset copied with classes 1 and 6 swapped: lines 1 and 6 of classes.txt and labels
    1 and 6 in labels.csv (the same data, its classes in another order)."""
    shutil.copytree(root, copy)
    names = (copy / "classes.txt").read_text().splitlines()
    names[0], names[5] = names[5], names[0]
    (copy / "classes.txt").write_text("\n".join(names) + "\n")
    with open(copy / "labels.csv", newline="") as f:
        rows = list(csv.reader(f))
    for row in rows[1:]:
        row[1] = {"1": "6", "6": "1"}.get(row[1], row[1])
    with open(copy / "labels.csv", "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return copy


def test_class_names_travel_with_the_export(tmp_path, monkeypatch):
    """A coco17 model records its classes; export.py refuses a dataset whose classes are in another
    order, the export records the model's, and predict.py --onnx refuses such data naming the first
    differing class (it printed the wrong class names)."""
    root = tmp_path / "coco17"
    generate_coco17(root, 0, "small")
    monkeypatch.setitem(DATASETS, "custom", None)   # the table's custom row as it was, after the test
    ds = register_custom_dataset(root, "coco17")
    names = list(ds.class_names)
    settings = {"descriptor": "GD", "dataset": "custom", "protocol": "split", "num_classes": ds.num_classes,
                "arch": "resnet_c", "width": 0.0625, "mode": "paper", "img_size": 32,
                "layout": layout_record(ds.layout), "epochs": 1, "class_names": names}
    torch.manual_seed(0)
    save_checkpoint(checkpoint_path(tmp_path / "ckpt", "custom", "split", "GD", "last"),
                    model=build_model("GD", ds.num_classes, width=0.0625), epoch=1, best_acc=0.0, settings=settings)
    export_run(tmp_path / "ckpt", "custom", None, "GD", "last", tmp_path / "onnx", log=lambda line: None)
    assert json.loads((tmp_path / "onnx" / "custom_GD.json").read_text())["class_names"] == names
    swapped = swap_classes(root, tmp_path / "swapped")
    register_custom_dataset(swapped, "coco17")
    first = f"class 0: {names[0]!r} -> {names[5]!r}"
    with pytest.raises(ValueError) as refused:
        export_run(tmp_path / "ckpt", "custom", None, "GD", "last", tmp_path / "onnx2", log=lambda line: None)
    assert "\n" not in str(refused.value) and first in str(refused.value) and not (tmp_path / "onnx2").exists()
    sample = sorted((swapped / "skeletons").glob("*.npy"))[0]
    with pytest.raises(ValueError) as refused:
        predict_file_onnx(sample, tmp_path / "onnx", "custom")
    line = str(refused.value)
    assert "\n" not in line and line.startswith(f"{tmp_path / 'onnx' / 'custom_GD.json'}: trained on other classes")
    assert first in line and "model -> data" in line
    register_custom_dataset(root, "coco17")
    assert predict_file_onnx(sample, tmp_path / "onnx", "custom").probabilities.shape == (len(names),)


def test_the_exporters_own_output_is_silenced(demo, tmp_path, capfd):
    """torch's exporter prints the whole graph (about 122 lines, from C++) before an opset error:
    export.py gives its one line only; an opset out of the exporter's range is refused up front."""
    model, _ = load_model(demo / CKPT / "ntu60_csub_GD_last.tar", desc="GD", num_classes=60)
    capfd.readouterr()
    with pytest.raises(ExportError, match="not exported with --opset 3"):
        export_graph(model, "GD", 32, tmp_path / "g.onnx", 3)   # past the up-front check: the exporter's own error
    assert capfd.readouterr() == ("", "") and not list(tmp_path.iterdir())
    with pytest.raises(ExportError, match=r"^--opset 3: the installed torch \S+ exports ONNX opsets 7\.\.\d+; "):
        check_opset(3)
