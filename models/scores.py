"""Per-sample class scores in files: this project's own .npz (no pickle) and the field's formats,
written by test.py and ensemble.py and read by ensemble.py (docs/ENSEMBLES.md).

- ours: ``<stem>_scores.npz`` with ``ids`` (sample names, the dataset's row order), ``labels``
  (0-based), ``row.<KEY>`` (N, C) float32 per row of the results table that has scores, and
  ``meta`` (a JSON string: the format, each row's score kind, the split part, the dataset);
  np.load reads it with allow_pickle=False.
- CTR-GCN (``main.py --save-score``): a pickle of ``{name: (C,) scores}`` in the dataset's row
  order, raw logits; its ensemble.py pairs the files with the labels by position.
- PYSKL (``tools/test.py --out result.pkl``): a pickled list of (C,) scores in the split's order,
  no names; softmax probabilities averaged over clips by default.
- a plain .npz of ``scores`` (N, C) with ``ids`` (or ``names``) and optionally ``labels``.

Every score file is read with the restricted unpickler (common/safe_pickle.py); each problem is
a one-line ValueError naming the file.
"""
from __future__ import annotations

import json
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.atomic import write_bytes_atomic, write_npz_atomic
from common.safe_pickle import load_pickle

FORMAT = "skeleton-descriptors scores 1"
SCORES_SUFFIX = "_scores.npz"
ROW_PREFIX = "row."
LOGITS, PROBABILITIES, UNKNOWN = "logits", "probabilities", "unknown"
CTRGCN, PYSKL = "ctrgcn", "pyskl"
SAVE_FORMATS = (CTRGCN, PYSKL)
# What a foreign file's scores are when it does not say (each project's test output, by default).
FOREIGN_KINDS = {CTRGCN: LOGITS, PYSKL: PROBABILITIES, "npz": UNKNOWN}


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

    @property
    def count(self) -> int:
        return len(next(iter(self.streams.values())))


def _fail(path: Path, problem: str):
    raise ValueError(f"{path}: {problem}")


# --------------------------------------------------------------------------- writing

def write_ours(path: str | Path, ids: list[str], labels0: np.ndarray, rows: dict[str, tuple[np.ndarray, str]],
               **meta) -> Path:
    """Our .npz: ``rows`` {key: ((N, C) scores, kind)}, in the order of ``ids``."""
    arrays = {"ids": np.array(ids, dtype=str), "labels": np.asarray(labels0, dtype=np.int64),
              **{f"{ROW_PREFIX}{key}": np.asarray(scores, dtype=np.float32) for key, (scores, _) in rows.items()}}
    meta = {"format": FORMAT, "kinds": {key: kind for key, (_, kind) in rows.items()}, **meta}
    arrays["meta"] = np.array(json.dumps(meta))
    write_npz_atomic(path, arrays, make_parents=True)
    return Path(path)


def write_ctrgcn(path: str | Path, ids: list[str], scores: np.ndarray) -> Path:
    """CTR-GCN's --save-score pickle: {name: (C,) float32} in the given (row) order."""
    table = {name: np.asarray(row, dtype=np.float32) for name, row in zip(ids, scores)}
    write_bytes_atomic(path, pickle.dumps(table, protocol=3), make_parents=True)
    return Path(path)


def write_pyskl(path: str | Path, scores: np.ndarray) -> Path:
    """PYSKL's result pickle: a list of (C,) float32 in the given (split) order."""
    write_bytes_atomic(path, pickle.dumps([np.asarray(row, dtype=np.float32) for row in scores], protocol=2),
                       make_parents=True)
    return Path(path)


