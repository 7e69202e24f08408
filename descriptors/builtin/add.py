"""ADD, the joint displacement descriptor (docs/METHOD.md §3): how far each joint moves from one
frame to the next; one gray row per joint, T - 1 columns."""
from __future__ import annotations

import numpy as np

from skeletons.geometry import coordinate_norm
from skeletons.layouts import Layout

from ..base import GRAY, NO_QUIRKS, Descriptor, Quirks, joint_features, rows_of


def joint_displacement_descriptor(P: np.ndarray, layout: Layout, quirks: Quirks = NO_QUIRKS) -> np.ndarray:
    """ADD: (B*V, T-1) distance each joint moves between consecutive frames."""
    return rows_of(coordinate_norm(P[:, 1:] - P[:, :-1]))


DESCRIPTOR = Descriptor("ADD", GRAY, joint_features, joint_displacement_descriptor, steps=True,
                        summary="distance each joint moves between frames")
