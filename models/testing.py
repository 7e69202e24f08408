"""test.py's work: find the checkpoints asked for, check they read images made as their training
images were, run them on the test split, score them honestly (models/evaluation.py), and write
the results JSON, the confusion matrix PNG and the paper table."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from descriptors.core import DEFAULT_IMG_SIZE
from descriptors.dataset import DescriptorImages, SampleInfo, make_command, reading_splits
from descriptors.skeleton_source import ImageMaker, SkeletonSequences, skeleton_loader
from models import ablation, evaluation as ev
from models.checkpoint import load_model, read_settings
from models.config import DEFAULT_ARCH, IMAGES, TestConfig
from models.inference import split_checkpoints, train_command as model_train_command
from models.reruns import settings_flags
from models.provenance import RELEASE_NOTICE, check_against_folder, check_consistent, check_layout, check_role
from models.loop import pick_device
from common.atomic import write_text_atomic
from common.notices import notice_once
from skeletons.datasets import Split, class_names, default_protocol, get_dataset, presence_note
from skeletons.unpacked import origin_fields
from descriptors.names import FUSION, FUSION_ORDER, check_descriptor, fused_inputs, is_fused, needed_descriptors
from models import scores
from models.logs import last_logged_epoch
from models.recipe import holdout_split
from models.names import BEST, checkpoint_prefix, log_path


# Said once per process however many -desc names one command evaluates; the results JSON names
# each checkpoint's kind.
RELEASE_NOTE = RELEASE_NOTICE.format(names='checkpoints of the release (kind "release" in the results JSON)')


def train_command(config: TestConfig, desc: str, settings: dict | None = None) -> str:
    """The train.py command of one model, where this evaluation reads, with ``settings`` (another
    model's recorded ones) carried over so that the models can be fused."""
    where = (f" --source skeletons -dspath {config.dspath or get_dataset(config.dataset).seq_dir}"
             if config.source != IMAGES else f" -despth {config.despth}")
    return model_train_command(get_dataset(config.dataset), config.protocol, desc,
                               f"{where} -ckpt {config.ckpt}{settings_flags(settings or {})}")


def pruned_epoch(config: TestConfig, desc: str) -> str | None:
    """For --epoch K whose file is gone although the run's log says epoch K was trained: what
    happened (train.py --keep-last keeps only the newest epoch files) and what to do instead."""
    if not str(config.epoch).isdigit():
        return None
    last = last_logged_epoch(log_path(config.ckpt, config.dataset, config.protocol, desc))
    if last is None or last < int(config.epoch):
        return None
    return (f"epoch {config.epoch} was trained (its log goes to epoch {last}) and its file removed by train.py "
            f"--keep-last, which keeps only the newest epoch files: evaluate --epoch best or last, or train with "
            f"--keep-last 0 to keep every epoch")


def find_checkpoints(config: TestConfig, desc: str) -> tuple[dict[str, Path], dict[str, dict]]:
    """(name -> existing checkpoint, name -> {path, command} of the missing ones; the commands
    carry the settings the existing models were trained with)."""
    found, missing_paths = split_checkpoints(config.ckpt, config.dataset, config.protocol, desc, config.epoch)
    recorded = next((s for p in found.values() if (s := read_settings(p))), None)
    missing = {n: {"path": str(p.absolute()), "command": train_command(config, n, recorded),
                   "why": pruned_epoch(config, n) or f"make it with: {train_command(config, n, recorded)}"}
               for n, p in missing_paths.items()}
    if not found:
        each = "; ".join(f"{m['path']} ({m['why']})" for m in missing.values())
        raise FileNotFoundError(f"no checkpoint to evaluate; missing {each}")
    return found, missing


def check_test_images(config: TestConfig, ckpts: dict, data: DescriptorImages) -> None:
    """Each model must read images made as its training images were (mode, size)."""
    record = next((r for r in data.provenance.values() if r), None) or {}
    remake = lambda root, settings: make_command(data.split, root, {**record, **settings}, explicit=True)  # noqa: E731
    for name, ckpt in ckpts.items():
        for desc in (fused_inputs(name) if is_fused(name) else (name,)):
            k = data.descs.index(desc)
            check_against_folder(ckpt, data.folders[k], data.provenance[desc], data.folder_image_size(k), remake,
                                 train_command(config, name))
    if any(ckpt.kind != "ours" for ckpt in ckpts.values()):
        notice_once(RELEASE_NOTE)



def read_part(config: TestConfig) -> str:
    """The split part an evaluation reads: test, or train for its held-out part (--on heldout)."""
    return "train" if config.on == ev.HELDOUT else "test"


def held_out(ckpts: dict, count: int) -> list[int] | None:
    """--on heldout: the positions in the train split that the models' --val-fraction held out
    (all models must have held out the same ones); None for --on test."""
    drawn = {(c.settings.get("val_fraction") or 0.0, c.settings.get("seed", 0)) for c in ckpts.values()}
    if len(drawn) > 1:
        each = ", ".join(f"{name}: {c.settings.get('val_fraction')}, {c.settings.get('seed', 0)}"
                         for name, c in ckpts.items())
        raise ValueError(f"--on {ev.HELDOUT}: the models held out different parts of train (--val-fraction, --seed "
                         f"of {each}); evaluate models trained alike")
    (fraction, seed), = drawn
    if not fraction:
        raise ValueError(f"--on {ev.HELDOUT}: the models were trained without --val-fraction, so no part of train was "
                         f"held out; train them with --val-fraction 0.1 (for example) to score a validation part")
    return holdout_split(count, fraction, seed)[1]


def test_data(config: TestConfig, ckpts: dict, descs: list[str], device: torch.device):
    """(dataset, positions read or None for all, loader) of the part evaluated: the descriptor
    folders, or images made on ``device`` from the sequence files in the mode and size the models
    were trained with (--source skeletons)."""
    kw = {"batch_size": config.batch_size, "shuffle": False, "num_workers": config.workers,
          "pin_memory": device.type == "cuda"}
    part = read_part(config)
    if config.source == IMAGES:
        data = DescriptorImages(config.despth, config.dataset, config.protocol, part, descs, uint8=True)
        check_test_images(config, ckpts, data)
        positions = held_out(ckpts, len(data)) if config.on == ev.HELDOUT else None
        return data, positions, torch.utils.data.DataLoader(subset(data, positions), **kw)
    pixels = check_consistent(ckpts)
    mode, img_size = pixels.get("mode", "paper"), int(pixels.get("img_size", DEFAULT_IMG_SIZE))
    data = SkeletonSequences(config.dspath or get_dataset(config.dataset).seq_dir, config.dataset, config.protocol, part,
                             mode)
    for name, ckpt in ckpts.items():
        check_layout(ckpt, data.layout, str(data.seq_dir), train_command(config, name))
    positions = held_out(ckpts, len(data)) if config.on == ev.HELDOUT else None
    maker = ImageMaker(descs, data.layout, mode, img_size, device)
    return data, positions, skeleton_loader(subset(data, positions), maker, **kw)


def subset(data, positions: list[int] | None):
    return data if positions is None else torch.utils.data.Subset(data, positions)


def load_models(config: TestConfig, found: dict[str, Path], num_classes: int,
                device: torch.device) -> tuple[dict, dict]:
    """(name -> model on ``device``, name -> its checkpoint), each checked to be the model asked for."""
    models, ckpts = {}, {}
    for name, path in found.items():
        model, ckpts[name] = load_model(path, desc=name, num_classes=num_classes, map_location="cpu")
        check_role(ckpts[name], name, config.dataset, config.protocol, train_command(config, name))
        models[name] = model.to(device)
    return models, ckpts


def best_picked_on_test(config: TestConfig, ckpts: dict) -> list[str]:
    """The models whose best epoch was picked on this very test split (as the release, and train.py
    by default, do), told on stderr."""
    picked_on_test = sorted(n for n, c in ckpts.items() if config.epoch == BEST and not c.settings.get("val_fraction"))
    if picked_on_test:
        print(f"note: the best epoch of {', '.join(picked_on_test)} was picked on the test split (as released), "
              f"so these figures are optimistic; train.py --val-fraction picks it on held-out training data",
              file=sys.stderr)
    return picked_on_test


def excluded_samples(data) -> dict[str, str]:
    """{sample: why} of the test samples clean mode left out: the folders' record, or the sequences'."""
    if isinstance(data, SkeletonSequences):
        return dict(data.excluded)
    return next((dict(r["excluded"]) for r in data.provenance.values() if r and r.get("excluded")), {})


def sample_notes(data) -> dict[str, str]:
    """Say what the figures are over: fewer samples than the official split (once per process),
    the samples clean mode left out; returns those {sample: why}."""
    excluded = excluded_samples(data)
    if note := presence_note({data.split: len(data) + len(excluded)}):
        notice_once(note)
    if excluded:
        print(f"note: {len(excluded)} {data.part} sample(s) excluded in clean mode (degenerate sequences, left out as "
              f"the field's loaders leave out unusable samples, named in the results JSON); the figures are over the "
              f"{len(data)} others", file=sys.stderr)
    return excluded


def evaluate(config: TestConfig) -> tuple[dict, list[ev.Row]]:
    ds = get_dataset(config.dataset)
    config.protocol = default_protocol(config.dataset, config.protocol)
    desc = check_descriptor(config.desc, allow_fusion=True)
    found, missing = find_checkpoints(config, desc)
    if config.ablation:   # refused before the models run: one single model has no subsets to compare
        ablation.check_members([n for n in found if not is_fused(n)])
    device = pick_device(config.gpu, log=lambda line: print(line, file=sys.stderr))   # it says the CPU notice once per process
    for name, m in missing.items():
        print(f"missing {m['path']}: skipped; {m['why']}", file=sys.stderr)
    models, ckpts = load_models(config, found, ds.num_classes, device)
    # Read each needed descriptor once per sample; every model sees the same batches in one order.
    descs = list(needed_descriptors(models))
    fused = next((n for n in models if is_fused(n)), None)
    # skels2desc cannot rewrite the test folders while they are read (it names this run)
    reads = [Split.of(config.dataset, config.protocol, read_part(config))] if config.source == IMAGES else []
    with reading_splits(config.despth, reads, config.wait, lambda line: print(f"waiting: {line}", file=sys.stderr)):
        data, positions, loader = test_data(config, ckpts, descs, device)
        print(f"evaluating {', '.join(models)} on {len(loader.dataset)} {config.on} samples of {config.dataset} "
              f"{config.protocol} ({device})", file=sys.stderr)
        outputs = ev.model_outputs(models, loader, descs, device, progress=not config.no_progress)
    picked_on_test = best_picked_on_test(config, ckpts)
    positions = list(range(len(data))) if positions is None else positions
    labels = data.labels0.numpy()[positions]
    samples = data.samples if config.source == IMAGES else [SampleInfo(i, int(label) + 1, sample) for i, (sample, label)
                                                          in enumerate(zip(data.samples, data.labels0))]
    samples = [samples[i] for i in positions]
    archs = {n: c.settings.get("arch", DEFAULT_ARCH) for n, c in ckpts.items()}
    priority = config.priority.split(",") if config.priority else None
    # The fusion network's rows are keyed 'all' whatever its set (score files, ensembles, the paper
    # table read them so); their labels name its inputs.
    singles = {n: o for n, o in outputs.items() if not is_fused(n)}
    recorded = {(FUSION if is_fused(n) else n): c.best_acc for n, c in ckpts.items()}
    rows, order = ev.fusion_rows(singles, outputs.get(fused), labels, priority, recorded, archs,
                                 inputs=fused_inputs(fused) if fused else FUSION_ORDER)
    excluded = sample_notes(data)
    info = {
        "dataset": config.dataset, "protocol": config.protocol, "desc": desc, "epoch": config.epoch, "part": config.on,
        "class_names": list(class_names(config.dataset)),
        "descriptor_root": str(config.despth), "device": str(device), "vote_priority": order,
        "settings": {k: v for k, v in vars(config).items() if k != "paper_table"},
        "checkpoints": {n: {"path": str(c.path), "kind": c.kind, "epoch": c.epoch, "best_acc": c.best_acc,
                            "settings": c.settings} for n, c in ckpts.items()},
        "missing": missing,
        "excluded": excluded,
        "best_epoch_picked_on_test": picked_on_test,
        "sample_index": [s.index for s in samples],
    }
    sample_ids = [s.sample or f"{config.dataset}_test_{s.index}" for s in samples]
    doc = ev.results_document(rows, labels, sample_ids, ds.num_classes, **info)
    if config.ablation:
        doc["ablation"] = ablation.ablation_rows(singles, labels,
                                                 ds.num_classes)
    return doc, rows


def run_stem(config: TestConfig, desc: str) -> str:
    """'<prefix>_<epoch>': the evaluated checkpoints'."""
    return f"{checkpoint_prefix(config.dataset, config.protocol, desc)}_{config.epoch}"


def output_stem(config: TestConfig, desc: str) -> str:
    """``run_stem`` for the test split, '<prefix>_<epoch>_heldout' for --on heldout."""
    return run_stem(config, desc) + (f"_{ev.HELDOUT}" if config.on == ev.HELDOUT else "")


def write_scores(config: TestConfig, doc: dict, rows: list, out: Path) -> dict[str, str]:
    """The scores of every row that has them, in the dataset's row order: our .npz always (with the
    ordered class names and what the samples are: dataset, protocol, part and, for a PYSKL or
    CTR-GCN file, its SHA-256 and split, so that ensemble.py fuses only files of the same samples
    and classes), and the formats of --save-score (one file per row); {what: path} of the files
    written."""
    ds = get_dataset(config.dataset)
    ids, labels0 = doc["samples"]["sample"], np.asarray(doc["samples"]["label"]) - 1
    order, names = dataset_row_order(ds, config.protocol, read_part(config), ids)
    scored = {r.key: (r.scores[order], r.kind) for r in rows if r.scores is not None}
    stem = output_stem(config, doc["desc"])
    files = {"npz": str(scores.write_ours(out / f"{stem}{scores.SCORES_SUFFIX}", names, labels0[order], scored,
                                          doc["class_names"], dataset=config.dataset, protocol=config.protocol,
                                          part=config.on, epoch=str(config.epoch),
                                          **origin_fields(ds, config.protocol, read_part(config))))}
    for fmt in config.save_score:
        for key, (values, _) in scored.items():
            files[f"{fmt} {key}"] = str(scores.write_row(fmt, out, run_stem(config, doc["desc"]), key, config.on,
                                                         names, values))
    return files


def dataset_row_order(ds, protocol: str, part: str, ids: list[str]) -> tuple[list[int], list[str]]:
    """(positions of ``ids`` in the dataset's own row order, the samples' names there): a PYSKL or
    CTR-GCN file's order and names (score files in their layouts are paired by position); else
    our order (sorted ids) and the ids."""
    table = ds.custom
    if not hasattr(table, "row_order"):
        return list(range(len(ids))), list(ids)
    where = {sid: k for k, sid in enumerate(ids)}
    order = [where[sid] for sid in table.row_order(protocol, part) if sid in where]
    return order, [table.names[ids[k]] for k in order]


def write_outputs(config: TestConfig, doc: dict, rows: list) -> tuple[Path, Path]:
    out = Path(config.out or config.ckpt)
    stem = output_stem(config, doc["desc"])
    doc["score_files"] = write_scores(config, doc, rows, out)
    doc["scores_file"] = doc["score_files"]["npz"]
    best = next(r for r in rows if r.key == doc["best_honest_row"])
    png = out / f"{stem}{ev.CONFUSION_SUFFIX}"
    doc["confusion_png"] = {"path": str(png), "row": best.key}
    labels0 = [label - 1 for label in doc["samples"]["label"]]   # the JSON's labels are 1-based
    ev.write_confusion_png(png, best.pred, labels0, doc["class_names"],
                           f"{config.dataset} {config.protocol}: {best.label}")
    json_path = out / f"{stem}{ev.RESULTS_SUFFIX}"
    ev.write_json(json_path, doc)
    return json_path, png


def paper_table(config: TestConfig) -> str:
    """Write the paper table of every results JSON in -ckpt and --out; returns the text to print."""
    folders = [Path(config.ckpt)] + ([Path(config.out)] if config.out else [])
    found = ev.all_results(folders)
    docs = {f: ev.load_results(f) for f in found if ev.tabulated(f)}
    paper = {f: doc for f, doc in docs.items() if ev.in_paper(doc)}
    others = {f: doc for f, doc in docs.items() if f not in paper}
    if not paper:
        raise FileNotFoundError(ev.no_paper_results(folders, others, [f for f in found if not ev.tabulated(f)]))
    table = ev.paper_table(list(paper.values())) + ablation.paper_sections(list(paper.values()))
    target = Path(config.out or config.ckpt) / ev.PAPER_TABLE_NAME
    write_text_atomic(target, table, make_parents=True)
    left_out = (f"; left out, as the paper has no column for their data: {ev.results_summary(others)}"
                if others else "")
    return (table + f"\n(top-1 % of the checkpoints evaluated here, from {len(paper)} results files; these are this "
                    f"project's figures only, not the paper's published numbers; written to {target}{left_out})")
