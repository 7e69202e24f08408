"""NW-UCLA reader: CTR-GCN ``all_sqe/aAA_sSS_eEE_vVV.json`` files (docs/METHOD.md §1)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .centring import FIRST_FRAME, Uncentred
from .datasets import parse_ucla_name, sample_id
from .layouts import UCLA
from .ntu import SkeletonFormatError


def read_ucla(path: str | Path) -> tuple[str, np.ndarray, int]:
    """(sample id, skeletons (T, 20, 3) float64, label 1..10) of one NW-UCLA json file.

    The label stored in the file must agree with the action in the file name (the json label
    is the remapped 1..10 one), and ``file_name``, when present, must be the file's own id.
    """
    path = Path(path)
    name = sample_id(path)
    try:
        expected_label = parse_ucla_name(name).label
    except ValueError as exc:
        raise SkeletonFormatError(path, None, str(exc).split(": ", 1)[-1]) from None
    try:
        record = json.loads(path.read_bytes())
    except json.JSONDecodeError as exc:
        raise SkeletonFormatError(path, exc.lineno, f"not valid JSON ({exc.msg})") from None
    if not isinstance(record, dict) or "skeletons" not in record or "label" not in record:
        raise SkeletonFormatError(path, None, "expected a JSON object with 'skeletons' and 'label'")
    if record.get("file_name", name) != name:
        raise SkeletonFormatError(path, None, f"file_name {record['file_name']!r} is not the file's id {name!r}")
    label = record["label"]
    if label != expected_label or isinstance(label, bool):
        raise SkeletonFormatError(path, None, f"label {label!r} disagrees with the file name "
                                  f"(action a{parse_ucla_name(name).action:02d} is label {expected_label})")
    if record["skeletons"] == []:
        raise SkeletonFormatError(path, None, "skeletons has zero frames")
    try:
        skeletons = np.asarray(record["skeletons"], dtype=np.float64)
    except (ValueError, TypeError):
        skeletons = None   # ragged or non-numeric lists
    if skeletons is None or skeletons.ndim != 3 or skeletons.shape[1:] != (UCLA.num_joints, 3):
        shape = "ragged or non-numeric" if skeletons is None else f"shape {skeletons.shape}"
        raise SkeletonFormatError(path, None, f"skeletons must be frames x {UCLA.num_joints} x 3 numbers, "
                                  f"found {shape}")
    finite = np.isfinite(skeletons)
    if not finite.all():   # Python's json accepts NaN, Infinity and 1e999 (inf)
        frame, joint, axis = np.argwhere(~finite)[0]
        raise SkeletonFormatError(path, None, f"NaN or infinite coordinates (first: "
                                  f"skeletons[{frame}][{joint}][{axis}] = {skeletons[frame, joint, axis]})")
    return name, skeletons, int(label)


def ucla_sequence(path: str | Path) -> np.ndarray:
    """(T, 20, 3) float64 sequence the release feeds to its descriptors: centred on joint 1 of frame 0."""
    return ucla_uncentred(path).centred()


def ucla_uncentred(path: str | Path) -> Uncentred:
    """``ucla_sequence`` before its centring, and the centring."""
    return Uncentred(read_ucla(path)[1], FIRST_FRAME, UCLA.root)
