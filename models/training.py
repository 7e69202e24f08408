"""Training as released, written once: schedule, soft targets, the 8-term Fuse5 loss,
train_one_epoch / evaluate, distributed helpers (torchrun env vars), logs and checkpoint rotation,
what a run records (the folders' provenance, its settings) and what a rerun does (plan_run:
skip a finished run, resume an unfinished one, refuse other settings).
"""
from __future__ import annotations

import csv
import io
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from descriptors import provenance
from common.atomic import write_text_atomic
from skeletons.datasets import get_dataset
from descriptors.names import FUSION

if TYPE_CHECKING:
    from .checkpoint import Checkpoint

SOFT_ON, SOFT_OFF = 0.8, 0.1  # the release's targets: not renormalised (they sum to 0.8 + 0.1 (C-1))
NTU_HALVING_EPOCHS = 3


# ----------------------------------------------------------------------------- schedule and loss
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


def total_loss(outputs, labels: torch.Tensor, criterion: nn.Module) -> torch.Tensor:
    """One CE for a single model; for Fuse5 the sum of 8 (main, five single, g12, g345)."""
    if not isinstance(outputs, dict):
        return criterion(outputs, labels)
    heads = [outputs["main"], *outputs["single"], outputs["g12"], outputs["g345"]]
    return sum(criterion(h, labels) for h in heads)


# ----------------------------------------------------------------------------- loops
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
    """One pass over ``loader``; mean loss and accuracy over all ranks, images seen, seconds."""
    model.train()
    loss_sum = torch.zeros((), device=device)
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
        correct += (main_logits(outputs).argmax(1) == labels).sum()
        seen += labels.shape[0]
        if opts.progress and step % opts.refresh == 0:
            bar.set_postfix(loss=f"{loss_sum.item() / seen:.4f}", acc=f"{correct.item() / seen:.3f}")
    bar.close()
    sums = all_reduce_sum(torch.stack([loss_sum.double(), correct.double(),
                                       torch.tensor(float(seen), device=device, dtype=torch.float64)]))
    n = max(sums[2].item(), 1.0)
    return {"loss": sums[0].item() / n, "acc": sums[1].item() / n, "images": int(sums[2].item()),
            "seconds": time.perf_counter() - start}


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


# ----------------------------------------------------------------------------- distributed
@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(use_cuda: bool) -> DistInfo:
    """Join the process group when torchrun's RANK / WORLD_SIZE / LOCAL_RANK are set (nccl on CUDA, gloo on CPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    if use_cuda:
        torch.cuda.set_device(info.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return info


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
    return t


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard(indices: list[int], info: DistInfo) -> list[int]:
    """This rank's share of an evaluation set, without the padding DistributedSampler adds."""
    return indices[info.rank::info.world_size]


def holdout_split(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, held-out) indices: a seeded random ``fraction`` of the training split held out."""
    if not 0 < fraction < 1:
        raise ValueError(f"--val-fraction must be between 0 and 1, got {fraction}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    k = max(1, round(n * fraction))
    if k >= n:
        raise ValueError(f"--val-fraction {fraction} leaves no training images out of {n}")
    return sorted(order[k:]), sorted(order[:k])


# ----------------------------------------------------------------------------- logs and files
LOG_FIELDS = ("epoch", "lr", "train_loss", "train_acc", "val_acc", "test_loss", "test_acc", "best_acc",
              "seconds", "images_per_s")


def write_csv_log(path: str | Path, rows: list[dict]) -> None:
    """Rewrite the whole (small) CSV log atomically, so a resumed run's log has no duplicate epochs."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, LOG_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue(), newline="")   # csv writes its own \r\n


def epoch_checkpoints(ckpt_dir: str | Path, prefix: str) -> dict[int, Path]:
    """{epoch: path} of the <prefix>_<epoch>_epoch.tar files in a folder."""
    pattern = re.compile(rf"^{re.escape(prefix)}_(\d+)_epoch\.tar$")
    found = ((pattern.match(p.name), p) for p in Path(ckpt_dir).glob(f"{prefix}_*_epoch.tar"))
    return {int(m.group(1)): p for m, p in found if m}


