"""CTR-GCN's NTU npz files as a dataset (``-d ctrgcn --data NTU60_CS.npz``).

The file (CTR-GCN's data/ntu/seq_transformation.py) holds x_train, y_train, x_test, y_test:
``x`` (N, T, 150) float32, two bodies of 25 joints x (x, y, z), zero-padded after each sample's
last frame and for a missing second body; ``y`` (N, num_classes) one-hot. Samples have no names:
they are named by part and position as CTR-GCN's score files name them (``train_0``, ...,
``test_0``, ...). A sample's length is its last frame that is not all zero; an all-zero second
body means one person. The file's one protocol is ``split`` (CS or CV is the file itself).
Arrays are read row by row from the zip (stored or compressed), so a file of any size streams;
what each array's header declares is checked against its member's size and MAX_SAMPLES,
MAX_CLASSES and MAX_FRAMES before anything of that size is made. A sample whose (N,) label is
negative is left out and named in origin.json's "skipped".
"""
from __future__ import annotations

import math
import zipfile
import zlib
from pathlib import Path

import numpy as np

from common.files import npy_header
from common.provenance import MAX_CLASSES, MAX_FRAMES, MAX_SAMPLES, checked_allocation, checked_count
from .datasets import PARTS, Dataset
from .kinds import SampleKind
from .unpacked import Unpacking, class_names_of, peer_kind, register_unpacked_dataset

CTRGCN = "ctrgcn"
CTRGCN_KIND: SampleKind = peer_kind(CTRGCN)
PROTOCOL = "split"
BODIES, JOINTS, DIMS = 2, 25, 3
KEYS = tuple(f"{axis}_{part}" for part in PARTS for axis in ("x", "y"))
LABEL_BLOCK = 4 << 20   # bytes of one-hot rows checked at a time


def _fail(path: Path, problem: str):
    raise ValueError(f"{path}: {problem}")


def _member_header(archive: zipfile.ZipFile, key: str, path: Path):
    """(open member stream, shape, dtype, fortran order) of ``key``.npy in the npz, refused when
    its header declares more data than the member holds (a header cannot make the reader allocate)."""
    try:
        info = archive.getinfo(f"{key}.npy")
        stream = archive.open(info)
        shape, fortran, dtype = npy_header(stream)
        header = stream.tell()
    except KeyError:
        _fail(path, f"no {key} array (a CTR-GCN npz holds {', '.join(KEYS)})")
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        _fail(path, f"{key}: unreadable array ({error})")
    if dtype.hasobject or dtype.kind not in "biuf":
        _fail(path, f"{key}: holds {dtype} values, not numbers (Python objects are not read)")
    declared = math.prod(shape) * dtype.itemsize
    if declared > info.file_size - header:
        _fail(path, f"{key}: declares a {shape} {dtype} array ({declared / 2**20:,.1f} MiB) but holds "
                    f"{info.file_size - header:,} bytes; a damaged or crafted file")
    return stream, shape, dtype, fortran


def _read_exactly(stream, size: int, key: str, path: Path, where: str = "") -> bytes:
    try:
        data = stream.read(size)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:   # a bad CRC, broken deflate data
        _fail(path, f"{key}: unreadable{where} ({error})")
    if len(data) != size:
        _fail(path, f"{key}: truncated{where}")
    return data


def _one_hot(block: np.ndarray, first: int, key: str, path: Path) -> np.ndarray:
    """The 0-based labels of one-hot rows (row ``first`` onwards), refused at the first other row."""
    bad = ~(np.isin(block, (0, 1)).all(axis=1) & (block.sum(axis=1) == 1))
    if bad.any():
        _fail(path, f"{key}: row {first + int(np.argmax(bad))} is not one-hot (labels are (N, classes) one-hot "
                    f"rows or (N,) class numbers)")
    return block.argmax(axis=1)


