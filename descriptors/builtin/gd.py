"""GD, the graph descriptor (docs/METHOD.md §3): each joint's coordinates filtered by the
normalised bone graph, per frame; one row per joint, x, y, z as R, G, B."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from skeletons.layouts import Layout

from ..base import COLOUR, NO_QUIRKS, Descriptor, Quirks, joint_features


@lru_cache(maxsize=None)
def normalised_adjacency(layout: Layout) -> np.ndarray:
    """Â = D^-1 (A + I) of the bone graph, float32 as the release computes GD."""
    a = np.eye(layout.num_joints)
    i, j = np.array(layout.bones).T
    a[i, j] = a[j, i] = 1.0
    return (a / a.sum(axis=1, keepdims=True)).astype(np.float32)


@lru_cache(maxsize=None)
def adjacency_terms(layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """(K, V) joints and weights: column j of Â as its non-zero rows in ascending order
    (padded with weight 0), K = the largest number of non-zeros in a column."""
    adjacency = normalised_adjacency(layout)
    order = np.argsort(adjacency == 0, axis=0, kind="stable")   # non-zero rows first, ascending
    k = int((adjacency != 0).sum(axis=0).max())
    joints = order[:k]
    return joints, np.take_along_axis(adjacency, joints, axis=0)


def graph_descriptor(P: np.ndarray, layout: Layout, quirks: Quirks = NO_QUIRKS) -> np.ndarray:
    """GD: (B*V, T, C); per frame and body out = x @ Â for x the C x V coordinates, in float32.

    out[:, j] = sum_i x[:, i] Â[i, j] accumulated in float32 in ascending i without fused
    multiply-add, as a plain float32 matmul does: this reproduces the released images exactly
    (a BLAS call may reorder the sum and differ in the last bit, which flips a few pixels).
    """
    planes = P.astype(np.float32)
    C, T, B, V = planes.shape
    joints, weights = adjacency_terms(layout)
    terms = planes[..., joints]                 # (C, T, B, K, V): all K <= 5 terms in one gather
    terms *= weights
    out = terms[..., 0, :]
    for k in range(1, len(joints)):             # summed term by term: ascending i, as the matmul does
        out += terms[..., k, :]
    M = out.transpose(2, 3, 1, 0).reshape(B * V, T, C).astype(np.float64)
    if quirks.gd_skip_first_frame:
        M[:, 0, :] = 0.0
    return M


DESCRIPTOR = Descriptor("GD", COLOUR, joint_features, graph_descriptor,
                        summary="joint coordinates filtered by the bone graph")
