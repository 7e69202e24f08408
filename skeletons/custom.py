"""Your own skeletons: a dataset folder of plain .npy arrays in any joint layout, 2D or 3D.

    <root>/skeletons/<sample_id>.npy   (T, J, C) one body, or (M, T, J, C) for M = 1 or 2 bodies;
                                       J and C = the layout's joints and ``dims``; any integer or
                                       float dtype; read without pickle (allow_pickle=False)
    <root>/labels.csv                  header ``sample_id,label,split``, one row per sample:
                                       label 1-based (line of classes.txt), split train or test;
                                       further columns are allowed and ignored
    <root>/classes.txt                 one class name per line

Sample ids are letters, digits, '_' and '-' (they become file names and manifest entries).
A .npy file that labels.csv does not list is not part of the dataset (``unlisted`` names it).
A sequence is centred on the layout's root joint of body 0 at frame 0, as NTU and NW-UCLA ones are.
Every problem is a one-line ValueError naming the file (and the line of a text file).

On the command line (``-d custom --data ROOT --layout FILE_OR_NAME``) ``register_custom_dataset``
makes the folder a row of the dataset table (skeletons/datasets.py): dataset ``custom``, one
protocol ``split`` (the labels.csv column), sequences ROOT/skeletons/*.npy.
"""
from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import NoReturn

import numpy as np

from common.atomic import atomic_path
from common.files import not_a_file
from .centring import FIRST_FRAME, Uncentred
from .datasets import CUSTOM, CUSTOM_PROTOCOL, PARTS, CustomSample, Dataset, register_dataset
from .kinds import SampleKind, sample_id
from .layouts import Layout, find_layout

SKELETON_DIR = "skeletons"
LABELS_FILE = "labels.csv"
CLASSES_FILE = "classes.txt"
LABEL_COLUMNS = ("sample_id", "label", "split")
SAMPLE_ID = re.compile(r"[A-Za-z0-9_-]+")
MAX_BODIES = 2   # the descriptors' rows are laid out for one or two bodies
NPY_MAGIC = b"\x93NUMPY"


@dataclass(frozen=True)
class CustomDataset:
    """What ``read_custom_dataset`` found: samples in labels.csv order, with their labels and splits."""
    root: Path
    layout: Layout
    samples: tuple[str, ...]
    labels: tuple[int, ...]
    """1-based class numbers (line numbers of classes.txt)."""
    splits: tuple[str, ...]
    class_names: tuple[str, ...]
    unlisted: tuple[str, ...] = ()
    """Sample ids with a .npy file but no row in labels.csv (not part of the dataset)."""

    def path(self, sample: str) -> Path:
        return skeleton_path(self.root, sample)

    @cached_property
    def _table(self) -> dict[str, CustomSample]:
        return {s: CustomSample(label, split) for s, label, split in zip(self.samples, self.labels, self.splits)}

    def sample(self, sample: str) -> CustomSample:
        """Label and split of a sample id; split None for one labels.csv does not list (not used)."""
        return self._table.get(sample, CustomSample(0, None))

    def split_samples(self, part: str) -> list[tuple[str, int]]:
        """(sample id, label) of one part, sorted by sample id (the order descriptor folders index)."""
        if part not in PARTS:
            raise ValueError(f"part must be one of {', '.join(PARTS)}, not {part!r}")
        return sorted((s, label) for s, label, split in zip(self.samples, self.labels, self.splits) if split == part)


def _fail(where: object, problem: str) -> NoReturn:
    raise ValueError(f"{where}: {problem}")


def skeleton_path(root: str | Path, sample: str) -> Path:
    return Path(root) / SKELETON_DIR / f"{sample}.npy"


