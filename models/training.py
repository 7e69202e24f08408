"""train.py's whole run (``fit``): data, plan (fresh / resume / skip / refuse), model, epochs, and
the checkpoints and log each epoch leaves. The pieces live by reason to change: the release's
recipe (recipe.py), the loop and precision (loop.py), torchrun (distributed.py), what a run reads
(run_data.py), what a rerun does (reruns.py), file names (names.py) and the log (logs.py).
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from common.atomic import writing_into
from common.errors import cause_text
from common.locks import folder_lock
from common.notices import notice_once
from descriptors.core import DEFAULT_IMG_SIZE
from descriptors.dataset import DescriptorImages, reading_splits
from descriptors.names import is_fused
from descriptors.skeleton_source import ImageMaker, SkeletonSequences, skeleton_loader
from skeletons.augment import Augment
from skeletons.datasets import PARTS, Split, default_protocol, get_dataset, presence_note
from .checkpoint import CheckpointError, CheckpointWriteError, save_checkpoint
from .config import IMAGES, SKELETONS, TrainConfig
from .curves import CurveWriter
from .distributed import DistInfo, barrier, cleanup_distributed, init_distributed, shard
from .logs import Ending, format_epoch_line, head_fields, log_fields, write_csv_log
from .loop import RunOptions, amp_setup, evaluate, pick_device, train_one_epoch
from .names import (BEST, LAST, checkpoint_path, checkpoint_prefix, log_path, prune_checkpoints, remove_run_files,
                    run_files, run_lock_path)
from .networks import build_model
from .recipe import holdout_split, make_criterion, make_scheduler, soft_target_floor
from .reruns import RunPlan, finished_line, plan_run, refusal, resume_state, run_settings
from .run_data import (DataChangedError, FolderData, agreed_pixels, augmentation, changed_data, check_image_size_flag,
                       data_record, folder_data, record_stamps, skeleton_data)


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
            f"writes up to {per_epoch:.0f} MB ({model_mb:.0f} MB a checkpoint; {disk}). On a CPU use --preset cpu "
            f"with 32-px images (skels2desc --img-size 32): the recipe of pipeline.py --demo")


@dataclass
class Run:
    """One training as fit() prepares it: what it reads, what it records, where its files go."""
    config: TrainConfig
    from_skeletons: bool
    train_set: Dataset
    test_set: Dataset
    mode: str
    img_size: int
    augment: Augment | None
    amp_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler | None
    settings: dict
    folders: list[FolderData]   # what the run reads, as it was when the run started
    stamps: dict                # its folders' records then (run_data.record_stamps)
    prefix: str
    last_path: Path
    log_path: Path


def load_parts(config: TrainConfig, from_skeletons: bool, info: DistInfo) -> tuple[Dataset, Dataset]:
    """The train and test parts: descriptor folders, or sequence files to make images from."""
    def load(part: str):
        if from_skeletons:
            return SkeletonSequences(config.dspath or get_dataset(config.dataset).seq_dir, config.dataset,
                                     config.protocol, part, config.mode or "paper", pack=config.cache)
        return DescriptorImages(config.despth, config.dataset, config.protocol, part, config.desc,
                                cache=config.cache, uint8=True)

    if not info.is_main:
        barrier()  # rank 0 builds any --cache files first
    parts = load("train"), load("test")
    if info.is_main:
        barrier()
    return parts


def prepare(config: TrainConfig, device: torch.device, info: DistInfo, log) -> Run:
    """The data a run reads, that its folders agree, and the settings its checkpoints record."""
    from_skeletons = config.source == SKELETONS
    train_set, test_set = load_parts(config, from_skeletons, info)
    if from_skeletons:
        size = config.img_size or DEFAULT_IMG_SIZE
        folders = skeleton_data(train_set, config.desc, size) + skeleton_data(test_set, config.desc, size)
    else:
        check_image_size_flag(train_set, config.img_size)
        folders = folder_data(train_set) + folder_data(test_set)
    mode, img_size, layout, notice = agreed_pixels(folders, config.mode)
    if notice:
        log(notice)
    augment = augmentation(config.augment, mode, from_skeletons)
    amp_dtype, scaler = amp_setup(device, config.amp, log)
    settings = run_settings(config, num_classes=get_dataset(config.dataset).num_classes, mode=mode,
                            img_size=img_size, layout=layout, data=data_record(folders), amp_dtype=amp_dtype,
                            world_size=info.world_size, augment=augment.record() if augment is not None else None,
                            source=SKELETONS if from_skeletons else IMAGES)
    prefix = checkpoint_prefix(config.dataset, config.protocol, config.desc)
    return Run(config, from_skeletons, train_set, test_set, mode, img_size, augment, amp_dtype, scaler, settings,
               folders, record_stamps(folders), prefix,
               checkpoint_path(config.ckpt, config.dataset, config.protocol, config.desc, LAST),
               log_path(config.ckpt, config.dataset, config.protocol, config.desc))


def decide(run: Run, info: DistInfo, log) -> RunPlan:
    """The rerun plan (docs/WORKFLOW.md): --overwrite starts over; other settings are refused."""
    config = run.config
    plan = plan_run(run.last_path, run.settings, config.epochs)
    if config.overwrite:
        if info.is_main and (removed := remove_run_files(config.ckpt, run.prefix)):
            log(f"--overwrite: removed the {removed} file(s) of the earlier {run.prefix} run")
        barrier()
        return RunPlan("fresh", 0, [], run.last_path)
    if plan.status == "mismatch":
        raise CheckpointError(refusal(plan))
    if plan.status == "finished":
        log(finished_line(plan, config.epochs))
    return plan


@dataclass
class Loaders:
    fit_set: Dataset
    val_set: Dataset | None
    sampler: DistributedSampler
    train: DataLoader
    test: DataLoader
    val: DataLoader | None


def make_loaders(run: Run, device: torch.device, info: DistInfo) -> Loaders:
    """The training loader (shuffled per (seed, epoch), so a resumed run sees the same batches), and
    this rank's share of the test and held-out parts."""
    config = run.config
    fit_set, val_set = run.train_set, None
    if config.val_fraction:
        fit_idx, val_idx = holdout_split(len(run.train_set), config.val_fraction, config.seed)
        fit_set, val_set = Subset(run.train_set, fit_idx), Subset(run.train_set, val_idx)
    sampler = DistributedSampler(fit_set, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                 seed=config.seed)
    loader_kw = {"batch_size": config.batch_size, "num_workers": config.workers,
                 "pin_memory": device.type == "cuda", "persistent_workers": config.workers > 0}

    def loader(data, augment=None, **kw) -> DataLoader:
        if not run.from_skeletons:
            return DataLoader(data, **kw, **loader_kw)
        # images made batch by batch on the training device, bit-equal to the PNGs; one maker per
        # split: it keeps images by sample index
        maker = ImageMaker(config.desc, run.train_set.layout, run.mode, run.img_size, device, augment,
                           seed=config.seed)
        return skeleton_loader(data, maker, **kw, **loader_kw)

    def eval_loader(data) -> DataLoader:
        return loader(Subset(data, shard(list(range(len(data))), info)), shuffle=False)

    return Loaders(fit_set, val_set, sampler, loader(fit_set, run.augment, sampler=sampler), eval_loader(run.test_set),
                   eval_loader(val_set) if val_set is not None else None)


