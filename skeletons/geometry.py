"""Skeleton geometry that descriptors and augmentation share: coordinate planes and body sizes."""
from __future__ import annotations

import numpy as np

from .layouts import Layout


def coordinate_planes(X: np.ndarray, layout: Layout) -> np.ndarray:
    """(T, B*V, C) -> (C, T, B, V) contiguous coordinate planes, after checking the shape.

    Every gather below then runs along the contiguous joint axis (about 3x faster than
    gathering 3-vectors from (T, B, V, 3)).
    """
    X = np.asarray(X, dtype=np.float64)
    C = layout.dims
    if X.ndim != 3 or X.shape[2] != C or X.shape[1] % layout.num_joints or X.shape[1] == 0:
        raise ValueError(f"sequence of shape {X.shape} does not fit the {layout.name} layout "
                         f"(expected (T, {layout.num_joints} or {2 * layout.num_joints}, {C}))")
    return np.ascontiguousarray(X.reshape(X.shape[0], -1, layout.num_joints, C).transpose(3, 0, 1, 2))


def coordinate_norm(d: np.ndarray) -> np.ndarray:
    """Euclidean norm over the first (coordinate) axis, summed x, y(, z) in that order as the release does."""
    squares = d[0] * d[0]
    for axis in range(1, len(d)):
        squares += d[axis] * d[axis]
    return np.sqrt(squares)


def body_sizes(P: np.ndarray, layout: Layout) -> np.ndarray:
    """(B,) sum of size-bone lengths at frame 0, added one by one in list order (1 where 0)."""
    i, j = np.array(layout.size_bones).T
    lengths = coordinate_norm(P[:, 0][..., i] - P[:, 0][..., j])   # (B, n_bones)
    sizes = np.cumsum(lengths, axis=-1)[:, -1]           # sequential sum, not pairwise
    return np.where(sizes == 0, 1.0, sizes)
