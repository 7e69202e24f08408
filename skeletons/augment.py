"""Skeleton augmentation for training from skeletons (descriptors/skeleton_source.py): off unless asked.

Never part of a paper-mode reproduction: the release trained on fixed images. ``Augment()`` holds
the suggested values; a field at its neutral value (``rotation=0``, ``scale=0``, ``crop_min=1``,
``jitter=0``) turns that transform off, and ``Augment.off()`` is the identity.

A sequence is (T, B * V, C) as ``descriptors.extract.load_sequence`` gives it: B bodies (1 or 2)
of the layout's V joints, body 1 after body 0. Every transform treats the bodies together (one
angle, one factor, one window), so two people keep their relative placement; only the jitter
is per body, relative to that body's size. Order: rotation, scaling, crop-and-resample, jitter.

Axes: Kinect camera space (NTU RGB+D, NW-UCLA) has x to the right, y up and z away from the
camera, so the vertical axis is y (``vertical_axis=1``): turning about it changes the viewpoint,
as NTU's three cameras (0 and +-45 degrees) do, while heights stay. 2D layouts (image x, y) have
no depth, so a turn about the vertical axis cannot be applied: rotation is skipped for them (an
in-plane turn would be a camera roll, a different transform, not offered here); scaling,
cropping and jitter still apply.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .geometry import body_sizes, coordinate_planes
from .layouts import Layout


@dataclass(frozen=True)
class Augment:
    """What ``augment_sequence`` draws, per sample."""
    rotation: float = 30.0
    """Degrees: angle ~ U(-rotation, rotation) about the vertical axis through the sequence's root
    (joint ``layout.root`` of body 0 at frame 0); 0 disables. 3D layouts only."""
    scale: float = 0.1
    """Factor ~ U(1 - scale, 1 + scale) on every coordinate, about the same root; 0 disables."""
    crop_min: float = 0.5
    """CTR-GCN's random crop: keep a window of ratio p ~ U(crop_min, 1) of the frames (at least 2)
    at a random start; 1 disables."""
    length: int | None = None
    """Frames after resampling the window (linear interpolation between frames, the window's first
    and last frames kept): None keeps the sequence's own length, so a crop is a temporal zoom and
    the images keep the column density of the unaugmented test images (CTR-GCN uses 64)."""
    jitter: float = 0.003
    """Gaussian noise on every joint, std = jitter x the body's size (the sum of its size bones at
    its first frame, JDD's body size: about 3.7 m for NTU, so about 11 mm); 0 disables."""
    vertical_axis: int = 1
    """Coordinate the rotation turns about: 1 = y, up in Kinect camera space."""

    def __post_init__(self) -> None:
        problems = [f"{name} {value} must be {rule}" for name, value, ok, rule in (
            ("rotation", self.rotation, 0 <= self.rotation <= 180, "in 0..180 degrees"),
            ("scale", self.scale, 0 <= self.scale < 1, "in [0, 1)"),
            ("crop_min", self.crop_min, 0 < self.crop_min <= 1, "in (0, 1]"),
            ("length", self.length, self.length is None or self.length >= 2, "None or at least 2"),
            ("jitter", self.jitter, self.jitter >= 0, ">= 0"),
            ("vertical_axis", self.vertical_axis, self.vertical_axis in (0, 1, 2), "0, 1 or 2")) if not ok]
        if problems:
            raise ValueError(f"augmentation: {'; '.join(problems)}")

    @classmethod
    def off(cls) -> Augment:
        return cls(rotation=0.0, scale=0.0, crop_min=1.0, jitter=0.0)

    @property
    def enabled(self) -> bool:
        return bool(self.rotation or self.scale or self.crop_min < 1 or self.jitter or self.length)

    def record(self) -> dict:
        """What a checkpoint keeps of it (its settings)."""
        return asdict(self)


# ---------------------------------------------------------------- the transforms, one parameter each

def root_point(X: np.ndarray, layout: Layout) -> np.ndarray:
    """(C,) the sequence's root: joint ``layout.root`` of body 0 at frame 0 (the origin after centring)."""
    return np.asarray(X[0, layout.root], dtype=np.float64)


# The plane (i, j) a right-handed turn about axis k moves, (i, j, k) cyclic: about y it is (z, x).
TURN_PLANES = {0: (1, 2), 1: (2, 0), 2: (0, 1)}


