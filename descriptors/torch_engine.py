"""Descriptor images in torch (the five, and any with a torch twin): many sequences of different lengths at once, on CPU or CUDA.

Same pixels as ``descriptors.core.descriptor_images`` (numpy + Pillow), sample by sample.

Layout: the frames of all samples are packed end to end (F = sum of lengths, no padding), each
frame with two bodies' joints when any sample of the batch has two (body 1 zero where absent), so
one- and two-body samples mix. Every step runs on the whole pack; per-sample facts (start, length,
body count) reach the frames by an owner index, and masks keep absent rows and ADD's last frame
out of the min-max scaling. Coordinates are planes (C, V, F, B), C = ``layout.dims`` (3, or 2 for
image keypoints): gathers of joints select contiguous slabs.

Exactness rests on doing the numpy engine's float operations in its order and precision (float32
for GD's graph filter, float64 elsewhere; +, -, *, / and sqrt are correctly rounded) and on three
replacements:
- LAD's Python ``round(x, 2)``: decided exactly from x * 100 and its rounding error (Dekker's
  two-product), not from long double;
- LAD's arccos: its argument is k / 100 for an integer k, so it is a 201-entry table made by numpy;
- Pillow's BICUBIC resize: the same fixed-point coefficients (``pillow_coefficients``) in the same
  pass order, each pass a weighted sum of gathered rows (``embedding_bag``). Pillow sums in int32;
  here each weight is split in a high and a low part and both sums run in float32, where every
  product and partial sum is an integer below 2^24 (checked per coefficient table; float64
  beyond), so they are exact in any order and recombine to Pillow's sum (``_pass``).

Samples are batched by body count and length (``descriptor_images_torch``). On the CPU the engine
runs at about the numpy engine's speed per core (benchmarks/bench_engines.py): both are bound by
passes over memory, numpy's per sample, torch's per batch of eager operations, and the resize
already sums at about Pillow's own speed.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, NamedTuple, Sequence

import numpy as np
import PIL
import torch
import torch.nn.functional as F

import descriptors.registry as registry
from descriptors.base import COLOUR
from descriptors.core import (DEFAULT_IMG_SIZE, Quirks, adjacency_terms, descriptor_image_batch, jdd_tables,
                              lad_tables, quirks_for)
from skeletons.layouts import Layout, layout_for_joints

# Pillow's fixed point (libImaging/Resample.c): 8 bits of result, 2 of headroom in an int32.
PRECISION_BITS = 32 - 8 - 2
BICUBIC_SUPPORT = 2.0
BICUBIC_A = -0.5
PILLOW_MAJOR = int(PIL.__version__.split(".")[0])   # the pass order changed in Pillow 13
SPLIT_BITS = 7   # each weight split in high and low bits: float32 sums stay exact (``_pass``)
FLOAT32_EXACT = 1 << 24
BANK_STEP = 64   # coefficient banks cover input sizes up to a multiple of this
BANK_SIZES = 512   # the largest bank: about 30 MB at any image size
# Samples per step on the CPU: a big batch's temporaries leave the caches (and on some VMs cost a
# page fault per 4 KiB); 32 was the fastest per sample (16-64 within 15 %, 256 half as fast).
CPU_CHUNK = 32


# ---------------------------------------------------------------- packing

class Pack(NamedTuple):
    """A batch of sequences, frames packed end to end, on one device."""
    X: torch.Tensor        # (F, Bmax * V, C) float64; body 1 zero for one-body samples
    lengths: torch.Tensor  # (N,) frames of each sample
    bodies: torch.Tensor   # (N,) 1 or 2
    starts: torch.Tensor   # (N,) first packed frame of each sample
    owner: torch.Tensor    # (F,) sample of each packed frame
    layout: Layout


def checked_layout(shapes: Sequence[tuple[int, ...]], layout: Layout | None = None) -> Layout:
    """``layout``, or the one that fits the first shape's joint count (NTU or NW-UCLA, C = 3), once
    every sequence shape (T, B * V, C) fits it; else ValueError naming the first that does not."""
    if not len(shapes):
        raise ValueError("no sequences to batch")
    if layout is None:
        layout, _ = layout_for_joints(shapes[0][1] if len(shapes[0]) == 3 else 0)
    V, C = layout.num_joints, layout.dims
    for k, shape in enumerate(shapes):
        if len(shape) != 3 or shape[2] != C or shape[1] not in (V, 2 * V) or shape[0] == 0:
            raise ValueError(f"sequence {k} of shape {tuple(shape)} does not fit the {layout.name} layout "
                             f"(expected (T >= 1, {V} or {2 * V}, {C}))")
    return layout


def pack_batch(sequences: Sequence[np.ndarray | torch.Tensor], layout: Layout | None = None,
               device: str | torch.device = "cpu") -> Pack:
    """Sequences (T_i >= 1, B_i * V, C) -> their ``Pack`` on ``device`` (built on the host, one transfer).
    ``layout`` defaults to the one that fits the first sequence's joint count (NTU or NW-UCLA, C = 3)."""
    arrays = [s.detach().cpu().numpy() if isinstance(s, torch.Tensor) else np.asarray(s) for s in sequences]
    layout = checked_layout([a.shape for a in arrays], layout)
    V, C = layout.num_joints, layout.dims
    lengths = np.array([a.shape[0] for a in arrays])
    bodies = np.array([a.shape[1] // V for a in arrays])
    starts = np.cumsum(lengths) - lengths
    X = np.zeros((lengths.sum(), bodies.max() * V, C))
    for a, start in zip(arrays, starts):
        X[start:start + len(a), :a.shape[1]] = a
    owner = np.repeat(np.arange(len(arrays)), lengths)
    as_tensor = lambda a: torch.from_numpy(a).to(device)   # noqa: E731
    return Pack(as_tensor(X), as_tensor(lengths), as_tensor(bodies), as_tensor(starts), as_tensor(owner), layout)


def _planes(X: torch.Tensor, layout: Layout) -> torch.Tensor:
    """(F, B*V, C) -> (C, V, F, B): coordinate planes, joints on a leading axis (gathers copy slabs)."""
    frames, joints, C = X.shape
    return X.reshape(frames, joints // layout.num_joints, layout.num_joints, C).permute(3, 2, 0, 1).contiguous()


def _max_bodies(pack: Pack) -> int:
    return pack.X.shape[1] // pack.layout.num_joints


def _tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(array), device=device)


# ---------------------------------------------------------------- the four matrices

def _sqrt_(x: torch.Tensor) -> torch.Tensor:
    """Correctly rounded square root, in place. torch's CPU kernel is not (about 1 % of float64
    results are 1 ulp off with its AVX-512 kernel), numpy's is; CUDA's double sqrt is IEEE
    round-to-nearest."""
    if x.device.type == "cpu":
        np.sqrt(x.numpy(), out=x.numpy())
        return x
    return x.sqrt_()


def _norm(difference: Callable[[int], torch.Tensor], dims: int) -> torch.Tensor:
    """Euclidean norm of the differences ``difference(axis)`` (fresh tensors) of axes x, y(, z),
    summed in that order as the numpy engine does; one axis at a time keeps temporaries small."""
    total = None
    for axis in range(dims):
        d = difference(axis)
        d.mul_(d)
        total = d if total is None else total.add_(d)
    return _sqrt_(total)


def _distances(P: torch.Tensor, first: np.ndarray, second: np.ndarray) -> torch.Tensor:
    """(n, ...) distances between joints ``first`` and ``second`` ((C, n): the joint read on each
    axis) of planes P (C, V, ...)."""
    first, second = _tensor(first, P.device), _tensor(second, P.device)
    return _norm(lambda a: P[a].index_select(0, first[a]).sub_(P[a].index_select(0, second[a])), len(P))


def _rows(per_feature: torch.Tensor) -> torch.Tensor:
    """(n, F, B) -> (F, 1, B*n): per frame, body 0's feature rows, then body 1's."""
    n, frames, B = per_feature.shape
    return per_feature.permute(1, 2, 0).reshape(frames, 1, B * n)


def _per_axis(joints: np.ndarray, dims: int) -> np.ndarray:
    return np.repeat(np.asarray(joints)[None], dims, axis=0)


def graph_descriptor(P: torch.Tensor, layout: Layout, quirks: Quirks, starts: torch.Tensor) -> torch.Tensor:
    """GD (F, 3, B*V) float64: x @ Â per frame and body in float32, summed term by term in
    ascending joint order, as the numpy engine does. A 2D layout's third channel is zeros (its
    image channel B then scales to 0, as in the numpy engine)."""
    joints, weights = adjacency_terms(layout)
    planes = P.to(torch.float32)
    joints, weights = _tensor(joints, P.device), _tensor(weights, P.device)[..., None, None]   # (K, V, 1, 1)
    out = planes.index_select(1, joints[0]).mul_(weights[0])
    for k in range(1, len(joints)):
        out += planes.index_select(1, joints[k]).mul_(weights[k])
    C, V, frames, B = out.shape
    M = torch.zeros((frames, 3, B, V), dtype=torch.float64, device=P.device)
    M[:, :C].copy_(out.permute(2, 0, 3, 1))     # one pass: reorder and widen
    if quirks.gd_skip_first_frame:
        M[starts] = 0.0
    return M.view(frames, 3, B * V)


def body_sizes(P: torch.Tensor, layout: Layout, starts: torch.Tensor) -> torch.Tensor:
    """(N, B) sum of size-bone lengths at each sample's frame 0, added one by one in list order (1 where 0)."""
    i, j = np.array(layout.size_bones).T
    lengths = _distances(P[:, :, starts], _per_axis(i, len(P)), _per_axis(j, len(P)))   # (bones, N, B)
    sizes = lengths[0]
    for k in range(1, len(lengths)):   # sequential, as numpy's cumsum (a parallel scan may reassociate)
        sizes = sizes + lengths[k]
    return torch.where(sizes == 0, torch.ones_like(sizes), sizes)


def joint_distance_descriptor(P: torch.Tensor, pack: Pack, quirks: Quirks) -> torch.Tensor:
    """JDD (F, 1, B*pairs): pair distances over the body size of their body (quirks 1, 2, 4)."""
    distances = _distances(P, *jdd_tables(pack.layout, quirks))                # (pairs, F, B)
    scaled = distances / body_sizes(P, pack.layout, pack.starts)[pack.owner]
    unnormalised = list(quirks.jdd_unnormalised_pairs)
    scaled[unnormalised] = distances[unnormalised]
    M = _rows(scaled)
    if P.shape[-1] == 2 and quirks.jdd_two_body_row_copies:
        rows = M.shape[-1]
        source = np.arange(rows)
        for dst, src in quirks.jdd_two_body_row_copies:   # all read from the unchanged matrix
            source[dst] = rows if src is None else src      # row ``rows``: the zeros of a None source
        copied = torch.cat([M, torch.zeros_like(M[..., :1])], dim=-1)[..., _tensor(source, P.device)]
        M = torch.where((pack.bodies[pack.owner] == 2)[:, None, None], copied, M)
    return M


def joint_displacement_descriptor(P: torch.Tensor) -> torch.Tensor:
    """ADD (F, 1, B*V): distance each joint moves to the next packed frame; a sample's last frame
    (whose next frame is another sample's) is not part of its image."""
    moves = _norm(lambda a: P[a, :, 1:] - P[a, :, :-1], len(P))                  # (V, F-1, B)
    V, _, B = moves.shape
    return _rows(torch.cat([moves, moves.new_zeros((V, 1, B))], dim=1))


def round_hundredths(x: torch.Tensor) -> torch.Tensor:
    """The integer nearest to the exact value of x * 100 (float64; ties to even): Python's
    round(x, 2) is this over 100.

    hi = fl(x * 100) is the double nearest the exact product, so rounding hi (ties to even) is
    right unless hi lies exactly halfway between integers: a .5 between hi and the exact product
    would be nearer to it than hi. Only those rare ties are decided by the sign of the product's
    rounding error lo (Dekker's two-product with Veltkamp's split; 100 needs no split), so no wider
    float is needed.
    """
    hi = x * 100
    whole = torch.round(hi)
    tie = (hi - whole).abs_() == 0.5
    if tie.any():
        x, hi = x[tie], hi[tie]
        split = x * 134217729.0                     # 2^27 + 1
        x_hi = split - (split - x)
        lo = (x_hi * 100 - hi) + (x - x_hi) * 100
        whole[tie] = torch.where(lo > 0, torch.ceil(hi), torch.where(lo < 0, torch.floor(hi), whole[tie]))
    return whole


@lru_cache(maxsize=None)
def _arccos_hundredths() -> np.ndarray:
    """arccos(k / 100) for k = -100..100, by numpy: the only arguments LAD's arccos receives."""
    return np.arccos(np.arange(-100, 101) / 100)


def _limb_angles(P: torch.Tensor, first: np.ndarray, second: np.ndarray) -> torch.Tensor:
    """(K, F, B) angle at the vertex of K triplets given as the edge tables (3, 3K) of ``lad_tables``."""
    ab, ac, bc = _distances(P, first, second).chunk(3)
    degenerate = (ab == 0) | (ac == 0)
    hundredths = round_hundredths((ab * ab + ac * ac - bc * bc) / (2 * ab * ac))   # the cosine, rounded
    # A degenerate triplet's angle is 0; NaN (unreachable for finite input) is kept off the table too.
    index = torch.nan_to_num(hundredths, nan=100.0).clamp_(-100, 100).to(torch.int64).add_(100)
    angle = _tensor(_arccos_hundredths(), P.device)[index]
    return angle.masked_fill_(degenerate, 0.0)


def limb_angle_descriptor(P: torch.Tensor, pack: Pack, quirks: Quirks) -> torch.Tensor:
    """LAD (F, 1, B*K): limb angles in radians, cosine rounded to 2 decimals (quirk 3 for two bodies)."""
    tables = lad_tables(pack.layout, quirks, 1)
    angles = _limb_angles(P, *tables)
    if P.shape[-1] == 2:
        two_body = lad_tables(pack.layout, quirks, 2)
        K = angles.shape[0]
        differs = np.any(np.vstack(tables) != np.vstack(two_body), axis=0)       # per edge
        changed = np.flatnonzero(differs.reshape(3, K).any(axis=0))
        if len(changed):   # only the triplets the two-body table changes (quirk 3)
            edges = np.concatenate([changed, changed + K, changed + 2 * K])
            two = (pack.bodies[pack.owner] == 2)[:, None]
            index = _tensor(changed, P.device)
            replaced = _limb_angles(P, two_body[0][:, edges], two_body[1][:, edges])
            angles[index] = torch.where(two, replaced, angles[index])
    return _rows(angles)


# ---------------------------------------------------------------- min-max to uint8

def scale_levels(M: torch.Tensor, pack: Pack, frames: torch.Tensor) -> torch.Tensor:
    """``descriptors.core.scale_to_uint8`` per sample: floor(255 (M - min) / (max - min)), float64
    like M (F, C, Bmax * rows per body), min and max per sample and channel over its frames where
    ``frames`` (F,) holds and the rows of its bodies; zeros elsewhere, and where the span is 0 or
    the image empty."""
    count, C, R = M.shape
    B = _max_bodies(pack)
    per_body = M.view(count, C, B, R // B)
    present = ((torch.arange(B, device=M.device) < pack.bodies[pack.owner][:, None, None])
               & frames[:, None, None])                                      # (F, 1, B)
    owner, samples = pack.owner, len(pack.lengths)
    index = owner[:, None].expand(-1, C)

    def per_sample(values: torch.Tensor, reduce: str, empty: float) -> torch.Tensor:
        values = getattr(values.masked_fill_(~present, empty), reduce)(-1)    # (F, C) over present bodies
        out = torch.full((samples, C), empty, dtype=M.dtype, device=M.device)
        return out.scatter_reduce_(0, index, values, reduce)[owner][..., None]   # back to (F, C, 1)

    low = per_sample(per_body.amin(-1), "amin", math.inf)
    high = per_sample(per_body.amax(-1), "amax", -math.inf)
    span = high - low
    span.masked_fill_(span == 0, math.inf)      # constant -> 0 / inf = 0
    # the numpy engine's operations in its order; its uint8 cast truncates: floor, the levels being >= 0
    levels = (M - low).mul_(255).div_(span).floor_()
    return levels.view(count, C, B, R // B).masked_fill_(~present[..., None], 0.0).view(count, C, R)


# ---------------------------------------------------------------- Pillow's BICUBIC resize

def _bicubic(x: np.ndarray) -> np.ndarray:
    """Pillow's bicubic kernel (a = -0.5), evaluated with its operations in its order."""
    x = np.abs(x)
    near = ((BICUBIC_A + 2.0) * x - (BICUBIC_A + 3.0)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * BICUBIC_A
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


@lru_cache(maxsize=2048)   # every size of two banks; long inputs' sizes come and go
def pillow_coefficients(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(first input index (out,), fixed-point weights (out, taps) int64) of Pillow's BICUBIC
    resample of one axis from in_size to out_size (whole-image box), as Resample.c computes them:
    the support widens by the downscale factor, weights are normalised by their sequential sum and
    rounded half away from zero to PRECISION_BITS fractional bits. in_size 0 gives no taps."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = BICUBIC_SUPPORT * filterscale
    taps = int(math.ceil(support)) * 2 + 1
    center = (np.arange(out_size) + 0.5) * scale
    first = np.maximum((center - support + 0.5).astype(np.int64), 0)           # C's (int) truncation
    count = np.minimum((center + support + 0.5).astype(np.int64), in_size) - first
    tap = np.arange(taps)
    live = tap < count[:, None]
    offsets = (tap + first[:, None]) - center[:, None] + 0.5     # C: (x + xmin - center + 0.5)
    weights = np.where(live, _bicubic(offsets * (1.0 / filterscale)), 0.0)
    total = np.zeros(out_size)
    for k in range(taps):                      # sequential sum, as the C loop
        total = total + weights[:, k]
    weights = np.where(total[:, None] != 0, weights / np.where(total == 0, 1.0, total)[:, None], weights)
    fixed = weights * (1 << PRECISION_BITS)
    fixed = np.where(fixed < 0, fixed - 0.5, fixed + 0.5).astype(np.int64)     # truncation after +-0.5
    return first, np.where(live, fixed, 0)


def _taps(in_size: int, out_size: int) -> int:
    return pillow_coefficients(in_size, out_size)[1].shape[1]


class Taps(NamedTuple):
    """One pass's taps: output m of an image reads rows index[m, k] with fixed-point weight
    w = weight[m, 0, k] * 2^SPLIT_BITS + weight[m, 1, k] (the high and low parts, 0 <= low <
    2^SPLIT_BITS), float32; padding taps weigh 0."""
    index: torch.Tensor    # (..., out, taps)
    weight: torch.Tensor   # (..., out, 2, taps)
    float32_exact: bool    # the bounds ``_pass``'s float32 sums need hold for every size of the table

    def select(self, which: torch.Tensor, taps: int, shift: torch.Tensor | None = None) -> "Taps":
        """The taps of entries ``which`` (the first ``taps`` of each), indices shifted by ``shift``;
        the index repeated for both parts, (N, out, 2, taps), so both sums of an output read its
        rows while they are in cache."""
        index = self.index[which, :, None, :taps].expand(-1, -1, 2, -1)
        index = index + shift[:, None, None, None] if shift is not None else index.contiguous()
        return Taps(index, self.weight[which, ..., :taps], self.float32_exact)


def _taps_table(sizes: Sequence[int], out_size: int, device: torch.device) -> Taps:
    """``Taps`` of each input size in ``sizes``, (len(sizes), out, taps) on ``device``,
    left-aligned (size 0: all padding), taps those of the largest size."""
    taps = _taps(max(sizes), out_size)
    index = np.zeros((len(sizes), out_size, taps), np.int64)
    fixed = np.zeros((len(sizes), out_size, taps), np.int64)
    for row, size in enumerate(sizes):
        if size:
            first, weights = pillow_coefficients(size, out_size)
            live = weights.shape[1]
            index[row, :, :live] = np.where(weights != 0, first[:, None] + np.arange(live), 0)
            fixed[row, :, :live] = weights
    high = fixed >> SPLIT_BITS                  # floor, also for negative weights
    low = fixed - (high << SPLIT_BITS)
    # ``_pass``'s bounds: every partial sum of high or low weights times levels (<= 255) stays an
    # integer below 2^24, float32's exact range; so does H + carry, the carry being below
    # 2^(24 - SPLIT_BITS) because L + 2^(P-1) is below 2^24 (the second condition).
    exact = bool(np.abs(high).sum(-1).max() * 255 + (FLOAT32_EXACT >> SPLIT_BITS) < FLOAT32_EXACT
                 and low.sum(-1).max() * 255 + (1 << (PRECISION_BITS - 1)) < FLOAT32_EXACT)
    return Taps(_tensor(index, device), _tensor(np.stack([high, low], axis=2).astype(np.float32), device), exact)


@lru_cache(maxsize=16)
def _bank(cap: int, out_size: int, device: torch.device) -> Taps:
    """``Taps`` of every input size 0..cap: one table serves every batch of shorter inputs."""
    return _taps_table(range(cap + 1), out_size, device)


def _coefficients(sizes: torch.Tensor, max_size: int, out_size: int, shift: torch.Tensor | None = None) -> Taps:
    """``Taps`` (N, out, 2, taps) for each input size in ``sizes``, none above max_size, indices
    shifted by ``shift`` (N,). Sizes up to BANK_SIZES come from a cached bank of every size (no
    per-batch work); longer inputs, whose taps grow with their length, get a table of the
    batch's own sizes, made for the batch (a cache keyed on a batch's lengths would rarely hit)."""
    taps = _taps(max_size, out_size)
    if max_size <= BANK_SIZES:
        cap = -(-max(max_size, 1) // BANK_STEP) * BANK_STEP   # one bank serves many batches
        return _bank(cap, out_size, sizes.device).select(sizes, taps, shift)
    unique, inverse = torch.unique(sizes, return_inverse=True)
    return _taps_table(unique.tolist(), out_size, sizes.device).select(inverse, taps, shift)


def _pass(table: torch.Tensor, taps: Taps) -> torch.Tensor:
    """One Pillow pass with its clip: output m = clip8(2^(P-1) + sum_k w[m, k] * table[index[m, k]]),
    clip8(x) = x >> P clipped to 0..255, P = PRECISION_BITS, as float32 levels (rows, width).

    ``table`` (rows, width) float32 holds levels 0..255. The weighted sums run in float32 (several
    times faster than float64 on the CPU) on the two parts of each weight, H = sum high * level and
    L = sum low * level: integers below 2^24 (``_taps_table`` checks), so exact in any order. Then
    (2^b H + L + 2^(P-1)) >> P = (H + ((L + 2^(P-1)) >> b)) >> (P - b), b = SPLIT_BITS, since H is an
    integer: every step stays exact in float32. Banks beyond those bounds (thousands of frames
    into a small image) sum in float64."""
    index, weight = taps.index.flatten(0, -2), taps.weight.flatten(0, -2)   # (rows * 2, taps)
    if not taps.float32_exact:
        whole = weight.double().view(-1, 2, weight.shape[-1])
        whole = whole[:, 0].mul(1 << SPLIT_BITS).add_(whole[:, 1])
        total = F.embedding_bag(index[::2], table.double(), per_sample_weights=whole, mode="sum")
        return total.add_(1 << (PRECISION_BITS - 1)).mul_(2.0 ** -PRECISION_BITS).floor_().clamp_(0, 255).float()
    sums = F.embedding_bag(index, table, per_sample_weights=weight, mode="sum").view(-1, 2, table.shape[1])
    carry = sums[:, 1].add_(1 << (PRECISION_BITS - 1)).mul_(2.0 ** -SPLIT_BITS).floor_()
    return sums[:, 0].add(carry).mul_(2.0 ** (SPLIT_BITS - PRECISION_BITS)).floor_().clamp_(0, 255)


def pillow_vertical_first(rows: torch.Tensor, cols: torch.Tensor, img_size: int) -> torch.Tensor:
    """(N,) bool: which images the installed Pillow resizes vertical pass first. Pillow 13 does
    when the height shrinks by more than twice as many pixels as the width (its PR 9549); older
    Pillow never. Only images taller than img_size qualify, so never at 112 (rows <= 100)."""
    if PILLOW_MAJOR < 13:
        return torch.zeros_like(rows, dtype=torch.bool)
    return (rows > img_size) & (rows - img_size > 2 * (cols - img_size))


def resize(table: torch.Tensor, channels: int, starts: torch.Tensor, cols: torch.Tensor, rows: torch.Tensor,
           img_size: int) -> torch.Tensor:
    """Pillow's BICUBIC resize of N images packed by columns -> (N, S, S, C) uint8, Pillow's two
    passes in its order, each rounded to 8 bits.

    ``table`` (F, C * R) float32 holds levels (integers 0..255) by column: image n is columns
    starts[n] .. starts[n] + cols[n] - 1, its rows the first rows[n] of R, zeros elsewhere (columns
    no image uses may lie between). An empty image (cols 0) gives zeros, as the numpy engine.
    """
    frames, C = len(table), channels
    R = table.shape[1] // C
    N, S, device = len(cols), img_size, table.device
    h_taps = _coefficients(cols, int(cols.max()), S, starts)                  # (N, S, taps)
    h_taps.index.clamp_(max=frames - 1)                                       # padding taps: any valid column
    wide = _pass(table, h_taps)                                               # (N*S, C*R): columns done
    # By row of each channel of each image: the vertical pass sums rows S wide (wider rows were
    # several times slower per element in embedding_bag's CPU kernel).
    tall = wide.view(N, S, C, R).permute(0, 2, 3, 1).contiguous()             # (N, C, R, S)
    v_taps = _coefficients(rows.repeat_interleave(C), R, S, torch.arange(N * C, device=device) * R)
    out = _pass(tall.view(N * C * R, S), v_taps).to(torch.uint8).view(N, C, S, S).permute(0, 2, 3, 1)

    vertical_first = pillow_vertical_first(rows, cols, S)
    if vertical_first.any():   # rare (small images of tall matrices): the whole batch this way too, then pick
        owner = torch.searchsorted(starts, torch.arange(frames, device=device), right=True) - 1
        by_row = table.view(frames, C, R).transpose(1, 2).reshape(frames * R, C)   # by row of each column
        column_taps = _coefficients(rows[owner], R, S, torch.arange(frames, device=device) * R)
        high = _pass(by_row, column_taps).view(frames, S * C)
        swapped = _pass(high, h_taps).to(torch.uint8).view(N, S, S, C)
        out = torch.where(vertical_first[:, None, None, None], swapped.transpose(1, 2), out)
    return out


def resize_images(images: Sequence[np.ndarray | torch.Tensor], img_size: int = DEFAULT_IMG_SIZE,
                  device: str | torch.device = "cpu") -> torch.Tensor:
    """Pillow's ``Image.resize((S, S), BICUBIC)`` of uint8 images (R_i, T_i) or (R_i, T_i, C) of
    any sizes, one channel count: (N, S, S) or (N, S, S, C) uint8 on ``device``, as
    ``descriptors.core.resize`` gives image by image (empty images give zeros)."""
    arrays = [i.detach().cpu().numpy() if isinstance(i, torch.Tensor) else np.asarray(i) for i in images]
    if not arrays or len({a.shape[2:] for a in arrays}) != 1 or arrays[0].ndim not in (2, 3):
        raise ValueError("resize_images needs (R, T) or (R, T, C) images, all with one channel count")
    channels = arrays[0].shape[2] if arrays[0].ndim == 3 else 1
    rows, cols = (np.array([a.shape[k] for a in arrays]) for k in (0, 1))
    starts = np.cumsum(cols) - cols
    out_shape = (len(arrays), img_size, img_size) + arrays[0].shape[2:]
    if not cols.sum() or not rows.max():
        return torch.zeros(out_shape, dtype=torch.uint8, device=device)
    table = np.zeros((cols.sum(), channels, rows.max()), np.float32)
    for a, start in zip(arrays, starts):                 # (R, T[, C]) -> columns of (C, R)
        height, width = a.shape[:2]
        table[start:start + width, :, :height] = a.reshape(height, width, channels).transpose(1, 2, 0)
    as_tensor = lambda a: torch.from_numpy(a).to(device)   # noqa: E731
    out = resize(as_tensor(table.reshape(len(table), -1)), channels, as_tensor(starts), as_tensor(cols),
                 as_tensor(rows), img_size)
    return out.reshape(out_shape)


# ---------------------------------------------------------------- the images of a set

def every_frame(pack: Pack) -> torch.Tensor:
    """Every packed frame is a column (all matrices but ADD's)."""
    return torch.ones(len(pack.owner), dtype=torch.bool, device=pack.X.device)


def all_but_last_frame(pack: Pack) -> torch.Tensor:
    """Each sample's frames but its last: the columns of a matrix of steps (t -> t + 1)."""
    position = torch.arange(len(pack.owner), device=pack.X.device) - pack.starts[pack.owner]
    return position < pack.lengths[pack.owner] - 1


# The torch twins of the paper's matrices: (planes, pack, quirks) -> (matrix (F, C, R), which packed
# frames are columns, columns per sample). A descriptor module may bring its own (``Descriptor.torch``,
# the same signature); tests/test_torch_engine.py checks each against the numpy code pixel for pixel.
TWINS: dict[str, Callable[[torch.Tensor, Pack, Quirks], tuple]] = {
    "GD": lambda P, pack, q: (graph_descriptor(P, pack.layout, q, pack.starts), every_frame(pack), pack.lengths),
    "JDD": lambda P, pack, q: (joint_distance_descriptor(P, pack, q), every_frame(pack), pack.lengths),
    "ADD": lambda P, pack, q: (joint_displacement_descriptor(P), all_but_last_frame(pack), pack.lengths - 1),
    "LAD": lambda P, pack, q: (limb_angle_descriptor(P, pack, q), every_frame(pack), pack.lengths),
}


def twin(name: str) -> Callable | None:
    """A descriptor's torch twin: its module's own, else the engine's, else None."""
    return registry.get(name).torch or TWINS.get(name)


def has_twin(name: str) -> bool:
    """Whether the torch engine makes a descriptor (a matrix with a twin, or made of such)."""
    desc = registry.get(name)
    return all(has_twin(part) for part in desc.made_of) if desc.made_of else twin(name) is not None


def packed_descriptor_images(pack: Pack, mode: str = "paper", img_size: int = DEFAULT_IMG_SIZE,
                             descs: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """The images of a ``Pack`` for ``descs`` (default: the five; each must have a twin): colour
    (N, S, S, 3), gray (N, S, S), uint8 on its device, keys in the registry's order."""
    wanted = registry.BUILTIN if descs is None else descs
    quirks = quirks_for(pack.layout, mode)
    P = _planes(pack.X, pack.layout)
    images = {}
    for name in registry.computed(wanted):
        desc = registry.get(name)
        if desc.made_of:
            images[name] = torch.stack([images[part] for part in desc.made_of], dim=-1)
            continue
        M, frames, cols = twin(name)(P, pack, quirks)
        table = scale_levels(M, pack, frames).to(torch.float32).view(len(M), -1)
        rows = pack.bodies * (M.shape[-1] // _max_bodies(pack))
        made = resize(table, M.shape[1], pack.starts, cols, rows, img_size)
        images[name] = made if desc.channels == COLOUR else made[..., 0]
    return {name: images[name] for name in registry.ordered(wanted)}


def numpy_images(sequences: Sequence[np.ndarray | torch.Tensor], layout: Layout, mode: str, img_size: int,
                 descs: Sequence[str], device: torch.device) -> dict[str, torch.Tensor]:
    """The images of descriptors without a torch twin, made by the numpy engine, sample by sample."""
    arrays = [np.asarray(X.cpu() if torch.is_tensor(X) else X) for X in sequences]
    return {name: torch.from_numpy(images).to(device)
            for name, images in descriptor_image_batch(arrays, layout, mode, img_size, descs).items()}


def descriptor_images_torch(sequences: Sequence[np.ndarray | torch.Tensor], layout: Layout | None = None,
                            mode: str = "paper", img_size: int = DEFAULT_IMG_SIZE,
                            device: str | torch.device = "cpu", chunk: int | None = None,
                            descs: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """The images of each sequence (T_i, B_i * V, C), batched: ``images[d][i]`` equals
    ``descriptors.core.descriptor_images(sequences[i], layout, mode, img_size, descs)[d]``.
    ``descs``: default the five; a descriptor without a torch twin is made by the numpy engine.

    GD and FDD (N, S, S, 3), JDD/ADD/LAD (N, S, S), uint8 on ``device``. One- and two-body samples
    may be mixed; ``layout`` defaults to the one that fits the first sequence's joint count (NTU or
    NW-UCLA, C = 3), any other layout (C = its ``dims``) is passed explicitly.
    ``chunk`` samples are processed per step (default: CPU_CHUNK on the CPU, all on CUDA). Samples
    are batched by body count and then length (results in the given order): a one-body sample
    batched with two-body ones would carry a second, empty body through every step, and similar
    lengths need fewer resize taps.
    """
    shapes = [tuple(np.shape(s)) for s in sequences]
    layout = checked_layout(shapes, layout)   # once, so errors name the caller's index and every chunk agrees
    device = torch.device(device)
    joints = np.array([shape[1] for shape in shapes])
    order = np.lexsort((np.array([shape[0] for shape in shapes]), joints))
    step = chunk or (CPU_CHUNK if device.type == "cpu" else len(sequences))
    wanted = registry.ordered(registry.BUILTIN if descs is None else descs)
    twinned = [d for d in wanted if has_twin(d)]
    untwinned = [d for d in wanted if not has_twin(d)]
    out: dict[str, torch.Tensor] = {}
    for group in np.split(order, np.flatnonzero(np.diff(joints[order])) + 1):
        for i in range(0, len(group), step):
            batch = group[i:i + step]
            images = packed_descriptor_images(pack_batch([sequences[k] for k in batch], layout, device),
                                              mode, img_size, twinned) if twinned else {}
            if untwinned:
                images.update(numpy_images([sequences[k] for k in batch], layout, mode, img_size, untwinned, device))
            where = torch.from_numpy(batch).to(device)
            for name, made in images.items():   # straight into place: no concatenation, no reordering
                if name not in out:
                    out[name] = made.new_empty((len(sequences),) + made.shape[1:])
                out[name].index_copy_(0, where, made)
    return {name: out[name] for name in wanted if name in out}