def prune_checkpoints(ckpt_dir: str | Path, prefix: str, keep_last: int | None) -> None:
    """Keep the ``keep_last`` newest per-epoch files (best and last files are separate and kept)."""
    if not keep_last:
        return
    files = epoch_checkpoints(ckpt_dir, prefix)
    for epoch in sorted(files)[:-keep_last]:
        files[epoch].unlink(missing_ok=True)


def format_epoch_line(row: dict) -> str:
    val = f" val {row['val_acc']:.4f}" if row.get("val_acc") not in (None, "") else ""
    return (f"epoch {row['epoch']:3d} lr {row['lr']:.3g} train loss {row['train_loss']:.4f} "
            f"acc {row['train_acc']:.4f}{val} test loss {row['test_loss']:.4f} acc {row['test_acc']:.4f} "
            f"best {row['best_acc']:.4f} ({row['seconds']:.0f} s, {row['images_per_s']:.0f} img/s)")


# ----------------------------------------------------------------------------- device and precision
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


# ----------------------------------------------------------------------------- what a run trains on
DATA_FIELDS = ("fingerprint", "sources", "samples", "mode", "img_size", "layout")
AGREED_FIELDS = ("mode", "img_size", "layout")   # one value for all the folders a model reads


@dataclass(frozen=True)
class FolderData:
    """One descriptor folder a run reads, as its record says (mode and fingerprint None without one)."""
    part: str
    desc: str
    folder: Path
    facts: dict      # DATA_FIELDS
    remake: str      # the command that makes the folder again


def folder_data(ds) -> list[FolderData]:
    """The folders of a DescriptorImages split: the images trained on, and what the folder's record
    says (fingerprint, mode, img_size, layout); without a record (the release's) fingerprint, mode
    and layout are None and img_size is measured."""
    from descriptors.dataset import make_command

    records = getattr(ds, "provenance", None) or {}
    out = []
    for k, (desc, folder) in enumerate(zip(ds.descs, ds.folders)):
        record = records.get(desc) or {}
        facts = {"fingerprint": record.get("fingerprint"), "sources": record.get("sources"), "samples": len(ds),
                 "mode": record.get("mode"),
                 "img_size": ds.folder_image_size(k), "layout": record.get("layout")}
        out.append(FolderData(ds.part, desc, folder, facts, make_command(ds.dataset, ds.protocol, ds.part, ds.root)))
    return out


IMAGES, SKELETONS = "images", "skeletons"   # --source: descriptor folders, or images made while training


def skeleton_data(data, desc: str, img_size: int) -> list[FolderData]:
    """What a run from skeletons reads, as the descriptor folders of the same split would record it
    (the same fingerprints: the images are bit-equal)."""
    from descriptors.dataset import descriptor_selection

    descs, _ = descriptor_selection(desc)
    record = data.record(img_size)   # DATA_FIELDS are the same for every descriptor: one pass over the split
    facts = {k: record[k] for k in DATA_FIELDS}
    remake = f"the sequence files in {data.seq_dir}"
    return [FolderData(data.part, d, data.seq_dir, dict(facts), remake) for d in descs]


def check_image_size_flag(data, img_size: int | None) -> None:
    """--img-size chooses the size of images made from skeletons; with image folders it can only agree."""
    made = data.folder_image_size(0)
    if img_size is not None and img_size != made:
        raise ValueError(f"{data.folders[0]}: holds {made}-px images, --img-size {img_size} given; the size is "
                         f"chosen when the images are made (skels2desc --img-size), or train --source skeletons")


