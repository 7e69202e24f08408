"""Skeleton augmentation: each transform on a known sequence, identity when off, one result per seed."""
from __future__ import annotations

import math

import numpy as np
import pytest

from descriptors.core import body_sizes, coordinate_planes
from skeletons.augment import (Augment, add_jitter, augment_sequence, body_scales, crop_resample, padding_mask,
                               rotate_vertical, root_point, scale_about)
from skeletons.layouts import NTU, shipped_layout


def walking(T: int = 40, bodies: int = 1, seed: int = 0) -> np.ndarray:
    """A (T, bodies * 25, 3) NTU sequence: a random pose drifting smoothly, body 1 a metre to the
    right, centred on body 0's root at frame 0 (as load_sequence gives it)."""
    rng = np.random.default_rng(seed)
    pose = rng.normal(scale=0.4, size=(1, NTU.num_joints, 3)) + np.array([0.0, 1.0, 3.0])
    motion = np.cumsum(rng.normal(scale=0.01, size=(T, NTU.num_joints, 3)), axis=0)
    body = pose + motion
    X = np.concatenate([body + np.array([k, 0.0, 0.0]) for k in range(bodies)], axis=1)
    return X - X[0, NTU.root]


def bone_lengths(X: np.ndarray) -> np.ndarray:
    i, j = np.array(NTU.bones).T
    bodies = X.reshape(len(X), -1, NTU.num_joints, 3)
    return np.linalg.norm(bodies[:, :, i] - bodies[:, :, j], axis=-1)


def pairwise(frame: np.ndarray) -> np.ndarray:
    """(J, J) distances between the joints of one frame (J, C)."""
    return np.linalg.norm(frame[:, None] - frame[None], axis=-1)


@pytest.mark.parametrize("bodies", [1, 2])
def test_rotation_by_a_known_angle_turns_x_z_and_keeps_heights_and_bones(bodies):
    X = walking(bodies=bodies)
    pivot = np.array([0.2, -0.1, 0.5])
    angle = math.radians(30)
    Y = rotate_vertical(X, angle, pivot)
    np.testing.assert_array_equal(Y[..., 1], X[..., 1])                          # heights
    np.testing.assert_allclose(bone_lengths(Y), bone_lengths(X), rtol=0, atol=1e-12)
    np.testing.assert_allclose(pairwise(Y[0]), pairwise(X[0]), atol=1e-12)      # both bodies, one rigid turn
    u, w = X[..., 0] - pivot[0], X[..., 2] - pivot[2]
    c, s = math.cos(angle), math.sin(angle)
    np.testing.assert_allclose(Y[..., 0] - pivot[0], c * u + s * w, atol=1e-12)
    np.testing.assert_allclose(Y[..., 2] - pivot[2], -s * u + c * w, atol=1e-12)
    # a point in front of the pivot (+z) turned by +90 degrees ends on +x
    front = rotate_vertical(np.array([[[0.0, 1.0, 1.0]]]), math.pi / 2, np.zeros(3))
    np.testing.assert_allclose(front, [[[1.0, 1.0, 0.0]]], atol=1e-15)


def test_rotation_is_about_the_root_for_both_bodies():
    X = walking(bodies=2) + np.array([0.3, 0.0, -0.2])   # root not at the origin
    rng = np.random.default_rng(3)
    Y = augment_sequence(X, NTU, Augment(rotation=90, scale=0, crop_min=1, jitter=0), rng)
    np.testing.assert_allclose(Y[0, NTU.root], X[0, NTU.root], atol=1e-12)      # the pivot stays
    np.testing.assert_allclose(pairwise(Y[5]), pairwise(X[5]), atol=1e-12)       # one rotation for 50 joints
    assert not np.allclose(Y, X)


def test_scaling_scales_every_distance_by_the_factor():
    X = walking(bodies=2)
    pivot = root_point(X, NTU)
    Y = scale_about(X, 1.25, pivot)
    np.testing.assert_allclose(pairwise(Y[3]), 1.25 * pairwise(X[3]), rtol=1e-12)
    np.testing.assert_allclose(bone_lengths(Y), 1.25 * bone_lengths(X), rtol=1e-12)
    np.testing.assert_array_equal(Y[0, NTU.root], pivot)


