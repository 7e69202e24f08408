"""What a rerun of a training does: the settings a checkpoint records (RUN_KEYS), how two records
differ, and the plan for ``<prefix>_last.tar`` (fresh, finished: skip, resume exactly, or
mismatch: refuse, naming every differing setting)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from descriptors import provenance
from skeletons.datasets import class_names
from skeletons.reading import MODES

from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, read_settings, restore_rng_states
from .names import LAST_SUFFIX, run_files
from .config import IMAGES, SKELETONS, TrainConfig
from .run_data import DATA_FIELDS, LATER_DATA_FIELDS

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
# Recorded, not compared: --epochs may grow to continue a run; the class names travel with the model
# (test, predict, export and ensemble compare them with their data's); their labels are in "data".
INFO_KEYS = ("source", "epochs", "class_names")
WAYS_OUT = "start over with --overwrite (removes this run's checkpoints and log) or use another -ckpt folder"

def run_settings(args, *, num_classes: int, mode: str, img_size: int, data: dict,
                 amp_dtype: torch.dtype | None, world_size: int, layout: dict | None = None,
                 augment: dict | None = None, source: str = IMAGES) -> dict:
    """What a checkpoint records: RUN_KEYS, as this run really trains (mode, layout and data from
    the folders; layout None for folders that record none)."""
    return {"dataset": args.dataset, "protocol": args.protocol, "descriptor": args.desc, "num_classes": num_classes,
            "arch": args.arch, "width": args.width, "bn_stats": args.bn_stats,
            "pretrained": bool(args.pretrained), "mode": mode, "img_size": int(img_size), "layout": layout,
            "lr": args.lr,
            "batch_size": args.batch_size, "world_size": world_size, "seed": args.seed,
            "label_smoothing": args.label_smoothing, "val_fraction": args.val_fraction, "max_steps": args.max_steps,
            "amp": None if amp_dtype is None else str(amp_dtype).removeprefix("torch."), "augment": augment,
            "data": data, "source": source, "epochs": args.epochs,
            "class_names": list(class_names(args.dataset))}


# The train.py flag of each recorded setting a suggested command must carry over (docs/WORKFLOW.md).
SETTING_FLAGS = {"arch": "--arch", "width": "--width", "bn_stats": "--bn-stats", "mode": "--mode", "lr": "--lr",
                 "batch_size": "--batch-size", "epochs": "--epochs", "seed": "--seed", "val_fraction": "--val-fraction",
                 "label_smoothing": "--label-smoothing"}


def settings_flags(settings: dict) -> str:
    """' --width 0.0625 --lr 0.001 ...': the train.py flags that give a new run the recorded
    run's settings, where they are not train.py's defaults (commands printed in messages)."""
    defaults = {**vars(TrainConfig()), "mode": MODES[0]}   # the mode folders without a record are taken in
    flags = [f"{flag} {settings[key]}" for key, flag in SETTING_FLAGS.items()
             if settings.get(key) is not None and settings[key] != defaults[key]]
    flags += ["--amp"] if settings.get("amp") else []
    flags += ["--augment"] if settings.get("augment") else []
    if settings.get("source") == SKELETONS:   # images made while training: their size is a setting (the
        flags.append(f"--img-size {settings['img_size']}")   # caller says where the sequences are)
    return "".join(f" {flag}" for flag in flags)


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
            differ = [d for d in descs if value(old, d) != value(new, d)
                      and not (name in LATER_DATA_FIELDS and value(old, d) in (NOT_RECORDED, None))]
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


def foreign_files(last_path: Path, settings: dict) -> list[str]:
    """'<file>: why' for each checkpoint of the run's name, beside a missing _last.tar, that a
    fresh run would overwrite though it was not made with these settings (another run's, the
    release's weights, unreadable). Ones with these very settings are a run killed before it
    wrote its first _last.tar: starting again replaces them with the same."""
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
    model.load_state_dict(ckpt.state_dict)
    optimizer.load_state_dict(ckpt.raw["optimizer"])
    scheduler.load_state_dict(ckpt.raw["scheduler"])
    if scaler is not None and "scaler" in ckpt.raw:
        scaler.load_state_dict(ckpt.raw["scaler"])
    if "rng" in ckpt.raw:
        restore_rng_states(ckpt.raw["rng"])
    return ckpt.epoch + 1, ckpt.best_acc, list(ckpt.raw.get("history", []))
