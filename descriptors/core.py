"""The five descriptors (docs/METHOD.md §3) and their image encoding, vectorised over frames, joints and bodies.

A sequence is ``X`` of shape (T, B * V, C): B bodies (1 or 2) of the layout's V joints, body 1's
joints after body 0's, C = ``layout.dims`` coordinates per joint (3: x, y, z; 2: image x, y, where
distances and angles are those of the image plane); the descriptor functions take it as
coordinate planes P (C, T, B, V).
Every descriptor is a matrix with rows = features (body 0's rows, then body
1's) and columns = frames. ``paper`` mode reproduces the authors' released images; its deviations
from the described method are data (``Quirks``), applied to index tables or rows, never a second
copy of a descriptor. ``clean`` mode uses no quirks, and neither does any layout other than the
built-in NTU and NW-UCLA ones (the quirks are the release's, tied to those tables), so for a custom
layout the two modes give the same images.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from skeletons.geometry import body_sizes, coordinate_norm, coordinate_planes
from skeletons.layouts import LAYOUTS, NTU, UCLA, Layout, layout_for_joints
from skeletons.reading import MODES, check_mode

from .names import DESCRIPTORS

GRAY_DESCRIPTORS = ("JDD", "ADD", "LAD")  # also FDD's R, G, B channels, in this order
DEFAULT_IMG_SIZE = 112


@dataclass(frozen=True)
class Quirks:
    """Deviations of the released code from the method (docs/METHOD.md §3 quirks 1-5), as data.

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
    check_mode(mode)
    builtin = LAYOUTS.get(layout.name) == layout   # a custom layout named "ntu" gets no NTU quirks
    return PAPER_QUIRKS.get(layout.name, NO_QUIRKS) if mode == "paper" and builtin else NO_QUIRKS


def _rows(per_body: np.ndarray) -> np.ndarray:
    """(T, B, F) -> (B*F, T): body 0's feature rows, then body 1's."""
    T = per_body.shape[0]
    return np.ascontiguousarray(per_body.reshape(T, int(np.prod(per_body.shape[1:]))).T)


def _feature_rows(per_feature: np.ndarray) -> np.ndarray:
    """(F, T, B) -> (B*F, T): body 0's feature rows, then body 1's."""
    F, T, B = per_feature.shape
    return np.ascontiguousarray(per_feature.transpose(2, 0, 1)).reshape(B * F, T)


