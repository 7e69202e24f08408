"""NW-UCLA: CTR-GCN ``all_sqe/aAA_sSS_eEE_vVV.json`` files (docs/METHOD.md §1), their names and reader."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .centring import FIRST_FRAME, Uncentred
from .kinds import SampleKind, sample_id
from .layouts import UCLA, Layout
from .ntu import SkeletonFormatError

UCLA_NAME = re.compile(r"^a(\d{2})_s(\d{2})_e(\d{2})_v(\d{2})$")
# NW-UCLA action ids are not contiguous; the json "label" is the 1-based position here.
UCLA_ACTIONS = (1, 2, 3, 4, 5, 6, 8, 9, 11, 12)
UCLA_CLASS_NAMES = (
    "pick up with one hand", "pick up with two hands", "drop trash", "walk around", "sit down",
    "stand up", "donning", "doffing", "throw", "carry",
)


@dataclass(frozen=True)
class UclaSample:
    action: int
    subject: int
    episode: int
    view: int

    @property
    def label(self) -> int:
        return UCLA_ACTIONS.index(self.action) + 1


def parse_ucla_name(name: str) -> UclaSample:
    match = UCLA_NAME.match(sample_id(name))
    if not match:
        raise ValueError(f"{name}: not an NW-UCLA sample name (expected aAA_sSS_eEE_vVV)")
    sample = UclaSample(*map(int, match.groups()))
    if sample.action not in UCLA_ACTIONS or not (1 <= sample.view <= 3 and 1 <= sample.subject <= 10):
        raise ValueError(f"{name}: field out of range in NW-UCLA sample name ({sample})")
    return sample


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


def _parse(dataset, name: str) -> UclaSample:
    return parse_ucla_name(name)


def _read(path: Path, mode: str, layout: Layout | None) -> Uncentred:
    return ucla_uncentred(path)   # one body per file: nothing to select in either mode


def _class_names(dataset) -> tuple[str, ...]:
    return UCLA_CLASS_NAMES


UCLA_KIND = SampleKind("ucla", UclaSample, _parse, _read, _class_names, (".json",))
