"""Skeleton files of a split -> the five descriptor folders (front ends skels2desc_ntu.py / _ucla.py).

Streams sample by sample through a process pool (memory does not grow with the dataset) and
writes every image atomically (temp file in the same folder, then os.replace). A rerun makes the
folders exactly what a fresh run would make: images of unchanged samples are kept (or renamed
when a new sample shifts their index), images of samples gone or changed are removed or remade.
Each folder's manifest and record (descriptors/provenance.py) sit beside it and list only images
in place, so an interrupted run resumes where it stopped. A sample that cannot be read, or whose
file name is not a sample name, is reported by name and skipped; one run per split at a time.
"""
from __future__ import annotations

import errno
import itertools
from collections import Counter
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from functools import partial
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from tqdm import tqdm

from common.atomic import TEMP_SUFFIX, write_bytes_atomic, write_text_atomic
from common.errors import ignore_interrupts, naming
from common.files import where_they_are
from common.locks import folder_lock
from skeletons.convert import zip_holds
from skeletons.datasets import Dataset, Split, get_dataset, label_of, presence_note, sample_id, scan_split_folder
from skeletons.layouts import Layout, layout_record
from skeletons.kinds import SampleKind
from skeletons.unpacked import origin_fields
from skeletons.reading import check_mode, load_sequence

from . import provenance
from .core import DEFAULT_IMG_SIZE, ExcludedSequence, check_included, descriptor_images, png_bytes
import descriptors.registry as registry
from .names import DESCRIPTORS, descriptor_dir, image_name, split_lock_path, split_sources_path

DEFAULT_PNG_LEVEL = 1             # zlib level 1: about twice as fast as Pillow's default, same pixels


# ---------------------------------------------------------------- writing one sample

def save_png(image: np.ndarray, path: Path, png_level: int = DEFAULT_PNG_LEVEL) -> None:
    """Write a PNG atomically: an interrupted run leaves no truncated image under the final name."""
    write_bytes_atomic(path, png_bytes(image, png_level))   # the temp name ends in .tmp: readers skip it


@dataclass(frozen=True)
class Job:
    """What every worker needs to turn one sample into its images (one per folder)."""
    folders: dict[str, Path]   # descriptor -> folder: the set this run makes
    layout: Layout
    kind: SampleKind           # the dataset's: how a sample file becomes a sequence
    mode: str = "paper"
    img_size: int = DEFAULT_IMG_SIZE
    png_level: int = DEFAULT_PNG_LEVEL


@dataclass(frozen=True)
class Item:
    index: int
    path: Path
    label: int


@dataclass(frozen=True)
class Outcome:
    status: str                # "written" or "failed"
    sample: str
    row: dict | None = None    # manifest row when written
    reason: str = ""           # why it failed, or why its images are black (paper-mode degenerate input)


@dataclass(frozen=True)
class Loaded:
    """One sample read and checked: its sequence and manifest row, or why it failed."""
    item: Item
    X: np.ndarray | None = None
    row: dict | None = None
    note: str = ""             # failed: the reason; else why its images are black (paper-mode degenerate input)
    excluded: bool = False     # clean mode leaves it out (note: why)