@dataclass
class Model:
    """The network (bare, for evaluation and saving), what trains it (DDP-wrapped under torchrun) and
    its optimiser, schedule, loss and loop options."""
    model: nn.Module
    train_model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    criterion: nn.Module
    opts: RunOptions


def make_model(run: Run, device: torch.device, info: DistInfo) -> Model:
    """The seeded network on the device, Adam at the base rate, the release's schedule and loss."""
    config = run.config
    torch.manual_seed(config.seed)
    model = build_model(config.desc, run.settings["num_classes"], config.arch, config.width, config.pretrained,
                        config.bn_stats).to(device)
    channels_last = device.type == "cuda" and config.channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    opts = RunOptions(run.amp_dtype, channels_last, progress=info.is_main and not config.no_progress,
                      max_steps=config.max_steps)
    return Model(model, model, optimizer, make_scheduler(optimizer, config.dataset),
                 make_criterion(config.label_smoothing), opts)


def start_state(run: Run, plan: RunPlan, net: Model, log) -> tuple[int, float, list]:
    """(first epoch, best accuracy, history): a resumed run's, else a fresh start's."""
    if plan.status == "resume":
        start = resume_state(plan.checkpoint, net.model, net.optimizer, net.scheduler, run.scaler)
        log(f"resuming {run.last_path} after epoch {plan.last_epoch}")
        return start
    if any(p.suffix == ".tar" for p in run_files(run.config.ckpt, run.prefix)):  # killed before its first _last.tar
        log(f"notice: no {run.last_path.name}; starting {run.prefix} again from epoch 1 (its files have these settings)")
    return 1, -1.0, []


