"""JVD, the joint velocity descriptor: a complete descriptor written as a user would (docs/EXTENDING.md).

Copy this file into descriptors/extra/ and JVD is a descriptor like the paper's five:
``skels2desc_ntu.py --descriptors GD,JDD,JVD``, ``train.py -desc JVD``, ``pipeline.py --demo
--descriptors GD,JDD,JVD`` (and their fusion network), ``test.py --ablation``, ``predict.py --explain``.

What it measures: each joint's velocity between consecutive frames, one row per joint, its x, y
and z components as the image's R, G and B (each channel scaled on its own, as GD's). It differs
from ADD, which keeps only the length of that step: the sign and direction of a motion (a hand
going up or coming down, moving left or right) are what JVD adds. Velocities are divided by the
body size (the layout's size bones at frame 0, as JDD divides distances), so a child and an adult
doing the same motion give the same image.
"""
from __future__ import annotations

import numpy as np

from descriptors.base import COLOUR, Descriptor, Quirks, joint_features
from skeletons.geometry import body_sizes
from skeletons.layouts import Layout


def joint_velocity(P: np.ndarray, layout: Layout, quirks: Quirks) -> np.ndarray:
    """(B*V, T-1, C): planes P (C, T, B, V) -> each joint's step from frame t to t+1 over its body's
    size; rows are body 0's joints, then body 1's (the order every descriptor keeps)."""
    steps = (P[:, 1:] - P[:, :-1]) / body_sizes(P, layout)[None, None, :, None]   # (C, T-1, B, V)
    C, steps_count, B, V = steps.shape
    return np.ascontiguousarray(steps.transpose(2, 3, 1, 0)).reshape(B * V, steps_count, C)


DESCRIPTOR = Descriptor(
    name="JVD",
    channels=COLOUR,              # x, y, z as R, G, B (a 2D layout's B channel is black)
    features=joint_features,      # row k is joint k: the names the layout gives its joints
    matrix=joint_velocity,
    steps=True,                   # column t is the step from frame t to t + 1
    summary="joint velocities (x, y, z as R, G, B) over the body size",
)