def augmentation(args, mode: str, from_skeletons: bool):
    """The run's skeleton augmentation (--augment), or None. Only on skeletons, and never in paper
    mode: paper mode reproduces the release, which trains without augmentation."""
    if not getattr(args, "augment", False):
        return None
    if not from_skeletons:
        raise ValueError("--augment transforms the skeletons, so it needs --source skeletons")
    if mode == "paper":
        raise ValueError("--augment is not part of the release's training: use it with --mode clean "
                         "(paper mode reproduces the release)")
    from skeletons.augment import Augment
    return Augment()


def agreed_pixels(folders: list[FolderData], mode_flag: str | None) -> tuple[str, int, dict | None, str | None]:
    """(mode, img_size, layout, notice or None) of the folders one run reads, train folders first.

    ValueError (one line) when two folders differ in mode, img_size or skeleton layout (a model
    tested on images made otherwise gives wrong answers), or when --mode contradicts the records.
    Folders without a record take the recorded folders' mode, else --mode, else "paper", and the
    notice says so; their layout is unknown (None), as is that of the release's folders.
    """
    for name in AGREED_FIELDS:
        known = [f for f in folders if f.facts[name] is not None]
        other = next((f for f in known if f.facts[name] != known[0].facts[name]), None)
        if other is not None:
            first = known[0]
            fix = (f"--{name.replace('_', '-')} {first.facts[name]} --overwrite" if name != "layout" else
                   "--overwrite, with the layout of the other folders")
            values = f"{provenance.shown(first.facts[name])} vs {provenance.shown(other.facts[name])}"
            raise ValueError(f"{first.folder} and {other.folder} differ in {name} ({values}); make them alike: "
                             f"{other.remake} {fix}")
    recorded = next((f for f in folders if f.facts["mode"] is not None), None)
    if recorded is not None and mode_flag and mode_flag != recorded.facts["mode"]:
        raise ValueError(f"{recorded.folder}: images are {recorded.facts['mode']} mode, --mode {mode_flag} given; "
                         f"remake them with: {recorded.remake} --mode {mode_flag} --overwrite, or drop --mode")
    mode = recorded.facts["mode"] if recorded is not None else mode_flag or "paper"
    layout = next((f.facts["layout"] for f in folders if f.facts["layout"] is not None), None)
    bare = [f for f in folders if f.facts["mode"] is None]
    notice = None
    if bare:
        more = f" and {len(bare) - 1} other folder(s)" if len(bare) > 1 else ""
        why = ("like the recorded folders" if recorded is not None else "as --mode says" if mode_flag
               else "the default; pass --mode clean if they were made in clean mode")
        notice = f"notice: {bare[0].folder}{more}: no record of how the images were made; assuming {mode} mode ({why})"
    return mode, folders[0].facts["img_size"], layout, notice


def data_record(folders: list[FolderData]) -> dict:
    """settings["data"]: {part: {desc: {fingerprint, samples, mode, img_size}}} as the folders say."""
    data: dict = {}
    for f in folders:
        data.setdefault(f.part, {})[f.desc] = dict(f.facts)
    return data


# ----------------------------------------------------------------------------- settings, reruns, resume
# The settings that decide what the optimiser does or which data it sees: a run continues only
# while all of them are equal, and a checkpoint records exactly these. Not among them: epochs (the
# schedule is a function of the epoch, so more epochs continue the same run), workers, cache,
# progress, the device and channels_last (memory layout). amp is among them: bf16/fp16 autocast
# changes the numbers of every step, so a run resumed in another precision would be neither an
# fp32 nor an amp run; it records the autocast dtype actually used (None: fp32, also when --amp
# was given on the CPU). max_steps too: a capped epoch sees only part of the data.
RUN_KEYS = ("dataset", "protocol", "descriptor", "num_classes", "arch", "width", "bn_stats", "pretrained", "mode",
            "img_size", "layout", "lr", "batch_size", "world_size", "seed", "label_smoothing", "val_fraction",
            "max_steps", "amp", "augment", "data")
