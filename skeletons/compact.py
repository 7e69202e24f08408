"""Lossless, compact storage of skeleton values: the skeleton pack's per-sample encodings
(descriptors/skeleton_source.py writes the file and its index).

A sample is stored before its final centring (skeletons/centring.py); loading decodes it and redoes
the centring by the very same float64 operation on the very same doubles, so the sequence comes
back bit for bit. Encodings, most compact first (``encode_sample`` tries them in turn, decodes
each and keeps the first that gives the sequence back exactly):
- DIGITS7: 7-significant-digit decimals, as NTU and NW-UCLA write them (3-byte mantissa and a
  zlib-compressed flag byte): 0.38 of float64 on real NTU;
- DECIMAL: int32 decimals of up to 15 digits after the point (0.5 of float64);
- FLOAT32 when exact, FLOAT64, and last the centred sequence itself as float64.
The encoding is per sample: one value that no encoding before FLOAT64 holds (say 1.234567e-10,
16 decimals) stores its whole sample as float64, losslessly but at full size.
"""
from __future__ import annotations

import zlib
from typing import Iterator

import numpy as np

from .centring import NONE, Uncentred, centre

ALIGN = 8                       # DIGITS7's flags start at a multiple of 8 bytes
# How a sample's values are stored (the index's encoding column; never renumber).
DECIMAL, FLOAT32, FLOAT64, DIGITS7 = 0, 1, 2, 3
ITEM_DTYPES = {DECIMAL: np.dtype("<i4"), FLOAT32: np.dtype("<f4"), FLOAT64: np.dtype("<f8")}
DECIMAL_BITS = 4                # a code is mantissa * 16 + decimals
MAX_DECIMALS = 2 ** DECIMAL_BITS
MANTISSA_LIMIT = 2 ** (31 - DECIMAL_BITS)
POW10 = 10.0 ** np.arange(MAX_DECIMALS)   # all exact in float64 (up to 1e22)
# DIGITS7: a value is (sign, decimals k, 7-digit mantissa m), 10**6 <= m < 10**7, or zero. The
# mantissa less 10**6 takes 3 bytes; the flag byte (k | negative << 4 | zero << 5) barely changes
# along a sequence, so zlib makes it nearly nothing: 0.38 of float64 on real NTU, where int32 is 0.5.
LOWEST7, DIGITS7_LIMIT = 10 ** 6, 10 ** 7
_FLAGS = np.arange(256)
FLAG_SIGNS = np.where(_FLAGS & 32, 0.0, np.where(_FLAGS & 16, -1.0, 1.0))
FLAG_DIVISORS = POW10[_FLAGS & 15]


def decimal_codes(values: np.ndarray) -> np.ndarray | None:
    """int32 codes ``m * 16 + k`` of float64 ``values``, each equal to ``m / 10**k`` computed in
    float64 (k < 16 decimals, the fewest; |m| < 2**27); None when some value is no such decimal.
    Why per value: NTU writes 7 significant digits (0.2180179, 0.08710064, -4.248406E-05), so one
    scale per sample needs 11 decimals, and 4 m at 10**11 is beyond int32. A decimal text parsed
    by ``float()`` is the correctly rounded m / 10**k, which IEEE division of the two exact doubles
    gives too; ``encode_sample`` checks it all the same."""
    values = np.ascontiguousarray(values, dtype=np.float64).ravel()
    codes = np.zeros(values.size, np.int64)
    todo = np.arange(values.size)
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(MAX_DECIMALS):
            if not todo.size:
                break
            v = values[todo]
            m = np.rint(v * POW10[k])
            exact = (np.abs(m) < MANTISSA_LIMIT) & (m / POW10[k] == v)
            codes[todo[exact]] = m[exact].astype(np.int64) * MAX_DECIMALS + k
            todo = todo[~exact]
    return None if todo.size else codes.astype("<i4")