def read_labels(archive: zipfile.ZipFile, key: str, path: Path) -> tuple[np.ndarray, int | None]:
    """(0-based labels, number of classes) of a one-hot (N, classes) array, read a block of rows at a
    time, or (labels, None) of an (N,) integer one; counts checked against MAX_* first."""
    stream, shape, dtype, fortran = _member_header(archive, key, path)
    with stream:
        if len(shape) == 1 and dtype.kind in "iu":
            count = checked_count(shape[0], MAX_SAMPLES, file=path, what=f"{key}: number of samples")
            return np.frombuffer(_read_exactly(stream, count * dtype.itemsize, key, path), dtype).astype(np.int64), None
        if len(shape) != 2:
            _fail(path, f"{key}: shape {shape} is not one-hot labels (N, classes)")
        count = checked_count(shape[0], MAX_SAMPLES, file=path, what=f"{key}: number of samples")
        classes = checked_count(shape[1], MAX_CLASSES, file=path, what=f"{key}: number of classes")
        if fortran:   # columns first: read whole, within the stated limit
            checked_allocation(shape, dtype.itemsize, None, file=path, what=key)
            y = np.frombuffer(_read_exactly(stream, count * classes * dtype.itemsize, key, path), dtype)
            return _one_hot(y.reshape(shape, order="F"), 0, key, path), classes
        labels = np.empty(count, dtype=np.int64)
        step = max(1, LABEL_BLOCK // max(1, classes * dtype.itemsize))
        for first in range(0, count, step):
            rows = min(step, count - first)
            block = np.frombuffer(_read_exactly(stream, rows * classes * dtype.itemsize, key, path), dtype)
            labels[first:first + rows] = _one_hot(block.reshape(rows, classes), first, key, path)
    return labels, classes


def _rows(archive: zipfile.ZipFile, key: str, count: int, path: Path):
    """The (T, 150) rows of ``key``, read one at a time."""
    stream, shape, dtype, fortran = _member_header(archive, key, path)
    if len(shape) != 3 or shape[0] != count or shape[2] != BODIES * JOINTS * DIMS or dtype.kind != "f" or fortran:
        _fail(path, f"{key}: shape {shape} {dtype} is not (N={count}, T, {BODIES * JOINTS * DIMS}) float, C order")
    checked_count(shape[1], MAX_FRAMES, file=path, what=f"{key}: number of frames per sample")
    size = shape[1] * shape[2] * dtype.itemsize
    with stream:
        for k in range(count):
            yield np.frombuffer(_read_exactly(stream, size, key, path, f" at sample {k}"), dtype).reshape(shape[1:])


def row_bodies(row: np.ndarray) -> np.ndarray:
    """(T, 150) padded row -> (M, T', 25, 3) float32: frames after the last non-zero one cut, an
    all-zero second body dropped; M = 0 when the row is all zero."""
    bodies = row.reshape(len(row), BODIES, JOINTS, DIMS).transpose(1, 0, 2, 3)
    used = np.flatnonzero(np.any(row != 0, axis=1))
    if used.size == 0:
        return bodies[:0, :0].astype(np.float32)
    bodies = bodies[:, : used[-1] + 1]
    keep = [0] + [m for m in range(1, BODIES) if np.any(bodies[m])]
    return np.ascontiguousarray(bodies[keep], dtype=np.float32)


def read_ctrgcn(path: Path, label_map: str | Path | None = None) -> Unpacking:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        _fail(path, f"not an npz file ({error})")
    read = {part: read_labels(archive, f"y_{part}", path) for part in PARTS}
    labels = {part: y for part, (y, _) in read.items()}
    widths = [width for _, width in read.values()]
    largest = max((int(y.max()) for y in labels.values() if y.size), default=-1)
    num_classes = max(widths) if None not in widths else checked_count(
        largest + 1, MAX_CLASSES, file=path, what="number of classes (the largest label + 1)")
    skipped: list[tuple[str, str]] = []

    def samples():
        with archive:
            for part in PARTS:
                for k, row in enumerate(_rows(archive, f"x_{part}", len(labels[part]), path)):
                    name, bodies = f"{part}_{k}", row_bodies(row)
                    if labels[part][k] < 0:
                        skipped.append((name, f"label {labels[part][k]} is not a class number"))
                    elif bodies.shape[1] == 0:
                        skipped.append((name, "all zero"))
                    elif not np.isfinite(bodies).all():
                        skipped.append((name, "non-finite coordinates"))
                    else:
                        yield name, int(labels[part][k]), bodies

    splits = {PROTOCOL: {part: [f"{part}_{k}" for k in range(len(labels[part]))] for part in PARTS}
              | {"names": {part: f"x_{part}" for part in PARTS}}}
    return Unpacking(samples(), splits, num_classes,
                     class_names_of(num_classes, label_map, num_classes in (60, 120)), skipped,
                     {"bodies": "as CTR-GCN's denoising kept them; an all-zero second body dropped",
                      "frames": "up to each sample's last frame that is not all zero"})


def register_ctrgcn_dataset(path: str | Path, layout: str | Path | None = None,
                            label_map: str | Path | None = None) -> Dataset:
    """``-d ctrgcn --data FILE.npz``: the file unpacked (once) and made the table's ``ctrgcn`` row."""
    return register_unpacked_dataset(CTRGCN_KIND, path, read_ctrgcn, layout, label_map)
