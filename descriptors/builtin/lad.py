"""LAD, the limb angle descriptor (docs/METHOD.md §3): the angle at the vertex of each triplet of
the layout's list; one gray row per triplet, radians, the cosine rounded to 2 decimals as released."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from skeletons.layouts import Layout

from ..base import GRAY, NO_QUIRKS, Descriptor, Quirks, angle_features, distances, feature_rows, per_axis


def round2(x: np.ndarray) -> np.ndarray:
    """Python's round(x, 2) on each float: half-even on the exact binary value.

    np.round(x, 2) rounds x * 100 after that product was rounded, which can differ on values
    near a half. Those few are redone in x86's 64-bit-mantissa long double, where x * 100 is
    exact and rint rounds the exact value (on platforms without it they stay as np.round).
    """
    x = np.asarray(x, dtype=np.float64)
    scaled = x * 100
    k = np.rint(scaled)
    near_half = np.abs(np.abs(scaled - k) - 0.5) < 1e-6
    if near_half.any():
        k[near_half] = np.rint(x[near_half].astype(np.longdouble) * 100).astype(np.float64)
    return k / 100


@lru_cache(maxsize=None)
def lad_tables(layout: Layout, quirks: Quirks, bodies: int) -> tuple[np.ndarray, np.ndarray]:
    """(C, 3K) first and second joints of the edges a-p, b-p, b-a of the K triplets (p, a, b)."""
    triplets = np.array(layout.lad_triplets)
    if bodies == 2:
        for index, replacement in quirks.lad_two_body_triplets:   # quirk 3
            triplets[index] = replacement
    p, a, b = triplets.T
    return per_axis(np.concatenate([a, b, b]), layout.dims), per_axis(np.concatenate([p, p, a]), layout.dims)


def limb_angle_descriptor(P: np.ndarray, layout: Layout, quirks: Quirks = NO_QUIRKS) -> np.ndarray:
    """LAD: (B*K, T) angle at each triplet's vertex, radians, cosine rounded to 2 decimals."""
    ab, ac, bc = np.split(distances(P, *lad_tables(layout, quirks, P.shape[2])), 3)   # each (K, T, B)
    degenerate = (ab == 0) | (ac == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        cosine = round2((ab * ab + ac * ac - bc * bc) / (2 * ab * ac))
    angle = np.arccos(np.clip(np.where(degenerate, 1.0, cosine), -1.0, 1.0))
    return feature_rows(np.where(degenerate, 0.0, angle))


DESCRIPTOR = Descriptor("LAD", GRAY, angle_features, limb_angle_descriptor,
                        summary="angles at the vertices of joint triplets")