def _distances(P: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(n, T, B) distances between joints ``first`` and ``second``, both (C, n): the joint each
    axis is read from (the same on every axis except for quirk 1). One gather per table."""
    axes = np.arange(len(first))[:, None]
    return coordinate_norm(P[axes, ..., first] - P[axes, ..., second])   # advanced axes first: (C, n, T, B)


def _per_axis(joints: np.ndarray, dims: int) -> np.ndarray:
    """(n,) joints -> (dims, n): the same joint read on every axis."""
    return np.repeat(np.asarray(joints)[None], dims, axis=0)


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


def graph_descriptor(P: np.ndarray, layout: Layout, quirks: Quirks = NO_QUIRKS) -> np.ndarray:
    """GD: (B*V, T, C); per frame and body out = x @ Â for x the C x V coordinates, in float32.

    out[:, j] = sum_i x[:, i] Â[i, j] accumulated in float32 in ascending i without fused
    multiply-add, as a plain float32 matmul does: this reproduces the released images exactly
    (a BLAS call may reorder the sum and differ in the last bit, which flips a few pixels).
    """
    planes = P.astype(np.float32)
    C, T, B, V = planes.shape
    joints, weights = adjacency_terms(layout)
    terms = planes[..., joints]                 # (C, T, B, K, V): all K <= 5 terms in one gather
    terms *= weights
    out = terms[..., 0, :]
    for k in range(1, len(joints)):             # summed term by term: ascending i, as the matmul does
        out += terms[..., k, :]
    M = out.transpose(2, 3, 1, 0).reshape(B * V, T, C).astype(np.float64)
    if quirks.gd_skip_first_frame:
        M[:, 0, :] = 0.0
    return M


@lru_cache(maxsize=None)
def jdd_tables(layout: Layout, quirks: Quirks) -> tuple[np.ndarray, np.ndarray]:
    """(C, pairs) first and second joints of the JDD pairs per axis, quirk 1 applied."""
    pairs = np.array(layout.jdd_pairs)
    first, second = _per_axis(pairs[:, 0], layout.dims), _per_axis(pairs[:, 1], layout.dims)
    for pair, axis, joint in quirks.jdd_axis_sources:   # quirk 1: one axis read from another joint
        second[axis, pair] = joint
    return first, second


def joint_distance_descriptor(P: np.ndarray, layout: Layout, quirks: Quirks = NO_QUIRKS) -> np.ndarray:
    """JDD: (B*P, T) pair distances divided by the body size of their body."""
    distances = _distances(P, *jdd_tables(layout, quirks))          # (pairs, T, B)
    scale = np.repeat(body_sizes(P, layout)[None], len(distances), axis=0)   # (pairs, B)
    scale[list(quirks.jdd_unnormalised_pairs)] = 1.0
    M = _feature_rows(distances / scale[:, None, :])
    if P.shape[2] == 2 and quirks.jdd_two_body_row_copies:
        dst, src = zip(*quirks.jdd_two_body_row_copies)
        source = np.vstack([M, np.zeros((1, M.shape[1]))])  # last row: the zeros of a None source
        M[list(dst)] = source[[-1 if s is None else s for s in src]]
    return M


def joint_displacement_descriptor(P: np.ndarray, layout: Layout, quirks: Quirks = NO_QUIRKS) -> np.ndarray:
    """ADD: (B*V, T-1) distance each joint moves between consecutive frames."""
    return _rows(coordinate_norm(P[:, 1:] - P[:, :-1]))


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
    return _per_axis(np.concatenate([a, b, b]), layout.dims), _per_axis(np.concatenate([p, p, a]), layout.dims)


def limb_angle_descriptor(P: np.ndarray, layout: Layout, quirks: Quirks = NO_QUIRKS) -> np.ndarray:
    """LAD: (B*K, T) angle at each triplet's vertex, radians, cosine rounded to 2 decimals."""
    ab, ac, bc = np.split(_distances(P, *lad_tables(layout, quirks, P.shape[2])), 3)   # each (K, T, B)
    degenerate = (ab == 0) | (ac == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        cosine = round2((ab * ab + ac * ac - bc * bc) / (2 * ab * ac))
    angle = np.arccos(np.clip(np.where(degenerate, 1.0, cosine), -1.0, 1.0))
    return _feature_rows(np.where(degenerate, 0.0, angle))


def descriptor_matrices(X: np.ndarray, layout: Layout, mode: str = "paper") -> dict[str, np.ndarray]:
    """The four matrices (GD (B*V, T, C); JDD, ADD, LAD 2-D) of one sequence; FDD is made of images."""
    quirks = quirks_for(layout, mode)
    planes = coordinate_planes(X, layout)
    return {name: fn(planes, layout, quirks) for name, fn in DESCRIPTOR_FUNCTIONS.items()}


DESCRIPTOR_FUNCTIONS = {
    "GD": graph_descriptor,
    "JDD": joint_distance_descriptor,
    "ADD": joint_displacement_descriptor,
    "LAD": limb_angle_descriptor,
}


def scale_to_uint8(M: np.ndarray, axis: tuple[int, ...] | None = None) -> np.ndarray:
    """floor(255 (M - min) / (max - min)) as uint8, min and max over ``axis`` (None: all of M).

    Empty or constant matrices (or channels) give zeros: the release divides by zero there.
    """
    if M.size == 0:
        return np.zeros(M.shape, np.uint8)
    low, high = M.min(axis=axis, keepdims=True), M.max(axis=axis, keepdims=True)
    span = high - low
    span[span == 0] = np.inf              # constant -> 0 / inf = 0
    levels = M - low                      # in place from here: the same operations as the formula
    levels *= 255
    levels /= span
    return levels.astype(np.uint8)        # values in [0, 255]: the cast's truncation is the floor


PIL_MODES = {2: "L", 3: "RGB"}   # image ndim -> Pillow mode


def resize(pixels: np.ndarray, img_size: int) -> np.ndarray:
    """Pillow BICUBIC resize of a contiguous uint8 (H, W) or (H, W, 3) image to img_size x img_size
    (an empty matrix becomes zeros)."""
    out_shape = (img_size, img_size) + pixels.shape[2:]
    if pixels.size == 0:
        return np.zeros(out_shape, np.uint8)
    mode = PIL_MODES[pixels.ndim]
    height, width = pixels.shape[:2]
    # frombuffer/tobytes: no copies or checks beyond Pillow's own (fromarray/asarray cost as much as the resize)
    image = Image.frombuffer(mode, (width, height), np.ascontiguousarray(pixels), "raw", mode, 0, 1)
    return np.frombuffer(image.resize((img_size, img_size), Image.BICUBIC).tobytes(), np.uint8).reshape(out_shape)


def encode_gray(M: np.ndarray, img_size: int = DEFAULT_IMG_SIZE) -> np.ndarray:
    """A 2-D descriptor matrix -> (img_size, img_size) uint8 image."""
    return resize(scale_to_uint8(M), img_size)


def encode_rgb(M: np.ndarray, img_size: int = DEFAULT_IMG_SIZE) -> np.ndarray:
    """GD's (rows, frames, C) matrix -> (img_size, img_size, 3) uint8, each channel scaled on its own.

    A 2D layout's GD (C = 2) is R = x, G = y and B = 0: still an RGB image, so the networks,
    the PNG files and the loaders stay the same for every layout.
    """
    planes = np.ascontiguousarray(np.moveaxis(M, -1, 0))   # channel-first: reductions 30x faster
    if len(planes) < 3:
        planes = np.concatenate([planes, np.zeros((3 - len(planes),) + planes.shape[1:])])   # constant: scales to 0
    return resize(np.ascontiguousarray(np.moveaxis(scale_to_uint8(planes, axis=(1, 2)), 0, -1)), img_size)


def fuse(gray: dict[str, np.ndarray]) -> np.ndarray:
    """FDD: the resized JDD, ADD, LAD images as R, G, B."""
    return np.stack([gray[name] for name in GRAY_DESCRIPTORS], axis=-1)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_COLOUR_TYPES = {1: 0, 3: 2}   # channels -> PNG colour type (gray, RGB)
PNG_FILTER_UP = 2                 # each byte minus the byte above it (row 0: minus zeros)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def png_bytes(image: np.ndarray, level: int = 1) -> bytes:
    """An 8-bit gray (H, W) or RGB (H, W, 3) image as the bytes of a PNG file, zlib ``level`` 0..9.

    Pillow picks one of five filters per row (trying them all); we give every row the 'Up'
    filter, one numpy subtraction, and compress all rows in one zlib call: at level 1 about 1.7x
    faster than Pillow's writer for descriptor images, files about a fifth larger, and any PNG
    reader decodes them to the same pixels.
    """
    image = np.asarray(image)
    channels = 1 if image.ndim == 2 else image.shape[-1]
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or channels not in PNG_COLOUR_TYPES or image.size == 0:
        raise ValueError(f"png_bytes needs a non-empty uint8 (H, W) or (H, W, 3) image, not {image.dtype} "
                         f"{image.shape}")
    height, width = image.shape[:2]
    rows = image.reshape(height, width * channels)
    filtered = np.empty((height, width * channels + 1), np.uint8)
    filtered[:, 0] = PNG_FILTER_UP
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])   # uint8 wraps modulo 256, as PNG wants
    header = struct.pack(">IIBBBBB", width, height, 8, PNG_COLOUR_TYPES[channels], 0, 0, 0)
    return b"".join((PNG_SIGNATURE, _png_chunk(b"IHDR", header),
                     _png_chunk(b"IDAT", zlib.compress(filtered.data, level)), _png_chunk(b"IEND", b"")))


