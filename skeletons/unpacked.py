"""Datasets that live in one file (PYSKL annotation pickles, CTR-GCN npz files), unpacked once
into a folder of per-sample arrays that every step reads as it reads a custom dataset's.

    data/<format>/<file stem>/skeletons/<sample>.npy   (M, T, V, C) float32, M = 1 or 2 bodies
                             samples.csv               sample_id,label,name (label 1-based; name:
                                                       the sample's name in the file; csv module)
                             splits.json               {protocol: {"train": [ids], "test": [ids],
                                                       "names": {"train": ..., "test": ...}}}, each
                                                       list in the file's own order
                             classes.txt               one class name per line
                             origin.json               the file (path, size, mtime, sha256), its
                                                       format, every sample of a split that was not
                                                       made with why ("skipped"); written last

The folder is the cache of one file: a later run reuses it while the file's size and mtime (or,
when they changed, its SHA-256) are what origin.json says, and unpacks again otherwise, rewriting
only the samples whose arrays changed (so the images of the others are kept). Names enter checked
(``checked_name``: text without control characters, at most ``MAX_NAME_CHARS``) and become ids that
are file names (``file_id``: no path parts). A format is a
module that reads its file into an ``Unpacking`` (skeletons/pyskl.py, skeletons/ctrgcn.py) and
a kind made by ``peer_kind``; ``register_unpacked_dataset`` makes the folder a row of the
dataset table, named after the format (``-d pyskl``, ``-d ctrgcn``).
"""
from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import os
import re
import reprlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from common.atomic import atomic_path, write_text_atomic
from common.locks import folder_lock
from common.provenance import file_digest
from .custom import CLASSES_FILE, SKELETON_DIR, SAMPLE_ID, load_custom_uncentred, read_class_names, read_utf8
from .centring import Uncentred
from .datasets import PARTS, Dataset, register_dataset
from .kinds import SampleKind, sample_id
from .layouts import Layout, find_layout, shipped_layout, shipped_layouts
from .ntu import ntu120_class_names

UNPACKED_ROOT = Path("data")          # data/<format>/<stem>/, beside the README's data/ntu, data/ucla
SAMPLES_FILE, SPLITS_FILE, ORIGIN_FILE = "samples.csv", "splits.json", "origin.json"
UNPACK_VERSION = 2                    # 2: samples.csv written and read with the csv module
MAX_NAME_CHARS = 1000                 # a sample's name in a file (NTU's are 20, Kinetics' ~20, paths ~100)
MAX_ID_CHARS = 100                    # a name longer than this gets a short id (a file name)
# Characters no name may hold: C0/C1 controls (a newline would start a row of a text file), line
# and paragraph separators (str.splitlines splits there), lone surrogates (not writable as UTF-8).
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
SAMPLES_HEADER = ("sample_id", "label", "name")
TRAIN, TEST = PARTS
SIDE = {TRAIN: True, TEST: False}    # a protocol rule's answer; None: the protocol leaves the sample out


@dataclass
class Unpacking:
    """What a format's reader gives: the samples (a stream, so a large file is never held twice),
    the protocols with each part's sample names in the file's order, the classes, and what it
    left out (name, why)."""
    samples: Iterator[tuple[str, int, np.ndarray]]
    """(name in the file, 0-based label, (M, T, V, C) float32 array) per sample."""
    splits: dict[str, dict]
    """{protocol: {"train": [names], "test": [names], "names": {"train": split name, "test": ...}}}."""
    num_classes: int
    class_names: tuple[str, ...] | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: dict = field(default_factory=dict)
    """What the format says about how it was read (body choice, scores), kept in origin.json."""


@dataclass(frozen=True)
class PeerSample:
    label: int                       # 1-based; 0 for an id the folder does not hold
    sides: tuple[bool | None, ...]   # per protocol: True train, False test, None left out


