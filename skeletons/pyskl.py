"""PYSKL annotation pickles as a dataset (``-d pyskl --data FILE.pkl -p SPLIT_PREFIX``).

The file (PYSKL's tools/data, docs/CUSTOM_DATA.md) is ``dict(split={name: [frame_dir, ...]},
annotations=[dict(frame_dir, label, keypoint, total_frames, keypoint_score?, img_shape?, ...)])``:
``label`` 0-based, ``keypoint`` (M, T, V, C) float16 or float32, ``keypoint_score`` (M, T, V) for
2D poses. It is read by the restricted unpickler (common/safe_pickle.py): a file that would run
code is refused and runs nothing.

- Protocols: each pair of split lists ``<prefix>_train`` and ``<prefix>_val`` (or ``_test``; with
  both, ``_test``) is the protocol ``<prefix>`` (xsub, xview, xset); a bare ``train``/``val``
  pair is the protocol ``split`` (Kinetics-style files), ``train1``/``test1`` ``split1``.
- Bodies: a person all zero in every frame is padding and dropped; of more than two persons, the
  two of highest mean keypoint score, the higher first (without scores, the first two, as PYSKL's
  FormatGCNInput keeps); one or two persons stay in the file's order.
- Scores: they choose persons only. A low-score joint keeps its coordinates as the pose estimator
  gave them (PYSKL's GCNs, too, take the coordinates as given, with the score as a channel).
- Checked before anything is written: each frame_dir is a one-line name (no control characters)
  and names one annotation; labels are 0-based class numbers below MAX_CLASSES; each split is a
  list of names, none listed twice, and no sample is in both parts of a protocol (a pair that
  overlaps would put test samples into training). A name a split lists that the annotations do
  not hold, and a sample left out (nobody in it, NaN), is named in origin.json's "skipped".
- Classes: --label-map FILE (one name per line, label 0 first); NTU RGB+D's names when the
  frame_dirs are NTU sample names whose action is label + 1; else 'class 0', 'class 1', ....
"""
from __future__ import annotations

import re
import reprlib
from pathlib import Path

import numpy as np

from common.provenance import MAX_CLASSES
from common.safe_pickle import load_pickle
from .datasets import Dataset
from .kinds import SampleKind
from .ntu import NTU_NAME
from .unpacked import (TEST, TRAIN, Unpacking, checked_name, class_names_of, peer_kind, register_unpacked_dataset,
                       shown_name)

PYSKL = "pyskl"
PYSKL_KIND: SampleKind = peer_kind(PYSKL)
# A protocol's name becomes part of folder names: letters, digits, '_' and '-' only.
SPLIT_NAME = re.compile(r"^(?:(?P<prefix>[A-Za-z0-9_-]+)_)?(?P<part>train|val|test)(?P<number>\d*)$")
LOOSE_SPLIT_NAME = re.compile(r"^(?:.*_)?(?:train|val|test)\d*$", re.DOTALL)
MAX_BODIES = 2


def _fail(path: Path, problem: str):
    raise ValueError(f"{path}: {problem}")


def split_list(splits: dict, key: str, path: Path) -> list[str]:
    """A split's names, checked: a list of one-line names, none listed twice."""
    names = splits[key]
    if isinstance(names, np.ndarray) and names.ndim == 1 and names.dtype.kind == "U":
        names = names.tolist()
    if not isinstance(names, (list, tuple)):
        _fail(path, f"split {key!r} is a {type(names).__name__}, not a list of frame_dirs")
    seen: set[str] = set()
    for k, name in enumerate(names):
        name = checked_name(name, f"split {key!r}, entry {k}", path)
        if name in seen:
            _fail(path, f"split {key!r} lists {shown_name(name)} twice (entry {k})")
        seen.add(name)
    return [str(name) for name in names]


def _protocol(splits: dict, names: dict[str, str], path: Path) -> dict:
    """One protocol's train and test lists, refused where they share a sample."""
    lists = {part: split_list(splits, key, path) for part, key in names.items()}
    train = set(lists[TRAIN])
    if shared := next((name for name in lists[TEST] if name in train), None):
        _fail(path, f"sample {shown_name(shared)} is in both {names[TRAIN]!r} and {names[TEST]!r}: a split pair "
                    f"that overlaps puts test samples into training; remove it from one of them")
    return lists | {"names": names}


def protocols_of(splits: dict, path: Path) -> dict[str, dict]:
    """{protocol: {"train": [names], "test": [names], "names": {...}}} from the file's split lists."""
    groups: dict[str, dict[str, str]] = {}
    for key in splits:
        match = SPLIT_NAME.fullmatch(key) if isinstance(key, str) else None
        if not match and isinstance(key, str) and LOOSE_SPLIT_NAME.fullmatch(key):
            _fail(path, f"split {shown_name(key)}: a protocol name holds only letters, digits, '_' and '-'")
        if match:
            protocol = (match["prefix"] or "split") + match["number"]
            groups.setdefault(protocol, {})[match["part"]] = key
    protocols = {}
    for protocol, parts in groups.items():
        test = parts.get("test") or parts.get("val")
        if "train" in parts and test:
            protocols[protocol] = _protocol(splits, {TRAIN: parts["train"], TEST: test}, path)
    if not protocols:
        _fail(path, f"no pair of train and val/test split lists (it has: "
                    f"{', '.join(shown_name(k) for k in list(splits)[:20]) or 'none'})")
    return protocols


