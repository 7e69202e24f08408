"""ResNet_c / Fuse5: release key names and shapes, and Fuse5's one-pass trunk == five trunk calls."""
from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from models.networks import Fuse5, ResBlock, ResNet_c, build_model, scaled_channels
from descriptors.names import FUSION_ORDER

WIDTH = 1 / 32


def with_unused_layers(model: nn.Module, num_classes: int, width: float) -> nn.Module:
    """Add back the release's never-used layer3 / layer4 / fc (docs/METHOD.md §4) for key comparisons."""
    _, c1, c2 = scaled_channels(width)
    model.layer3 = nn.Sequential(ResBlock(c2, c1, 2), ResBlock(c1, c1, 1))
    model.layer4 = nn.Sequential(ResBlock(c1, c2, 2), ResBlock(c2, c2, 1))
    model.fc = nn.Linear(c2, num_classes)
    return model


@pytest.mark.parametrize("name, cls", [("ResNet_c", ResNet_c), ("Fuse5", Fuse5)])
def test_state_dict_keys_and_shapes_equal_release(reference_dir, name, cls):
    released = json.loads((reference_dir / "released_state_dict_keys_60classes.json").read_text())[name]
    with torch.device("meta"):  # full width without allocating 40 M parameters
        ours = cls(60)
        ours_keys = list(ours.state_dict())
        full = with_unused_layers(ours, 60, 1.0)
    shapes = {k: list(v.shape) for k, v in full.state_dict().items()}
    assert shapes == released
    assert len(ours_keys) == len(released) - 62  # layer3 (30) + layer4 (30) + fc (2) left out
    assert ours_keys == [k for k in released if k in set(ours_keys)]  # same order as the release


def test_output_shapes_and_width():
    x = torch.rand(2, 3, 112, 112) * 255
    assert build_model("JDD", 10, width=WIDTH)(x).shape == (2, 10)
    out = build_model("all", 10, width=WIDTH)([x] * 5)
    assert out["main"].shape == out["g12"].shape == out["g345"].shape == (2, 10)
    assert len(out["single"]) == len(FUSION_ORDER) and all(s.shape == (2, 10) for s in out["single"])
    assert build_model("GD", 10, width=WIDTH).conv1[0].out_channels == 8


def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="descriptor"):
        build_model("XYZ", 10)
    with pytest.raises(ValueError, match="--arch"):
        build_model("GD", 10, arch="no_such_net")
    with pytest.raises(ValueError, match="Fuse5"):
        build_model("all", 10, arch="resnet18")


def test_torchvision_arch_by_name():
    model = build_model("GD", 7, arch="resnet18")
    assert model(torch.rand(2, 3, 112, 112)).shape == (2, 7)


def flat_outputs(out: dict) -> torch.Tensor:
    return torch.cat([out["main"], *out["single"], out["g12"], out["g345"]], 1)


@pytest.mark.parametrize("training", [True, False])
def test_fuse5_one_pass_equals_five_trunk_calls(training):
    torch.manual_seed(0)
    batched = Fuse5(6, width=WIDTH).double()
    # Give BN non-trivial affine parameters and running stats so eval mode is a real check too.
    for m in batched.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5), nn.init.uniform_(m.bias, -0.5, 0.5)
            m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2)
    separate = copy.deepcopy(batched)
    batched.train(training), separate.train(training)
    # Different statistics per descriptor, as real GD / FDD / JDD / ADD / LAD images have.
    images = [torch.rand(3, 3, 112, 112, dtype=torch.float64) * 255 * (k + 1) / 5 for k in range(5)]

    out_b, out_s = flat_outputs(batched(images)), flat_outputs(separate.forward_separately(images))
    torch.testing.assert_close(out_b, out_s, rtol=1e-9, atol=1e-9)
    if not training:
        return
    weights = torch.randn_like(out_b)
    (out_b * weights).sum().backward()
    (out_s * weights).sum().backward()
    for (name, pb), ps in zip(batched.named_parameters(), separate.parameters()):
        torch.testing.assert_close(pb.grad, ps.grad, rtol=1e-7, atol=1e-9, msg=name)
    for (name, bb), bs in zip(batched.named_buffers(), separate.buffers()):
        torch.testing.assert_close(bb, bs, rtol=1e-9, atol=1e-12, msg=name)
    assert batched.conv1[1].num_batches_tracked.item() == 5  # five updates per step, as released