def digits7_payload(values: np.ndarray) -> bytes | None:
    """DIGITS7 bytes of float64 ``values`` (3-byte mantissas, padding to 8 bytes, zlib of the flag
    bytes), or None when a value has more than 7 significant digits (or is no decimal). Why: NTU
    writes 7 significant digits; normalising every mantissa to 7 digits (10 m / 10**(k + 1) is
    the same rational, so the same double) leaves 3 bytes of mantissa and a flag that repeats."""
    codes = decimal_codes(values)
    if codes is None:
        return None
    mantissa, k = np.abs(codes.astype(np.int64) >> DECIMAL_BITS), codes.astype(np.int64) & (MAX_DECIMALS - 1)
    zero, negative = mantissa == 0, codes < 0
    while (grow := ~zero & (mantissa < LOWEST7) & (k < MAX_DECIMALS - 1)).any():
        mantissa[grow] *= 10
        k[grow] += 1
    if not (zero | ((mantissa >= LOWEST7) & (mantissa < DIGITS7_LIMIT))).all():
        return None
    low = np.where(zero, 0, mantissa - LOWEST7).astype("<u4").view(np.uint8).reshape(-1, 4)[:, :3]
    flags = (k | (negative << 4) | (zero << 5)).astype(np.uint8)
    return low.tobytes() + bytes(-low.size % ALIGN) + zlib.compress(flags.tobytes(), 6)


def decode(stored: np.ndarray, count: int, encoding: int) -> np.ndarray:
    """``count`` float64 values (a new array) stored as the bytes ``stored`` in ``encoding``."""
    if encoding == DIGITS7:
        flags = np.frombuffer(zlib.decompress(stored[3 * count + (-3 * count) % ALIGN:]), np.uint8)
        # 4 bytes from every 3rd byte (the flags follow, so the last read stays inside), low 3 kept
        low = np.ndarray((count,), "<u4", buffer=stored, strides=(3,)) & 0xFFFFFF
        values = low.astype(np.float64)
        values += LOWEST7
        values *= np.take(FLAG_SIGNS, flags)        # +-1 or 0: exact
        values /= np.take(FLAG_DIVISORS, flags)     # the correctly rounded m / 10**k
        return values
    dtype = ITEM_DTYPES[encoding]
    stored = stored[:count * dtype.itemsize].view(dtype)
    if encoding == DECIMAL:
        values = (stored >> DECIMAL_BITS).astype(np.float64)
        values /= np.take(POW10, stored & (MAX_DECIMALS - 1))   # take: faster than [] here
        return values
    return stored.astype(np.float64)   # a copy, off the memory map


def encode_sample(uncentred: Uncentred, X: np.ndarray) -> tuple[int, bytes, Uncentred]:
    """(encoding, bytes, centring) of the most compact way to store a sample whose sequence is
    ``X``: its values before centring as decimals, float32 or float64 with their centring, else
    ``X`` itself as float64. Each is decoded and centred as ``load`` does and must give ``X`` bit
    for bit (also -0.0 against 0.0), so the pack is lossless whatever a reader returns."""
    raw = np.ascontiguousarray(uncentred.raw, dtype=np.float64)

    def candidates() -> Iterator[tuple[int, bytes, Uncentred]]:
        if raw.shape == X.shape:
            digits = digits7_payload(raw)
            if digits is not None:
                yield DIGITS7, digits, uncentred
        codes = decimal_codes(raw) if raw.shape == X.shape else None
        if codes is not None:
            yield DECIMAL, codes.tobytes(), uncentred
        if raw.shape == X.shape:
            with np.errstate(over="ignore"):   # values beyond float32 just make it inexact
                single = raw.astype("<f4")
            if np.array_equal(single.astype(np.float64), raw):
                yield FLOAT32, single.tobytes(), uncentred
            yield FLOAT64, raw.astype("<f8").tobytes(), uncentred
        yield FLOAT64, np.ascontiguousarray(X, dtype="<f8").tobytes(), Uncentred(X, NONE)

    expected = X.tobytes()
    for encoding, payload, how in candidates():
        raw_back = decode(np.frombuffer(payload, np.uint8), X.size, encoding).reshape(X.shape)
        back = centre(raw_back, how.rule, how.root, how.body_joints)
        if back.dtype == X.dtype and back.tobytes() == expected:
            return encoding, payload, how._replace(raw=None)
    raise AssertionError("a float64 copy of a sequence did not read back as itself")   # cannot happen