NOT_RECORDED = "(not recorded)"
LATER_KEYS = {"augment": None}   # settings added later: what a checkpoint without them did (no augmentation)
# Recorded but not compared: training from skeletons or from the PNGs gives bit-equal images.
INFO_KEYS = ("source",)
WAYS_OUT = "start over with --overwrite (removes this run's checkpoints and log) or use another -ckpt folder"
LAST_SUFFIX, BEST_SUFFIX, LOG_SUFFIX = "_last.tar", "_epoch_best.tar", "_log.csv"


def run_settings(args, *, num_classes: int, mode: str, img_size: int, data: dict,
                 amp_dtype: torch.dtype | None, world_size: int, layout: dict | None = None,
                 augment: dict | None = None, source: str = IMAGES) -> dict:
    """What a checkpoint records: RUN_KEYS, as this run really trains (mode, layout and data from
    the folders; layout None for folders that record none)."""
    return {"dataset": args.dataset, "protocol": args.protocol, "descriptor": args.desc, "num_classes": num_classes,
            "arch": args.arch, "width": args.width, "bn_stats": getattr(args, "bn_stats", "shared"),
            "pretrained": bool(args.pretrained), "mode": mode, "img_size": int(img_size), "layout": layout,
            "lr": args.lr,
            "batch_size": args.batch_size, "world_size": world_size, "seed": args.seed,
            "label_smoothing": args.label_smoothing, "val_fraction": args.val_fraction, "max_steps": args.max_steps,
            "amp": None if amp_dtype is None else str(amp_dtype).removeprefix("torch."), "augment": augment,
            "data": data, "source": source}


def _show(value) -> str:
    if isinstance(value, dict):   # a layout record: its name and the start of its digest
        return provenance.shown(value)
    text = str(value)
    return text if len(text) <= 16 else text[:12] + "..."  # fingerprints: enough to tell them apart


def data_differences(recorded, now: dict) -> list[str]:
    """'data.<part>.<field> (<descs>): recorded -> now', one entry per split and field that differs."""
    if not isinstance(recorded, dict):
        return [f"data: {NOT_RECORDED} -> {', '.join(now)} folders' records"]
    out = []
    for part in [*now, *(p for p in recorded if p not in now)]:
        old, new = recorded.get(part) or {}, now.get(part) or {}
        descs = [*new, *(d for d in old if d not in new)]
        for name in DATA_FIELDS:
            def value(side: dict, desc: str):
                return (side.get(desc) or {}).get(name, NOT_RECORDED)
            differ = [d for d in descs if value(old, d) != value(new, d)]
            if differ:
                out.append(f"data.{part}.{name} ({' '.join(differ)}): {_show(value(old, differ[0]))} -> "
                           f"{_show(value(new, differ[0]))}")
    return out


def setting_differences(recorded: dict, now: dict) -> list[str]:
    """'name: recorded -> now' for every RUN_KEYS setting that differs."""
    out = []
    for key in RUN_KEYS:
        if key == "data":
            out += data_differences(recorded.get("data"), now.get("data") or {})
        else:
            unset = LATER_KEYS.get(key, NOT_RECORDED)
            if recorded.get(key, unset) != now.get(key, unset):
                out.append(f"{key}: {_show(recorded.get(key, unset))} -> {_show(now.get(key, unset))}")
    return out


def run_files(ckpt_dir: str | Path, prefix: str) -> list[Path]:
    """A run's files that exist: <prefix>_<N>_epoch.tar (by epoch), _epoch_best.tar, _last.tar, _log.csv."""
    folder = Path(ckpt_dir)
    files = [path for _, path in sorted(epoch_checkpoints(folder, prefix).items())]
    files += [folder / f"{prefix}{end}" for end in (BEST_SUFFIX, LAST_SUFFIX, LOG_SUFFIX)]
    return [p for p in files if p.is_file()]


