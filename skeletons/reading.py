"""One sample file -> its skeleton sequence, as every step reads it (extraction, training from
skeletons, prediction, figures): the dataset's reader, body selection by mode, final centring
(skeletons/centring.py) and the checks that name the file in one line."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from common.errors import naming

from .bodies import clean_uncentred
from .centring import Uncentred
from .custom import load_custom_uncentred
from .layouts import Layout, layout_for_joints
from .ntu import load_skeleton_npy, paper_uncentred, read_skeleton
from .ucla import ucla_uncentred

MODES = ("paper", "clean")        # paper: the release's images, quirks included; clean: quirks fixed (docs/METHOD.md)
MAX_COORDINATE = 1e100            # far beyond any unit; squares and sums of larger values overflow float64


def check_mode(mode: str) -> str:
    """The one check of a descriptor mode: ``mode`` itself, or a one-line ValueError."""
    if mode not in MODES:
        raise ValueError(f"unknown descriptor mode {mode!r}; choose from {', '.join(MODES)}")
    return mode


def _ntu_dict(path: Path) -> dict:
    return load_skeleton_npy(path) if path.name.endswith(".npy") else read_skeleton(path)


def _ntu_sequence(path: Path, mode: str, layout: Layout | None) -> Uncentred:
    data = _ntu_dict(path)
    if len(data["skel_body0"]) == 0:
        raise ValueError(f"{path}: no frames")
    # Clean mode replaces the release's "body slots 0 and 1" (quirk 6) by body selection.
    return (paper_uncentred if mode == "paper" else clean_uncentred)(data)


def _ucla_sequence(path: Path, mode: str, layout: Layout | None) -> Uncentred:
    return ucla_uncentred(path)  # one body per file: nothing to select in either mode


def _custom_sequence(path: Path, mode: str, layout: Layout | None) -> Uncentred:
    if layout is None:
        raise ValueError(f"{path}: a custom sample is read with its layout (--layout)")
    return load_custom_uncentred(path, layout)   # its bodies as given, in either mode


# A dataset's ``reader`` (skeletons/datasets.py) -> how its sample files become sequences, given
# before their final centring (skeletons/centring.py), which load_uncentred applies.
SEQUENCE_READERS = {"ntu": _ntu_sequence, "ucla": _ucla_sequence, "custom": _custom_sequence}
# What a file's name says it holds, for a file no dataset vouches for (visualize.py without --layout).
FILE_READERS = {".skeleton": "ntu", ".skeleton.npy": "ntu", ".json": "ucla"}


def file_reader(path: str | Path) -> str:
    """The reader a sample file's name calls for: ntu (.skeleton, .skeleton.npy) or ucla (.json)."""
    name = Path(path).name
    reader = next((r for suffix, r in FILE_READERS.items() if name.endswith(suffix)), None)
    if reader is None:
        raise ValueError(f"{path}: unknown sample file type (expected {', '.join(FILE_READERS)}; a custom "
                         f".npy sample is read with --layout)")
    return reader


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


def load_sequence(path: str | Path, mode: str = "paper", reader: str | None = None,
                  layout: Layout | None = None) -> np.ndarray:
    """A sample file -> the (T, V, C) sequence of ``mode``. ``reader`` is the dataset's (ntu, ucla,
    custom); without it the file's name decides (.skeleton, .skeleton.npy: NTU; .json: NW-UCLA).
    ``layout`` is the dataset's: a custom sample is read with it, and every sequence must fit it."""
    return load_uncentred(path, mode, reader, layout)[1]


def load_uncentred(path: str | Path, mode: str = "paper", reader: str | None = None,
                   layout: Layout | None = None) -> tuple[Uncentred, np.ndarray]:
    """(the sample before its final centring, ``load_sequence``'s sequence: that one centred and
    checked). The skeleton pack stores the first, compactly, and redoes the centring."""
    path = Path(path)
    check_mode(mode)
    reader = reader or file_reader(path)
    try:
        uncentred = SEQUENCE_READERS[reader](path, mode, layout)
        X = np.asarray(uncentred.centred(), dtype=np.float64)
    except (ValueError, KeyError, IndexError) as error:   # name the file in every message
        raise ValueError(naming(error, path)) from None
    return uncentred, check_sequence(X, path, layout)
