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
- Classes: --label-map FILE (one name per line, label 0 first); NTU RGB+D's names when the
  frame_dirs are NTU sample names whose action is label + 1; else 'class 0', 'class 1', ....
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from common.safe_pickle import load_pickle
from .datasets import Dataset
from .kinds import SampleKind
from .ntu import NTU_NAME
from .unpacked import TEST, TRAIN, Unpacking, class_names_of, peer_kind, register_unpacked_dataset

PYSKL = "pyskl"
PYSKL_KIND: SampleKind = peer_kind(PYSKL)
SPLIT_NAME = re.compile(r"^(?:(?P<prefix>.+)_)?(?P<part>train|val|test)(?P<number>\d*)$")
MAX_BODIES = 2


def _fail(path: Path, problem: str):
    raise ValueError(f"{path}: {problem}")


def protocols_of(splits: dict, path: Path) -> dict[str, dict]:
    """{protocol: {"train": [names], "test": [names], "names": {...}}} from the file's split lists."""
    groups: dict[str, dict[str, str]] = {}
    for key in splits:
        match = SPLIT_NAME.match(str(key))
        if match:
            protocol = (match["prefix"] or "split") + match["number"]
            groups.setdefault(protocol, {})[match["part"]] = key
    protocols = {}
    for protocol, parts in groups.items():
        test = parts.get("test") or parts.get("val")
        if "train" in parts and test:
            names = {TRAIN: parts["train"], TEST: test}
            protocols[protocol] = {part: [str(n) for n in splits[key]] for part, key in names.items()} | {"names": names}
    if not protocols:
        _fail(path, f"no pair of train and val/test split lists (it has: {', '.join(map(str, splits)) or 'none'})")
    return protocols


def _annotation_fields(item: object, k: int, path: Path) -> tuple[str, int, np.ndarray, np.ndarray | None]:
    if not isinstance(item, dict) or not {"frame_dir", "label", "keypoint"} <= set(item):
        _fail(path, f"annotation {k} is not a dict with frame_dir, label and keypoint")
    name, label, keypoint, score = item["frame_dir"], item["label"], item["keypoint"], item.get("keypoint_score")
    where = f"annotation {k} ({name})"
    if not isinstance(keypoint, np.ndarray) or keypoint.ndim != 4 or keypoint.dtype.kind not in "iuf":
        _fail(path, f"{where}: keypoint is not an (M, T, V, C) numeric array")
    if score is not None and (not isinstance(score, np.ndarray) or score.shape != keypoint.shape[:3]):
        _fail(path, f"{where}: keypoint_score is not an (M, T, V) array matching keypoint {keypoint.shape}")
    if not isinstance(label, (int, np.integer)) or label < 0:
        _fail(path, f"{where}: label {label!r} is not a 0-based class number")
    return str(name), int(label), keypoint, score


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

    return Unpacking(samples(), protocols_of(data["split"], path), num_classes,
                     class_names_of(num_classes, label_map, ntu_labels), skipped,
                     {"bodies": "all-zero persons dropped; of more than two, the two of highest mean keypoint "
                                "score (else the first two)", "scores": "choose persons only; coordinates as given"})


def register_pyskl_dataset(path: str | Path, layout: str | Path | None = None,
                           label_map: str | Path | None = None) -> Dataset:
    """``-d pyskl --data FILE.pkl``: the file unpacked (once) and made the table's ``pyskl`` row."""
    return register_unpacked_dataset(PYSKL_KIND, path, read_pyskl, layout, label_map)