def read_utf8(path: Path) -> str:
    """A text file as spreadsheets and editors write UTF-8, with or without a byte-order mark; a
    byte that is not UTF-8 is named with its line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        _fail(f"{path}:{line}", f"not UTF-8 text (byte {data[error.start:error.start + 1]!r}); save it as UTF-8 "
                                f"(\"CSV UTF-8\" in a spreadsheet)")


def read_class_names(path: Path) -> tuple[str, ...]:
    """classes.txt: one non-empty, distinct name per line (trailing blank lines ignored)."""
    if not path.is_file():
        _fail(path, "missing (one class name per line)")
    lines = read_utf8(path).replace("\r\n", "\n").replace("\r", "\n").rstrip("\n").split("\n")
    names: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        name = line.strip()
        if not name:
            _fail(f"{path}:{number}", "empty class name")
        if name in names:
            _fail(f"{path}:{number}", f"class {name!r} repeats line {names[name]}")
        names[name] = number
    if not names:
        _fail(path, "no class names")
    return tuple(names)


def read_labels(path: Path, num_classes: int) -> list[tuple[int, str, int, str]]:
    """labels.csv rows as (line number, sample id, 1-based label, split)."""
    if not path.is_file():
        _fail(path, f"missing (columns {','.join(LABEL_COLUMNS)})")
    reader = csv.reader(io.StringIO(read_utf8(path), newline=""))
    try:
        rows = _label_rows(path, reader, num_classes)
    except csv.Error as error:   # a field over the csv module's limit, a stray quote...
        _fail(f"{path}:{reader.line_num}", f"not readable as CSV ({error})")
    if not rows:
        _fail(path, "no samples")
    return rows


def _label_rows(path: Path, reader, num_classes: int) -> list[tuple[int, str, int, str]]:
    """The checked rows of labels.csv (``read_labels``)."""
    rows: list[tuple[int, str, int, str]] = []
    seen: dict[str, int] = {}
    header = [column.strip() for column in next(reader, [])]
    for column in LABEL_COLUMNS:
        if column not in header:
            _fail(f"{path}:1", f"missing column {column!r} (the header needs {','.join(LABEL_COLUMNS)})")
    where = [header.index(column) for column in LABEL_COLUMNS]
    for fields in reader:
        line = reader.line_num
        if not any(field.strip() for field in fields):
            continue   # blank line
        if len(fields) != len(header):
            _fail(f"{path}:{line}", f"{len(fields)} fields, the header has {len(header)}")
        sample, label, split = (fields[k].strip() for k in where)
        if not SAMPLE_ID.fullmatch(sample):
            _fail(f"{path}:{line}", f"sample id {sample!r} may hold only letters, digits, '_' and '-'")
        if sample in seen:
            _fail(f"{path}:{line}", f"sample {sample!r} repeats line {seen[sample]}")
        if not re.fullmatch(r"[0-9]+", label):
            _fail(f"{path}:{line}", f"label {label!r} is not a class number (1..{num_classes})")
        if not 1 <= int(label) <= num_classes:
            _fail(f"{path}:{line}", f"label {int(label)} is out of range 1..{num_classes} "
                                    f"({CLASSES_FILE} has {num_classes} classes)")
        if split not in PARTS:
            _fail(f"{path}:{line}", f"split {split!r} is not {' or '.join(PARTS)}")
        seen[sample] = line
        rows.append((line, sample, int(label), split))
    return rows


def _load_array(path: Path, header_only: bool = False) -> np.ndarray:
    """np.load without pickle; ``header_only`` maps the file instead of reading it."""
    if os.path.lexists(path) and (reason := not_a_file(path)):   # a FIFO would block the open below
        _fail(path, reason)
    try:
        with path.open("rb") as handle:
            magic = handle.read(len(NPY_MAGIC))
    except FileNotFoundError:
        _fail(path, "missing")
    except OSError as error:
        _fail(path, f"cannot be read ({error.strerror or error})")
    if magic != NPY_MAGIC:   # np.load would try such a file as a pickle
        _fail(path, "not a .npy file (np.save writes them)")
    try:
        return np.load(path, mmap_mode="r" if header_only else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        if "object" in message.lower():
            _fail(path, "holds Python objects, which are not read (no pickle); save a plain numeric array")
        _fail(path, f"unreadable .npy file ({message})")


def check_array(array: np.ndarray, path: Path, layout: Layout, values: bool = True) -> None:
    """A one-line ValueError unless ``array`` is (T, J, C) or (M, T, J, C) numbers fitting ``layout``."""
    shape = tuple(array.shape)
    expected = f"(T, {layout.num_joints}, {layout.dims}) or (M, T, {layout.num_joints}, {layout.dims})"
    if array.dtype.kind not in "iuf":
        _fail(path, f"dtype {array.dtype} is not an integer or float array")
    if array.ndim not in (3, 4):
        _fail(path, f"shape {shape} is not {expected}")
    if shape[-2] != layout.num_joints:
        _fail(path, f"shape {shape}: {shape[-2]} joints, the {layout.name} layout has {layout.num_joints}")
    if shape[-1] != layout.dims:
        _fail(path, f"shape {shape}: {shape[-1]} values per joint, the {layout.name} layout has dims {layout.dims}")
    if array.ndim == 4 and not 1 <= shape[0] <= MAX_BODIES:
        _fail(path, f"shape {shape}: {shape[0]} bodies, expected 1 to {MAX_BODIES}")
    if shape[-3] == 0:
        _fail(path, f"shape {shape}: no frames")
    if values and not np.isfinite(array).all():
        frame = int(np.argwhere(~np.isfinite(array))[0][-3])
        _fail(path, f"non-finite value (nan or inf) in frame {frame}")


def load_custom_sequence(path: str | Path, layout: Layout) -> np.ndarray:
    """(T, B*V, C) float64 sequence of a sample file: bodies concatenated on the joint axis (body
    1's joints after body 0's), centred on the layout's root joint of body 0 at frame 0."""
    return load_custom_uncentred(path, layout).centred()


