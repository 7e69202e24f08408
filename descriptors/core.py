"""The five descriptors (SPEC §3) and their image encoding, vectorised over frames, joints and bodies.

A sequence is ``X`` of shape (T, B * V, 3): B bodies (1 or 2) of the layout's V joints, body 1's
joints after body 0's. Every descriptor is a matrix with rows = features (body 0's rows, then body
1's) and columns = frames. ``paper`` mode reproduces the authors' released images; its deviations
from the described method are data (``Quirks``), applied to index tables or rows, never a second
copy of a descriptor. ``clean`` mode uses no quirks.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from skeletons.layouts import NTU, UCLA, Layout, layout_for_joints
from skeletons.paths import DESCRIPTORS

MODES = ("paper", "clean")
GRAY_DESCRIPTORS = ("JDD", "ADD", "LAD")  # also FDD's R, G, B channels, in this order
DEFAULT_IMG_SIZE = 112


@dataclass(frozen=True)
class Quirks:
    """Deviations of the released code from the method (SPEC §3 quirks 1-5), as data.

    Pair, triplet and row numbers are per body (0-based) unless named otherwise.
    """
    jdd_axis_sources: tuple[tuple[int, int, int], ...] = ()
    """(pair, axis, joint): that axis of the pair's second joint is read from ``joint`` (quirk 1)."""
    jdd_two_body_row_copies: tuple[tuple[int, int | None], ...] = ()
    """(row, source row or None = zeros) over the full two-body matrix, applied together (quirk 2)."""
    lad_two_body_triplets: tuple[tuple[int, tuple[int, int, int]], ...] = ()
    """(triplet, replacement) used for both bodies of two-body sequences (quirk 3)."""
    jdd_unnormalised_pairs: tuple[int, ...] = ()
    """Pairs not divided by the body size (quirk 4)."""
    gd_skip_first_frame: bool = False
    """GD column 0 left zero (quirk 5)."""


NO_QUIRKS = Quirks()
PAPER_QUIRKS: dict[str, Quirks] = {
    NTU.name: Quirks(
        jdd_axis_sources=((20, 2, 17), (21, 2, 9)),        # (20,9) z from 17, (8,10) z from 9
        jdd_two_body_row_copies=((48, 49), (49, None)),     # body 1's (20,5) overwrites (4,6)
        lad_two_body_triplets=((4, (5, 4, 7)),),
        gd_skip_first_frame=True,
    ),
    UCLA.name: Quirks(jdd_unnormalised_pairs=(25,), gd_skip_first_frame=True),
}


def quirks_for(layout: Layout, mode: str) -> Quirks:
    if mode not in MODES:
        raise ValueError(f"unknown descriptor mode {mode!r}; choose from {', '.join(MODES)}")
    return PAPER_QUIRKS.get(layout.name, NO_QUIRKS) if mode == "paper" else NO_QUIRKS


