"""Descriptor images: the registry's descriptors (the paper's five in descriptors/builtin, yours in
descriptors/extra) made into matrices and encoded as images, vectorised over frames, joints and bodies.

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
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from skeletons.geometry import body_sizes, coordinate_planes  # noqa: F401 - body_sizes re-exported
from skeletons.layouts import Layout, layout_for_joints
from skeletons.reading import MODES, check_mode  # noqa: F401 - MODES re-exported (descriptors/__init__.py)

import descriptors.registry as registry
from .base import COLOUR, NO_QUIRKS, PAPER_QUIRKS, Quirks, quirks_for  # noqa: F401 - re-exported
from .builtin.gd import adjacency_terms, graph_descriptor, normalised_adjacency  # noqa: F401 - re-exported
from .builtin.jdd import jdd_tables, joint_distance_descriptor  # noqa: F401 - re-exported
from .builtin.add import joint_displacement_descriptor  # noqa: F401 - re-exported
from .builtin.lad import lad_tables, limb_angle_descriptor, round2  # noqa: F401 - re-exported

GRAY_DESCRIPTORS = registry.get("FDD").made_of   # JDD, ADD, LAD: FDD's R, G, B channels, in this order
DEFAULT_IMG_SIZE = 112


def descriptor_matrices(X: np.ndarray, layout: Layout, mode: str = "paper",
                        descs: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """The matrices of one sequence (GD (B*V, T, C); JDD, ADD, LAD 2-D; a colour descriptor's
    (rows, columns, C)) for what ``descs`` (default: the five) needs; FDD is made of images."""
    quirks = quirks_for(layout, mode)
    planes = coordinate_planes(X, layout)
    wanted = registry.computed(registry.BUILTIN if descs is None else descs)
    return {name: registry.get(name).matrix(planes, layout, quirks) for name in wanted
            if registry.get(name).matrix is not None}


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


def fuse(gray: dict[str, np.ndarray], parts: tuple[str, ...] = GRAY_DESCRIPTORS) -> np.ndarray:
    """A made-of descriptor (FDD): its parts' resized gray images as R, G, B."""
    return np.stack([gray[name] for name in parts], axis=-1)


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


def encode(desc: str, M: np.ndarray, img_size: int = DEFAULT_IMG_SIZE) -> np.ndarray:
    """A descriptor's matrix -> its image: three channels scaled each on its own, or one gray."""
    return encode_rgb(M, img_size) if registry.get(desc).channels == COLOUR else encode_gray(M, img_size)


def descriptor_images(X: np.ndarray, layout: Layout | None = None, mode: str = "paper",
                      img_size: int = DEFAULT_IMG_SIZE, descs: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """The images of a sequence (T, B*V, C), uint8, in the registry's order: by default the five,
    GD and FDD (H, W, 3), JDD/ADD/LAD (H, W); ``descs`` names others (docs/EXTENDING.md).

    ``layout`` defaults to the one that fits the joint count (20/40 NW-UCLA, 25/50 NTU, C = 3);
    any other layout (``skeletons.layouts.load_layout``, C = its ``dims``) is passed explicitly.
    """
    X = np.asarray(X, dtype=np.float64)
    if layout is None:
        layout, _ = layout_for_joints(X.shape[1] if X.ndim == 3 else 0)
    wanted = registry.BUILTIN if descs is None else descs
    images = {name: encode(name, M, img_size) for name, M in descriptor_matrices(X, layout, mode, wanted).items()}
    for name in registry.computed(wanted):
        if registry.get(name).made_of:
            images[name] = fuse(images, registry.get(name).made_of)
    return {name: images[name] for name in registry.ordered(wanted)}


def descriptor_image_batch(sequences, layout: Layout | None, mode: str, img_size: int,
                           descs: Iterable[str]) -> dict[str, np.ndarray]:
    """``descriptor_images`` of each sequence, stacked by descriptor: (N, S, S[, 3]) uint8 each."""
    made = [descriptor_images(X, layout, mode, img_size, descs) for X in sequences]
    return {name: np.stack([m[name] for m in made]) for name in registry.ordered(descs)}