def load_custom_uncentred(path: str | Path, layout: Layout) -> Uncentred:
    """``load_custom_sequence`` before its centring, and the centring."""
    path = Path(path)
    array = _load_array(path)
    check_array(array, path, layout)
    bodies = array if array.ndim == 4 else array[None]
    M, T, J, C = bodies.shape
    X = np.ascontiguousarray(bodies.transpose(1, 0, 2, 3), dtype=np.float64).reshape(T, M * J, C)
    return Uncentred(X, FIRST_FRAME, layout.root)


def read_custom_dataset(root: str | Path, layout: Layout, check_values: bool = True) -> CustomDataset:
    """Read and check a dataset folder: classes.txt, labels.csv and the shape of every listed .npy
    (and, with ``check_values``, that its values are finite: this reads every file once)."""
    root = Path(root)
    if not root.is_dir():
        _fail(root, "no such dataset folder")
    class_names = read_class_names(root / CLASSES_FILE)
    rows = read_labels(root / LABELS_FILE, len(class_names))
    folder = root / SKELETON_DIR
    if not folder.is_dir():
        _fail(folder, "missing (one <sample_id>.npy per sample)")
    files = {p.stem for p in folder.glob("*.npy") if not p.name.startswith(".")}   # hidden: atomic temps
    for line, sample, _, _ in rows:
        if sample not in files:
            _fail(f"{root / LABELS_FILE}:{line}", f"sample {sample!r} has no file {SKELETON_DIR}/{sample}.npy")
        path = skeleton_path(root, sample)
        check_array(_load_array(path, header_only=True), path, layout, values=check_values)
    _, samples, labels, splits = zip(*rows)
    return CustomDataset(root, layout, samples, labels, splits, class_names,
                         tuple(sorted(files - set(samples))))


def _parse(dataset: Dataset, name: str) -> CustomSample:
    return dataset.custom.sample(sample_id(name))


def _listed(dataset: Dataset, sample: CustomSample) -> bool:
    return sample.split is not None   # a .npy file that labels.csv does not list is not a sample


