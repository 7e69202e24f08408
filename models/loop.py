"""One epoch of training and one evaluation pass, on the run's device and precision: batches to the
device, autocast (bfloat16 or float16 with a GradScaler), sums over ranks."""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from .distributed import all_reduce_sum
from .recipe import head_losses, main_logits, total_loss


def to_device(images, device: torch.device, channels_last: bool = False):
    """uint8 or float batch (or tuple of five) -> float 0..255 on ``device``."""
    if isinstance(images, (list, tuple)):
        return [to_device(x, device, channels_last) for x in images]
    x = images.to(device, non_blocking=True).float()
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@dataclass
class RunOptions:
    amp_dtype: torch.dtype | None = None   # autocast dtype on CUDA, None = fp32
    channels_last: bool = False
    progress: bool = True                  # tqdm bar (rank 0 only)
    max_steps: int | None = None           # stop an epoch early (smoke runs, benchmarks)
    refresh: int = 20                      # steps between bar updates (each one syncs the GPU)


def _autocast(device: torch.device, opts: RunOptions):
    return torch.autocast(device.type, dtype=opts.amp_dtype, enabled=opts.amp_dtype is not None)


def forward_loss(model: nn.Module, criterion: nn.Module, images, labels: torch.Tensor, device: torch.device,
                 opts: RunOptions):
    """A batch on the device through the model under the run's autocast: (outputs, loss, labels on device)."""
    images, labels = to_device(images, device, opts.channels_last), labels.to(device, non_blocking=True)
    with _autocast(device, opts):
        outputs = model(images)
        return outputs, total_loss(outputs, labels, criterion), labels


def train_one_epoch(model: nn.Module, criterion: nn.Module, optimizer: torch.optim.Optimizer, loader,
                    device: torch.device, epoch: int, opts: RunOptions = RunOptions(),
                    scaler: torch.amp.GradScaler | None = None) -> dict:
    """One pass over ``loader``; mean loss and accuracy over all ranks, images seen, seconds (and
    Fuse5's eight mean head losses)."""
    model.train()
    loss_sum = torch.zeros((), device=device)
    heads_sum = torch.zeros(8, device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen, start = 0, time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=not opts.progress, dynamic_ncols=True)
    for step, (images, labels) in enumerate(bar):
        if opts.max_steps is not None and step >= opts.max_steps:
            break
        outputs, loss, labels = forward_loss(model, criterion, images, labels, device, opts)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        loss_sum += loss.detach() * labels.shape[0]
        if (heads := head_losses(outputs, labels, criterion)) is not None:
            heads_sum += heads.double() * labels.shape[0]
        correct += (main_logits(outputs).argmax(1) == labels).sum()
        seen += labels.shape[0]
        if opts.progress and step % opts.refresh == 0:
            bar.set_postfix(loss=f"{loss_sum.item() / seen:.4f}", acc=f"{correct.item() / seen:.3f}")
    bar.close()
    sums = all_reduce_sum(torch.cat([torch.stack([loss_sum.double(), correct.double(),
                                                  torch.tensor(float(seen), device=device, dtype=torch.float64)]),
                                     heads_sum]))
    n = max(sums[2].item(), 1.0)
    heads = (sums[3:] / n).tolist() if heads_sum.any() else None
    return {"loss": sums[0].item() / n, "acc": sums[1].item() / n, "images": int(sums[2].item()),
            "seconds": time.perf_counter() - start, "heads": heads}


@torch.no_grad()
def evaluate(model: nn.Module, criterion: nn.Module, loader, device: torch.device,
             opts: RunOptions = RunOptions(), desc: str = "test") -> dict:
    """Loss and accuracy of the main output over ``loader``, summed over all ranks."""
    model.eval()
    sums = torch.zeros(3, device=device, dtype=torch.float64)  # loss*n, correct, n
    for images, labels in tqdm(loader, desc=desc, leave=False, disable=not opts.progress, dynamic_ncols=True):
        outputs, loss, labels = forward_loss(model, criterion, images, labels, device, opts)
        sums += torch.stack([loss.double() * labels.shape[0],
                             (main_logits(outputs).argmax(1) == labels).sum().double(),
                             torch.tensor(labels.shape[0], device=device, dtype=torch.float64)])
    sums = all_reduce_sum(sums)
    n = max(sums[2].item(), 1.0)
    return {"loss": sums[0].item() / n, "acc": sums[1].item() / n, "n": int(sums[2].item())}


def pick_device(gpu: int, info_local_rank: int | None = None, log=print) -> torch.device:
    """cuda:<gpu> (cuda:<LOCAL_RANK> under torchrun), or the CPU with a one-line notice."""
    if gpu < 0 or not torch.cuda.is_available():
        log(f"notice: running on CPU ({'-gpu -1' if gpu < 0 else 'no CUDA device available'})")
        return torch.device("cpu")
    return torch.device("cuda", info_local_rank if info_local_rank is not None else gpu)


def amp_setup(device: torch.device, amp: bool, log=print) -> tuple[torch.dtype | None, torch.amp.GradScaler | None]:
    """bfloat16 autocast where supported (no loss scaling needed), else float16 with a GradScaler."""
    if not amp:
        return None, None
    if device.type != "cuda":
        log("notice: --amp is for CUDA; training in float32 on the CPU")
        return None, None
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, None
    return torch.float16, torch.amp.GradScaler("cuda")