def split_bodies(X: np.ndarray, layout: Layout) -> np.ndarray:
    """(T, B*V, 3) -> (T, B, V, 3) after checking the shape against the layout."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 3 or X.shape[2] != 3 or X.shape[1] % layout.num_joints or X.shape[1] == 0:
        raise ValueError(f"sequence of shape {X.shape} does not fit the {layout.name} layout "
                         f"(expected (T, {layout.num_joints} or {2 * layout.num_joints}, 3))")
    return X.reshape(X.shape[0], -1, layout.num_joints, 3)


def _norm(d: np.ndarray) -> np.ndarray:
    """Euclidean norm over the last axis, summed x, y, z in that order (as the release does)."""
    return np.sqrt(d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1] + d[..., 2] * d[..., 2])


def _rows(per_body: np.ndarray) -> np.ndarray:
    """(T, B, F) -> (B*F, T): body 0's feature rows, then body 1's."""
    return per_body.reshape(per_body.shape[0], int(np.prod(per_body.shape[1:]))).T


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


def graph_descriptor(X: np.ndarray, layout: Layout, quirks: Quirks = NO_QUIRKS) -> np.ndarray:
    """GD: (B*V, T, 3); per frame and body out = x @ Â for x the 3 x V coordinates, in float32.

    out[:, j] = sum_i x[:, i] Â[i, j] accumulated in float32 in ascending i without fused
    multiply-add, as a plain float32 matmul does: this reproduces the released images exactly
    (a BLAS call may reorder the sum and differ in the last bit, which flips a few pixels).
    """
    Xb = split_bodies(X, layout).astype(np.float32)
    T, B, V, _ = Xb.shape
    joints, weights = adjacency_terms(layout)
    out = np.zeros((T, B, V, 3), np.float32)
    for term_joints, term_weights in zip(joints, weights):   # K <= 5 terms, each over all joints
        out += Xb[:, :, term_joints, :] * term_weights[:, None]
    M = out.astype(np.float64).transpose(1, 2, 0, 3).reshape(B * V, T, 3)
    if quirks.gd_skip_first_frame:
        M[:, 0, :] = 0.0
    return M


def body_sizes(Xb: np.ndarray, layout: Layout) -> np.ndarray:
    """(B,) sum of size-bone lengths at frame 0, added one by one in list order (1 where 0)."""
    i, j = np.array(layout.size_bones).T
    lengths = _norm(Xb[0, :, i] - Xb[0, :, j])          # (n_bones, B) after fancy indexing
    sizes = np.cumsum(lengths, axis=0)[-1]               # sequential sum, not pairwise
    return np.where(sizes == 0, 1.0, sizes)


def joint_distance_descriptor(X: np.ndarray, layout: Layout, quirks: Quirks = NO_QUIRKS) -> np.ndarray:
    """JDD: (B*P, T) pair distances divided by the body size of their body."""
    Xb = split_bodies(X, layout)
    pairs = np.array(layout.jdd_pairs)
    second = np.repeat(pairs[:, 1:], 3, axis=1)          # (P, 3) joint of each axis of the 2nd joint
    for pair, axis, joint in quirks.jdd_axis_sources:
        second[pair, axis] = joint
    axes = np.arange(3)
    d = Xb[:, :, pairs[:, 0], :] - Xb[:, :, second, axes]  # (T, B, P, 3)
    scale = np.broadcast_to(body_sizes(Xb, layout)[:, None], (Xb.shape[1], len(pairs))).copy()
    scale[:, list(quirks.jdd_unnormalised_pairs)] = 1.0
    M = _rows(_norm(d) / scale)
    if Xb.shape[1] == 2 and quirks.jdd_two_body_row_copies:
        dst, src = zip(*quirks.jdd_two_body_row_copies)
        source = np.vstack([M, np.zeros((1, M.shape[1]))])  # last row: the zeros of a None source
        M[list(dst)] = source[[-1 if s is None else s for s in src]]
    return M


def joint_displacement_descriptor(X: np.ndarray, layout: Layout, quirks: Quirks = NO_QUIRKS) -> np.ndarray:
    """ADD: (B*V, T-1) distance each joint moves between consecutive frames."""
    Xb = split_bodies(X, layout)
    return _rows(_norm(Xb[1:] - Xb[:-1]))


def round2(x: np.ndarray) -> np.ndarray:
    """Python's round(x, 2) on each float: half-even on the exact binary value.

    np.round(x, 2) rounds x * 100 after that product was rounded, which can differ on values
    near a half; x * 100 is exact in x86's 64-bit-mantissa long double, so rint is exact there.
    """
    k = np.rint(np.asarray(x, dtype=np.longdouble) * 100)
    return k.astype(np.float64) / 100


def limb_angle_descriptor(X: np.ndarray, layout: Layout, quirks: Quirks = NO_QUIRKS) -> np.ndarray:
    """LAD: (B*K, T) angle at each triplet's vertex, radians, cosine rounded to 2 decimals."""
    Xb = split_bodies(X, layout)
    triplets = np.array(layout.lad_triplets)
    if Xb.shape[1] == 2:
        for index, replacement in quirks.lad_two_body_triplets:
            triplets[index] = replacement
    p, a, b = (Xb[:, :, triplets[:, k]] for k in range(3))
    ab, ac, bc = _norm(a - p), _norm(b - p), _norm(b - a)
    degenerate = (ab == 0) | (ac == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        cosine = round2((ab * ab + ac * ac - bc * bc) / (2 * ab * ac))
    angle = np.arccos(np.clip(np.where(degenerate, 1.0, cosine), -1.0, 1.0))
    return _rows(np.where(degenerate, 0.0, angle))


def descriptor_matrices(X: np.ndarray, layout: Layout, mode: str = "paper") -> dict[str, np.ndarray]:
    """The four matrices (GD (B*V, T, 3); JDD, ADD, LAD 2-D) of one sequence; FDD is made of images."""
    quirks = quirks_for(layout, mode)
    return {name: fn(X, layout, quirks) for name, fn in DESCRIPTOR_FUNCTIONS.items()}


DESCRIPTOR_FUNCTIONS = {
    "GD": graph_descriptor,
    "JDD": joint_distance_descriptor,
    "ADD": joint_displacement_descriptor,
    "LAD": limb_angle_descriptor,
}


def encode_gray(M: np.ndarray, img_size: int = DEFAULT_IMG_SIZE) -> np.ndarray:
    """floor(255 (M - min) / (max - min)) as uint8, resized BICUBIC to img_size x img_size.

    Empty or constant matrices give zeros (the release divides by zero there).
    """
    if M.size == 0:
        return np.zeros((img_size, img_size), np.uint8)
    low, high = M.min(), M.max()
    if high == low:
        return np.zeros((img_size, img_size), np.uint8)
    pixels = np.floor(255 * (M - low) / (high - low)).astype(np.uint8)
    return np.asarray(Image.fromarray(pixels, "L").resize((img_size, img_size), Image.BICUBIC))


def encode_rgb(M: np.ndarray, img_size: int = DEFAULT_IMG_SIZE) -> np.ndarray:
    """Three-channel version of encode_gray: each channel scaled on its own, resized together."""
    channels = []
    for c in range(M.shape[2]):  # 3 channels, each with its own min and max
        low, high = M[..., c].min(), M[..., c].max()
        scaled = np.zeros(M.shape[:2]) if high == low else np.floor(255 * (M[..., c] - low) / (high - low))
        channels.append(scaled.astype(np.uint8))
    image = Image.fromarray(np.stack(channels, axis=-1), "RGB")
    return np.asarray(image.resize((img_size, img_size), Image.BICUBIC))


def fuse(gray: dict[str, np.ndarray]) -> np.ndarray:
    """FDD: the resized JDD, ADD, LAD images as R, G, B."""
    return np.stack([gray[name] for name in GRAY_DESCRIPTORS], axis=-1)


def descriptor_images(X: np.ndarray, layout: Layout | None = None, mode: str = "paper",
                      img_size: int = DEFAULT_IMG_SIZE) -> dict[str, np.ndarray]:
    """The five images of a sequence (T, B*V, 3): GD and FDD (H, W, 3), JDD/ADD/LAD (H, W), uint8.

    ``layout`` defaults to the one that fits the joint count (20/40 NW-UCLA, 25/50 NTU).
    """
    X = np.asarray(X, dtype=np.float64)
    if layout is None:
        layout, _ = layout_for_joints(X.shape[1] if X.ndim == 3 else 0)
    matrices = descriptor_matrices(X, layout, mode)
    images = {"GD": encode_rgb(matrices["GD"], img_size)}
    images.update({name: encode_gray(matrices[name], img_size) for name in GRAY_DESCRIPTORS})
    images["FDD"] = fuse(images)
    return {name: images[name] for name in DESCRIPTORS}