def write_row(fmt: str, folder: Path, stem: str, row: str, part: str, ids: list[str], scores: np.ndarray) -> Path:
    """One row's scores in a peer's layout, named as test.py names them:
    ``<stem>_<ROW>_test_score.pkl`` (CTR-GCN's), ``<stem>_<ROW>_result.pkl`` (PYSKL's); the file
    of a held-out part says so (``_heldout_score.pkl``, ``_heldout_result.pkl``)."""
    if fmt == CTRGCN:
        return write_ctrgcn(folder / f"{stem}_{row}_{part}_score.pkl", ids, scores)
    held_out = "" if part == "test" else f"_{part}"
    return write_pyskl(folder / f"{stem}_{row}{held_out}_result.pkl", scores)


# --------------------------------------------------------------------------- reading

def _checked(path: Path, streams: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    counts = {len(s) for s in streams.values()}
    for key, scores in streams.items():
        if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] < 2 or scores.dtype.kind not in "iuf":
            _fail(path, f"{key}: scores of shape {scores.shape} {scores.dtype}, expected (samples, classes) numbers")
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


def _read_npz(path: Path) -> ScoreSet:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except ValueError as error:
        _fail(path, f"not a score .npz ({str(error).splitlines()[0]}; object arrays are not read)")
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        _fail(path, f"not a readable .npz (truncated or damaged: {error})")
    if "meta" in arrays:
        try:
            meta = json.loads(str(arrays["meta"]))
        except ValueError:
            meta = {}
        if meta.get("format") == FORMAT:
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
                    None if labels is None else labels.astype(np.int64), streams, {"scores": UNKNOWN})


def _ours(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> ScoreSet:
    streams = {key[len(ROW_PREFIX):]: value for key, value in arrays.items() if key.startswith(ROW_PREFIX)}
    missing = [key for key in ("ids", "labels") if key not in arrays] + ([] if "kinds" in meta else ["meta kinds"])
    if missing or not streams:
        _fail(path, f"a damaged score file of this project (no {', '.join(missing) or 'scored rows'}); run test.py again")
    streams = _checked(path, streams)
    count = len(next(iter(streams.values())))
    _per_sample(path, "ids", arrays["ids"], count)
    _per_sample(path, "labels", arrays["labels"], count, integers=True)
    return ScoreSet(path, "ours", [str(i) for i in arrays["ids"]], arrays["labels"].astype(np.int64), streams,
                    {key: meta["kinds"].get(key, UNKNOWN) for key in streams}, meta.get("part"), meta)


def _read_pickle(path: Path) -> ScoreSet:
    data = load_pickle(path, "score pickle")
    if isinstance(data, dict) and data and all(isinstance(k, str) for k in data):
        rows = list(data.values())
        fmt, ids = CTRGCN, list(data)
    elif isinstance(data, (list, tuple)) and data:
        rows, fmt, ids = list(data), PYSKL, None
    elif isinstance(data, np.ndarray) and data.ndim == 2:
        rows, fmt, ids = list(data), PYSKL, None
    else:
        _fail(path, f"not a score file: a {type(data).__name__}, expected CTR-GCN's {{name: scores}} or PYSKL's "
                    f"list of scores")
    if not all(isinstance(r, np.ndarray) and r.ndim == 1 for r in rows) or len({r.shape for r in rows}) != 1:
        _fail(path, "not a score file: its entries are not score vectors of one length")
    return ScoreSet(path, fmt, ids, None, _checked(path, {"scores": np.stack(rows)}), {"scores": FOREIGN_KINDS[fmt]})


def read_scores(path: str | Path) -> ScoreSet:
    """A score file of any of the formats above, or a results JSON of test.py (its scores file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path.absolute()}: no such score file")
    if path.suffix == ".json":
        try:
            doc = json.loads(path.read_text())
            scores = Path(doc["scores_file"])
        except (ValueError, KeyError, TypeError):
            _fail(path, "not a results JSON of test.py with a scores file (rerun test.py to write one)")
        return read_scores(scores if scores.is_absolute() else path.parent / scores.name)
    if path.suffix == ".npz":
        return _read_npz(path)
    return _read_pickle(path)
