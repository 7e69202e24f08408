"""The five descriptors: values, paper quirks vs clean mode, invariances, edge cases, body selection."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from descriptors.core import (GRAY_DESCRIPTORS, PAPER_QUIRKS, descriptor_images, descriptor_matrices,
                              normalised_adjacency, round2)
from skeletons.bodies import body_slots, clean_sequence, select_bodies, tracked
from skeletons.layouts import NTU, UCLA
from descriptors.names import DESCRIPTORS

IMG = 32  # small images keep the tests fast; the encoding is the same at 112


def load_npy(reference_dir: Path, sample: str) -> dict:
    return np.load(reference_dir / "npy" / f"{sample}.skeleton.npy", allow_pickle=True).item()


@pytest.fixture(scope="module")
def two_person(reference_dir) -> dict:
    return load_npy(reference_dir, "S001C001P001R001A050")   # two people, both tracked throughout


@pytest.fixture(scope="module")
def spurious(reference_dir) -> dict:
    return load_npy(reference_dir, "S001C001P001R001A024")   # one person + a spurious second body


def transformed(data: dict, rotation=np.eye(3), shift=np.zeros(3), scale=1.0) -> dict:
    """The dict with every tracked joint moved by scale * R x + shift (untracked zeros stay zeros)."""
    out = dict(data)
    for key in [k for k in data if k.startswith("skel_body")]:
        body = data[key]
        moved = scale * body @ rotation.T + shift
        out[key] = np.where(np.any(body != 0, axis=2, keepdims=True), moved, 0.0)
    return out


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


# ---------------------------------------------------------------- values

def test_descriptor_values_match_direct_formulas(two_person):
    X = clean_sequence(two_person)
    m = descriptor_matrices(X, NTU, mode="clean")
    T = X.shape[0]
    body1 = X[:, NTU.num_joints:]
    # GD = x @ Â per frame and body (float32 arithmetic).
    gd = np.einsum("tvc,vw->wtc", body1, normalised_adjacency(NTU).astype(np.float64))
    np.testing.assert_allclose(m["GD"][NTU.num_joints:], gd, rtol=1e-5, atol=1e-6)
    # JDD: distance of pair 7 = (10, 16) of body 1 over body 1's size at frame 0.
    size = sum(np.linalg.norm(body1[0, i] - body1[0, j]) for i, j in NTU.size_bones)
    np.testing.assert_allclose(m["JDD"][32 + 7], np.linalg.norm(body1[:, 10] - body1[:, 16], axis=1) / size)
    # ADD: joint 11 of body 0 between consecutive frames.
    np.testing.assert_allclose(m["ADD"][11], np.linalg.norm(np.diff(X[:, 11], axis=0), axis=1))
    # LAD: angle at the vertex, cosine rounded to 2 decimals.
    p, a, b = (X[:, j] for j in NTU.lad_triplets[3])
    u, v = a - p, b - p
    cosine = (u * v).sum(1) / np.linalg.norm(u, axis=1) / np.linalg.norm(v, axis=1)
    assert np.all(np.abs(np.cos(m["LAD"][3]) - cosine) <= 0.005 + 1e-9)
    assert m["GD"].shape == (50, T, 3) and m["JDD"].shape == (64, T)
    assert m["ADD"].shape == (50, T - 1) and m["LAD"].shape == (28, T)


def test_round2_is_pythons_round():
    rng = np.random.default_rng(0)
    midpoints = (np.arange(-100, 100) + 0.5) / 100
    x = np.concatenate([rng.uniform(-1, 1, 2000), midpoints, np.nextafter(midpoints, 2),
                        np.nextafter(midpoints, -2)])
    if np.finfo(np.longdouble).nmant < 63:
        pytest.skip("long double has no 64-bit mantissa on this platform; round2 is approximate")
    assert np.array_equal(round2(x), np.array([round(v, 2) for v in x.tolist()]))


# ---------------------------------------------------------------- paper quirks vs clean

def changed_rows(a: np.ndarray, b: np.ndarray) -> set[int]:
    return set(np.flatnonzero(np.any(a != b, axis=tuple(range(1, a.ndim)))).tolist())


def test_paper_quirks_touch_only_their_rows_ntu_two_bodies(reference_dir):
    data = load_npy(reference_dir, "S001C001P001R001A050")
    X = body_slots(data)[:2].transpose(1, 0, 2, 3).reshape(-1, 50, 3)   # bodies 0 and 1, like the release
    X = X - X[0, 1]
    paper, clean = descriptor_matrices(X, NTU, "paper"), descriptor_matrices(X, NTU, "clean")
    # Quirk 1 on both bodies (rows 20, 21 / 52, 53), quirk 2 (rows 48, 49): nothing else.
    assert changed_rows(paper["JDD"], clean["JDD"]) == {20, 21, 52, 53, 48, 49}
    np.testing.assert_array_equal(paper["JDD"][48], clean["JDD"][49])
    assert not paper["JDD"][49].any()
    # Quirk 3: triplet 4 of both bodies.
    assert changed_rows(paper["LAD"], clean["LAD"]) == {4, 18}
    # Quirk 5: GD column 0 only.
    assert not paper["GD"][:, 0].any() and clean["GD"][:, 0].any()
    np.testing.assert_array_equal(paper["GD"][:, 1:], clean["GD"][:, 1:])
    np.testing.assert_array_equal(paper["ADD"], clean["ADD"])


def test_paper_quirks_single_body_ntu_and_ucla(two_person):
    X = clean_sequence(two_person)[:, :25]
    paper, clean = descriptor_matrices(X, NTU, "paper"), descriptor_matrices(X, NTU, "clean")
    assert changed_rows(paper["JDD"], clean["JDD"]) == {20, 21}
    assert changed_rows(paper["LAD"], clean["LAD"]) == set()   # quirk 3 is two-body only
    Xu = X[:, :20] - X[0, 1]
    paper, clean = descriptor_matrices(Xu, UCLA, "paper"), descriptor_matrices(Xu, UCLA, "clean")
    assert changed_rows(paper["JDD"], clean["JDD"]) == set(PAPER_QUIRKS["ucla"].jdd_unnormalised_pairs)
    size = paper["JDD"][25] / clean["JDD"][25]
    np.testing.assert_allclose(size, size[0])                   # the body size, constant over time
    assert size[0] > 1


# ---------------------------------------------------------------- invariances (clean mode)

@pytest.mark.parametrize("seed", [0, 1])
def test_clean_mode_invariances(two_person, seed):
    rng = np.random.default_rng(seed)
    base = descriptor_images(clean_sequence(two_person), NTU, "clean", IMG)
    moved = transformed(two_person, random_rotation(rng), rng.uniform(-2, 2, 3))
    rotated = descriptor_images(clean_sequence(moved), NTU, "clean", IMG)
    for desc in ("JDD", "ADD", "LAD"):
        assert max_diff(base[desc], rotated[desc]) <= 1, desc
    scaled = descriptor_images(clean_sequence(transformed(two_person, scale=1.7)), NTU, "clean", IMG)
    for desc in ("JDD", "LAD"):
        assert max_diff(base[desc], scaled[desc]) <= 1, desc
    shifted = descriptor_images(clean_sequence(transformed(two_person, shift=rng.uniform(-2, 2, 3))),
                                NTU, "clean", IMG)
    assert max_diff(base["GD"], shifted["GD"]) <= 1
    # Rotation does change GD (it encodes coordinates), so the invariance test can fail.
    assert max_diff(base["GD"], rotated["GD"]) > 1


def test_fdd_channels_are_the_gray_images(two_person):
    images = descriptor_images(clean_sequence(two_person), NTU, "clean", IMG)
    for channel, desc in enumerate(GRAY_DESCRIPTORS):
        np.testing.assert_array_equal(images["FDD"][..., channel], images[desc])


# ---------------------------------------------------------------- edge cases

def check_images(images: dict, size: int = IMG) -> None:
    assert list(images) == list(DESCRIPTORS)
    for desc, image in images.items():
        assert image.dtype == np.uint8
        assert image.shape == ((size, size, 3) if desc in ("GD", "FDD") else (size, size)), desc


@pytest.mark.parametrize("mode", ["paper", "clean"])
@pytest.mark.parametrize("joints", [20, 25, 40, 50])
def test_edge_cases(two_person, mode, joints):
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # no division by zero or invalid acos anywhere
        person = clean_sequence(two_person)[:, :25]
        X = np.concatenate([person, person[::-1] + 0.5], axis=1)[:, :joints] if joints > 25 else person[:, :joints]
        one = descriptor_images(X[:1], mode=mode, img_size=IMG)     # T = 1: ADD empty
        check_images(one)
        assert not one["ADD"].any()
        if mode == "paper":
            assert not one["GD"].any()                              # only column 0, which is zero
        two = descriptor_images(X[:2], mode=mode, img_size=IMG)     # T = 2: ADD has one column
        check_images(two)
        assert two["ADD"].any() and two["JDD"].any()
        still = descriptor_images(np.repeat(X[:1], 10, axis=0), mode=mode, img_size=IMG)
        check_images(still)                                         # constant input: nothing moves
        assert not still["ADD"].any() and still["JDD"].any()
        zeros = descriptor_images(np.zeros((12, joints, 3)), mode=mode, img_size=IMG)
        check_images(zeros)                                         # frames of zeros
        assert not any(image.any() for image in zeros.values())
        partly = X.copy()
        partly[3:6] = 0                                             # some untracked frames
        check_images(descriptor_images(partly, mode=mode, img_size=IMG))


def test_bad_shapes_are_reported():
    with pytest.raises(ValueError, match="no skeleton layout has 23 joints"):
        descriptor_images(np.zeros((5, 23, 3)))
    with pytest.raises(ValueError, match="does not fit the ntu layout"):
        descriptor_images(np.zeros((5, 20, 3)), NTU)
    with pytest.raises(ValueError, match="unknown descriptor mode"):
        descriptor_images(np.zeros((5, 25, 3)), NTU, mode="fast")


# ---------------------------------------------------------------- clean-mode body selection

def test_body_selection_drops_spurious_and_keeps_pairs(spurious, two_person):
    assert clean_sequence(spurious).shape[1] == 25     # the spurious wide body is dropped
    assert body_slots(spurious).shape[0] == 2
    X = clean_sequence(two_person)
    assert X.shape == (two_person["skel_body0"].shape[0], 50, 3)
    assert np.allclose(X[0, 1], 0)                     # centred on joint 1 of the first body, frame 0


def test_body_selection_rules_on_constructed_slots(two_person):
    person = two_person["skel_body0"]
    T = person.shape[0]
    short = np.zeros_like(person)
    short[:11] = two_person["skel_body1"][:11]                        # tracked 11 frames: dropped
    flat = person.copy()
    flat[..., 0], flat[..., 1] = person[..., 1] * 3, person[..., 0]   # wider than tall: dropped
    still = np.repeat(two_person["skel_body1"][:1], T, axis=0)        # no motion: ranked last
    data = {"skel_body0": short, "skel_body1": flat, "skel_body2": still, "skel_body3": person}
    assert select_bodies(body_slots(data)).tolist() == [3, 2]
    late = np.zeros_like(person)
    late[5:] = person[5:]                                             # first frames untracked
    X = clean_sequence({"skel_body0": late})
    assert X.shape == (T - 5, 25, 3) and np.allclose(X[0, 1], 0)
    with pytest.raises(ValueError, match="no body is tracked"):
        clean_sequence({"skel_body0": np.zeros_like(person)})
    assert tracked(body_slots({"skel_body0": late}))[0].sum() == T - 5