def load_item(job: Job, item: Item) -> Loaded:
    try:
        X = load_sequence(item.path, job.mode, job.kind, job.layout)
        degenerate = check_included(X, job.mode, item.path)
    except ExcludedSequence as excluded:   # clean mode leaves it out of the split: named, not failed
        return Loaded(item, note=excluded.reason, excluded=True)
    except Exception as error:  # one bad sample must not stop a 100k-sample run; it is reported
        return Loaded(item, note=naming(error, item.path))
    row = {"index": item.index, "sample": sample_id(item.path), "label": item.label,
           "frames": X.shape[0], "bodies": X.shape[1] // job.layout.num_joints}
    return Loaded(item, X, row, degenerate or "")


def write_item(job: Job, loaded: Loaded, images: dict[str, np.ndarray] | None) -> Outcome:
    """Write a loaded sample's five images (atomically); the outcome for the summary and manifest."""
    sample = sample_id(loaded.item.path)
    if loaded.excluded:
        return Outcome(EXCLUDED, sample, reason=loaded.note)
    if loaded.X is None:
        return Outcome("failed", sample, reason=loaded.note)
    name = image_name(loaded.item.index, loaded.item.label)
    folder = None
    try:
        for desc, folder in job.folders.items():
            save_png(images[desc], folder / name, job.png_level)
    except OSError as error:   # the disk, not the sample: the run stops (the images so far are kept)
        why = f"no space left on {folder.parent}" if error.errno == errno.ENOSPC else naming(error, folder / name)
        return Outcome(UNWRITABLE, sample, reason=why)
    except Exception as error:
        return Outcome("failed", sample, reason=naming(error, loaded.item.path))
    return Outcome("written", sample, loaded.row, loaded.note)




def process_sample(job: Job, item: Item) -> Outcome:
    """The images of one sample (one per folder) by the numpy engine, written; or a failure with its reason."""
    loaded = load_item(job, item)
    images = None if loaded.X is None else descriptor_images(loaded.X, job.layout, job.mode, job.img_size,
                                                             tuple(job.folders))
    return write_item(job, loaded, images)


UNWRITABLE = "unwritable"   # an Outcome status: the images could not be written (the disk, not the sample)
EXCLUDED = "excluded"       # an Outcome status: clean mode leaves the sample out (a degenerate sequence)


class ExtractionStopped(OSError):
    """A run stopped by a write failure; ``summary`` says what was done before it."""

    def __init__(self, message: str, summary: "Summary") -> None:
        super().__init__(message)
        self.summary = summary


ENGINES = ("numpy", "torch")
TORCH_BATCH = 1024   # samples per engine call; on the CPU the engine splits them into cache-sized chunks


def default_device() -> str:
    """cuda when torch sees a GPU, else cpu (torch is imported only for the torch engine)."""
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def torch_outcomes(job: Job, items: list[Item], workers: int, device: str):
    """Ordered outcomes with the torch engine: workers read the files, the engine makes a batch's
    images on ``device`` at once, this process writes them (the same pixels as the numpy engine)."""
    # Imported here, not at the top: torch costs about a second at start-up, which the numpy
    # engine (the CPU path, and every worker process) does not pay.
    from .torch_engine import descriptor_images_torch

    loads = _run(partial(load_item, job), items, workers, len(items))
    while chunk := list(itertools.islice(loads, TORCH_BATCH)):
        good = [loaded for loaded in chunk if loaded.X is not None]
        made = descriptor_images_torch([loaded.X for loaded in good], job.layout, job.mode, job.img_size,
                                       device=device, descs=tuple(job.folders)) if good else {}
        host = {desc: images.cpu().numpy() for desc, images in made.items()}
        position = {id(loaded): k for k, loaded in enumerate(good)}
        for loaded in chunk:
            k = position.get(id(loaded))
            yield write_item(job, loaded, None if k is None else {desc: host[desc][k] for desc in host})


# ---------------------------------------------------------------- a whole split

@dataclass
class Summary:
    split: str                 # "ntu60 csub train"
    folders: dict[str, Path]
    total: int = 0
    written: int = 0
    skipped: int = 0           # images already right (kept, or renamed to their new index)
    renamed: int = 0
    removed: int = 0           # images of samples no longer in the split
    failed: list[tuple[str, str]] = field(default_factory=list)
    degenerate: list[tuple[str, str]] = field(default_factory=list)   # paper mode: kept, but black images
    excluded: list[tuple[str, str]] = field(default_factory=list)     # clean mode: left out of the split
    presence: str | None = None   # a partial split: how much of the official one is there

    @property
    def ok(self) -> bool:
        return not self.failed

    def lines(self) -> list[str]:
        names = ", ".join(folder.name for folder in self.folders.values())
        changes = "".join(f", {n} {what}" for n, what in ((self.renamed, "renumbered"),
                                                           (self.removed, "stale images removed"),
                                                           (len(self.excluded), "excluded")) if n)
        out = [f"{self.split}: {self.total} samples, {self.written} written, {self.skipped} already done, "
               f"{len(self.failed)} failed{changes}",
               f"  folders in {next(iter(self.folders.values())).parent}: {names}"]
        if self.presence:
            out.append(f"  {self.presence}")
        if self.degenerate:
            out.append(f"  {len(self.degenerate)} degenerate sample(s) kept as the release makes them:")
            out += [f"    {name}: {reason}" for name, reason in self.degenerate]
        if self.excluded:
            out.append(f"  {len(self.excluded)} degenerate sample(s) excluded, as clean mode does (docs/METHOD.md):")
            out += [f"    {name}: {reason}" for name, reason in self.excluded]
        out += [f"  failed {name}: {reason}" for name, reason in self.failed]
        return out


def check_settings(folders: dict[str, Path], wanted: dict, overwrite: bool) -> None:
    """Refuse to mix images made with other settings (or for another split) into a folder."""
    if overwrite:
        return
    for desc, folder in folders.items():
        record = provenance.read_record(folder)
        found = record or provenance.read_legacy_settings(folder)
        if found is None:
            continue
        # A new version of the same one-file dataset (its path kept, a sample removed) is brought up to
        # date like a changed folder of sample files: only the images of changed samples are made again.
        updated = record and record.get("origin_file") == wanted.get("origin_file")
        fields = provenance.PIXEL_FIELDS + (provenance.IDENTITY_FIELDS + (provenance.CODE_FIELD,)
                                            + (() if updated else ("origin",)) if record else ())
        here = {**wanted, **provenance.descriptor_fields(desc)}
        differ = [f"{k}: {provenance.shown(found[k])} (this run: {provenance.shown(here[k])})"
                  for k in provenance.differing(found, here, fields)]
        if differ:
            raise ValueError(f"{folder}: made with {'; '.join(differ)}; rerun with --overwrite to replace its "
                             f"images, or use another -despth")


@dataclass
class Plan:
    """How a rerun turns the folders' current images into what a fresh run would write."""
    keep: list[dict] = field(default_factory=list)          # rows whose images are right where they are
    move: list[tuple[str, dict]] = field(default_factory=list)   # (old name, new row): right images, new index
    compute: list[Item] = field(default_factory=list)
    degenerate: dict[str, str] = field(default_factory=dict)     # sample -> reason, carried from the record
    gone: list[str] = field(default_factory=list)                # listed before, no longer in the split
    old_names: set[str] = field(default_factory=set)             # image names the manifests listed


def _old_rows(folders: dict[str, Path]) -> dict[str, dict]:
    """{sample: row} listed identically by every folder's manifest with its five images present."""
    agreed = None
    for folder in folders.values():
        rows = provenance.read_manifest(folder) or []
        images = set(provenance.list_image_names(folder))
        shared = {i for i, n in Counter(r["index"] for r in rows).items() if n > 1}
        here = {r["sample"]: r for r in rows
                if r["index"] not in shared and image_name(r["index"], r["label"]) in images}
        agreed = here if agreed is None else {s: r for s, r in agreed.items() if here.get(s) == r}
    return agreed or {}


def plan_split(folders: dict[str, Path], items: list[Item], sources: dict[str, list[int]],
               old_sources: dict[str, list[int]], overwrite: bool) -> Plan:
    """Reuse images whose sample and source file are unchanged; compute the rest."""
    plan = Plan()
    old = {} if overwrite else _old_rows(folders)
    record = provenance.read_record(next(iter(folders.values()))) or {}
    known_degenerate = record.get("degenerate", {})
    for item in items:
        sample = sample_id(item.path)
        row = old.get(sample)
        unchanged = row is not None and row["label"] == item.label and (
            sample not in old_sources or old_sources[sample] == sources[sample])
        if not unchanged:
            plan.compute.append(item)
            continue
        if sample in known_degenerate:
            plan.degenerate[sample] = known_degenerate[sample]
        new_row = {**row, "index": item.index}
        if row["index"] == item.index:
            plan.keep.append(new_row)
        else:
            plan.move.append((image_name(row["index"], row["label"]), new_row))
    plan.gone = sorted(set(old) - {sample_id(item.path) for item in items})
    plan.old_names = {image_name(row["index"], row["label"]) for row in old.values()}
    return plan


class SplitWriter:
    """The five folders of a split and their manifests and records, kept consistent on disk: a row
    is listed only once its five images are in place, so an interrupted run resumes from the rows."""

    FLUSH_ROWS, FLUSH_SECONDS = 2000, 30.0   # checkpoint the manifests this often during a long run

    def __init__(self, folders: dict[str, Path], sources_path: Path, record_fields: dict):
        self.folders, self.sources_path, self.record_fields = folders, sources_path, record_fields
        self.rows: dict[int, dict] = {}
        self.sources: dict[str, list[int]] = {}
        self.degenerate: dict[str, str] = {}
        self.excluded: dict[str, str] = {}    # clean mode: degenerate samples left out, with why
        self.failed = 0
        self._pending, self._flushed_at = 0, time.monotonic()

    def add(self, row: dict, source: list[int], degenerate: str = "", checkpoint: bool = True) -> None:
        """List a row whose images are in place; ``checkpoint`` flushes now and then during a long
        run (off while listing rows that an explicit flush follows)."""
        self.rows[row["index"]] = row
        self.sources[row["sample"]] = source
        if degenerate:
            self.degenerate[row["sample"]] = degenerate
        self._pending += 1
        if checkpoint and (self._pending >= self.FLUSH_ROWS
                           or time.monotonic() - self._flushed_at >= self.FLUSH_SECONDS):
            self.flush(complete=False)

    def flush_if_possible(self) -> None:
        """List what is written before a stop; on a full disk even that may fail (the earlier
        listing stays, and a rerun remakes the images written after it)."""
        try:
            self.flush(complete=False)
        except OSError:
            pass

    def flush(self, complete: bool) -> None:
        rows = [self.rows[i] for i in sorted(self.rows)]
        # Sources first: a row whose source entry is missing is trusted on the next run, never the reverse.
        write_text_atomic(self.sources_path, json.dumps(self.sources, separators=(",", ":")) + "\n")
        provenance.write_manifests(self.folders.values(), rows)
        record = provenance.make_record(descriptor=None, rows=rows, complete=complete, failed=self.failed,
                                        **self.record_fields)
        record["sources"] = provenance.sources_digest(self.sources)
        record["degenerate"] = dict(sorted(self.degenerate.items()))
        if self.excluded:
            record["excluded"] = dict(sorted(self.excluded.items()))
        for desc, folder in self.folders.items():
            provenance.write_record(folder, {**record, **provenance.descriptor_fields(desc)})
        self._pending, self._flushed_at = 0, time.monotonic()


def _read_sources(path: Path) -> dict[str, list[int]]:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        return {}


def clear_leftovers(folders: dict[str, Path]) -> None:
    """Temp files of a killed writer and the manifest/settings files older versions kept inside
    (their content has been read; the folder must hold only images for the release's loader)."""
    for folder in folders.values():
        for entry in os.scandir(folder):
            if (entry.name.startswith(".") and TEMP_SUFFIX in entry.name) or \
                    entry.name in (provenance.LEGACY_MANIFEST, provenance.LEGACY_SETTINGS):
                os.unlink(entry.path)


def _move_images(folders: dict[str, Path], moves: list[tuple[str, dict]]) -> None:
    """Rename right images to their new index; through temp names, as new and old names overlap."""
    staged = []
    for old_name, row in moves:
        new_name = image_name(row["index"], row["label"])
        for folder in folders.values():
            tmp = folder / f".{new_name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
            os.replace(folder / old_name, tmp)
            staged.append((tmp, folder / new_name))
    for tmp, final in staged:
        os.replace(tmp, final)


def _remove_stale(folders: dict[str, Path], keep: set[str]) -> set[str]:
    """Delete the images no row lists (samples gone from the split, or about to be remade)."""
    removed = set()
    for folder in folders.values():
        for name in provenance.list_image_names(folder):
            if name not in keep:
                (folder / name).unlink()
                removed.add(name)
    return removed


def check_sequence_folder(ds: Dataset, seq_dir: str | Path) -> None:
    """Refuse a sequence folder (-dspath) that is not one, in one line saying what to pass: a zip
    (the download, or an archive of the folder), a file, or a folder that does not exist (the
    authors' README has ./data/npy120skel for the layout's data/ntu/npy120skel)."""
    path = Path(seq_dir)
    if path.is_dir():
        return
    if not path.is_file():
        raise FileNotFoundError(f"{os.path.abspath(seq_dir)}: sequence folder does not exist"
                                f"{_missing_folder_fix(ds, seq_dir)}")
    converter = ds.kind.converter
    if converter and not ds.source_flags and zip_holds(path, ".skeleton"):   # the raw download itself
        raise ValueError(f"{seq_dir}: a zip of raw .skeleton files, not a folder of {ds.seq_suffix} files: convert "
                         f"it with: python {converter} -d {ds.name} -txt {seq_dir} -npy {ds.seq_dir}, then pass "
                         f"-dspath {ds.seq_dir}")
    if zip_holds(path, ""):
        raise ValueError(f"{seq_dir}: a zip file, not a folder of {ds.seq_suffix} files: unzip it and pass the "
                         f"folder that holds them")
    raise ValueError(f"{seq_dir}: a file, not a folder of {ds.seq_suffix} files")


def _missing_folder_fix(ds: Dataset, seq_dir: str | Path) -> str:
    """What an error about a missing sequence folder adds: the README layout's folder when it is
    there, else the converter's command that makes it ('' for a dataset given by --data)."""
    layout = ds.seq_dir
    if ds.source_flags:
        return ""
    same = os.path.abspath(seq_dir) == os.path.abspath(layout)
    if not same and os.path.isdir(layout):
        return f" (the README layout's folder is {layout}: pass -dspath {layout}, or leave -dspath out)"
    if not ds.kind.converter:
        return ""
    if same:
        return f" (make it with: python {ds.kind.converter} -d {ds.name})"
    if os.path.basename(os.path.normpath(seq_dir)) == os.path.basename(layout):   # the README's path, misplaced
        return (f" (python {ds.kind.converter} -d {ds.name} makes the README layout's {layout}: run it, then "
                f"pass -dspath {layout} or leave -dspath out)")
    return f" (make it with: python {ds.kind.converter} -d {ds.name} -npy {seq_dir})"


def extract_split(dataset: str, protocol: str | None, part: str, seq_dir: str | Path, out_root: str | Path,
                  mode: str = "paper", workers: int | None = None, img_size: int = DEFAULT_IMG_SIZE,
                  png_level: int = DEFAULT_PNG_LEVEL, overwrite: bool = False, progress: bool = True,
                  wait: bool = False, on_wait=None, engine: str = "numpy", device: str = "cpu",
                  descs=DESCRIPTORS) -> Summary:
    """Make the descriptor folders of one split (``descs``: default the five) exactly what a fresh
    run would make, writing only what changed; returns what was written, kept, renumbered, removed
    and failed.

    One run per split at a time (a lock beside the folders; ``wait`` blocks until it is free,
    else LockHeldError names the holder). ``engine`` numpy (per sample, in ``workers`` processes)
    or torch (batches on ``device``) writes the same files.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown --engine {engine!r}; choose from {', '.join(ENGINES)}")
    check_mode(mode)
    if img_size < 1 or not 0 <= png_level <= 9:
        raise ValueError(f"--img-size must be >= 1 and --png-level 0..9 (got {img_size}, {png_level})")
    split = Split.of(dataset, protocol, part)
    ds = get_dataset(dataset)
    check_sequence_folder(ds, seq_dir)
    scan = scan_split_folder(seq_dir, split)
    if not scan.paths and not scan.problems:
        raise ValueError(f"{seq_dir}: no {ds.seq_suffix} files of the {split} split"
                         f"{where_they_are(seq_dir, ds.seq_suffix) or ds.kind.conversion_hint()}")
    folders = {desc: descriptor_dir(out_root, split, desc) for desc in registry.ordered(descs)}
    summary = Summary(str(split), folders, total=len(scan.paths) + len(scan.problems),
                      presence=presence_note({split: len(scan.paths)}))
    summary.failed += [(str(path), reason) for path, reason in scan.problems]
    items = [Item(i, p, label_of(sample_id(p), dataset)) for i, p in enumerate(scan.paths)]
    sources = {sample_id(item.path): provenance.source_stat(item.path) for item in items}
    fields = {"dataset": dataset, "protocol": split.protocol, "part": part, "mode": mode, "img_size": img_size,
              "layout": layout_record(ds.layout), **origin_fields(ds, split.protocol, part)}
    Path(out_root).mkdir(parents=True, exist_ok=True)
    sources_path = split_sources_path(out_root, split, tuple(folders))
    with folder_lock(split_lock_path(out_root, split), wait=wait, on_wait=on_wait):
        for folder in folders.values():
            folder.mkdir(exist_ok=True)
        check_settings(folders, fields, overwrite)
        plan = plan_split(folders, items, sources, _read_sources(sources_path), overwrite)
        # seq_dir: where the sequences were read, so a fix command printed later names this folder
        recorded = {**fields, "png_level": png_level, "seq_dir": os.path.abspath(seq_dir)}
        out = SplitWriter(folders, sources_path, recorded)
        out.failed = len(summary.failed)
        _settle_kept(folders, plan, out, sources, summary)
        job = Job(folders, ds.layout, ds.kind, mode, img_size, png_level)
        workers = max(1, min(workers or os.cpu_count() or 1, len(plan.compute) or 1))
        _make_images(job, plan.compute, workers, engine, device, out, sources, summary, progress)
    summary.degenerate = sorted(out.degenerate.items())
    return summary


def _settle_kept(folders: dict[str, Path], plan: Plan, out: SplitWriter, sources: dict, summary: Summary) -> None:
    """Images that stay: kept in place or renumbered, listed first (an interruption keeps them);
    stale images removed; the summary's kept, renamed and removed counts."""
    for row in plan.keep:   # what stays in place is listed first, so an interruption keeps it
        out.add(row, sources[row["sample"]], plan.degenerate.get(row["sample"], ""), checkpoint=False)
    out.flush(complete=False)
    clear_leftovers(folders)
    _move_images(folders, plan.move)
    for _, row in plan.move:
        out.add(row, sources[row["sample"]], plan.degenerate.get(row["sample"], ""), checkpoint=False)
    deleted = _remove_stale(folders, {image_name(r["index"], r["label"]) for r in out.rows.values()})
    # Samples gone from the split (a renumbered image may have replaced theirs), and images no
    # manifest listed; not the images about to be remade.
    unlisted = deleted - plan.old_names - {image_name(item.index, item.label) for item in plan.compute}
    summary.removed = len(plan.gone) + len(unlisted)
    out.flush(complete=False)
    summary.skipped, summary.renamed = len(plan.keep) + len(plan.move), len(plan.move)


def _make_images(job: Job, compute: list[Item], workers: int, engine: str, device: str, out: SplitWriter,
                 sources: dict, summary: Summary, progress: bool) -> None:
    """Make and write the images of the samples to compute, by the numpy or torch engine. Stopped
    (Ctrl-C, a full disk), it lists the images written so far first, so a rerun keeps them."""
    try:
        with tqdm(total=len(compute), unit="sample", disable=not progress or not compute, desc=summary.split) as bar:
            outcomes = _run(partial(process_sample, job), compute, workers, len(compute)) \
                if engine == "numpy" else torch_outcomes(job, compute, workers, device)
            for outcome in outcomes:
                if outcome.status == UNWRITABLE:
                    raise ExtractionStopped(f"{outcome.reason}; {summary.written} sample(s) written before it are "
                                            f"kept; rerun the same command once there is room", summary)
                if outcome.status == EXCLUDED:
                    summary.excluded.append((outcome.sample, outcome.reason))
                    out.excluded[outcome.sample] = outcome.reason
                elif outcome.status == "failed":
                    summary.failed.append((outcome.sample, outcome.reason))
                    out.failed += 1
                else:
                    summary.written += 1
                    out.add(outcome.row, sources[outcome.sample], outcome.reason)
                bar.update()
    except BaseException:
        out.flush_if_possible()
        raise
    out.flush(complete=True)


def _run(task, items, workers: int, total: int):
    """Ordered outcomes of ``task`` over ``items``, in this process or a pool streaming them."""
    if workers == 1:
        yield from map(task, items)
        return
    chunksize = max(1, min(32, total // (workers * 8)))
    with Pool(workers, initializer=ignore_interrupts) as pool:
        yield from pool.imap(task, items, chunksize=chunksize)
