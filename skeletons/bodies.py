"""Clean-mode body selection for NTU RGB+D, as the dataset's authors advise (replaces docs/METHOD.md §3 quirk 6).

The converter dict keeps up to four body *slots* per frame (slot = order of the body within the
frame, not its bodyID), so selection works on slots: a slot is tracked in the frames where it is
not all zeros. Rules, in order:
1. drop slots tracked in ``MIN_TRACKED_FRAMES`` frames or fewer (flicker, false detections);
2. drop slots whose x-spread exceeds ``SPREAD_RATIO`` times their y-spread in most of their tracked
   frames (furniture and other objects are wider than tall; people are taller than wide);
3. keep at most ``MAX_BODIES`` slots, those with the most motion (total joint variance over time),
   the most moving first.
If no slot survives 1-2, all tracked slots compete in 3, so a sample is never dropped for noise.
"""
from __future__ import annotations

from itertools import count, takewhile

import numpy as np

from .centring import TRACKED, Uncentred, tracked   # tracked: (S, T) of (S, T, 25, 3) slots

MIN_TRACKED_FRAMES = 11
SPREAD_RATIO = 0.8
MAX_BODIES = 2
ROOT_JOINT = 1  # the sequence is centred on this joint of the first kept body's first tracked frame


def body_slots(data: dict) -> np.ndarray:
    """(S, T, 25, 3) skeletons of the dict's body slots skel_body0, skel_body1, ... in slot order."""
    keys = takewhile(lambda key: key in data, (f"skel_body{i}" for i in count()))
    slots = [np.asarray(data[key], dtype=np.float64) for key in keys]
    if not slots:
        raise ValueError("no skel_body0 in the skeleton dict (converted without coordinates?)")
    return np.stack(slots)


def motion(bodies: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(S,) sum over joints and axes of the coordinate variance over each slot's tracked frames."""
    weights = mask[:, :, None, None].astype(np.float64)
    count = np.maximum(weights.sum(axis=1, keepdims=True), 1.0)
    mean = (bodies * weights).sum(axis=1, keepdims=True) / count
    return (((bodies - mean) ** 2) * weights).sum(axis=(1, 2, 3)) / count[:, 0, 0, 0]


def mostly_wide(bodies: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(S,) True for slots wider (x) than SPREAD_RATIO x their height (y) in most tracked frames."""
    spread = bodies.max(axis=2) - bodies.min(axis=2)            # (S, T, 3)
    wide = (spread[..., 0] > SPREAD_RATIO * spread[..., 1]) & mask
    return wide.sum(axis=1) > 0.5 * mask.sum(axis=1)


def select_bodies(bodies: np.ndarray) -> np.ndarray:
    """Indices of the kept slots, the most moving first (at most MAX_BODIES)."""
    mask = tracked(bodies)
    present = mask.any(axis=1)
    if not present.any():
        raise ValueError("no body is tracked in any frame")
    keep = present & (mask.sum(axis=1) > MIN_TRACKED_FRAMES) & ~mostly_wide(bodies, mask)
    candidates = np.flatnonzero(keep if keep.any() else present)
    ranked = candidates[np.argsort(-motion(bodies[candidates], mask[candidates]), kind="stable")]
    return ranked[:MAX_BODIES]


def clean_sequence(data: dict) -> np.ndarray:
    """(T', 25 | 50, 3) sequence of the selected bodies, centred.

    Frames where no selected body is tracked are dropped. The sequence is centred on joint 1 of
    the first body at its first tracked frame; untracked frames of a body stay all zeros.
    """
    return clean_uncentred(data).centred()


def clean_uncentred(data: dict) -> Uncentred:
    """``clean_sequence`` before its centring (untracked bodies all zeros), and the centring."""
    bodies = body_slots(data)
    chosen = bodies[select_bodies(bodies)]                        # (B, T, 25, 3)
    chosen = chosen[:, tracked(chosen).any(axis=0)]
    _, frames, joints, dims = chosen.shape
    return Uncentred(chosen.transpose(1, 0, 2, 3).reshape(frames, -1, dims), TRACKED, ROOT_JOINT, joints)