def remove_run_files(ckpt_dir: str | Path, prefix: str) -> int:
    """--overwrite: delete a run's files (that prefix only); how many there were."""
    files = run_files(ckpt_dir, prefix)
    for path in files:
        path.unlink(missing_ok=True)
    return len(files)


def foreign_files(last_path: Path, settings: dict) -> list[str]:
    """'<file>: why' for each checkpoint of the run's name, beside a missing _last.tar, that a
    fresh run would overwrite though it was not made with these settings (another run's, the
    release's weights, unreadable). Ones with these very settings are a run killed before it
    wrote its first _last.tar: starting again replaces them with the same."""
    from .checkpoint import CheckpointError, read_settings

    out = []
    for path in run_files(last_path.parent, last_path.name.removesuffix(LAST_SUFFIX)):
        if path.suffix != ".tar":
            continue
        try:
            recorded = read_settings(path)
        except CheckpointError:
            out.append(f"{path.name}: unreadable")
            continue
        if recorded is None:
            out.append(f"{path.name}: not made by train.py (the authors' released weights?)")
        elif differ := setting_differences(recorded, settings):
            out.append(f"{path.name}: {differ[0]}{f' and {len(differ) - 1} more' if len(differ) > 1 else ''}")
    return out


@dataclass
class RunPlan:
    status: str             # "fresh" | "finished" | "resume" | "mismatch"
    last_epoch: int         # epochs that <prefix>_last.tar holds (0 without one)
    differences: list[str]  # mismatch: "name: recorded -> now", or "<file>: why" for files of another run
    path: Path              # <prefix>_last.tar
    checkpoint: Checkpoint | None = field(default=None, repr=False)  # the loaded _last.tar, for resuming


def plan_run(last_path: Path, settings: dict, epochs: int) -> RunPlan:
    """What rerunning a training with ``settings`` for ``epochs`` epochs does with ``<prefix>_last.tar``:
    fresh (none yet), finished (it reached ``epochs``: skip), resume (continue it exactly) or
    mismatch (it recorded other settings: refuse). Without a _last.tar, other checkpoints of
    the same name made otherwise are a mismatch too. CheckpointError when the file is unusable."""
    from .checkpoint import CheckpointError, load_checkpoint

    last_path = Path(last_path)
    if not last_path.is_file():
        foreign = foreign_files(last_path, settings)
        return RunPlan("mismatch" if foreign else "fresh", 0, foreign, last_path)
    try:
        ckpt = load_checkpoint(last_path)
    except CheckpointError as e:
        raise CheckpointError(f"{e}; {WAYS_OUT}") from None
    if ckpt.kind != "ours" or "optimizer" not in ckpt.raw:
        raise CheckpointError(f"{last_path}: not a resumable training checkpoint (no optimizer state); {WAYS_OUT}")
    done = int(ckpt.epoch or 0)
    differ = setting_differences(ckpt.settings, settings)
    status = "mismatch" if differ else "finished" if done >= epochs else "resume"
    return RunPlan(status, done, differ, last_path, ckpt)


def refusal(plan: RunPlan) -> str:
    """The one-line error for a mismatched plan: every differing setting, and the ways out."""
    if plan.checkpoint is None:
        shown = "; ".join(plan.differences[:3])
        more = f"; and {len(plan.differences) - 3} more" if len(plan.differences) > 3 else ""
        return (f"{plan.path.parent}: holds checkpoints of another run under this name and no {plan.path.name} "
                f"({shown}{more}); {WAYS_OUT}")
    return (f"{plan.path}: recorded other settings (recorded -> now: {', '.join(plan.differences)}); {WAYS_OUT}")


def finished_line(plan: RunPlan, epochs: int) -> str:
    asked = f"of {epochs}" if plan.last_epoch == epochs else f"(--epochs {epochs})"
    return f"already trained: {plan.path} reached epoch {plan.last_epoch} {asked}"


