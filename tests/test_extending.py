"""A descriptor as one module (docs/EXTENDING.md): the registry, a file dropped into
descriptors/extra/, the fusion of any set (Fuse5 for the five), the code digest in records, and
the example JVD from its file to the ablation table, on the demo data."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from descriptors import registry
from descriptors.core import descriptor_images
from descriptors.names import DESCRIPTORS, FUSION_ORDER, fused_inputs, fused_name, model_names
from models.names import FUSE5_OUTPUTS, fused_outputs
from models.networks import Fuse5, FuseN, build_model

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "joint_velocity.py"


def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def jvd():
    """The example's module, registered for one test as a file in descriptors/extra/ would be."""
    module = load_module(EXAMPLE, "joint_velocity_example")
    registry.register(module)
    yield module
    registry.unregister("JVD")


def test_the_registry_holds_the_five_in_the_release_order():
    assert registry.BUILTIN == DESCRIPTORS == ("GD", "JDD", "ADD", "LAD", "FDD")
    assert FUSION_ORDER == ("GD", "FDD", "JDD", "ADD", "LAD")   # the release's Fuse5 input order
    assert fused_name(["LAD", "GD", "JDD", "ADD", "FDD"]) == "all" and fused_inputs("all") == FUSION_ORDER
    assert FUSE5_OUTPUTS == ("main", "single_GD", "single_FDD", "single_JDD", "single_ADD", "single_LAD", "g12",
                             "g345")
    assert registry.get("FDD").made_of == ("JDD", "ADD", "LAD")
    with pytest.raises(ValueError, match="unknown descriptor 'XYZ'; choose from GD, JDD, ADD, LAD, FDD"):
        registry.get("XYZ")


def test_fuse_n_over_the_five_is_fuse5():
    five, general = Fuse5(10, 0.0625), FuseN(10, 0.0625, inputs=FUSION_ORDER)
    assert [(k, v.shape) for k, v in five.state_dict().items()] == [(k, v.shape) for k, v in
                                                                    general.state_dict().items()]
    general.load_state_dict(five.state_dict())
    images = [torch.rand(2, 3, 32, 32) * 255 for _ in FUSION_ORDER]
    a, b = five.eval()(images), general.eval()(images)
    assert all(torch.equal(a[k], b[k]) for k in ("main", "g12", "g345"))


def test_a_fusion_of_another_set_has_its_own_heads_and_name(jvd):
    name = fused_name(["JDD", "JVD", "GD"])
    assert name == "all-GD-JDD-JVD" and model_names(name) == ["GD", "JDD", "JVD", name]
    assert fused_inputs(name) == ("GD", "JVD", "JDD")   # colour images first, then gray
    assert fused_outputs(name) == ("main", "single_GD", "single_JVD", "single_JDD", "g12", "g345")
    model = build_model(name, 7, width=0.0625).eval()
    out = model([torch.rand(3, 3, 32, 32) for _ in range(3)])
    assert out["main"].shape == (3, 7) and len(out["single"]) == 3
    assert model.convf12.in_channels == 2 * model.feature_channels   # GD and JVD
    gray_only = build_model(fused_name(["JDD", "ADD"]), 7, width=0.0625)
    assert not hasattr(gray_only, "convf12")   # one kind of image: the main head is the group


def test_jvd_images_by_either_engine(jvd):
    from descriptors.torch_engine import descriptor_images_torch, has_twin

    rng = np.random.default_rng(3)
    sequences = [rng.normal(size=(40, 25, 3)), rng.normal(size=(17, 50, 3))]
    assert not has_twin("JVD") and has_twin("FDD")
    made = descriptor_images_torch(sequences, None, "paper", 32, descs=("GD", "JDD", "JVD"))
    for k, X in enumerate(sequences):
        images = descriptor_images(X, None, "paper", 32, ("JVD", "GD", "JDD"))
        assert list(images) == ["GD", "JDD", "JVD"] and images["JVD"].shape == (32, 32, 3)
        assert all(np.array_equal(made[d][k].numpy(), images[d]) for d in images)
    # a joint moving up at constant speed: JVD's green (y) channel is constant, its red and blue too
    X = np.zeros((10, 25, 3))
    X[:, 11, 1] = np.arange(10) * 0.1
    assert np.unique(descriptor_images(X, None, "clean", 32, ["JVD"])["JVD"][..., 1]).size > 1


def test_the_code_digest_ignores_comments_and_sees_code():
    source = EXAMPLE.read_text()
    commented = source.replace('"""(B*V, T-1, C)', '"""Another docstring. (B*V, T-1, C)') + "\n# a comment\n"
    changed = source.replace("P[:, 1:] - P[:, :-1]", "P[:, 1:] - P[:, :-1] * 2")
    assert registry._code_text(commented) == registry._code_text(source)
    assert registry._code_text(changed) != registry._code_text(source)


def copy_packages(where: Path) -> Path:
    for package in ("common", "skeletons", "descriptors"):
        shutil.copytree(REPO / package, where / package, ignore=shutil.ignore_patterns("__pycache__"))
    return where


def test_a_file_dropped_into_extra_is_found(tmp_path):
    root = copy_packages(tmp_path)
    shutil.copy(EXAMPLE, root / "descriptors" / "extra" / "joint_velocity.py")
    (root / "descriptors" / "extra" / "broken.py").write_text("import numpy as np\nDESCRIPTOR = 1 / 0\n")
    probe = ("from descriptors import registry; print(','.join(registry.names())); "
             "print(registry.identity('JVD'))")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "GD,JDD,ADD,LAD,FDD,JVD"
    warning = [line for line in proc.stderr.splitlines() if "broken.py" in line]
    assert len(warning) == 1 and "descriptor not loaded" in warning[0] and "division by zero" in warning[0]


