"""What a descriptor is (``Descriptor``), the release's quirks as data, and the gathers descriptors share.

A descriptor is one module that defines ``DESCRIPTOR = Descriptor(...)``: its name, the matrix it
makes of a sequence's coordinate planes (rows = features, body 0's then body 1's; columns =
frames), whether that matrix is one gray image or three colour channels, and the name and joints
of each row (``features``). The five of the paper are such modules (``descriptors/builtin/``), and
a file dropped into ``descriptors/extra/`` is found by ``descriptors.registry`` with no other edit
(docs/EXTENDING.md). This module imports nothing of the registry, so descriptor modules import it.

Coordinates: a sequence ``X`` (T, B * V, C) is passed to ``matrix`` as planes P (C, T, B, V)
(``skeletons.geometry.coordinate_planes``), C = ``layout.dims`` (3: x, y, z; 2: image x, y).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from skeletons.geometry import coordinate_norm
from skeletons.layouts import LAYOUTS, NTU, UCLA, Layout
from skeletons.reading import check_mode

GRAY, COLOUR = 1, 3   # a descriptor image's channels
NAME = re.compile(r"[A-Z][A-Z0-9]{0,15}")   # folder and checkpoint names hold it between underscores


@dataclass(frozen=True)
class Quirks:
    """Deviations of the released code from the method (docs/METHOD.md §3 quirks 1-5), as data.

    Pair, triplet and row numbers are per body (0-based) unless named otherwise.
    """
    jdd_axis_sources: tuple[tuple[int, int, int], ...] = ()
    """(pair, axis, joint): that axis of the pair's second joint is read from ``joint`` (quirk 1)."""
    jdd_two_body_row_copies: tuple[tuple[int, int | None], ...] = ()
    """(row, source row or None = zeros) over the full two-body matrix, applied together (quirk 2)."""
    lad_two_body_triplets: tuple[tuple[int, tuple[int, int, int]], ...] = ()
    """(triplet, replacement) used for both bodies of two-body sequences (quirk 3)."""
    jdd_unnormalised_pairs: tuple[int, ...] = ()
    """Pairs not divided by the body size (quirk 4)."""
    gd_skip_first_frame: bool = False
    """GD column 0 left zero (quirk 5)."""


NO_QUIRKS = Quirks()
PAPER_QUIRKS: dict[str, Quirks] = {
    NTU.name: Quirks(
        jdd_axis_sources=((20, 2, 17), (21, 2, 9)),        # (20,9) z from 17, (8,10) z from 9
        jdd_two_body_row_copies=((48, 49), (49, None)),     # body 1's (20,5) overwrites (4,6)
        lad_two_body_triplets=((4, (5, 4, 7)),),
        gd_skip_first_frame=True,
    ),
    UCLA.name: Quirks(jdd_unnormalised_pairs=(25,), gd_skip_first_frame=True),
}


def quirks_for(layout: Layout, mode: str) -> Quirks:
    check_mode(mode)
    builtin = LAYOUTS.get(layout.name) == layout   # a custom layout named "ntu" gets no NTU quirks
    return PAPER_QUIRKS.get(layout.name, NO_QUIRKS) if mode == "paper" and builtin else NO_QUIRKS


@dataclass(frozen=True)
class Feature:
    """One row of a descriptor matrix (per body): what it measures and the joints it is made of."""
    label: str
    joints: tuple[int, ...]


MatrixFn = Callable[[np.ndarray, Layout, Quirks], np.ndarray]
FeaturesFn = Callable[[Layout], tuple[Feature, ...]]


@dataclass(frozen=True)
class Descriptor:
    """A descriptor as the registry knows it.

    ``matrix(P, layout, quirks)``: planes (C, T, B, V) -> (B * F, columns) for a gray descriptor,
    (B * F, columns, C) for a colour one (each coordinate its own channel, scaled on its own), F =
    ``len(features(layout))``, body 0's rows first. ``steps``: column t is the change from frame t to
    t + 1 (T - 1 columns) rather than frame t. ``made_of``: a descriptor whose channels are the
    images of other descriptors (FDD: JDD, ADD, LAD as R, G, B) has no matrix of its own.
    ``torch``: an optional torch twin for the torch engine, ``(P, pack, quirks) -> (M (F, C, R),
    column mask, columns per sample)`` on a pack of sequences (descriptors/torch_engine.py); a
    descriptor without one is made by the numpy code wherever the torch engine would make it.
    """
    name: str
    channels: int
    features: FeaturesFn
    matrix: MatrixFn | None = None
    steps: bool = False
    made_of: tuple[str, ...] = ()
    torch: Callable | None = None
    summary: str = ""

    def __post_init__(self) -> None:
        if not NAME.fullmatch(self.name):
            raise ValueError(f"descriptor name {self.name!r}: use capital letters and digits, a letter first (e.g. JVD)")
        if self.channels not in (GRAY, COLOUR):
            raise ValueError(f"descriptor {self.name}: channels must be {GRAY} (gray) or {COLOUR} (colour)")
        if (self.matrix is None) == (not self.made_of):
            raise ValueError(f"descriptor {self.name}: give either a matrix function or made_of, not both")
        if self.made_of and len(self.made_of) != self.channels:
            raise ValueError(f"descriptor {self.name}: made_of needs one descriptor per channel")


# --------------------------------------------------------------------------- gathers

def rows_of(per_body: np.ndarray) -> np.ndarray:
    """(T, B, F) -> (B*F, T): body 0's feature rows, then body 1's."""
    T = per_body.shape[0]
    return np.ascontiguousarray(per_body.reshape(T, int(np.prod(per_body.shape[1:]))).T)


def feature_rows(per_feature: np.ndarray) -> np.ndarray:
    """(F, T, B) -> (B*F, T): body 0's feature rows, then body 1's."""
    F, T, B = per_feature.shape
    return np.ascontiguousarray(per_feature.transpose(2, 0, 1)).reshape(B * F, T)


def distances(P: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(n, T, B) distances between joints ``first`` and ``second``, both (C, n): the joint each
    axis is read from (the same on every axis except for quirk 1). One gather per table."""
    axes = np.arange(len(first))[:, None]
    return coordinate_norm(P[axes, ..., first] - P[axes, ..., second])   # advanced axes first: (C, n, T, B)


def per_axis(joints: np.ndarray, dims: int) -> np.ndarray:
    """(n,) joints -> (dims, n): the same joint read on every axis."""
    return np.repeat(np.asarray(joints)[None], dims, axis=0)


# --------------------------------------------------------------------------- features

def joint_features(layout: Layout) -> tuple[Feature, ...]:
    """One row per joint (GD, ADD, per-joint descriptors)."""
    return tuple(Feature(name, (j,)) for j, name in enumerate(layout.joints))


def pair_features(layout: Layout) -> tuple[Feature, ...]:
    """One row per JDD pair: 'right hand - left knee'."""
    return tuple(Feature(f"{layout.joints[a]} - {layout.joints[b]}", (a, b)) for a, b in layout.jdd_pairs)


def angle_features(layout: Layout) -> tuple[Feature, ...]:
    """One row per LAD triplet (vertex, a, b): 'angle at left elbow (left shoulder, left wrist)'."""
    return tuple(Feature(f"angle at {layout.joints[p]} ({layout.joints[a]}, {layout.joints[b]})", (p, a, b))
                 for p, a, b in layout.lad_triplets)