def resume_state(ckpt, model, optimizer, scheduler, scaler=None) -> tuple[int, float, list]:
    """Load a _last.tar Checkpoint into model/optimizer/scheduler/scaler/RNG; (next epoch, best, history)."""
    from .checkpoint import restore_rng_states

    model.load_state_dict(ckpt.state_dict)
    optimizer.load_state_dict(ckpt.raw["optimizer"])
    scheduler.load_state_dict(ckpt.raw["scheduler"])
    if scaler is not None and "scaler" in ckpt.raw:
        scaler.load_state_dict(ckpt.raw["scaler"])
    if "rng" in ckpt.raw:
        restore_rng_states(ckpt.raw["rng"])
    return ckpt.epoch + 1, ckpt.best_acc, list(ckpt.raw.get("history", []))


# ----------------------------------------------------------------------------- errors and defaults
def error_line(e: BaseException) -> str:
    """An expected error as one line. A DataLoader worker's error comes back re-raised as
    "Caught ValueError in DataLoader worker process 0. Original Traceback ...": keep the
    worker's own message (the last unindented "Type: message" line of the traceback)."""
    lines = str(e).splitlines()
    if any(line.startswith("Original Traceback") for line in lines):
        for i in range(len(lines) - 1, -1, -1):
            match = re.match(r"^[A-Za-z_][\w.]*: (.*)$", lines[i])
            if match:
                lines = [match.group(1), *lines[i + 1:]]
                break
    return " ".join(line.strip() for line in lines if line.strip())


CPU_NOTICE_PARAMETERS = 5e6   # above this, a CPU run takes days: say so and say what to use instead


def cpu_cost_notice(model: nn.Module, keep_last: int | None) -> str | None:
    """One line on what a large model costs on the CPU (checkpoint sizes, disk per epoch) and the
    settings the demo uses instead; None for small models."""
    params = sum(p.numel() for p in model.parameters())
    if params < CPU_NOTICE_PARAMETERS:
        return None
    model_mb = 4 * (params + sum(b.numel() for b in model.buffers())) / 1e6
    per_epoch = model_mb * 5          # the epoch's file, _last.tar (model + Adam's two moments), maybe best
    kept = model_mb * ((keep_last or 0) + 4) if keep_last else None
    disk = f"about {kept / 1e3:.1f} GB kept with --keep-last {keep_last}" if kept else "every epoch kept"
    return (f"notice: {params / 1e6:.1f} M parameters on the CPU train at about 1 image/s (measured on 2 cores); each epoch "
            f"writes up to {per_epoch:.0f} MB ({model_mb:.0f} MB a checkpoint; {disk}). On a CPU use --width 0.0625 "
            f"with 32-px images (skels2desc --img-size 32), as pipeline.py --demo does")