def rotate_vertical(X: np.ndarray, angle: float, pivot: np.ndarray, vertical_axis: int = 1) -> np.ndarray:
    """X (T, J, 3) turned by ``angle`` radians about the vertical axis through ``pivot``, right-handed:
    for y up, x' = x cos a + z sin a, z' = -x sin a + z cos a, y unchanged."""
    i, j = TURN_PLANES[vertical_axis]
    c, s = math.cos(angle), math.sin(angle)
    out = np.array(X, dtype=np.float64)
    u, w = out[..., i] - pivot[i], out[..., j] - pivot[j]
    out[..., i] = pivot[i] + (c * u - s * w)
    out[..., j] = pivot[j] + (s * u + c * w)
    return out


def scale_about(X: np.ndarray, factor: float, pivot: np.ndarray) -> np.ndarray:
    """X with every point's offset from ``pivot`` multiplied by ``factor``: distances scale by it."""
    return pivot + factor * (np.asarray(X, dtype=np.float64) - pivot)


def crop_resample(X: np.ndarray, start: int, stop: int, length: int) -> np.ndarray:
    """Frames start..stop-1 of X resampled to ``length`` frames by linear interpolation at evenly
    spaced times: output frame 0 is frame ``start``, the last is frame ``stop - 1``."""
    if not 0 <= start < stop <= len(X) or length < 1:
        raise ValueError(f"crop_resample: window {start}..{stop} of {len(X)} frames to {length} frames")
    window = np.asarray(X[start:stop], dtype=np.float64)
    if len(window) == 1:
        return np.repeat(window, length, axis=0)
    times = np.linspace(0.0, len(window) - 1, length)
    before = np.minimum(np.floor(times).astype(np.int64), len(window) - 2)
    weight = (times - before)[:, None, None]
    return (1.0 - weight) * window[before] + weight * window[before + 1]


def body_scales(X: np.ndarray, layout: Layout) -> np.ndarray:
    """(B,) each body's size (``skeletons.geometry.body_sizes``) at its first frame where it is present
    (its joints not all at one point), 1 for a body never present."""
    P = coordinate_planes(X, layout)            # (C, T, B, V)
    absent = padding_mask(X, layout)             # (T, B)
    sizes = np.ones(P.shape[2])
    for b in range(P.shape[2]):
        frames = np.flatnonzero(~absent[:, b])
        if len(frames):
            sizes[b] = body_sizes(P[:, frames[0]:frames[0] + 1, b:b + 1], layout)[0]
    return sizes


def padding_mask(X: np.ndarray, layout: Layout) -> np.ndarray:
    """(T, B) True where a body is absent: all its joints at one point (zeros, or the constant the
    paper mode's centring leaves there)."""
    T = len(X)
    bodies = np.asarray(X).reshape(T, -1, layout.num_joints, X.shape[-1])
    return np.all(bodies == bodies[:, :, :1], axis=(2, 3))


def add_jitter(X: np.ndarray, std: np.ndarray, layout: Layout, rng: np.random.Generator) -> np.ndarray:
    """X plus Gaussian noise of standard deviation std[b] on every coordinate of body b; absent
    bodies (``padding_mask``) stay as they are."""
    T, J, C = X.shape
    noise = rng.standard_normal((T, J // layout.num_joints, layout.num_joints, C))
    noise *= np.asarray(std, dtype=np.float64)[None, :, None, None]
    noise[padding_mask(X, layout)] = 0.0
    return np.asarray(X, dtype=np.float64) + noise.reshape(T, J, C)


# ---------------------------------------------------------------- one sample

def augment_sequence(X: np.ndarray, layout: Layout, augment: Augment, rng: np.random.Generator) -> np.ndarray:
    """One random draw of ``augment`` applied to a (T, B * V, C) sequence; X itself when nothing is on.
    The draws come from ``rng`` in a fixed order, so a seed gives one result."""
    if not augment.enabled:
        return X
    out = np.asarray(X, dtype=np.float64)
    pivot = root_point(out, layout)
    if augment.rotation and layout.dims == 3:
        angle = math.radians(rng.uniform(-augment.rotation, augment.rotation))
        out = rotate_vertical(out, angle, pivot, augment.vertical_axis)
    if augment.scale:
        out = scale_about(out, rng.uniform(1.0 - augment.scale, 1.0 + augment.scale), pivot)
    T = len(out)
    if (augment.crop_min < 1 or augment.length) and T >= 2:
        p = rng.uniform(augment.crop_min, 1.0) if augment.crop_min < 1 else 1.0
        kept = min(max(int(math.floor(T * p)), 2), T)
        start = int(rng.integers(0, T - kept + 1))
        out = crop_resample(out, start, start + kept, augment.length or T)
    if augment.jitter:
        out = add_jitter(out, augment.jitter * body_scales(out, layout), layout, rng)
    return out
