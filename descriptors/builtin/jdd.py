"""JDD, the joint distance descriptor (docs/METHOD.md §3): the distance of each joint pair of the
layout's list, divided by the body size; one gray row per pair."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from skeletons.geometry import body_sizes
from skeletons.layouts import Layout

from ..base import GRAY, NO_QUIRKS, Descriptor, Quirks, distances, feature_rows, pair_features, per_axis


@lru_cache(maxsize=None)
def jdd_tables(layout: Layout, quirks: Quirks) -> tuple[np.ndarray, np.ndarray]:
    """(C, pairs) first and second joints of the JDD pairs per axis, quirk 1 applied."""
    pairs = np.array(layout.jdd_pairs)
    first, second = per_axis(pairs[:, 0], layout.dims), per_axis(pairs[:, 1], layout.dims)
    for pair, axis, joint in quirks.jdd_axis_sources:   # quirk 1: one axis read from another joint
        second[axis, pair] = joint
    return first, second


def joint_distance_descriptor(P: np.ndarray, layout: Layout, quirks: Quirks = NO_QUIRKS) -> np.ndarray:
    """JDD: (B*P, T) pair distances divided by the body size of their body."""
    pair_distances = distances(P, *jdd_tables(layout, quirks))          # (pairs, T, B)
    scale = np.repeat(body_sizes(P, layout)[None], len(pair_distances), axis=0)   # (pairs, B)
    scale[list(quirks.jdd_unnormalised_pairs)] = 1.0
    M = feature_rows(pair_distances / scale[:, None, :])
    if P.shape[2] == 2 and quirks.jdd_two_body_row_copies:
        dst, src = zip(*quirks.jdd_two_body_row_copies)
        source = np.vstack([M, np.zeros((1, M.shape[1]))])  # last row: the zeros of a None source
        M[list(dst)] = source[[-1 if s is None else s for s in src]]
    return M


DESCRIPTOR = Descriptor("JDD", GRAY, pair_features, joint_distance_descriptor,
                        summary="distances of joint pairs over the body size")
