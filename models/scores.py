"""Per-sample class scores in files: this project's own .npz (no pickle) and the field's formats,
written by test.py and ensemble.py and read by ensemble.py (docs/ENSEMBLES.md).

- ours: ``<stem>_scores.npz`` with ``ids`` (sample names, the dataset's row order), ``labels``
  (0-based), ``row.<KEY>`` (N, C) float32 per row of the results table that has scores,
  ``classes`` (the ordered class names, when known) and ``meta`` (a JSON string: the format,
  each row's score kind, the split part, the dataset, protocol and data file; a fused file also
  its inputs' digests); np.load reads it with allow_pickle=False.
- CTR-GCN (``main.py --save-score``): a pickle of ``{name: (C,) scores}`` in the dataset's row
  order, raw logits; its ensemble.py pairs the files with the labels by position.
- PYSKL (``tools/test.py --out result.pkl``): a pickled list of (C,) scores in the split's order,
  no names; softmax probabilities averaged over clips by default.
- a plain .npz of ``scores`` (N, C) with ``ids`` (or ``names``) and optionally ``labels`` and
  ``classes``.

Every score file is read with the restricted unpickler (common/safe_pickle.py); each problem is
a one-line ValueError naming the file. Readers are bounded: what a file declares (an npz
member's shape, a pickle's rows and classes, the matrix its rows make, shared or zero-strided
rows included) is checked against what the file holds and the limits of common/provenance.py
before anything of that size is allocated.
"""
from __future__ import annotations

import json
import pickle
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.atomic import write_bytes_atomic, write_npz_atomic
from common.errors import cause_text
from common.files import npy_header
from common.provenance import MAX_CLASSES, MAX_SAMPLES, checked_allocation, checked_count, file_digest
from common.safe_pickle import load_pickle

FORMAT = "skeleton-descriptors scores 1"
SCORES_SUFFIX = "_scores.npz"
ROW_PREFIX = "row."
LOGITS, PROBABILITIES, UNKNOWN = "logits", "probabilities", "unknown"
CTRGCN, PYSKL = "ctrgcn", "pyskl"
SAVE_FORMATS = (CTRGCN, PYSKL)
# What a foreign file's scores are when it does not say (each project's test output, by default).
FOREIGN_KINDS = {CTRGCN: LOGITS, PYSKL: PROBABILITIES, "npz": UNKNOWN}
# The npz members a reader loads (any other member is left unread, however large it says it is).
NPZ_KEYS = ("ids", "names", "labels", "classes", "meta", "scores")
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class ScoreSet:
    """The scores of one file: one or more streams over one set of samples."""
    source: Path
    format: str                      # ours, ctrgcn, pyskl, npz
    ids: list[str] | None            # None: a file without sample names (a PYSKL list)
    labels: np.ndarray | None        # 0-based; None when the file has none
    streams: dict[str, np.ndarray]   # row key -> (N, C) float scores
    kinds: dict[str, str]            # row key -> logits, probabilities or unknown
    part: str | None = None          # ours: test or heldout
    meta: dict = field(default_factory=dict)
    classes: list[str] | None = None   # the ordered class names, where the file records them
    digest: str | None = None        # SHA-256 of the file read

    @property
    def count(self) -> int:
        return len(next(iter(self.streams.values())))


def _fail(path: Path, problem: str):
    raise ValueError(f"{path}: {problem}")


# --------------------------------------------------------------------------- writing

def stored(scores: np.ndarray) -> np.ndarray:
    """Scores as a file stores them: float32, or float64 where a value is beyond float32's range
    (a plain npz's float64 scores), so that no finite score is written as infinite."""
    scores = np.asarray(scores)
    wide = scores.size and float(np.abs(scores).max()) > FLOAT32_MAX
    return np.asarray(scores, dtype=np.float64 if wide else np.float32)