class UnpackedSamples:
    """The samples of an unpacked folder (the ``Dataset.custom`` table of its row)."""

    def __init__(self, root: Path):
        self.root = root
        origin = json.loads((root / ORIGIN_FILE).read_text())
        self.origin: dict = origin
        self.class_names = read_class_names(root / CLASSES_FILE)
        rows = read_samples(root / SAMPLES_FILE)
        self.labels = {sid: label for sid, label, _ in rows}
        self.names = {sid: name for sid, _, name in rows}
        self.splits: dict[str, dict] = json.loads((root / SPLITS_FILE).read_text())
        self.protocols = tuple(self.splits)
        self.unlisted: tuple[str, ...] = ()

    @cached_property
    def _sides(self) -> dict[str, tuple[bool | None, ...]]:
        sides = {sid: [None] * len(self.protocols) for sid in self.labels}
        for k, protocol in enumerate(self.protocols):
            for part in PARTS:
                for sid in self.splits[protocol][part]:
                    sides[sid][k] = SIDE[part]
        return {sid: tuple(s) for sid, s in sides.items()}

    def sample(self, sample: str) -> PeerSample:
        return PeerSample(self.labels.get(sample, 0), self._sides.get(sample, (None,) * len(self.protocols)))

    def row_order(self, protocol: str, part: str) -> list[str]:
        """The part's sample ids in the file's own order (score files in its layout follow it)."""
        return list(self.splits[protocol][part])

    def split_name(self, protocol: str, part: str) -> str:
        return self.splits[protocol]["names"][part]


# --------------------------------------------------------------------------- the kind

def _parse(dataset: Dataset, name: str) -> PeerSample:
    return dataset.custom.sample(sample_id(name))


def _listed(dataset: Dataset, sample: PeerSample) -> bool:
    return sample.label > 0


def _read(path: Path, mode: str, layout: Layout | None) -> Uncentred:
    if layout is None:
        raise ValueError(f"{path}: an unpacked sample is read with its dataset's layout")
    return load_custom_uncentred(path, layout)   # the file's bodies as its format chose them, in either mode


def _class_names(dataset: Dataset) -> tuple[str, ...]:
    return dataset.custom.class_names


def peer_kind(name: str) -> SampleKind:
    """The kind of a one-file format's datasets: samples read from its unpacked folder."""
    return SampleKind(name, PeerSample, _parse, _read, _class_names, (".npy",), contains=_listed,
                      needs_layout=True, extractor="skels2desc_custom.py")


def _protocol_rule(k: int) -> Callable[[PeerSample], bool | None]:
    return lambda sample: sample.sides[k]


# --------------------------------------------------------------------------- unpacking

def unpacked_root(path: str | Path, format_name: str) -> Path:
    """data/<format>/<file stem> (relative to the current folder, as the README's data/ntu/...)."""
    return UNPACKED_ROOT / format_name / Path(path).name.split(".")[0]


def _current(root: Path, source: Path, stat: os.stat_result, digest: Callable[[], str]) -> dict | None:
    """origin.json when the folder is the unpacking of ``source`` as it is now, else None
    (``digest()``: the file's SHA-256, asked for only when its size is the same but not its mtime)."""
    try:
        origin = json.loads((root / ORIGIN_FILE).read_text())
    except (OSError, ValueError):
        return None
    if origin.get("version") != UNPACK_VERSION or origin.get("file") != str(source.resolve()):
        return None
    if [origin.get("size"), origin.get("mtime_ns")] == [stat.st_size, stat.st_mtime_ns]:
        return origin
    if origin.get("size") == stat.st_size and origin.get("sha256") == digest():
        origin.update(mtime_ns=stat.st_mtime_ns)   # touched, not changed: the samples stand
        write_text_atomic(root / ORIGIN_FILE, json.dumps(origin, indent=1) + "\n")
        return origin
    return None


def shown_name(name: object, limit: int = 60) -> str:
    """A name as a message shows it: quoted, escaped, shortened."""
    text = repr(name) if isinstance(name, str) else type(name).__name__
    return text if len(text) <= limit else text[:limit - 4] + "...'"