def degenerate_reason(X: np.ndarray, mode: str = "paper") -> str | None:
    """Why a (T, V, C) sequence gives black images, or None. Paper mode keeps the release's
    output for such sequences (callers name them); clean mode refuses them."""
    if X.shape[0] < 2:
        return "1 frame: ADD is empty" + (" and GD is black (its frame 0 is left zero)" if mode == "paper" else "")
    if not np.any(X != X[:1, :1]):
        return "every coordinate is equal (all zero?): every image is black"
    return None


class ExcludedSequence(ValueError):
    """A sequence clean mode leaves out; ``str(e)`` names the file, ``reason`` is
    ``degenerate_reason``'s."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason} (clean mode excludes such sequences; paper mode keeps them)")
        self.reason = reason


def check_included(X: np.ndarray, mode: str, path: str | Path) -> str | None:
    """Paper mode: ``degenerate_reason`` (kept, its images black, as the release makes them).
    Clean mode: ExcludedSequence for such a sequence, which it leaves out of every split, of
    prediction and of figures alike, as the field's loaders drop unusable samples."""
    reason = degenerate_reason(X, mode)
    if reason and mode != "paper":
        raise ExcludedSequence(path, reason)
    return reason


def bgr_chw(image: np.ndarray) -> np.ndarray:
    """A descriptor image as computed (H x W gray or H x W x 3 RGB) -> uint8 (C, H, W) in the
    release's channel order, as read_bgr gives it from the PNG file."""
    if image.ndim == 2:
        return image[None]
    return np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1))  # RGB -> BGR, HWC -> CHW


def network_input(image: np.ndarray) -> np.ndarray:
    """A descriptor image as the networks take it: float32 (3, H, W), 0..255, BGR, a gray image
    repeated on the three channels (what the loaders give, cast as training casts it)."""
    chw = bgr_chw(image)
    return np.broadcast_to(chw, (3, *chw.shape[1:])).astype(np.float32)


def descriptor_images(X: np.ndarray, layout: Layout | None = None, mode: str = "paper",
                      img_size: int = DEFAULT_IMG_SIZE) -> dict[str, np.ndarray]:
    """The five images of a sequence (T, B*V, C): GD and FDD (H, W, 3), JDD/ADD/LAD (H, W), uint8.

    ``layout`` defaults to the one that fits the joint count (20/40 NW-UCLA, 25/50 NTU, C = 3);
    any other layout (``skeletons.layouts.load_layout``, C = its ``dims``) is passed explicitly.
    """
    X = np.asarray(X, dtype=np.float64)
    if layout is None:
        layout, _ = layout_for_joints(X.shape[1] if X.ndim == 3 else 0)
    matrices = descriptor_matrices(X, layout, mode)
    images = {"GD": encode_rgb(matrices["GD"], img_size)}
    images.update({name: encode_gray(matrices[name], img_size) for name in GRAY_DESCRIPTORS})
    images["FDD"] = fuse(images)
    return {name: images[name] for name in DESCRIPTORS}