def write_ours(path: str | Path, ids: list[str], labels0: np.ndarray, rows: dict[str, tuple[np.ndarray, str]],
               classes: list[str] | None = None, **meta) -> Path:
    """Our .npz: ``rows`` {key: ((N, C) scores, kind)}, in the order of ``ids``; ``classes``: the
    ordered class names of the model and data (kept so that ensemble.py can compare them)."""
    arrays = {"ids": np.array(ids, dtype=str), "labels": np.asarray(labels0, dtype=np.int64),
              **{f"{ROW_PREFIX}{key}": stored(scores) for key, (scores, _) in rows.items()}}
    if classes is not None:
        arrays["classes"] = np.array([str(c) for c in classes], dtype=str)
    meta = {"format": FORMAT, "kinds": {key: kind for key, (_, kind) in rows.items()}, **meta}
    arrays["meta"] = np.array(json.dumps(meta))
    write_npz_atomic(path, arrays, make_parents=True)
    return Path(path)


def write_ctrgcn(path: str | Path, ids: list[str], scores: np.ndarray) -> Path:
    """CTR-GCN's --save-score pickle: {name: (C,) float32} in the given (row) order."""
    table = {name: row for name, row in zip(ids, stored(scores))}
    write_bytes_atomic(path, pickle.dumps(table, protocol=3), make_parents=True)
    return Path(path)


def write_pyskl(path: str | Path, scores: np.ndarray) -> Path:
    """PYSKL's result pickle: a list of (C,) float32 in the given (split) order."""
    write_bytes_atomic(path, pickle.dumps(list(stored(scores)), protocol=2),
                       make_parents=True)
    return Path(path)


def row_file_name(row: str) -> str:
    """A row key as file names carry it: letters, digits, '.', '-' and '_' only (the key
    'mean_softmax.singles+all' is 'mean_softmax.singles_all'), so that no shell or tool reads a
    score file's name as anything but a name."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", row)


def write_row(fmt: str, folder: Path, stem: str, row: str, part: str, ids: list[str], scores: np.ndarray) -> Path:
    """One row's scores in a peer's layout, named as test.py names them:
    ``<stem>_<ROW>_test_score.pkl`` (CTR-GCN's), ``<stem>_<ROW>_result.pkl`` (PYSKL's), ROW as
    ``row_file_name`` writes it; the file of a held-out part says so (``_heldout_score.pkl``,
    ``_heldout_result.pkl``)."""
    row = row_file_name(row)
    if fmt == CTRGCN:
        return write_ctrgcn(folder / f"{stem}_{row}_{part}_score.pkl", ids, scores)
    held_out = "" if part == "test" else f"_{part}"
    return write_pyskl(folder / f"{stem}_{row}{held_out}_result.pkl", scores)


# --------------------------------------------------------------------------- reading

def _bounded(path: Path, key: str, shape: tuple[int, ...]) -> None:
    """A (samples, classes) shape within the stated limits (a damaged or crafted file otherwise)."""
    checked_count(shape[0], MAX_SAMPLES, file=path, what=f"{key}: the sample count")
    checked_count(shape[1], MAX_CLASSES, file=path, what=f"{key}: the class count")


def _checked(path: Path, streams: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    counts = {len(s) for s in streams.values()}
    for key, scores in streams.items():
        if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] < 2 or scores.dtype.kind not in "iuf":
            _fail(path, f"{key}: scores of shape {scores.shape} {scores.dtype}, expected (samples, classes) numbers")
        _bounded(path, key, scores.shape)
        if not np.isfinite(scores).all():
            sample = int(np.argwhere(~np.isfinite(scores))[0][0])
            _fail(path, f"{key}: NaN or infinite score (sample {sample})")
    if len(counts) > 1:
        _fail(path, f"rows of different sample counts {sorted(counts)}")
    return {key: np.asarray(scores, dtype=np.float64) for key, scores in streams.items()}


def _per_sample(path: Path, name: str, values: np.ndarray | None, count: int, integers: bool = False) -> None:
    """Refuse ids or labels that are not one per scored sample (or labels that are not 0-based classes)."""
    if values is None:
        return
    if values.ndim != 1 or len(values) != count:
        _fail(path, f"{name} of shape {values.shape}, expected one per sample ({count})")
    if integers and (values.dtype.kind not in "iu" or (values < 0).any()):
        _fail(path, f"{name} must be 0-based class numbers (found {values.dtype} {values.min()})")


def _class_names(path: Path, values: np.ndarray | None, streams: dict[str, np.ndarray]) -> list[str] | None:
    """The file's ordered class names (``classes``), one per class of its scores; None if it has none."""
    if values is None:
        return None
    width = next(iter(streams.values())).shape[1]
    if values.ndim != 1 or values.dtype.kind != "U" or len(values) != width:
        _fail(path, f"classes of shape {values.shape} {values.dtype}, expected the names of its {width} classes")
    return [str(name) for name in values]