def checked_name(value: object, where: str, source: Path) -> str:
    """A sample's name as a file gives it (a PYSKL frame_dir, an entry of a split list), refused in
    one line naming ``source`` and ``where`` unless it is text of at most MAX_NAME_CHARS characters
    without control characters: names become rows of samples.csv and lines of the summary."""
    if not isinstance(value, str):
        raise ValueError(f"{source}: {where}: {reprlib.repr(value)} (of type {type(value).__name__}) is not a "
                         f"sample name (text)")
    if len(value) > MAX_NAME_CHARS:
        raise ValueError(f"{source}: {where}: a name of {len(value):,} characters {shown_name(value)} (at most "
                         f"{MAX_NAME_CHARS:,}); a damaged or crafted file")
    if bad := CONTROL.search(value):
        raise ValueError(f"{source}: {where}: the name {shown_name(value)} holds the control character "
                         f"{bad.group()!r}; a sample name is one line of text")
    return str(value)


def file_id(name: str) -> str:
    """A sample's id from its name in the file: the name where it is a valid id (letters, digits,
    '_', '-', at most MAX_ID_CHARS), else the name with other characters as '_', shortened, and a
    short digest, so ids stay distinct file names (no '/', no '..')."""
    if SAMPLE_ID.fullmatch(name) and len(name) <= MAX_ID_CHARS:
        return name
    return f"{re.sub(r'[^A-Za-z0-9_-]', '_', name)[:80]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def _write_sample(path: Path, array: np.ndarray) -> None:
    """Write a sample unless the file holds that array already (its mtime, and the images made
    from it, then stay)."""
    if path.is_file():
        try:
            old = np.load(path, allow_pickle=False)
            if old.shape == array.shape and old.dtype == array.dtype and np.array_equal(old, array):
                return
        except (OSError, ValueError):
            pass
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, array, allow_pickle=False)


def tell(line: str) -> None:
    print(line, file=sys.stderr)   # stdout is the scripts' results (predict.py's classes)


def unpack(source: str | Path, format_name: str, read: Callable[[Path], Unpacking],
           root: str | Path | None = None, log: Callable[[str], None] = tell) -> Path:
    """The unpacked folder of ``source`` (a file of format ``format_name`` that ``read`` reads),
    made or brought up to date; one unpacking at a time per folder."""
    source = Path(source)
    if not source.is_file():
        raise FileNotFoundError(f"{source.absolute()}: no such {format_name} file")
    root = Path(root or unpacked_root(source, format_name))
    stat = source.stat()
    digest = functools.cache(lambda: file_digest(source))   # a large file is read for its hash once
    if _current(root, source, stat, digest):
        return root
    with folder_lock(root.parent / f".{root.name}.lock", wait=True,
                     on_wait=lambda line: log(f"waiting: {line}")):
        if _current(root, source, source.stat(), digest):   # another run unpacked it meanwhile
            return root
        log(f"unpacking {source} into {root} ...")
        data = read(source)
        origin = _write_folder(root, source, stat, format_name, data, digest())
    for line in summary(origin, root):
        log(line)
    return root


def summary(origin: dict, root: Path) -> list[str]:
    """What an unpacking made and, one per line, every sample of a split it did not make, with why
    (as origin.json's "skipped" keeps them)."""
    skipped = origin.get("skipped", {})
    lines = [f"unpacked {origin['samples']} samples into {root}"
             + (f"; {len(skipped)} not made (origin.json \"skipped\"):" if skipped else "")]
    lines += [f"  {shown_name(name, 120)}: {why}" for name, why in skipped.items()]
    if origin.get("unused splits"):
        lines.append(f"  split lists in no train/test pair, not used: {', '.join(origin['unused splits'])}")
    return lines


