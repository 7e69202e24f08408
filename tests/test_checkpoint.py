"""Checkpoints: our format round trip, the release's raw state dicts, one-line errors."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from models.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from models.networks import build_model
from test_networks import WIDTH, with_unused_layers


def release_file(tmp_path, desc: str, num_classes: int, width: float = WIDTH):
    """A file as the release writes it: torch.save(state_dict) with layer3/layer4/fc, random values."""
    torch.manual_seed(1)
    model = with_unused_layers(build_model(desc, num_classes, width=width), num_classes, width)
    state = {k: (v.abs() + 0.5 if "running_var" in k else torch.randn_like(v)) if v.is_floating_point() else v
             for k, v in model.state_dict().items()}
    path = tmp_path / f"ntu60_csub_{desc}_epoch_best.tar"
    torch.save(state, path)
    return path, state


@pytest.mark.parametrize("desc", ["GD", "all"])
def test_release_state_dict_loads_and_matches_our_model(tmp_path, desc):
    path, state = release_file(tmp_path, desc, 60)
    model, ckpt = load_model(path, desc=desc, num_classes=60)
    assert ckpt.kind == "release" and ckpt.settings["width"] == WIDTH
    assert not any(k.startswith(("layer3.", "layer4.", "fc.")) for k in ckpt.state_dict)
    ours = build_model(desc, 60, width=WIDTH).eval()
    ours.load_state_dict({k: v for k, v in state.items() if k in ours.state_dict()}, strict=True)
    x = torch.rand(2, 3, 112, 112) * 255
    inputs = [x.flip(0), x, x * 0.5, x.flip(-1), x.flip(-2)] if desc == "all" else x
    with torch.no_grad():
        a, b = model(inputs), ours(inputs)
    a, b = (a["main"], b["main"]) if desc == "all" else (a, b)
    assert torch.equal(a, b)
    assert a.std() > 0  # the random weights really flow through


def test_our_format_round_trip(tmp_path):
    model = build_model("JDD", 10, width=WIDTH)
    opt = torch.optim.Adam(model.parameters())
    settings = {"dataset": "ucla", "descriptor": "JDD", "num_classes": 10, "arch": "resnet_c", "width": WIDTH}
    path = tmp_path / "ucla_JDD_last.tar"
    save_checkpoint(path, model=model, optimizer=opt, epoch=4, best_acc=0.25, settings=settings, with_rng=True)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind
    ckpt = load_checkpoint(path)
    assert (ckpt.kind, ckpt.epoch, ckpt.best_acc, ckpt.settings) == ("ours", 4, 0.25, settings)
    assert "optimizer" in ckpt.raw and "rng" in ckpt.raw
    loaded, _ = load_model(path, desc="JDD", num_classes=10)
    for (k, v), w in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(v, w), k


@pytest.mark.parametrize("damage, problem", [
    (lambda raw: raw.pop("model"), "damaged checkpoint (no model weights: 'model' is missing)"),
    (lambda raw: raw.update(model="weights"), "damaged checkpoint (no model weights: 'model' is str)"),
    (lambda raw: raw.update(version="1"), "damaged checkpoint (format version '1' is not a number)"),
    (lambda raw: raw.update(version=99), "checkpoint format version 99 is newer than this code (1)"),
    (lambda raw: raw.update(settings=[1]), "damaged checkpoint ('settings' is list, not a dict)"),
])
def test_a_damaged_file_of_our_format_is_a_one_line_error(tmp_path, damage, problem):
    path = tmp_path / "ucla_GD_epoch_best.tar"
    save_checkpoint(path, model=build_model("GD", 10, width=WIDTH), epoch=1, best_acc=0.5, settings={"width": WIDTH})
    raw = torch.load(path, weights_only=True)
    damage(raw)
    torch.save(raw, path)
    with pytest.raises(CheckpointError) as error:
        load_model(path, desc="GD", num_classes=10)
    assert str(error.value) == f"{path}: {problem}"


def test_mismatches_are_one_line_errors_naming_the_file(tmp_path):
    fuse, _ = release_file(tmp_path, "all", 60)
    single = tmp_path / "single.tar"
    save_checkpoint(single, model=build_model("GD", 60, width=WIDTH), epoch=1, best_acc=None,
                    settings={"num_classes": 60, "width": WIDTH})
    corrupt = tmp_path / "corrupt.tar"
    corrupt.write_bytes(single.read_bytes()[:1000])
    other = tmp_path / "other.tar"
    torch.save({"weights": torch.zeros(3)}, other)
    cases = [
        (lambda: load_model(fuse, desc="GD", num_classes=60), fuse, "Fuse5"),
        (lambda: load_model(single, desc="all", num_classes=60), single, "single-descriptor"),
        (lambda: load_model(fuse, desc="all", num_classes=120), fuse, "60 classes"),
        (lambda: load_checkpoint(corrupt), corrupt, "not a readable"),
        (lambda: load_checkpoint(other), other, "not an imdar checkpoint"),
        (lambda: load_checkpoint(tmp_path / "missing.tar"), tmp_path / "missing.tar", "not found"),
    ]
    for call, path, words in cases:
        with pytest.raises(CheckpointError) as err:
            call()
        msg = str(err.value)
        assert msg.startswith(str(path)) and words in msg and "\n" not in msg, msg
    assert isinstance(CheckpointError("x"), ValueError)


def test_width_mismatch_in_our_file_is_reported(tmp_path):
    path = tmp_path / "w.tar"
    save_checkpoint(path, model=build_model("GD", 10, width=WIDTH), epoch=1, best_acc=None,
                    settings={"num_classes": 10, "width": WIDTH})
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(path, desc="GD", num_classes=10, width=2 * WIDTH)
    assert isinstance(load_model(path, desc="LAD", num_classes=10)[0], nn.Module)


def test_torchvision_model_keeps_its_fc_layer(tmp_path):
    """The release's unused "fc." keys are dropped from its files only: a torchvision ResNet's fc is real."""
    model = build_model("GD", 10, arch="shufflenet_v2_x0_5")
    path = tmp_path / "ucla_GD_last.tar"
    save_checkpoint(path, model=model, epoch=1, best_acc=None,
                    settings={"arch": "shufflenet_v2_x0_5", "num_classes": 10, "width": 1.0})
    loaded, ckpt = load_model(path, desc="GD", num_classes=10)
    assert "fc.weight" in ckpt.state_dict
    assert torch.equal(loaded.state_dict()["fc.weight"], model.state_dict()["fc.weight"])