NPY_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error)


def _npz_member(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, key: str) -> np.ndarray:
    """One array of an npz, its header read first and what it declares checked against what the
    file holds (a member of zeros that inflates to gigabytes, a header that overstates its data)
    before numpy allocates it."""
    try:
        with archive.open(info) as member:
            shape, _, dtype = npy_header(member)
    except NPY_ERRORS as error:
        _fail(path, f"{key}: not a numpy array ({cause_text(error)})")
    if dtype.hasobject:
        _fail(path, f"not a score .npz ({key} holds Python objects; object arrays are not read)")
    checked_allocation(shape, dtype.itemsize, info.compress_size, file=path, what=repr(key))
    try:
        with archive.open(info) as member:
            return np.lib.format.read_array(member, allow_pickle=False)
    except NPY_ERRORS as error:
        _fail(path, f"not a readable .npz (truncated or damaged: {key}: {cause_text(error)})")


def _npz_arrays(path: Path) -> dict[str, np.ndarray]:
    """The members a score reader uses (``NPZ_KEYS`` and the rows), each bounded before it is read."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
            return {key: _npz_member(path, archive, info, key) for key, info in members.items()
                    if key in NPZ_KEYS or key.startswith(ROW_PREFIX)}
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        _fail(path, f"not a readable .npz (truncated or damaged: {cause_text(error)})")


def _read_npz(path: Path) -> ScoreSet:
    arrays = _npz_arrays(path)
    if "meta" in arrays:
        try:
            meta = json.loads(str(arrays["meta"]))
        except ValueError:
            meta = {}
        if isinstance(meta, dict) and meta.get("format") == FORMAT:
            return _ours(path, arrays, meta)
    if "scores" not in arrays:
        _fail(path, f"not a score file: a plain .npz needs 'scores' (samples, classes) and 'ids'; it has "
                    f"{', '.join(arrays) or 'nothing'}")
    ids = arrays.get("ids", arrays.get("names"))
    labels = arrays.get("labels")
    streams = _checked(path, {"scores": arrays["scores"]})
    _per_sample(path, "ids", ids, len(streams["scores"]))
    _per_sample(path, "labels", labels, len(streams["scores"]), integers=True)
    return ScoreSet(path, "npz", None if ids is None else [str(i) for i in ids],
                    None if labels is None else labels.astype(np.int64), streams, {"scores": UNKNOWN},
                    classes=_class_names(path, arrays.get("classes"), streams))


def _ours(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> ScoreSet:
    streams = {key[len(ROW_PREFIX):]: value for key, value in arrays.items() if key.startswith(ROW_PREFIX)}
    kinds = meta.get("kinds")
    missing = [key for key in ("ids", "labels") if key not in arrays] + ([] if isinstance(kinds, dict) else ["meta kinds"])
    if missing or not streams:
        _fail(path, f"a damaged score file of this project (no {', '.join(missing) or 'scored rows'}); run test.py again")
    streams = _checked(path, streams)
    count = len(next(iter(streams.values())))
    _per_sample(path, "ids", arrays["ids"], count)
    _per_sample(path, "labels", arrays["labels"], count, integers=True)
    return ScoreSet(path, "ours", [str(i) for i in arrays["ids"]], arrays["labels"].astype(np.int64), streams,
                    {key: str(kinds.get(key, UNKNOWN)) for key in streams},
                    meta["part"] if isinstance(meta.get("part"), str) else None, meta,
                    _class_names(path, arrays.get("classes"), streams))


def _score_matrix(path: Path, rows: list, size: int) -> np.ndarray:
    """The (samples, classes) float64 matrix of a pickle's score vectors, made only after what it
    declares is checked: the row count and length within the limits, and the matrix no larger
    than the file's data could make (rows shared many times or zero-strided hold no data)."""
    if not all(isinstance(r, np.ndarray) and r.ndim == 1 for r in rows) or len({r.shape for r in rows}) != 1:
        _fail(path, "not a score file: its entries are not score vectors of one length")
    if any(r.dtype.kind not in "iuf" for r in rows):
        _fail(path, f"not a score file: its entries are {rows[0].dtype} vectors, expected numbers")
    shape = (len(rows), rows[0].shape[0])
    _bounded(path, "scores", shape)
    narrowest = min(r.dtype.itemsize for r in rows)
    checked_allocation(shape, 8, size * 8 // narrowest, file=path, what="its score rows")
    return np.stack(rows, dtype=np.float64)


def _read_pickle(path: Path) -> ScoreSet:
    data = load_pickle(path, "score pickle")
    if isinstance(data, dict) and data and all(isinstance(k, str) for k in data):
        rows, fmt, ids = list(data.values()), CTRGCN, list(data)
    elif isinstance(data, (list, tuple)) and data:
        rows, fmt, ids = list(data), PYSKL, None
    elif isinstance(data, np.ndarray) and data.ndim == 2:
        rows, fmt, ids = data, PYSKL, None
    else:
        _fail(path, f"not a score file: a {type(data).__name__}, expected CTR-GCN's {{name: scores}} or PYSKL's "
                    f"list of scores")
    size = path.stat().st_size
    if isinstance(rows, np.ndarray):   # one matrix: its shape is checked before anything is copied
        if rows.dtype.kind not in "iuf":
            _fail(path, f"not a score file: a {rows.dtype} matrix, expected numbers")
        _bounded(path, "scores", rows.shape)
        checked_allocation(rows.shape, 8, size * 8 // rows.dtype.itemsize, file=path, what="its score matrix")
        matrix = np.asarray(rows, dtype=np.float64)
    else:
        matrix = _score_matrix(path, rows, size)
    return ScoreSet(path, fmt, ids, None, _checked(path, {"scores": matrix}), {"scores": FOREIGN_KINDS[fmt]})


def _results_target(path: Path) -> Path:
    """The scores file a results JSON of test.py names (beside it when the path is relative)."""
    try:
        doc = json.loads(path.read_text())
        scores = Path(doc["scores_file"])
    except (ValueError, KeyError, TypeError):
        _fail(path, "not a results JSON of test.py with a scores file (rerun test.py to write one)")
    target = scores if scores.is_absolute() else path.parent / scores.name
    if target.suffix == ".json":
        _fail(path, f"its scores file {scores} is another JSON, not a score file (rerun test.py to write one)")
    return target


def read_scores(path: str | Path) -> ScoreSet:
    """A score file of any of the formats above, or a results JSON of test.py (its scores file),
    with the SHA-256 of the file read."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path.absolute()}: no such score file")
    if path.suffix == ".json":
        return read_scores(_results_target(path))
    data = _read_npz(path) if path.suffix == ".npz" else _read_pickle(path)
    data.digest = file_digest(path)
    return data
