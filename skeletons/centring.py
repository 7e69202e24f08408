"""A sequence's final centring, kept apart from the reading before it.

Every reader ends by subtracting a centre from what it read: paper mode, NW-UCLA and custom data
``X - X[0, root]`` (docs/METHOD.md §1), clean mode the tracked rule of skeletons/bodies.py.
``Uncentred`` is a sequence before that subtraction with the rule it gets, and ``centre`` is the
one place each rule is applied. Why: the skeleton pack (descriptors/skeleton_source.py) stores
the values before centring (exact decimals, half the bytes of float64; centred values are no
longer short decimals) and redoes the very same float64 operation on the very same doubles, so
its sequences are bit-identical to the files'.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

# Rules; the numbers are stored in skeleton packs' indices: never renumber.
NONE = 0          # already centred (or never centred): used as it is
FIRST_FRAME = 1   # X - X[0, root]: root joint of body 0 at frame 0
TRACKED = 2       # clean mode: minus root of body 0 at its first tracked frame, where a body is tracked; else 0


def tracked(bodies: np.ndarray) -> np.ndarray:
    """(..., V, C) bodies -> (...) True where a body is tracked: not all zeros in that frame."""
    return np.any(bodies != 0, axis=(-2, -1))


def centre(raw: np.ndarray, rule: int, root: int = 0, body_joints: int = 0) -> np.ndarray:
    """(T, B * V, C) ``raw`` centred by ``rule`` on joint ``root`` (of body 0); ``body_joints``:
    V, the joints of one body (TRACKED only)."""
    if rule == NONE:
        return raw
    if rule == FIRST_FRAME:
        return raw - raw[0, root]
    if rule == TRACKED:
        frames, _, dims = raw.shape
        bodies = raw.reshape(frames, -1, body_joints, dims)         # (T, B, V, C)
        mask = tracked(bodies)                                      # (T, B)
        origin = bodies[np.argmax(mask[:, 0]), 0, root]
        return np.where(mask[:, :, None, None], bodies - origin, 0.0).reshape(frames, -1, dims)
    raise ValueError(f"unknown centring rule {rule!r}")


class Uncentred(NamedTuple):
    """A sequence before its final centring, and that centring (``centre``'s arguments)."""
    raw: np.ndarray        # (T, B * V, C) float64
    rule: int              # NONE, FIRST_FRAME or TRACKED
    root: int = 0
    body_joints: int = 0   # TRACKED: joints per body

    def centred(self) -> np.ndarray:
        return centre(self.raw, self.rule, self.root, self.body_joints)