def announce(run: Run, loaders: Loaders, net: Model, device: torch.device, info: DistInfo, log) -> None:
    """What is trained, on what, where; what a CPU run costs; the loss floor of the soft targets."""
    config, num_classes = run.config, run.settings["num_classes"]
    # the notices hold for every model of a -desc list: said once per process
    if device.type == "cpu" and (notice := cpu_cost_notice(net.model, config.keep_last)):
        notice_once(notice, log)
    if note := presence_note({data.split: len(data) for data in (run.train_set, run.test_set)}):
        notice_once(note, log)
    held_out = f" / {len(loaders.val_set)} held out" if loaders.val_set is not None else ""
    unit = "sequences" if run.from_skeletons else "images"   # skeletons: the images are made batch by batch
    log(f"training {run.prefix}: {len(loaders.fit_set)} train / {len(run.test_set)} test {unit}{held_out}, "
        f"{num_classes} classes, {sum(p.numel() for p in net.model.parameters()) / 1e6:.2f} M parameters, "
        f"{info.world_size} process(es) on {device}")
    if config.label_smoothing is None:
        heads = len(head_fields(config.desc)) if is_fused(config.desc) else 1
        notice_once(f"note: the loss is a cross-entropy against the release's soft targets (0.8 / 0.1, which do not "
            f"sum to 1): its floor is {heads * soft_target_floor(num_classes):.1f}, not 0"
            + (f" (the fusion network sums {heads} such losses)" if heads > 1 else ""), log)


def run_epoch(epoch: int, run: Run, loaders: Loaders, net: Model, device: torch.device) -> tuple[dict, float]:
    """Train one epoch, step the schedule, evaluate: (the log row without best_acc, the score that
    picks the best epoch: held-out accuracy, else test accuracy as released)."""
    loaders.sampler.set_epoch(epoch)
    lr = net.optimizer.param_groups[0]["lr"]
    train = train_one_epoch(net.train_model, net.criterion, net.optimizer, loaders.train, device, epoch, net.opts,
                            run.scaler)
    net.scheduler.step()
    # evaluate the bare module: DDP's per-forward buffer broadcast would need equal batch counts
    val = evaluate(net.model, net.criterion, loaders.val, device, net.opts, "val") if loaders.val else None
    test = evaluate(net.model, net.criterion, loaders.test, device, net.opts)
    row = {"epoch": epoch, "lr": lr, "train_loss": train["loss"], "train_acc": train["acc"],
           "val_acc": val["acc"] if val else "", "test_loss": test["loss"], "test_acc": test["acc"],
           "best_acc": None, "seconds": round(train["seconds"], 2),
           "images_per_s": train["images"] / max(train["seconds"], 1e-9),
           **(dict(zip(head_fields(run.config.desc), train["heads"])) if train["heads"] else {})}
    return row, (val or test)["acc"]


def save_epoch(run: Run, net: Model, row: dict, history: list, improved: bool) -> None:
    """The epoch's checkpoint, the best one when it improved, _last.tar (everything a resume needs)
    and the log; a failed write leaves what was saved before usable."""
    config, epoch = run.config, row["epoch"]
    common = {"model": net.model, "best_acc": row["best_acc"], "settings": run.settings, "epoch": epoch}
    try:
        save_checkpoint(checkpoint_path(config.ckpt, config.dataset, config.protocol, config.desc, epoch),
                        extra={"metrics": row}, **common)
        if improved:
            save_checkpoint(checkpoint_path(config.ckpt, config.dataset, config.protocol, config.desc, BEST),
                            extra={"metrics": row}, **common)
        save_checkpoint(run.last_path, optimizer=net.optimizer, scheduler=net.scheduler, with_rng=True,
                        extra={"history": history, **({"scaler": run.scaler.state_dict()} if run.scaler else {})},
                        **common)
        write_csv_log(run.log_path, history, log_fields(run.config.desc))
    except (CheckpointWriteError, OSError) as e:  # a full disk
        why = e if isinstance(e, CheckpointWriteError) else f"{run.log_path}: not written ({cause_text(e)})"
        raise CheckpointWriteError(f"{why}; once fixed, rerun the same command: it continues from "
                                   f"the last epoch saved") from None
    prune_checkpoints(config.ckpt, run.prefix, config.keep_last)