def _write_samples(folder: Path, data: Unpacking, source: Path) -> tuple[list[tuple[str, int]], dict, set]:
    """Write each sample's array; ([(name, label)], {name: id}, {(joints, dims)})."""
    folder.mkdir(parents=True, exist_ok=True)
    rows, shapes, ids, owners = [], set(), {}, {}
    for name, label, array in data.samples:
        sid = file_id(name)
        if sid in owners:   # before its file is written over
            raise ValueError(f"{source}: samples {shown_name(owners[sid])} and {shown_name(name)} have one name "
                             f"(id {sid}); names must be distinct")
        owners[sid], ids[name] = name, sid
        rows.append((name, label))
        shapes.add(array.shape[2:])
        _write_sample(folder / f"{sid}.npy", np.ascontiguousarray(array, dtype=np.float32))
    if not rows:
        raise ValueError(f"{source}: no usable samples" + (f" ({data.skipped[0][0]}: {data.skipped[0][1]})"
                                                           if data.skipped else ""))
    if len(shapes) > 1:
        raise ValueError(f"{source}: samples of different joints x values {sorted(shapes)}; one layout per file")
    return rows, ids, shapes


def not_made(splits: dict[str, dict], ids: dict[str, str], skipped: list[tuple[str, str]]) -> dict[str, str]:
    """{name: why} of every sample a split lists that was not made: the reader's reasons, and for a
    name the file's samples do not hold, the split lists that name it."""
    why = dict(skipped)
    missing: dict[str, list[str]] = {}
    for parts in splits.values():
        for part in PARTS:
            for name in parts[part]:
                if name not in ids and name not in why:
                    missing.setdefault(name, []).append(parts["names"][part])
    return why | {name: f"listed in {', '.join(dict.fromkeys(lists))} but not among the file's samples"
                  for name, lists in missing.items()}


def samples_csv(rows: list[tuple[str, int]], ids: dict[str, str]) -> str:
    """samples.csv's text: sample_id,label (1-based),name, quoted by the csv module."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(SAMPLES_HEADER)
    writer.writerows((ids[name], label + 1, name) for name, label in rows)
    return text.getvalue()


def read_samples(path: Path) -> list[tuple[str, int, str]]:
    """samples.csv's rows (id, 1-based label, name); a damaged file is one line naming it."""
    reader = csv.reader(io.StringIO(read_utf8(path), newline=""))
    rows = []
    try:
        if tuple(next(reader, ())) != SAMPLES_HEADER:
            raise ValueError("no sample_id,label,name header")
        for fields in reader:
            if len(fields) != 3 or not SAMPLE_ID.fullmatch(fields[0]) or not fields[1].isdigit():
                raise ValueError("not a row of sample_id,label,name")
            rows.append((fields[0], int(fields[1]), fields[2]))
    except (ValueError, csv.Error) as error:
        raise ValueError(f"{path}:{reader.line_num}: {error}; delete {path.parent} to unpack the file again") from None
    return rows


def _write_folder(root: Path, source: Path, stat: os.stat_result, format_name: str, data: Unpacking,
                  sha256: str) -> dict:
    """Write the folder (origin.json last) and return origin.json's record."""
    (root / ORIGIN_FILE).unlink(missing_ok=True)    # the folder is not a finished unpacking until the end
    folder = root / SKELETON_DIR
    rows, ids, shapes = _write_samples(folder, data, source)
    for stale in {p.stem for p in folder.glob("*.npy")} - set(ids.values()):
        (folder / f"{stale}.npy").unlink(missing_ok=True)
    splits = {protocol: {TRAIN: [ids[n] for n in parts[TRAIN] if n in ids],
                         TEST: [ids[n] for n in parts[TEST] if n in ids], "names": parts["names"]}
              for protocol, parts in data.splits.items()}
    class_names = data.class_names or tuple(f"class {k}" for k in range(data.num_classes))
    write_text_atomic(root / SAMPLES_FILE, samples_csv(rows, ids))
    write_text_atomic(root / SPLITS_FILE, json.dumps(splits) + "\n")
    write_text_atomic(root / CLASSES_FILE, "".join(f"{name}\n" for name in class_names))
    (joints, dims), = shapes
    origin = {"version": UNPACK_VERSION, "format": format_name, "file": str(source.resolve()),
              "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256,
              "samples": len(rows), "joints": int(joints), "dims": int(dims),
              "skipped": not_made(data.splits, ids, data.skipped), **data.notes}
    write_text_atomic(root / ORIGIN_FILE, json.dumps(origin, indent=1) + "\n")
    return origin


