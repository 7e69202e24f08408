"""The release's training recipe, written once (docs/METHOD.md §5): the learning-rate schedule, the
0.8 / 0.1 soft targets and their loss floor, the 8-term Fuse5 loss, and the held-out part of
train that may pick the best epoch instead of the test split."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from skeletons.datasets import get_dataset

from .names import GROUP_OUTPUTS

SOFT_ON, SOFT_OFF = 0.8, 0.1  # the release's targets: not renormalised (they sum to 0.8 + 0.1 (C-1))
NTU_HALVING_EPOCHS = 3

def lr_factor(dataset: str, epoch: int) -> float:
    """Multiplier of the base rate in 1-based ``epoch``: NTU (and custom datasets) 1 (1-5), 1/2 (6),
    1/4 (7), 1/8 (8-10), then halved every 3 epochs; NW-UCLA constant."""
    if get_dataset(dataset).constant_lr or epoch <= 5:
        return 1.0
    if epoch <= 7:
        return 0.5 ** (epoch - 5)
    return 0.5 ** (3 + (epoch - 8) // NTU_HALVING_EPOCHS)


def make_scheduler(optimizer: torch.optim.Optimizer, dataset: str) -> torch.optim.lr_scheduler.LambdaLR:
    """Stepped once per epoch; before the first step the rate is that of epoch 1."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda done: lr_factor(dataset, done + 1))


def soft_targets(labels: torch.Tensor, num_classes: int, on: float = SOFT_ON, off: float = SOFT_OFF) -> torch.Tensor:
    targets = torch.full((labels.shape[0], num_classes), off, device=labels.device)
    return targets.scatter_(1, labels[:, None], on)


def soft_target_floor(num_classes: int, on: float = SOFT_ON, off: float = SOFT_OFF) -> float:
    """The lowest loss the release's soft targets allow: they do not sum to 1, so the cross-entropy
    is smallest at q = t / sum(t), where it is -sum(t log q) (26.5 for 60 classes, not 0)."""
    total = on + off * (num_classes - 1)
    return -(on * math.log(on / total) + off * (num_classes - 1) * math.log(off / total))


class SoftTargetCrossEntropy(nn.Module):
    """Cross-entropy against the release's 0.8 / 0.1 probability targets."""

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), soft_targets(labels, logits.shape[1]))


def make_criterion(label_smoothing: float | None = None) -> nn.Module:
    """The release's soft targets, or standard label smoothing when a value is given."""
    if label_smoothing is None:
        return SoftTargetCrossEntropy()
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)


def main_logits(outputs) -> torch.Tensor:
    return outputs["main"] if isinstance(outputs, dict) else outputs


def fused_heads(outputs: dict) -> list[torch.Tensor]:
    """A fusion network's outputs in the order of its loss terms (models.names.fused_outputs; Fuse5's
    eight, the log's HEAD_FIELDS): main, one per descriptor, then the group heads it has."""
    return [outputs["main"], *outputs["single"], *(outputs[g] for g in GROUP_OUTPUTS if g in outputs)]


def total_loss(outputs, labels: torch.Tensor, criterion: nn.Module) -> torch.Tensor:
    """One CE for a single model; for a fusion network the sum over its heads (Fuse5: 8: main, five
    single, g12, g345)."""
    if not isinstance(outputs, dict):
        return criterion(outputs, labels)
    return sum(criterion(h, labels) for h in fused_heads(outputs))


@torch.no_grad()
def head_losses(outputs, labels: torch.Tensor, criterion: nn.Module) -> torch.Tensor | None:
    """A fusion network's loss terms (detached, for the log and the curves); None for a single model."""
    if not isinstance(outputs, dict):
        return None
    return torch.stack([criterion(h.detach().float(), labels) for h in fused_heads(outputs)])



def holdout_split(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, held-out) indices: a seeded random ``fraction`` of the training split held out."""
    if not 0 < fraction < 1:
        raise ValueError(f"--val-fraction must be between 0 and 1, got {fraction}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    k = max(1, round(n * fraction))
    if k >= n:
        raise ValueError(f"--val-fraction {fraction} leaves no training images out of {n}")
    return sorted(order[k:]), sorted(order[:k])