def unused_splits(splits: dict, protocols: dict[str, dict]) -> list[str]:
    """The file's train/val/test split lists that no protocol uses (a val beside a test, a lone train)."""
    used = {key for parts in protocols.values() for key in parts["names"].values()}
    return [key for key in splits if isinstance(key, str) and SPLIT_NAME.fullmatch(key) and key not in used]


def _annotation_fields(item: object, k: int, path: Path) -> tuple[str, int, np.ndarray, np.ndarray | None]:
    if not isinstance(item, dict) or not {"frame_dir", "label", "keypoint"} <= set(item):
        _fail(path, f"annotation {k} is not a dict with frame_dir, label and keypoint")
    name = checked_name(item["frame_dir"], f"annotation {k}: frame_dir", path)
    label, keypoint, score = item["label"], item["keypoint"], item.get("keypoint_score")
    where = f"annotation {k} ({shown_name(name)})"
    if not isinstance(keypoint, np.ndarray) or keypoint.ndim != 4 or keypoint.dtype.kind not in "iuf":
        _fail(path, f"{where}: keypoint is not an (M, T, V, C) numeric array")
    if score is not None and (not isinstance(score, np.ndarray) or score.shape != keypoint.shape[:3]
                              or score.dtype.kind not in "iuf"):
        _fail(path, f"{where}: keypoint_score is not an (M, T, V) numeric array matching keypoint {keypoint.shape}")
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label < MAX_CLASSES:
        _fail(path, f"{where}: label {reprlib.repr(label)} is not a 0-based class number below {MAX_CLASSES:,}")
    return name, int(label), keypoint, score


def check_distinct(names: list[str], path: Path) -> None:
    """Each frame_dir names one annotation (a second would take the first one's place)."""
    first: dict[str, int] = {}
    for k, name in enumerate(names):
        if name in first:
            _fail(path, f"annotations {first[name]} and {k} have the same frame_dir {shown_name(name)}; each "
                        f"sample needs its own name")
        first[name] = k


def choose_bodies(keypoint: np.ndarray, score: np.ndarray | None) -> np.ndarray:
    """The persons the descriptors see: padding persons (all zero) dropped, then of more than two
    the two of highest mean score, the higher first (without scores, the first two); at most two
    persons keep the file's order. (M', T, V, C) float32, M' = 0 when there is nobody."""
    present = [m for m in range(len(keypoint)) if np.any(keypoint[m])]
    if score is not None and len(present) > MAX_BODIES:
        means = score[present].reshape(len(present), -1).mean(axis=1)
        present = [present[k] for k in np.argsort(-means, kind="stable")]
    return keypoint[present[:MAX_BODIES]].astype(np.float32)


def read_pyskl(path: Path, label_map: str | Path | None = None) -> Unpacking:
    data = load_pickle(path, "PYSKL annotation pickle")
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        _fail(path, "not a PYSKL annotation file (a dict with 'split' and 'annotations')")
    if not isinstance(data.get("split"), dict):
        _fail(path, "no 'split' dict of sample lists (PYSKL files name their train and val/test samples)")
    items = [_annotation_fields(item, k, path) for k, item in enumerate(data["annotations"])]
    check_distinct([name for name, _, _, _ in items], path)
    protocols = protocols_of(data["split"], path)
    num_classes = max(label for _, label, _, _ in items) + 1 if items else 0
    ntu_labels = all((m := NTU_NAME.match(name)) and int(m.group(5)) == label + 1 for name, label, _, _ in items)
    skipped: list[tuple[str, str]] = []

    def samples():
        for name, label, keypoint, score in items:
            bodies = choose_bodies(keypoint, score)
            problem = ("no person in any frame" if len(bodies) == 0 or bodies.shape[1] == 0 else
                       "non-finite coordinates" if not np.isfinite(bodies).all() else "")
            if problem:
                skipped.append((name, problem))
                continue
            yield name, label, bodies

    unused = unused_splits(data["split"], protocols)
    return Unpacking(samples(), protocols, num_classes, class_names_of(num_classes, label_map, ntu_labels), skipped,
                     {"bodies": "all-zero persons dropped; of more than two, the two of highest mean keypoint "
                                "score (else the first two)", "scores": "choose persons only; coordinates as given"}
                     | ({"unused splits": unused} if unused else {}))


def register_pyskl_dataset(path: str | Path, layout: str | Path | None = None,
                           label_map: str | Path | None = None) -> Dataset:
    """``-d pyskl --data FILE.pkl``: the file unpacked (once) and made the table's ``pyskl`` row."""
    return register_unpacked_dataset(PYSKL_KIND, path, read_pyskl, layout, label_map)