def assert_skeleton_batches_equal_the_folders(seq: Path, root: Path) -> None:
    """--source skeletons with JVD (no torch twin): its images are made in the loader's worker by the
    numpy engine, and every batch equals the PNG folders' for the fusion network's inputs."""
    from descriptors.dataset import DescriptorImages
    from descriptors.skeleton_source import CollateWithImages, ImageMaker, SkeletonSequences, skeleton_loader

    name = fused_name(["GD", "JDD", "JVD"])
    sequences = SkeletonSequences(seq, "ucla", None, "test")
    maker = ImageMaker(name, sequences.layout, "paper", 32, "cpu")
    assert maker.untwinned == ("JVD",) and isinstance(maker.collate_fn(), CollateWithImages)
    loader = skeleton_loader(sequences, maker, batch_size=8, num_workers=1)
    assert next(iter(loader.loader)).images["JVD"].shape == (8, 32, 32, 3)   # made in the worker
    folders = torch.utils.data.DataLoader(DescriptorImages(root, "ucla", None, "test", name, uint8=True),
                                          batch_size=8)
    for (made, labels), (read, read_labels) in zip(loader, folders):
        assert torch.equal(labels, read_labels)
        assert all(torch.equal(a, b) for a, b in zip(made, read))


def test_jvd_from_its_file_to_the_ablation_table(jvd, demo_raw, tmp_path):
    """GD, JDD, JVD and their fusion on the demo: folders that record JVD's code, three models and
    the fusion network trained, the 7-row ablation; then JVD's code changes and both its folder and
    the models trained on it are refused with the fix."""
    from cli import test as test_cli, train as train_cli
    from descriptors.dataset import DescriptorImages
    from descriptors.extract import extract_split
    from descriptors.provenance import read_record
    from models.config import PRESETS, TestConfig, TrainConfig

    root, ckpt = tmp_path / "desc", tmp_path / "ckpt"
    seq = demo_raw / "ucla"
    for part in ("train", "test"):
        assert extract_split("ucla", None, part, seq, root, workers=1, img_size=32, progress=False,
                             descs=("GD", "JDD", "JVD")).ok
    assert_skeleton_batches_equal_the_folders(seq, root)
    record = read_record(root / "ucla_JVD_train")
    assert record["descriptor"] == "JVD" and record["code"] == registry.code_digest("JVD")
    assert not (root / "ucla_ADD_train").exists()
    place = dict(dataset="ucla", despth=str(root), ckpt=str(ckpt), gpu=-1, workers=0, descriptors="GD,JDD,JVD")
    recipe = {k: v for k, v in PRESETS["cpu"].items() if k not in ("img_size", "epochs", "epoch", *place)}
    assert train_cli.run(TrainConfig(**place, **recipe, desc="GD,JDD,JVD,all", epochs=2, no_progress=True)) == 0
    assert (ckpt / "ucla_all-GD-JDD-JVD_epoch_best.tar").is_file()
    out = tmp_path / "results"
    assert test_cli.run(TestConfig(**place, desc="all", epoch="last", ablation=True, out=str(out))) == 0
    doc = json.loads((out / "ucla_all-GD-JDD-JVD_last_results.json").read_text())
    assert len(doc["ablation"]) == 7 and {tuple(r["members"]) for r in doc["ablation"]} >= {("GD", "JDD", "JVD")}
    assert "Fuse3(GD,JVD,JDD)" in next(r["label"] for r in doc["rows"] if r["key"] == "all")

    # the set's networks exported and run without torch give the checkpoints' probabilities
    from models.export import export_run
    from models.inference import predict_file
    from models.onnx_predict import predict_file_onnx
    written = export_run(ckpt, "ucla", None, fused_name(["GD", "JDD", "JVD"]), "last", tmp_path / "onnx", log=lambda _: 0)
    assert sorted(p.name for p in written) == ["ucla_GD.onnx", "ucla_JDD.onnx", "ucla_JVD.onnx",
                                               "ucla_all-GD-JDD-JVD.onnx"]
    sample = sorted(seq.glob("*.json"))[0]
    torch_made = predict_file(sample, ckpt, "ucla", None, "all-GD-JDD-JVD", "last")
    onnx_made = predict_file_onnx(sample, tmp_path / "onnx", "ucla", None, "all-GD-JDD-JVD")
    assert list(onnx_made.images) == ["GD", "JDD", "JVD"]
    np.testing.assert_allclose(onnx_made.probabilities, torch_made.probabilities, atol=1e-4)
    # predict.py --explain: the networks that made the prediction explain it, in the layout's joints
    from models.explain import explain_prediction
    explained = explain_prediction(torch_made, torch_made.networks, steps=8)
    assert set(torch_made.networks) == {"GD", "JDD", "JVD", "all-GD-JDD-JVD"}
    assert {f.descriptor for f in explained.features} == {"GD", "JDD", "JVD"}
    assert {name for name, _ in explained.top_joints()} <= set(torch_made.layout.joints)

    changed = tmp_path / "joint_velocity_v2.py"
    changed.write_text(EXAMPLE.read_text().replace("P[:, 1:] - P[:, :-1]", "(P[:, 1:] - P[:, :-1]) * 2"))
    registry.unregister("JVD")
    registry.register(load_module(changed, "joint_velocity_v2"))
    with pytest.raises(ValueError, match=r"ucla_JVD_train: made from other JVD code .*skels2desc_ucla.py .*"
                                         r"--descriptors JVD --overwrite"):
        DescriptorImages(root, "ucla", None, "train", "JVD")
    status = test_cli.run(dataclasses.replace(TestConfig(**place, desc="JVD", epoch="last", out=str(out))))
    assert status == 2
