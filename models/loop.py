"""One epoch of training and one evaluation pass, on the run's device and precision: batches to the
device, autocast (bfloat16 or float16 with a GradScaler), sums over ranks; Ctrl-C within seconds
while the main thread is inside one long call into torch (``prompt_interrupt``)."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from common.errors import INTERRUPTED_STATUS
from common.notices import notice_once
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


def image_bar(loader, desc: str, opts: RunOptions) -> tqdm:
    """A progress bar counted in images (the loader's batches may differ in size): tqdm shows
    'images/s', or 's/image' below one image a second (a full-width network on the CPU)."""
    try:
        total = len(loader.sampler)
        if opts.max_steps is not None and loader.batch_size:
            total = min(total, opts.max_steps * loader.batch_size)
    except (AttributeError, TypeError):   # a loader without a sized sampler
        total = None
    return tqdm(total=total, desc=desc, unit="image", leave=False, disable=not opts.progress, dynamic_ncols=True)


def train_one_epoch(model: nn.Module, criterion: nn.Module, optimizer: torch.optim.Optimizer, loader,
                    device: torch.device, epoch: int, opts: RunOptions = RunOptions(),
                    scaler: torch.amp.GradScaler | None = None) -> dict:
    """One pass over ``loader``; mean loss and accuracy over all ranks, images seen, seconds (and
    a fusion network's mean head losses)."""
    model.train()
    loss_sum = torch.zeros((), device=device)
    heads_sum = torch.zeros(0, device=device, dtype=torch.float64)   # sized by the first batch's heads
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen, start = 0, time.perf_counter()
    bar = image_bar(loader, f"epoch {epoch}", opts)
    for step, (images, labels) in enumerate(loader):
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
            heads_sum = heads.double() * labels.shape[0] + (heads_sum if len(heads_sum) else 0)
        correct += (main_logits(outputs).argmax(1) == labels).sum()
        seen += labels.shape[0]
        bar.update(labels.shape[0])
        if opts.progress and step % opts.refresh == 0:
            bar.set_postfix(loss=f"{loss_sum.item() / seen:.4f}", acc=f"{correct.item() / seen:.3f}")
    bar.close()
    sums = all_reduce_sum(torch.cat([torch.stack([loss_sum.double(), correct.double(),
                                                  torch.tensor(float(seen), device=device, dtype=torch.float64)]),
                                     heads_sum]))
    n = max(sums[2].item(), 1.0)
    heads = (sums[3:] / n).tolist() if len(heads_sum) else None
    return {"loss": sums[0].item() / n, "acc": sums[1].item() / n, "images": int(sums[2].item()),
            "seconds": time.perf_counter() - start, "heads": heads}


@torch.no_grad()
def evaluate(model: nn.Module, criterion: nn.Module, loader, device: torch.device,
             opts: RunOptions = RunOptions(), desc: str = "test") -> dict:
    """Loss and accuracy of the main output over ``loader``, summed over all ranks."""
    model.eval()
    sums = torch.zeros(3, device=device, dtype=torch.float64)  # loss*n, correct, n
    bar = image_bar(loader, desc, RunOptions(progress=opts.progress))
    for images, labels in loader:
        outputs, loss, labels = forward_loss(model, criterion, images, labels, device, opts)
        bar.update(labels.shape[0])
        sums += torch.stack([loss.double() * labels.shape[0],
                             (main_logits(outputs).argmax(1) == labels).sum().double(),
                             torch.tensor(labels.shape[0], device=device, dtype=torch.float64)])
    bar.close()
    sums = all_reduce_sum(sums)
    n = max(sums[2].item(), 1.0)
    return {"loss": sums[0].item() / n, "acc": sums[1].item() / n, "n": int(sums[2].item())}


def pick_device(gpu: int, info_local_rank: int | None = None, log=print) -> torch.device:
    """cuda:<gpu> (cuda:<LOCAL_RANK> under torchrun), or the CPU with a one-line notice."""
    if gpu < 0 or not torch.cuda.is_available():
        notice_once(f"notice: running on CPU ({'-gpu -1' if gpu < 0 else 'no CUDA device available'})", log)
        return torch.device("cpu")
    return torch.device("cuda", info_local_rank if info_local_rank is not None else gpu)


def amp_setup(device: torch.device, amp: bool, log=print) -> tuple[torch.dtype | None, torch.amp.GradScaler | None]:
    """bfloat16 autocast where supported (no loss scaling needed), else float16 with a GradScaler."""
    if not amp:
        return None, None
    if device.type != "cuda":
        notice_once("notice: --amp is for CUDA; training in float32 on the CPU", log)
        return None, None
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, None
    return torch.float16, torch.amp.GradScaler("cuda")


INTERRUPT_GRACE = 2.0   # seconds Python has to act on Ctrl-C itself before the process is ended
_STOP = b"\0"           # not a signal number: tells the watcher its context has ended
_watched: list[int] = []   # the watcher's pipe (read, write) while prompt_interrupt is on


def _forget_watch_in_child() -> None:
    """A forked child (a DataLoader worker) neither writes its signals into the parent's pipe
    (its parent would count them as its own) nor keeps the pipe open."""
    if _watched:
        try:
            signal.set_wakeup_fd(-1)
        except ValueError:   # forked from another thread: it has no wakeup fd of its own to clear
            pass
        for fd in _watched:
            os.close(fd)
        _watched.clear()


os.register_at_fork(after_in_child=_forget_watch_in_child)


@contextmanager
def prompt_interrupt(line: str, grace: float | None = None) -> Iterator[None]:
    """Ctrl-C within seconds, also while the main thread is inside one long call into torch.

    Python acts on a signal only between its own instructions, and on the CPU one backward pass of
    a full-width network is a single call of 30 s (ResNet_c, batch 32, 2 cores; Fuse5's five
    times that), whose slowest operation alone takes 5-10 s. A thread woken by the signal itself
    (``signal.set_wakeup_fd``) gives Python ``grace`` seconds to raise KeyboardInterrupt as usual;
    if it has not, the thread prints ``line`` (the front end's one interrupted line) and ends the
    process with status 130. Nothing saved is lost: the epoch under way is lost either way, every
    file is written atomically (a hidden temp file at most is left) and the locks are the
    kernel's, released with the process. Does nothing off the main thread, where Ctrl-C is not
    Python's KeyboardInterrupt (ignored: nohup), or where the wakeup fd is taken. ``grace``
    default: INTERRUPT_GRACE."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    if (theirs := signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)) != -1:   # leave it to its owner
        signal.set_wakeup_fd(theirs)
        os.close(read_fd)
        os.close(write_fd)
        yield
        return
    handled = [0]

    def on_sigint(signum, frame):
        handled[0] += 1
        raise KeyboardInterrupt

    wait = INTERRUPT_GRACE if grace is None else grace
    watcher = threading.Thread(target=_watch, args=(read_fd, handled, line, wait), name="Ctrl-C", daemon=True)
    _watched[:] = [read_fd, write_fd]
    signal.signal(signal.SIGINT, on_sigint)
    watcher.start()
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.set_wakeup_fd(-1)
        os.write(write_fd, _STOP)
        watcher.join()
        _watched.clear()
        os.close(read_fd)
        os.close(write_fd)


def _watch(read_fd: int, handled: list[int], line: str, grace: float) -> None:
    """prompt_interrupt's thread: for each SIGINT, wait ``grace`` seconds for Python's handler to
    have run as often; if it has not, end the process as Ctrl-C's one line says."""
    received = 0
    while (data := os.read(read_fd, 64)) and _STOP not in data:
        received += data.count(signal.SIGINT)
        deadline = time.monotonic() + grace
        while handled[0] < received and time.monotonic() < deadline:
            time.sleep(0.05)
        if handled[0] < received:
            try:
                sys.stdout.flush()   # the epochs' lines printed so far
                print(line, file=sys.stderr, flush=True)
            finally:
                os._exit(INTERRUPTED_STATUS)