def _read(path: Path, mode: str, layout: Layout | None) -> Uncentred:
    if layout is None:
        raise ValueError(f"{path}: a custom sample is read with its layout (--layout)")
    return load_custom_uncentred(path, layout)   # its bodies as given, in either mode


def _class_names(dataset: Dataset) -> tuple[str, ...]:
    return dataset.custom.class_names


# A custom dataset's row keeps its labels.csv (``Dataset.custom``), which labels and splits its samples.
CUSTOM_KIND = SampleKind(CUSTOM, CustomSample, _parse, _read, _class_names, (".npy",), contains=_listed,
                         needs_layout=True)


def _split_rule(sample: CustomSample) -> bool:
    return sample.split == "train"


def register_custom_dataset(root: str | Path, layout: str | Path) -> Dataset:
    """Read a dataset folder with the layout ``layout`` (a shipped name or a layout file) and make
    it the table's ``custom`` row. Shapes are checked here, values when each sample is read."""
    found = find_layout(layout)
    data = read_custom_dataset(root, found, check_values=False)
    seq_dir = str(Path(root) / SKELETON_DIR)
    return register_dataset(Dataset(CUSTOM, CUSTOM_KIND, found, len(data.class_names), {CUSTOM_PROTOCOL: _split_rule},
                                    raw_dir=seq_dir, seq_dir=seq_dir, seq_suffix=".npy", custom=data,
                                    source_flags=("--data", str(root), "--layout", str(layout))))


def write_custom_dataset(root: str | Path, samples: Mapping[str, np.ndarray], labels: Mapping[str, int],
                         splits: Mapping[str, str], class_names: list[str] | tuple[str, ...]) -> Path:
    """Write a dataset folder (each file atomically): samples {id: (T, J, C) or (M, T, J, C) array},
    labels {id: 1-based class}, splits {id: 'train' | 'test'}. Check it with ``read_custom_dataset``."""
    check_tables(samples, labels, splits, class_names)
    for sample, array in samples.items():
        write_custom_sample(root, sample, array)
    return write_custom_tables(root, list(samples), labels, splits, class_names)


def write_custom_sample(root: str | Path, sample: str, array: np.ndarray) -> Path:
    """One sample's skeletons as ``root/skeletons/<sample>.npy``, atomically."""
    path = skeleton_path(Path(root), sample)
    with atomic_path(path, suffix=".npy", make_parents=True) as tmp:
        np.save(tmp, np.asarray(array), allow_pickle=False)
    return path


def write_custom_tables(root: str | Path, samples: Sequence[str], labels: Mapping[str, int],
                        splits: Mapping[str, str], class_names: Sequence[str]) -> Path:
    """labels.csv (the samples, by id) and classes.txt of a dataset folder, each atomically."""
    root = Path(root)
    check_tables(samples, labels, splits, class_names)
    table = io.StringIO()
    csv.writer(table, lineterminator="\n").writerows([LABEL_COLUMNS] + [(s, int(labels[s]), splits[s])
                                                                        for s in sorted(samples)])
    for name, text in ((LABELS_FILE, table.getvalue()), (CLASSES_FILE, "".join(f"{c}\n" for c in class_names))):
        with atomic_path(root / name) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return root


def check_tables(samples, labels: Mapping[str, int], splits: Mapping[str, str], class_names: Sequence[str]) -> None:
    """One-line refusals of class names, sample ids, labels and splits a dataset folder cannot hold."""
    for name in class_names:
        if not isinstance(name, str) or name.splitlines() != [name] or not name.strip():
            _fail("class_names", f"class name {name!r} is not one non-empty line of text")
    for sample in samples:
        if not SAMPLE_ID.fullmatch(sample):
            _fail("samples", f"sample id {sample!r} may hold only letters, digits, '_' and '-'")
        for name, table in (("labels", labels), ("splits", splits)):
            if sample not in table:
                _fail(name, f"no entry for sample {sample!r}")
        if splits[sample] not in PARTS:
            _fail("splits", f"sample {sample!r}: split {splits[sample]!r} is not {' or '.join(PARTS)}")