def test_crop_resample_keeps_the_window_ends_and_interpolates_linearly():
    X = walking(T=30)
    Y = crop_resample(X, 5, 17, 23)           # 12 frames -> 23: times 0, 0.5, 1, ... 11
    assert Y.shape == (23, 25, 3)
    np.testing.assert_array_equal(Y[0], X[5])
    np.testing.assert_array_equal(Y[-1], X[16])
    np.testing.assert_allclose(Y[2], X[6], atol=1e-15)                           # integer times are frames
    np.testing.assert_allclose(Y[1], (X[5] + X[6]) / 2, atol=1e-15)             # half-way between frames
    ramp = np.arange(10.0)[:, None, None] * np.ones((1, 25, 3))
    np.testing.assert_allclose(crop_resample(ramp, 2, 8, 11)[:, 0, 0], np.linspace(2, 7, 11), atol=1e-12)
    np.testing.assert_array_equal(crop_resample(X, 0, 30, 30), X)               # whole sequence, own length


def test_random_crop_keeps_a_window_of_the_drawn_ratio_at_the_sequence_length():
    X = np.arange(100.0)[:, None, None] * np.ones((1, 25, 3))                    # frame t holds t
    for seed in range(20):
        Y = augment_sequence(X, NTU, Augment(rotation=0, scale=0, crop_min=0.5, jitter=0), np.random.default_rng(seed))
        assert Y.shape == X.shape                                                # length None: T frames
        start, stop = Y[0, 0, 0], Y[-1, 0, 0]
        assert start == int(start) and stop == int(stop) and 0 <= start and stop <= 99
        assert 49 <= stop - start <= 99                                          # ratio in [0.5, 1]
        np.testing.assert_allclose(np.diff(Y[:, 0, 0]), (stop - start) / 99)     # linear in time
    fixed = augment_sequence(X, NTU, Augment(rotation=0, scale=0, crop_min=0.5, length=64, jitter=0),
                             np.random.default_rng(0))
    assert fixed.shape == (64, 25, 3)


def test_jitter_has_about_the_requested_std_relative_to_each_bodys_size():
    X = walking(T=200, bodies=2)
    X[50:80, NTU.num_joints:] = 0.0                                              # body 1 absent there (clean mode)
    sizes = body_scales(X, NTU)
    np.testing.assert_allclose(sizes, body_sizes(coordinate_planes(X, NTU), NTU))   # JDD's body size
    Y = add_jitter(X, 0.01 * sizes, NTU, np.random.default_rng(0))
    noise = (Y - X).reshape(200, 2, NTU.num_joints, 3)
    absent = padding_mask(X, NTU)
    assert absent[50:80, 1].all() and absent.sum() == 30
    assert not noise[absent].any()                                               # absent bodies stay as they were
    for b in range(2):
        present = noise[~absent[:, b], b]
        assert abs(present.std() / (0.01 * sizes[b]) - 1) < 0.03
        assert abs(present.mean()) < 0.05 * 0.01 * sizes[b]


def test_identity_when_disabled():
    X = walking(bodies=2)
    off = Augment.off()
    assert not off.enabled
    assert augment_sequence(X, NTU, off, np.random.default_rng(0)) is X
    assert Augment().enabled


def test_a_seed_gives_one_result_and_other_seeds_others():
    X = walking(bodies=2)
    runs = [augment_sequence(X, NTU, Augment(), np.random.default_rng(seed)) for seed in (7, 7, 8)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], runs[2])


def test_2d_layouts_are_not_rotated():
    coco = shipped_layout("coco17")
    X = np.random.default_rng(0).normal(size=(20, coco.num_joints, 2)) * 50 + 200
    only_rotation = Augment(rotation=90, scale=0, crop_min=1, jitter=0)
    np.testing.assert_array_equal(augment_sequence(X, coco, only_rotation, np.random.default_rng(0)), X)
    scaled = augment_sequence(X, coco, Augment(rotation=90, scale=0.2, crop_min=1, jitter=0), np.random.default_rng(0))
    ratio = pairwise(scaled[4]) / np.where(pairwise(X[4]) == 0, 1, pairwise(X[4]))
    assert np.allclose(ratio[pairwise(X[4]) > 0], ratio[0, 1])                    # a pure scaling, no turn


def test_bad_settings_are_one_line_errors():
    with pytest.raises(ValueError, match="crop_min 0 must be in"):
        Augment(crop_min=0)
    with pytest.raises(ValueError, match="scale 1.5"):
        Augment(scale=1.5)
