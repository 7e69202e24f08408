"""One sample file -> its skeleton sequence, as every step reads it (extraction, training from
skeletons, prediction, figures): the dataset kind's reader (body selection by mode), final
centring (skeletons/centring.py) and the checks that name the file in one line."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from common.errors import naming
from common.files import not_a_file

from .centring import Uncentred
from .custom import CUSTOM_KIND
from .kinds import SampleKind
from .layouts import Layout, layout_for_joints
from .ntu import NTU_KIND
from .ucla import UCLA_KIND

MODES = ("paper", "clean")        # paper: the release's images, quirks included; clean: quirks fixed (docs/METHOD.md)
MAX_COORDINATE = 1e100            # far beyond any unit; squares and sums of larger values overflow float64


def check_mode(mode: str) -> str:
    """The one check of a descriptor mode: ``mode`` itself, or a one-line ValueError."""
    if mode not in MODES:
        raise ValueError(f"unknown descriptor mode {mode!r}; choose from {', '.join(MODES)}")
    return mode


# The kinds ``load_sequence`` knows by name ("ntu", "ucla", "custom"); a row of another kind
# (skeletons/datasets.py) passes its kind itself.
KINDS = {kind.name: kind for kind in (NTU_KIND, UCLA_KIND, CUSTOM_KIND)}
# What a file's name says it holds, for a file no dataset vouches for (visualize.py without --layout).
FILE_KINDS = {suffix: kind for kind in KINDS.values() if not kind.needs_layout for suffix in kind.suffixes}


def file_kind(path: str | Path) -> SampleKind:
    """The kind a sample file's name calls for: NTU (.skeleton, .skeleton.npy) or NW-UCLA (.json)."""
    name = Path(path).name
    kind = next((k for suffix, k in FILE_KINDS.items() if name.endswith(suffix)), None)
    if kind is None:
        raise ValueError(f"{path}: unknown sample file type (expected {', '.join(FILE_KINDS)}; a custom "
                         f".npy sample is read with --layout)")
    return kind


def sample_kind(kind: SampleKind | str | None, path: str | Path) -> SampleKind:
    """The one place a kind is resolved: a kind as given, one of ``KINDS`` by name, or (None) the
    kind the file's name calls for."""
    if kind is None:
        return file_kind(path)
    if isinstance(kind, str):
        if kind not in KINDS:
            raise ValueError(f"{path}: unknown dataset kind {kind!r}; choose from {', '.join(KINDS)}")
        return KINDS[kind]
    return kind


def check_file(path: str | Path) -> Path:
    """``path``, refused in one line when there is no such file, or it is no regular file (a FIFO
    would block the reader forever)."""
    path = Path(path)
    if not os.path.lexists(path):
        raise FileNotFoundError(f"{path.absolute()}: skeleton file not found")
    if reason := not_a_file(path):
        raise ValueError(f"{path}: {reason}")
    return path


def check_sequence(X: np.ndarray, path: str | Path, layout: Layout | None = None) -> np.ndarray:
    """The sequence if the descriptors can use it, else ValueError naming the file and the problem.
    With ``layout`` the sequence must be one or two of its bodies; without, an NTU or NW-UCLA one."""
    dims = 3 if layout is None else layout.dims
    if X.ndim != 3 or X.shape[-1] != dims:
        raise ValueError(f"{path}: sequence has shape {X.shape}, expected (frames, joints, {dims})")
    if X.shape[0] == 0:
        raise ValueError(f"{path}: no frames")
    if not np.isfinite(X).all():
        raise ValueError(f"{path}: NaN or infinite coordinates")
    largest = float(np.abs(X).max())
    if largest > MAX_COORDINATE:
        raise ValueError(f"{path}: coordinate {largest:.3g} is beyond +-{MAX_COORDINATE:.0e} (a corrupt value?); "
                         "the descriptors would overflow")
    if layout is None:
        layout_for_joints(X.shape[1])
    elif X.shape[1] not in (layout.num_joints, 2 * layout.num_joints):
        raise ValueError(f"{path}: {X.shape[1]} joints, not one or two bodies of the {layout.name} layout "
                         f"({layout.num_joints} joints)")
    return X


def load_sequence(path: str | Path, mode: str = "paper", kind: SampleKind | str | None = None,
                  layout: Layout | None = None) -> np.ndarray:
    """A sample file -> the (T, V, C) sequence of ``mode``. ``kind`` is the dataset's (a kind, or
    the name of one of ``KINDS``); without it the file's name decides (.skeleton, .skeleton.npy:
    NTU; .json: NW-UCLA). ``layout`` is the dataset's: a custom sample is read with it, and every
    sequence must fit it."""
    return load_uncentred(path, mode, kind, layout)[1]


def load_uncentred(path: str | Path, mode: str = "paper", kind: SampleKind | str | None = None,
                   layout: Layout | None = None) -> tuple[Uncentred, np.ndarray]:
    """(the sample before its final centring, ``load_sequence``'s sequence: that one centred and
    checked). The skeleton pack stores the first, compactly, and redoes the centring."""
    path = check_file(path)
    check_mode(mode)
    kind = sample_kind(kind, path)
    try:
        uncentred = kind.read(path, mode, layout)
        X = np.asarray(uncentred.centred(), dtype=np.float64)
    except (ValueError, KeyError, IndexError) as error:   # name the file in every message
        raise ValueError(naming(error, path)) from None
    return uncentred, check_sequence(X, path, layout)