@contextmanager
def holding(config: TrainConfig, info: DistInfo, log) -> Iterator[None]:
    """What a training holds while it runs: its checkpoints' lock (one training per run prefix: a
    second one names the first and exits, or waits with --wait; the main process takes it) and,
    reading descriptor folders, a shared lock on both splits (skels2desc cannot rewrite them)."""
    def on_wait(message: str) -> None:
        log(f"waiting: {message}", flush=True)

    prefix = checkpoint_prefix(config.dataset, config.protocol, config.desc)
    with ExitStack() as held:
        if info.is_main:   # its lock file is the first thing a run writes there: a folder it cannot write stops it now
            with writing_into(config.ckpt, "checkpoints", "choose another -ckpt, or make it writable"):
                held.enter_context(folder_lock(run_lock_path(config.ckpt, prefix), wait=config.wait,
                                               on_wait=on_wait))
        if config.source == IMAGES:
            splits = [Split.of(config.dataset, config.protocol, part) for part in PARTS]
            held.enter_context(reading_splits(config.despth, splits, config.wait, on_wait))
        yield


def check_data_unchanged(run: Run, epoch: int) -> None:
    """Stop, before saving an epoch, a training whose data changed under it: its checkpoints would
    record a provenance that is no longer true."""
    if change := changed_data(run.folders, run.stamps, {"train": run.train_set, "test": run.test_set}):
        saved = f"epoch {epoch - 1}" if epoch > 1 else "no epoch"
        raise DataChangedError(f"{change}; training stopped before saving epoch {epoch} ({saved} saved, with the "
                               f"data it was trained on); once the data is settled, train again with --overwrite")


def _quiet(*args, **kwargs) -> None:
    """The log of ranks other than 0."""


def fit(config: TrainConfig) -> dict:
    """train.py's whole run: data, plan (fresh / resume / skip / refuse), model, epochs, checkpoints, logs."""
    info = init_distributed(use_cuda=config.gpu >= 0 and torch.cuda.is_available())
    log = print if info.is_main else _quiet
    try:
        device = pick_device(config.gpu, info.local_rank if info.enabled else None, log)
        config.protocol = default_protocol(config.dataset, config.protocol)
        with holding(config, info, log):
            return train(config, device, info, log)
    finally:
        cleanup_distributed()


def ended(run: Run, plan: RunPlan, best: float, history: list, trained_from: int | None, started: float,
          log) -> dict:
    """fit()'s result, and the summary of how the training ended (logged): best and last epoch, the
    split that chose the best, time, images/s and the run's files."""
    ending = Ending(run.prefix, plan.status, history, best, run.config.val_fraction, trained_from,
                    time.perf_counter() - started, run_files(run.config.ckpt, run.prefix))
    for line in ending.lines():
        log(line)
    return {"best_acc": best, "history": history, "prefix": run.prefix, "status": plan.status, "ending": ending}


def train(config: TrainConfig, device: torch.device, info: DistInfo, log) -> dict:
    """fit() with its locks held: data, plan, model, epochs, saving."""
    started = time.perf_counter()
    run = prepare(config, device, info, log)
    plan = decide(run, info, log)
    if plan.status == "finished":
        return ended(run, plan, plan.checkpoint.best_acc, list(plan.checkpoint.raw.get("history", [])), None,
                     started, log)
    loaders = make_loaders(run, device, info)
    net = make_model(run, device, info)
    start, best, history = start_state(run, plan, net, log)
    if info.enabled:
        net.train_model = DistributedDataParallel(net.model, device_ids=[device.index] if device.type == "cuda"
                                                  else None)
    announce(run, loaders, net, device, info, log)
    curves = CurveWriter(config.ckpt, run.prefix, log) if info.is_main else None
    try:
        for epoch in range(start, config.epochs + 1):
            row, score = run_epoch(epoch, run, loaders, net, device)
            check_data_unchanged(run, epoch)
            improved = score > best
            best = row["best_acc"] = max(best, score)
            history.append(row)
            if info.is_main:
                save_epoch(run, net, row, history, improved)
                log(format_epoch_line(row))
                curves.update(history)
            barrier()
    finally:
        if curves is not None:
            curves.close()
    return ended(run, plan, best, history, start if start <= config.epochs else None, started, log)
