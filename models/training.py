"""train.py's whole run (``fit``): data, plan (fresh / resume / skip / refuse), model, epochs, and
the checkpoints and log each epoch leaves. The pieces live by reason to change: the release's
recipe (recipe.py), the loop and precision (loop.py), torchrun (distributed.py), what a run reads
(run_data.py), what a rerun does (reruns.py), file names (names.py) and the log (logs.py).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset

from common.errors import cause_text
from descriptors.core import DEFAULT_IMG_SIZE
from descriptors.dataset import DescriptorImages
from descriptors.names import FUSION
from descriptors.skeleton_source import ImageMaker, SkeletonSequences, skeleton_loader
from skeletons.datasets import default_protocol, get_dataset
from .checkpoint import CheckpointError, CheckpointWriteError, save_checkpoint
from .distributed import barrier, cleanup_distributed, init_distributed, shard
from .logs import format_epoch_line, write_csv_log
from .loop import RunOptions, amp_setup, evaluate, pick_device, train_one_epoch
from .names import LOG_SUFFIX, checkpoint_path, checkpoint_prefix, prune_checkpoints, remove_run_files, run_files
from .networks import build_model
from .recipe import holdout_split, make_criterion, make_scheduler, soft_target_floor
from .reruns import RunPlan, finished_line, plan_run, refusal, resume_state, run_settings
from .run_data import (IMAGES, SKELETONS, agreed_pixels, augmentation, check_image_size_flag, data_record,
                       folder_data, skeleton_data)


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


def fit(args) -> dict:
    """train.py's whole run: data, plan (fresh / resume / skip / refuse), model, epochs, checkpoints, logs."""
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