# ----------------------------------------------------------------------------- the whole run
def fit(args) -> dict:
    """train.py's whole run: data, plan (fresh / resume / skip / refuse), model, epochs, checkpoints, logs."""
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader, DistributedSampler, Subset

    from descriptors.dataset import DescriptorImages
    from descriptors.core import DEFAULT_IMG_SIZE
    from descriptors.skeleton_source import ImageMaker, SkeletonSequences, skeleton_loader
    from cli.options import default_protocol
    from descriptors.names import checkpoint_path, checkpoint_prefix

    from .checkpoint import CheckpointError, CheckpointWriteError, cause_text, save_checkpoint
    from .networks import build_model

    info = init_distributed(use_cuda=args.gpu >= 0 and torch.cuda.is_available())
    log = print if info.is_main else (lambda *a, **k: None)
    try:
        device = pick_device(args.gpu, info.local_rank if info.enabled else None, log)
        args.protocol = default_protocol(args.dataset, args.protocol)
        num_classes = get_dataset(args.dataset).num_classes

        from_skeletons = getattr(args, "source", IMAGES) == SKELETONS

        def load(part: str):
            if from_skeletons:
                return SkeletonSequences(args.dspath or get_dataset(args.dataset).seq_dir, args.dataset,
                                         args.protocol, part, args.mode or "paper", pack=args.cache)
            return DescriptorImages(args.despth, args.dataset, args.protocol, part, args.desc,
                                    cache=args.cache, uint8=True)

        if not info.is_main:
            barrier()  # rank 0 builds any --cache files first
        train_set, test_set = load("train"), load("test")
        if info.is_main:
            barrier()
        if from_skeletons:
            size = args.img_size or DEFAULT_IMG_SIZE
            folders = skeleton_data(train_set, args.desc, size) + skeleton_data(test_set, args.desc, size)
        else:
            check_image_size_flag(train_set, getattr(args, "img_size", None))
            folders = folder_data(train_set) + folder_data(test_set)
        mode, img_size, layout, notice = agreed_pixels(folders, args.mode)
        if notice:
            log(notice)
        augment = augmentation(args, mode, from_skeletons)
        amp_dtype, scaler = amp_setup(device, args.amp, log)
        settings = run_settings(args, num_classes=num_classes, mode=mode, img_size=img_size, layout=layout,
                                data=data_record(folders), amp_dtype=amp_dtype, world_size=info.world_size,
                                augment=augment.record() if augment is not None else None,
                                source=SKELETONS if from_skeletons else IMAGES)

        prefix = checkpoint_prefix(args.dataset, args.protocol, args.desc)
        last_path = checkpoint_path(args.ckpt, args.dataset, args.protocol, args.desc, "last")
        log_path = Path(args.ckpt) / f"{prefix}{LOG_SUFFIX}"
        plan = plan_run(last_path, settings, args.epochs)
        if args.overwrite:
            if info.is_main and (removed := remove_run_files(args.ckpt, prefix)):
                log(f"--overwrite: removed the {removed} file(s) of the earlier {prefix} run")
            barrier()
            plan = RunPlan("fresh", 0, [], last_path)
        elif plan.status == "mismatch":
            raise CheckpointError(refusal(plan))
        elif plan.status == "finished":
            log(finished_line(plan, args.epochs))
            return {"best_acc": plan.checkpoint.best_acc, "history": list(plan.checkpoint.raw.get("history", [])),
                    "prefix": prefix, "status": plan.status}

        fit_set, val_set = train_set, None
        if args.val_fraction:
            fit_idx, val_idx = holdout_split(len(train_set), args.val_fraction, args.seed)
            fit_set, val_set = Subset(train_set, fit_idx), Subset(train_set, val_idx)

        # The shuffle order depends only on (seed, epoch): a resumed run sees the same batches.
        sampler = DistributedSampler(fit_set, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=args.seed)
        loader_kw = {"batch_size": args.batch_size, "num_workers": args.workers,
                     "pin_memory": device.type == "cuda", "persistent_workers": args.workers > 0}
        if from_skeletons:   # images made batch by batch on the training device, bit-equal to the PNGs
            def maker(augment=None) -> ImageMaker:   # one per split: it keeps images by sample index
                return ImageMaker(args.desc, train_set.layout, mode, img_size, device, augment, seed=args.seed)

            train_loader = skeleton_loader(fit_set, maker(augment), sampler=sampler, **loader_kw)

            def eval_loader(data):
                return skeleton_loader(Subset(data, shard(list(range(len(data))), info)), maker(),
                                       shuffle=False, **loader_kw)
        else:
            train_loader = DataLoader(fit_set, sampler=sampler, **loader_kw)

            def eval_loader(data):
                return DataLoader(Subset(data, shard(list(range(len(data))), info)), shuffle=False, **loader_kw)

        test_loader = eval_loader(test_set)
        val_loader = eval_loader(val_set) if val_set is not None else None

        torch.manual_seed(args.seed)
        model = build_model(args.desc, num_classes, args.arch, args.width, args.pretrained,
                            getattr(args, "bn_stats", "shared")).to(device)
        channels_last = device.type == "cuda" and args.channels_last
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
        scheduler = make_scheduler(optimizer, args.dataset)
        criterion = make_criterion(args.label_smoothing)
        opts = RunOptions(amp_dtype, channels_last, progress=info.is_main and not args.no_progress,
                          max_steps=args.max_steps)

        start, best, history = 1, -1.0, []
        if plan.status == "resume":
            start, best, history = resume_state(plan.checkpoint, model, optimizer, scheduler, scaler)
            log(f"resuming {last_path} after epoch {plan.last_epoch}")
        elif any(p.suffix == ".tar" for p in run_files(args.ckpt, prefix)):  # killed before its first _last.tar
            log(f"notice: no {last_path.name}; starting {prefix} again from epoch 1 (its files have these settings)")
        if device.type == "cpu" and (notice := cpu_cost_notice(model, args.keep_last)):
            log(notice)
        train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
            if info.enabled else model
        log(f"training {prefix}: {len(fit_set)} train / {len(test_set)} test images"
            f"{f' / {len(val_set)} held out' if val_set is not None else ''}, {num_classes} classes, "
            f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, {info.world_size} process(es) on {device}")
        if args.label_smoothing is None:
            heads = 8 if args.desc == FUSION else 1
            log(f"note: the loss is a cross-entropy against the release's soft targets (0.8 / 0.1, which do not "
                f"sum to 1): its floor is {heads * soft_target_floor(num_classes):.1f}, not 0"
                + (" (Fuse5 sums 8 such losses)" if heads > 1 else ""))

        for epoch in range(start, args.epochs + 1):
            sampler.set_epoch(epoch)
            lr = optimizer.param_groups[0]["lr"]
            train = train_one_epoch(train_model, criterion, optimizer, train_loader, device, epoch, opts, scaler)
            scheduler.step()
            # evaluate the bare module: DDP's per-forward buffer broadcast would need equal batch counts
            val = evaluate(model, criterion, val_loader, device, opts, "val") if val_loader else None
            test = evaluate(model, criterion, test_loader, device, opts)
            score = (val or test)["acc"]  # best epoch: held-out part of train, else test as released
            improved = score > best
            best = max(best, score)
            row = {"epoch": epoch, "lr": lr, "train_loss": train["loss"], "train_acc": train["acc"],
                   "val_acc": val["acc"] if val else "", "test_loss": test["loss"], "test_acc": test["acc"],
                   "best_acc": best, "seconds": round(train["seconds"], 2),
                   "images_per_s": train["images"] / max(train["seconds"], 1e-9)}
            history.append(row)
            if info.is_main:
                common = {"model": model, "best_acc": best, "settings": settings, "epoch": epoch}
                try:
                    save_checkpoint(checkpoint_path(args.ckpt, args.dataset, args.protocol, args.desc, epoch),
                                    extra={"metrics": row}, **common)
                    if improved:
                        save_checkpoint(checkpoint_path(args.ckpt, args.dataset, args.protocol, args.desc, "best"),
                                        extra={"metrics": row}, **common)
                    save_checkpoint(last_path, optimizer=optimizer, scheduler=scheduler, with_rng=True,
                                    extra={"history": history, **({"scaler": scaler.state_dict()} if scaler else {})},
                                    **common)
                    write_csv_log(log_path, history)
                except (CheckpointWriteError, OSError) as e:  # a full disk: what was saved before stays usable
                    why = e if isinstance(e, CheckpointWriteError) else f"{log_path}: not written ({cause_text(e)})"
                    raise CheckpointWriteError(f"{why}; once fixed, rerun the same command: it continues from "
                                               f"the last epoch saved") from None
                prune_checkpoints(args.ckpt, prefix, args.keep_last)
                log(format_epoch_line(row))
            barrier()
        return {"best_acc": best, "history": history, "prefix": prefix, "status": plan.status}
    finally:
        cleanup_distributed()