# --------------------------------------------------------------------------- registration

def layout_of(joints: int, dims: int, given: str | Path | None, source: Path) -> Layout:
    """--layout when given, else the one shipped layout of ``joints`` joints and ``dims`` values."""
    if given:
        layout = find_layout(given)
        if (layout.num_joints, layout.dims) != (joints, dims):
            raise ValueError(f"{source}: {joints} joints x {dims} values per joint, the {layout.name} layout has "
                             f"{layout.num_joints} x {layout.dims}")
        return layout
    fitting = [name for name in shipped_layouts()
               if (shipped_layout(name).num_joints, shipped_layout(name).dims) == (joints, dims)]
    if len(fitting) != 1:
        raise ValueError(f"{source}: {joints} joints x {dims} values per joint; "
                         + (f"several layouts fit ({', '.join(fitting)})" if fitting else "no shipped layout fits")
                         + ": give --layout FILE_OR_NAME")
    return shipped_layout(fitting[0])


def register_unpacked_dataset(kind: SampleKind, source: str | Path,
                              read: Callable[[Path, str | Path | None], Unpacking], layout: str | Path | None = None,
                              label_map: str | Path | None = None, log: Callable[[str], None] = tell) -> Dataset:
    """Unpack ``source`` with ``read(file, label map)`` (or reuse its folder) and make it the
    table's row named after its format: one protocol per split pair of the file, the first the
    default."""
    root = unpack(source, kind.name, lambda path: read(path, label_map), log=log)
    table = UnpackedSamples(root)
    found = layout_of(table.origin["joints"], table.origin["dims"], layout, Path(source))
    rules = {protocol: _protocol_rule(k) for k, protocol in enumerate(table.protocols)}
    seq_dir = str(root / SKELETON_DIR)
    flags = ("--data", str(source), *(("--layout", str(layout)) if layout else ()),
             *(("--label-map", str(label_map)) if label_map else ()))
    return register_dataset(Dataset(kind.name, kind, found, len(table.class_names), rules, raw_dir=seq_dir,
                                    seq_dir=seq_dir, seq_suffix=".npy", custom=table, source_flags=flags))


def origin_fields(dataset: Dataset, protocol: str, part: str) -> dict:
    """What descriptor records and checkpoints keep of a one-file dataset's origin: {"origin":
    {format, sha256, split}, "origin_file": path}; {} for other datasets."""
    table = dataset.custom
    if not isinstance(table, UnpackedSamples):
        return {}
    return {"origin": {"format": table.origin["format"], "sha256": table.origin["sha256"],
                       "split": table.split_name(protocol, part)}, "origin_file": table.origin["file"]}


def read_label_map(path: str | Path, num_classes: int) -> tuple[str, ...]:
    """--label-map: one class name per line, label 0 first (PYSKL's and MMAction2's label maps)."""
    names = read_class_names(Path(path))
    if len(names) < num_classes:
        raise ValueError(f"{path}: {len(names)} class names, the data has labels up to {num_classes - 1}")
    return names


def class_names_of(num_classes: int, label_map: str | Path | None, ntu_labels: bool) -> tuple[str, ...] | None:
    """The classes: --label-map's; NTU RGB+D's when the samples are NTU ones whose labels are their
    actions (60 or 120 classes); else None ('class 0', 'class 1', ...: the file's own numbers)."""
    if label_map:
        return read_label_map(label_map, num_classes)
    if ntu_labels and num_classes <= 120:
        return ntu120_class_names()[: 60 if num_classes <= 60 else 120]
    return None


def sample_file(dataset: Dataset, name: str) -> Path | None:
    """The unpacked file of a one-file dataset's sample given by its name in the file (a PYSKL
    frame_dir, a CTR-GCN 'test_3') or its id; None when ``dataset`` holds no such sample."""
    table = dataset.custom
    if not isinstance(table, UnpackedSamples):
        return None
    ids = {name: sid for sid, name in table.names.items()}
    sid = ids.get(name, name)
    return Path(dataset.seq_dir) / f"{sid}.npy" if sid in table.labels else None
