"""The released networks: ResBlock, ResNet_c, Fuse5, plus torchvision models by name.

Parameter names equal the release's state dicts, minus the layer3 / layer4 / fc modules that the
release defines but never uses in forward (checkpoint.py drops those keys from the release's files).
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import nn

from common.errors import cause_text
import descriptors.registry as registry
from descriptors.base import COLOUR
from descriptors.names import DESCRIPTORS, FUSION_ORDER, check_descriptor, fused_inputs, is_fused
from .config import BN_STATS, DEFAULT_ARCH, FULL_WIDTH, SHARED_BN_STATS

PAPER_CHANNELS = (256, 512, 1024)  # conv1, layer1, layer2 widths at width=1.0


class ChunkedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that, in training, normalises each of ``chunks`` equal batch slices with its
    own statistics and updates the running statistics once per slice, in order.

    Why: Fuse5 runs its shared trunk once on the five descriptor batches concatenated, but the
    release calls the trunk five times; per-chunk BN keeps outputs, gradients and running stats
    identical to those five calls. With chunks == 1 (or in eval mode) it is a plain BatchNorm2d.

    ``per_chunk_stats`` (Fuse5 with bn_stats="per-descriptor") keeps one pair of running
    statistics per chunk and uses chunk i's in eval as well. The release's single pair mixes
    the five descriptors' statistics, so in eval every descriptor is normalised with the
    mixture while training normalised it with its own; that mismatch can ruin Fuse5's test
    accuracy (seen on the demo: chance level in eval, 43% with batch statistics).
    """

    def __init__(self, num_features: int, chunks: int = 1, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        self.chunks = chunks
        self.per_chunk_stats = False

    def enable_per_chunk_stats(self, chunks: int) -> None:
        self.chunks, self.per_chunk_stats = chunks, True
        self.register_buffer("chunk_running_mean", self.running_mean.repeat(chunks, 1))
        self.register_buffer("chunk_running_var", self.running_var.repeat(chunks, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.per_chunk_stats:
            return torch.cat([
                F.batch_norm(part, mean, var, self.weight, self.bias, self.training, self.momentum, self.eps)
                for part, mean, var in zip(x.chunk(self.chunks), self.chunk_running_mean, self.chunk_running_var)])
        if self.chunks == 1 or not self.training:
            return super().forward(x)
        return torch.cat([super(ChunkedBatchNorm2d, self).forward(part) for part in x.chunk(self.chunks)])


def set_bn_chunks(model: nn.Module, chunks: int) -> None:
    for module in model.modules():
        if isinstance(module, ChunkedBatchNorm2d):
            module.chunks = chunks


def conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, kernel, stride, padding=kernel // 2, bias=False), ChunkedBatchNorm2d(out_ch)]


class ResBlock(nn.Module):
    """Two 3x3 conv-BN layers plus a (projected when the shape changes) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        # Sequential indices (0 conv, 1 BN, 2 ReLU, 3 conv, 4 BN) are the release's key names.
        self.left = nn.Sequential(*conv_bn(in_ch, out_ch, 3, stride), nn.ReLU(inplace=True), *conv_bn(out_ch, out_ch, 3))
        self.shortcut = nn.Sequential()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(*conv_bn(in_ch, out_ch, 1, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.left(x) + self.shortcut(x))


def scaled_channels(width: float) -> tuple[int, int, int]:
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    return tuple(max(1, round(c * width)) for c in PAPER_CHANNELS)


class Trunk(nn.Module):
    """conv1 -> pool 4 -> layer1 -> pool 4 -> layer2 -> pool to 1x1: 112 -> 28 -> 7 -> 4 -> 1."""

    def __init__(self, width: float = FULL_WIDTH) -> None:
        super().__init__()
        c0, c1, c2 = scaled_channels(width)
        self.feature_channels = c2
        self.conv1 = nn.Sequential(*conv_bn(3, c0, 3), nn.ReLU(inplace=True))
        self.layer1 = nn.Sequential(ResBlock(c0, c1, 1), ResBlock(c1, c1, 1))
        self.layer2 = nn.Sequential(ResBlock(c1, c2, 2), ResBlock(c2, c2, 1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(self.conv1(x), 4)
        x = F.avg_pool2d(self.layer1(x), 4)
        x = self.layer2(x)
        # The release pools 4x4 -> 1x1 (112-pixel images); other sizes (the 32-pixel demo
        # descriptors) are pooled to 1x1 too instead of failing.
        return F.avg_pool2d(x, 4) if x.shape[-2:] == (4, 4) else F.adaptive_avg_pool2d(x, 1)


class ResNet_c(Trunk):  # noqa: N801 - the release's class name
    """Single-descriptor network: trunk + 1x1 conv classifier."""

    def __init__(self, num_classes: int, width: float = FULL_WIDTH) -> None:
        super().__init__(width)
        self.convf = nn.Conv2d(self.feature_channels, num_classes, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convf(self.features(x)).flatten(1)


class FuseN(Trunk):
    """N descriptors through one shared trunk; main, per-descriptor and group heads (Fuse5 for the five).

    ``inputs`` are the descriptors in the order the network takes them (descriptors.names.fused_inputs:
    colour images first, then gray). Heads: ``convf`` on all N features, ``convf1`` shared by each
    descriptor's features, and when the set has both kinds ``convf12`` on the colour ones and
    ``convf345`` on the gray ones: for the five (GD, FDD | JDD, ADD, LAD) this is the release's Fuse5,
    parameter for parameter.
    """

    def __init__(self, num_classes: int, width: float = FULL_WIDTH, bn_stats: str = SHARED_BN_STATS,
                 inputs: tuple[str, ...] = FUSION_ORDER) -> None:
        super().__init__(width)
        if bn_stats not in BN_STATS:
            raise ValueError(f"bn_stats must be one of {BN_STATS}, got {bn_stats!r}")
        self.inputs = tuple(inputs)
        self.colour = sum(registry.get(d).channels == COLOUR for d in self.inputs)
        n, c = len(self.inputs), self.feature_channels
        self.convf = nn.Conv2d(n * c, num_classes, 1, bias=False)
        self.convf1 = nn.Conv2d(c, num_classes, 1, bias=False)
        if registry.has_groups(self.inputs):
            self.convf12 = nn.Conv2d(self.colour * c, num_classes, 1, bias=False)
            self.convf345 = nn.Conv2d((n - self.colour) * c, num_classes, 1, bias=False)
        set_bn_chunks(self, n)
        self.bn_stats = bn_stats
        if bn_stats == "per-descriptor":
            for module in self.modules():
                if isinstance(module, ChunkedBatchNorm2d):
                    module.enable_per_chunk_stats(n)

    def forward(self, images) -> dict:
        if len(images) != len(self.inputs):
            raise ValueError(f"this fusion network takes {len(self.inputs)} image batches in order "
                             f"{', '.join(self.inputs)}, got {len(images)}")
        return self.heads(self.features(torch.cat(list(images))).chunk(len(self.inputs)))  # one trunk pass, BN per chunk

    def forward_separately(self, images) -> dict:
        """The release's way, one trunk call per descriptor: the reference for tests and the benchmark baseline."""
        if self.bn_stats != SHARED_BN_STATS:
            raise ValueError("forward_separately is the release's shared-statistics Fuse5; "
                             "per-descriptor statistics need the batched forward")
        set_bn_chunks(self, 1)
        try:
            return self.heads([self.features(x) for x in images])
        finally:
            set_bn_chunks(self, len(self.inputs))

    def heads(self, feats) -> dict:
        out = {"main": self.convf(torch.cat(feats, 1)).flatten(1),
               "single": [self.convf1(f).flatten(1) for f in feats]}
        if registry.has_groups(self.inputs):
            out["g12"] = self.convf12(torch.cat(feats[:self.colour], 1)).flatten(1)
            out["g345"] = self.convf345(torch.cat(feats[self.colour:], 1)).flatten(1)
        return out


Fuse5 = FuseN   # the release's name: FuseN over the five in FUSION_ORDER


class WeightsUnavailableError(RuntimeError):
    """--pretrained weights that could not be fetched: str(e) says where torchvision looks for them."""


def pretrained_torchvision_model(arch: str) -> nn.Module:
    """torchvision's model with its default weights, downloaded once into torch.hub's cache; a
    one-line WeightsUnavailableError (where the file goes, how to proceed) when it cannot be had."""
    import torchvision

    try:
        return torchvision.models.get_model(arch, weights="DEFAULT")
    except (OSError, RuntimeError) as e:  # no network: URLError (an OSError); a bad download: RuntimeError
        url = torchvision.models.get_model_weights(arch).DEFAULT.url
        where = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
        raise WeightsUnavailableError(
            f"--pretrained: the {arch} weights could not be downloaded ({cause_text(e)}); torchvision reads them "
            f"from {where}: copy {url} there (fetched where there is network), or train without --pretrained"
        ) from None


def replace_classifier(model: nn.Module, num_classes: int) -> nn.Module:
    """Swap the last Linear layer of a torchvision classifier for one with ``num_classes`` outputs."""
    name = next((n for n, m in reversed(list(model.named_modules())) if isinstance(m, nn.Linear)), None)
    if name is None:
        raise ValueError(f"{type(model).__name__}: no Linear classifier head to replace")
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, attr)
    setattr(parent, attr, nn.Linear(old.in_features, num_classes))
    return model


def torchvision_model(arch: str, num_classes: int, pretrained: bool = False) -> nn.Module:
    import torchvision

    if arch not in torchvision.models.list_models(module=torchvision.models):
        raise ValueError(f"unknown --arch {arch!r}: use resnet_c or a torchvision classification model name")
    if not pretrained:
        return torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
    return replace_classifier(pretrained_torchvision_model(arch), num_classes)


def build_model(desc: str, num_classes: int, arch: str = DEFAULT_ARCH, width: float = FULL_WIDTH,
                pretrained: bool = False, bn_stats: str = SHARED_BN_STATS) -> nn.Module:
    """A descriptor's name -> a single-image model; a fusion name ('all': Fuse5 over the five images in
    FUSION_ORDER; 'all-GD-JDD-JVD') -> FuseN over its inputs."""
    check_descriptor(desc, allow_fusion=True)
    if is_fused(desc):
        if arch != DEFAULT_ARCH:
            raise ValueError(f"-desc all needs --arch {DEFAULT_ARCH} (Fuse5), got {arch!r}")
        return FuseN(num_classes, width, bn_stats, fused_inputs(desc))
    if arch == DEFAULT_ARCH:
        if pretrained:
            raise ValueError(f"--pretrained has no weights for {DEFAULT_ARCH} (it is trained from scratch)")
        return ResNet_c(num_classes, width)
    return torchvision_model(arch, num_classes, pretrained)


__all__ = ["ChunkedBatchNorm2d", "ResBlock", "ResNet_c", "FuseN", "Fuse5", "build_model", "DESCRIPTORS", "DEFAULT_ARCH",
           "WeightsUnavailableError"]
