"""NTU RGB+D ``.skeleton`` reader and the official converter's dict format (docs/METHOD.md §1).

``read_skeleton`` returns exactly what the official ``txt2npy.py`` (shahroudy/NTURGB-D) saves:
same keys in the same order, same dtypes, bit-identical float64 values. It is fast because
Python only walks the few header lines (frame count, body counts, joint counts); the joint
lines, about 97% of a file, are tokenised and converted in bulk with numpy.

Exactness of the bulk conversion: a token such as ``-0.2181153`` is turned into the integer
mantissa 2181153 and divided by 10**7. Both are exactly representable in float64 (mantissa
< 2**53, power of ten <= 10**22), so the IEEE division is correctly rounded, which is what
Python's ``float()`` returns (Clinger's fast path). Tokens outside that fast path (exponent
notation such as ``1.973144E-05``, very long tokens, anything odd) go through ``float()`` itself.
The mantissa is assembled in float64 from integer digit groups, every intermediate an integer
below 2**53 (tokens of at most 15 bytes), so that arithmetic is exact too (see ``_fast_decimals``).

Decisions where the official converter has no defined behaviour (it crashes):
- a frame with more than 4 bodies: the slots simply go on (``skel_body4``, ...); the official
  converter raises KeyError there. Files with <= 4 bodies per frame (all of NTU) are unaffected.
- a file whose frames all have 0 bodies: ``SkeletonFormatError`` (the official one fails on
  ``max([])``); such samples are on the official missing-skeleton list.
- malformed input (truncated file, joint count other than 25, a joint line without 12 numeric
  values): ``SkeletonFormatError`` naming the file and the 1-based line.
- a non-finite kept value (``nan``, ``inf``, ``1e999``): ``SkeletonFormatError`` naming the file
  and the line, where the official converter would store it silently. Fast-path tokens are always
  finite, so only the few values ``float()`` produced can be non-finite; the check is one
  ``np.isfinite`` pass over the kept values.
Lines after the last frame are ignored, as the official converter ignores them.
The five values the format drops (orientation, tracking state) are checked for their count
and for stray characters but not parsed, so a malformed number made only of digits, dots and
'-' there (e.g. ``1.2.3``) goes unnoticed, where the official converter would fail.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NoReturn

import numpy as np
from numpy.lib import format as npy_format

from common.atomic import atomic_path
from common.errors import cause_text
from common.safe_pickle import ALLOWED_TEXT, SafeUnpickler
from .bodies import clean_uncentred
from .centring import FIRST_FRAME, Uncentred
from .kinds import SampleKind, sample_id
from .layouts import NTU, Layout

JOINT_VALUES = 12        # x y z depthX depthY colorX colorY oriW oriX oriY oriZ trackingState
KEPT_VALUES = 7          # the converter keeps the first seven; orientation and tracking state are dropped
# Official key order within one body slot, and the joint-line columns each key holds.
BODY_FIELDS = (("skel", slice(0, 3)), ("rgb", slice(5, 7)), ("depth", slice(3, 5)))
SKELETON_SUFFIX = ".skeleton"
NPY_SUFFIX = ".skeleton.npy"

_MAX_FAST_TOKEN = 15     # sign + dot + 13 digits: the mantissa stays far below 2**53
_WINDOW = 16             # bytes looked at per token: two little-endian 8-byte words
_POW10 = 10.0 ** np.arange(_MAX_FAST_TOKEN + 2)
_POW10_INT = 10 ** np.arange(_MAX_FAST_TOKEN + 2, dtype=np.uint64)
_DOT, _MINUS, _ZERO, _NEWLINE = ord("."), ord("-"), ord("0"), ord("\n")
# _TAIL_WINDOWS[n]: a 16-byte window whose last n bytes are 1 and the others 0.
_WINDOW_ITEM = np.dtype(f"V{_WINDOW}")
_TAIL_WINDOWS = (np.arange(_WINDOW) >= _WINDOW - np.arange(_WINDOW + 1)[:, None]).astype(np.uint8).view(_WINDOW_ITEM).ravel()
_U64 = np.uint64
_EVERY_BYTE = _U64(0x0101010101010101)
# Multipliers whose top product byte is a weighted byte sum: byte i of the low word weighs 15 - i,
# byte i of the high word 7 - i, i.e. each window byte weighs its distance from the window's end.
_BYTES_LEFT_LOW, _BYTES_LEFT_HIGH = _U64(0x0F0E0D0C0B0A0908), _U64(0x0706050403020100)
# Bytes that can appear in the numbers of a well-formed file (plus whitespace).
_NUMBER_BYTES = b"0123456789.-+eE \t\r\n"
_NUMBER_BYTE = np.zeros(256, dtype=bool)
_NUMBER_BYTE[list(_NUMBER_BYTES)] = True


class SkeletonFormatError(ValueError):
    """Malformed skeleton file; ``str(e) == "<file>:<line>: <problem>"`` (no line when not applicable)."""

    def __init__(self, path: str | Path, line: int | None, problem: str):
        self.path, self.line, self.problem = str(path), line, problem
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {problem}")


# ----------------------------------------------------------------------------------------------
# Reading .skeleton text


class _Lines:
    """Byte offsets of the lines of a file, for random access by 0-based line index."""

    def __init__(self, raw: bytes, path: str):
        self.raw, self.path = raw, path
        ends = np.flatnonzero(np.frombuffer(raw, np.uint8) == _NEWLINE)
        if raw and not raw.endswith(b"\n"):          # last line without a final newline
            ends = np.append(ends, len(raw))
        self.ends = ends
        self.starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
        self.count = len(ends)
        self._starts_list, self._ends_list = self.starts.tolist(), ends.tolist()

    def text(self, k: int) -> bytes:
        return self.raw[self._starts_list[k]:self._ends_list[k]]

    def integer(self, k: int, what: str, *numbers: int) -> int:
        """The line holding a single integer header value (frame, body or joint count).

        ``what`` is a template filled with ``numbers`` only for an error message: formatting it
        for each of the hundreds of header lines would cost more than reading them.
        """
        if k >= self.count:
            raise SkeletonFormatError(self.path, k + 1, f"unexpected end of file: expected the "
                                      f"{what.format(*numbers)}")
        try:
            value = int(self.text(k))
        except ValueError:
            raise SkeletonFormatError(self.path, k + 1, f"expected the {what.format(*numbers)} (an integer), "
                                      f"found {self.text(k)[:40]!r}") from None
        if value < 0:
            raise SkeletonFormatError(self.path, k + 1, f"negative {what.format(*numbers)} {value}")
        return value


def _walk_headers(lines: _Lines) -> tuple[int, list[int], np.ndarray]:
    """Walk the header lines only. Returns (frame count, nbodys of non-empty frames,
    blocks) where blocks[i] = (frame, slot, index of the first of the body's 25 joint lines)."""
    try:
        return _walk_well_formed_headers(lines)
    except (ValueError, IndexError):
        return _walk_headers_checked(lines)           # raises the error naming the line


def _walk_well_formed_headers(lines: _Lines) -> tuple[int, list[int], np.ndarray]:
    """``_walk_headers`` as a tight loop for well-formed files; ValueError or IndexError on
    anything else (the caller then walks again with ``_walk_headers_checked`` for the message)."""
    raw, starts, ends, njoints = lines.raw, lines._starts_list, lines._ends_list, NTU.num_joints
    nframe = int(raw[starts[0]:ends[0]])
    if nframe < 0:
        raise ValueError
    nbodys, blocks = [], []
    k = 1
    for frame in range(nframe):
        nbody = int(raw[starts[k]:ends[k]])
        k += 1
        if nbody:
            if nbody < 0:
                raise ValueError
            nbodys.append(nbody)
        for slot in range(nbody):
            if int(raw[starts[k + 1]:ends[k + 1]]) != njoints:
                raise ValueError
            blocks.append((frame, slot, k + 2))
            k += 2 + njoints
        if k > lines.count:
            raise IndexError
    return nframe, nbodys, np.array(blocks, dtype=np.int64).reshape(-1, 3)


def _walk_headers_checked(lines: _Lines) -> tuple[int, list[int], np.ndarray]:
    """``_walk_headers`` checking every header line, with an error naming the bad one."""
    nframe = lines.integer(0, "frame count")
    nbodys, blocks = [], []
    k = 1
    for frame in range(nframe):
        nbody = lines.integer(k, "body count of frame {}", frame + 1)
        k += 1
        if nbody:
            nbodys.append(nbody)
        for slot in range(nbody):
            # line k is the body-info line (bodyID, ...), which the format ignores
            njoints = lines.integer(k + 1, "joint count of frame {}, body {}", frame + 1, slot + 1)
            if njoints != NTU.num_joints:
                raise SkeletonFormatError(lines.path, k + 2, f"joint count {njoints} in frame {frame + 1}, "
                                          f"body {slot + 1}, expected {NTU.num_joints}")
            first = k + 2
            k = first + NTU.num_joints
            if k > lines.count:
                raise SkeletonFormatError(lines.path, lines.count + 1,
                                          f"unexpected end of file: frame {frame + 1}, body {slot + 1} has "
                                          f"{lines.count - first} of {NTU.num_joints} joint lines")
            blocks.append((frame, slot, first))
    return nframe, nbodys, np.array(blocks, dtype=np.int64).reshape(-1, 3)


def _token_edges(buf: np.ndarray) -> np.ndarray:
    """Byte offsets where whitespace-separated tokens of ``buf`` start and end (exclusive),
    alternately: start, end, start, end..."""
    sep = np.ones(len(buf) + 2, dtype=bool)           # padded with a separator at both ends
    np.less_equal(buf, 32, out=sep[1:-1])             # space, tab, CR, LF (and control bytes)
    return np.flatnonzero(sep[1:] != sep[:-1])


def _fast_decimals(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values of plain decimal tokens (``-?digits[.digits]``), bit-identical to ``float()``.

    Returns (values, ok); ``ok`` is False for tokens outside the exact fast path (their value
    is meaningless and must come from ``float()``). Each token is read as the 16-byte window
    that ends with it, so all tokens go through the same few whole-array integer operations
    whatever their length: no per-length groups, no per-row loops.
    """
    # One 16-byte item starting at every byte of the buffer padded with _WINDOW zero bytes in
    # front: the window ending at byte e of buf is windows[e] (a single 16-byte gather per token).
    padded = np.concatenate([np.zeros(_WINDOW, np.uint8), buf])
    windows = np.ndarray(shape=(len(buf) + 1,), dtype=_WINDOW_ITEM, buffer=padded, strides=(1,))
    lengths = ends - starts
    chars = windows[ends].view(np.uint8).reshape(-1, _WINDOW)
    in_token = _TAIL_WINDOWS[np.minimum(lengths, _WINDOW)].view(np.uint8).reshape(-1, _WINDOW)
    digit = chars - np.uint8(_ZERO)                                        # wraps for bytes below '0'
    is_digit = (digit <= 9).view(np.uint8)
    is_digit &= in_token
    is_dot = (chars == _DOT).view(np.uint8)
    is_dot &= in_token
    # The dot counts as a 0 digit in `whole`: whole = left * 10**(frac+1) + right, right < 10**frac.
    digit *= is_digit
    eights = _eight_digits(digit).astype(np.float64)
    whole = eights[:, 0] * 1e8 + eights[:, 1]            # an integer < 10**15 < 2**53: exact
    dots = is_dot.view("<u8")
    # Digit and dot counts in one byte sum: each in-token byte is 1 (digit) or 16 (dot).
    packed = is_dot * np.uint8(16)                       # not `<< 4`: numpy's uint8 shift is slow
    packed |= is_digit
    counts = _byte_sums(packed.view("<u8"))
    n_dots, n_digits = counts >> 4, counts & 15
    has_dot = n_dots == 1
    # Digits after the dot: the dot's distance from the token's end (no carries with one dot).
    # With one dot one of the two products is 0 and the other has no carries into its top byte.
    after_dot = (dots[:, 0] * _BYTES_LEFT_LOW + dots[:, 1] * _BYTES_LEFT_HIGH) >> _U64(56)
    frac = np.where(has_dot, after_dot, 0).astype(np.intp)
    scale = _POW10[frac + has_dot]                       # no dot: scale 1, mantissa = whole
    divisor = _POW10[frac]
    # left = whole // scale: the true quotient is left + (less than 0.1), so the float
    # quotient's floor is exact; the mantissa left * 10**frac + right = whole - 9 * left * 10**frac
    # is then a difference of exact integers below 2**53.
    left = np.floor(whole / scale)
    scale -= divisor
    mantissa = whole - left * scale
    value = mantissa / divisor                           # both exact: one correctly rounded division
    negative = buf[starts] == _MINUS
    np.negative(value, out=value, where=negative)
    # Plain decimal: digits, at most one dot, an optional leading '-', and some digit.
    ok = (lengths <= _MAX_FAST_TOKEN) & (n_dots <= 1) & (n_digits >= 1) & (n_digits + n_dots + negative == lengths)
    return value, ok


def _eight_digits(digits: np.ndarray) -> np.ndarray:
    """(n, 2) values of the two 8-digit halves of (n, 16) digits (byte values 0-9, most significant first)."""
    # Each step multiplies a lane holding two numbers a (low half, more significant) and b by
    # 1 + base * 2**half: the top half of the product is a * base + b, with no overflow into it.
    # Neighbouring digits give 2-digit numbers (top byte of 16-bit lanes), those 4-digit numbers
    # (top 16 bits of 32-bit lanes), those the 8-digit numbers (top 32 bits of 64-bit lanes).
    pairs = digits.view("<u2") * np.uint16(1 + 10 * 2**8)
    fours = pairs.view("<u4") >> np.uint32(8)
    fours &= np.uint32(0x00FF00FF)
    fours *= np.uint32(1 + 100 * 2**16)
    eights = fours.view("<u8") >> _U64(16)
    eights &= _U64(0x0000FFFF0000FFFF)
    eights *= _U64(1 + 10000 * 2**32)
    return eights.view("<u4")[:, 1::2]


def _byte_sums(words: np.ndarray) -> np.ndarray:
    """Sum of the 16 bytes of each row of (n, 2) words; exact while it stays below 256."""
    return (((words[:, 0] + words[:, 1]) * _EVERY_BYTE) >> _U64(56)).astype(np.int64)


def _parse_line_with_float(lines: _Lines, k: int) -> list[float]:
    """One joint line converted exactly as the official converter does (``float`` per value)."""
    tokens = lines.text(k).split()
    try:
        return [float(t) for t in tokens]
    except ValueError:
        bad = next(t for t in tokens if not _is_float(t))
        raise SkeletonFormatError(lines.path, k + 1,
                                  f"joint value {bad.decode(errors='replace')[:40]!r} is not a number") from None


def _is_float(token: bytes) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def _joint_values(lines: _Lines, first_lines: np.ndarray) -> np.ndarray:
    """(bodies, 25, KEPT_VALUES) float64 from the joint lines starting at ``first_lines``."""
    joint_lines = (first_lines[:, None] + np.arange(NTU.num_joints)).ravel()
    buf = np.frombuffer(lines.raw, np.uint8)
    edges = _token_edges(buf)
    # A line starts after a separator and ends at one, so the first edge at or after its start
    # is a token start and every token of the line has both edges in [start, end].
    first_edge = np.searchsorted(edges, lines.starts[joint_lines])
    per_line = (np.searchsorted(edges, lines.ends[joint_lines], side="right") - first_edge) // 2
    wrong = np.flatnonzero(per_line != JOINT_VALUES)
    if len(wrong):
        k = int(joint_lines[wrong[0]])
        raise SkeletonFormatError(lines.path, k + 1,
                                  f"joint line has {per_line[wrong[0]]} values, expected {JOINT_VALUES}")
    kept = (first_edge[:, None] + np.arange(0, 2 * KEPT_VALUES, 2)).ravel()
    values, ok = _fast_decimals(buf, edges[kept], edges[kept + 1])
    values = values.reshape(-1, KEPT_VALUES)
    # Lines with a kept value outside the fast path (e.g. 1.973144E-05) or any odd byte are
    # converted by float(), all 12 values, as the official converter does (and fails).
    redo = np.zeros(len(joint_lines), dtype=bool)
    redo[np.flatnonzero(~ok) // KEPT_VALUES] = True
    if lines.raw.translate(None, _NUMBER_BYTES):     # some odd byte somewhere (rare): find its lines
        odd_lines = np.searchsorted(lines.starts, np.flatnonzero(~np.take(_NUMBER_BYTE, buf)), side="right") - 1
        redo |= np.isin(joint_lines, odd_lines)
    for row in np.flatnonzero(redo):
        values[row] = _parse_line_with_float(lines, int(joint_lines[row]))[:KEPT_VALUES]
    finite = np.isfinite(values)
    if not finite.all():
        _raise_non_finite(lines, joint_lines, finite)
    return values.reshape(-1, NTU.num_joints, KEPT_VALUES)


def _raise_non_finite(lines: _Lines, joint_lines: np.ndarray, finite: np.ndarray) -> NoReturn:
    """Name the line of the first non-finite kept value (rows are in file order)."""
    row, column = np.argwhere(~finite)[0]
    k = int(joint_lines[row])
    token = lines.text(k).split()[column].decode(errors="replace")[:40]
    raise SkeletonFormatError(lines.path, k + 1, f"joint value {token!r} is NaN or infinite")


def parse_skeleton(raw: bytes, path: str | Path) -> dict:
    """The official converter's dict for the bytes of a ``.skeleton`` file named ``path``."""
    path = str(path)
    lines = _Lines(raw, path)
    if lines.count == 0:
        raise SkeletonFormatError(path, 1, "empty file: expected the frame count")
    nframe, nbodys, blocks = _walk_headers(lines)
    if not nbodys:
        raise SkeletonFormatError(path, None, f"no frame has a body ({nframe} frames; "
                                  "on the official missing-skeleton list?)")
    nslots = max(nbodys)
    per_slot = np.zeros((nslots, nframe, NTU.num_joints, KEPT_VALUES))
    frames, slots, first_lines = blocks.T
    per_slot[slots, frames] = _joint_values(lines, first_lines)
    # The official converter takes the id from the path: file_path[-29:-9].
    data = {"file_name": Path(path).name.removesuffix(SKELETON_SUFFIX)[-20:], "nbodys": nbodys,
            "njoints": NTU.num_joints}
    for slot in range(nslots):
        for field, columns in BODY_FIELDS:
            data[f"{field}_body{slot}"] = np.ascontiguousarray(per_slot[slot, :, :, columns])
    return data


# The largest official .skeleton files are under 1 MB (300 frames of two bodies); one a hundred
# times larger is not a recording, and reading it whole could exhaust memory.
MAX_SKELETON_BYTES = 64 * 2**20


def check_skeleton_size(path: str | Path, size: int) -> None:
    """Refuse, before reading it, a ``.skeleton`` file (or zip member) of ``size`` bytes that no recording has."""
    if size > MAX_SKELETON_BYTES:
        raise SkeletonFormatError(path, None, f"{size / 2**20:,.0f} MiB, far larger than any NTU RGB+D .skeleton "
                                              f"file (at most a few MB); not read")


def read_skeleton(path: str | Path) -> dict:
    """Read an NTU RGB+D ``.skeleton`` file (CRLF or LF) into the official converter's dict."""
    check_skeleton_size(path, Path(path).stat().st_size)
    return parse_skeleton(Path(path).read_bytes(), path)


# ----------------------------------------------------------------------------------------------
# .skeleton.npy files


def save_skeleton_npy(path: str | Path, data: dict) -> None:
    """``np.save(path, data)`` written atomically: a temp file in the same folder, then rename.

    The file is written exactly at ``path`` (np.save would append ``.npy`` to a name lacking it).
    """
    with atomic_path(path, suffix=".npy") as tmp:   # ".npy": np.save would append it otherwise
        np.save(tmp, data, allow_pickle=True)


def _refused(path: Path):
    """The error a txt2npy file gets for a pickle global outside ``common.safe_pickle``'s list."""
    return lambda module, name: SkeletonFormatError(path, None, f"refused to load: the pickle references "
                                                    f"{module}.{name} ({ALLOWED_TEXT})")


def _read_npy_header(f, path: Path) -> tuple[tuple, np.dtype]:
    """(shape, dtype) from the header of an open ``.npy`` file, leaving ``f`` at the data."""
    try:
        version = npy_format.read_magic(f)
        if version in ((1, 0), (2, 0)):     # 3.0 only for non-latin-1 field names: never np.save(dict)
            read = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
            shape, _, dtype = read(f)
            return shape, dtype
    except (ValueError, EOFError) as exc:
        raise SkeletonFormatError(path, None, f"not a readable .npy file: truncated or corrupt header "
                                  f"({type(exc).__name__}: {cause_text(exc)})") from None
    raise SkeletonFormatError(path, None, f"not a txt2npy skeleton file: .npy format version {version[0]}.{version[1]}")


def _read_pickled_npy(path: Path) -> object:
    """The object in a ``.npy`` file holding one pickled 0-d object array, unpickled safely."""
    with open(path, "rb") as f:
        shape, dtype = _read_npy_header(f, path)
        if dtype != object or shape != ():
            raise SkeletonFormatError(path, None, f"not a txt2npy skeleton file: it holds a {dtype} array of "
                                      f"shape {shape}, not a dict saved with np.save")
        try:
            array = SafeUnpickler(f, _refused(path)).load()
        except SkeletonFormatError:
            raise
        except Exception as exc:  # pickle raises EOFError, UnpicklingError, ValueError, TypeError...
            raise SkeletonFormatError(path, None, f"not a readable .npy file: truncated or corrupt data "
                                      f"({type(exc).__name__}: {cause_text(exc)})") from None
    if not (isinstance(array, np.ndarray) and array.dtype == object and array.shape == ()):
        raise SkeletonFormatError(path, None, f"not a txt2npy skeleton file: it holds a {type(array).__name__}, "
                                  "not a dict")
    return array.item()


def _check_skel_arrays(path: Path, data: dict) -> None:
    """Every ``skel_body{i}`` is a (frames, 25, 3) array of finite real numbers."""
    if "skel_body0" not in data:
        raise SkeletonFormatError(path, None, "no skel_body0 array of shape (frames, 25, 3)")
    for key, skel in data.items():
        if not (isinstance(key, str) and key.startswith("skel_body")):
            continue
        if (not isinstance(skel, np.ndarray) or skel.dtype.kind not in "fiu" or skel.ndim != 3
                or skel.shape[1:] != (NTU.num_joints, 3)):
            raise SkeletonFormatError(path, None, f"no {key} array of shape (frames, 25, 3)")
        finite = np.isfinite(skel)
        if not finite.all():
            frame, joint, axis = np.argwhere(~finite)[0]
            raise SkeletonFormatError(path, None, f"{key} has NaN or infinite coordinates (first: "
                                      f"{skel[frame, joint, axis]} at frame {frame + 1}, joint {joint + 1})")


def load_skeleton_npy(path: str | Path) -> dict:
    """The dict of a txt2npy ``.skeleton.npy`` file, as ``np.load(path, allow_pickle=True).item()``
    returns it, but safe on untrusted files: the pickle may only build numpy arrays and plain data."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such skeleton .npy file")
    data = _read_pickled_npy(path)
    if not isinstance(data, dict):
        raise SkeletonFormatError(path, None, "not a txt2npy skeleton file (expected a dict saved with np.save, "
                                  f"found {type(data).__name__})")
    _check_skel_arrays(path, data)
    return data


def paper_sequence(data: dict | str | Path) -> np.ndarray:
    """(T, 25 | 50, 3) float64 sequence the release feeds to its descriptors (docs/METHOD.md §1).

    Bodies 0 and 1 concatenated on the joint axis (body 1 only if its slot exists; slots 2, 3
    are ignored), then centred on joint 1 of frame 0 of body 0. ``data`` is the converter dict
    or the path of a ``.skeleton.npy`` file.
    """
    return paper_uncentred(data).centred()


def paper_uncentred(data: dict | str | Path) -> Uncentred:
    """``paper_sequence`` before its centring: bodies 0 and 1 concatenated, and the centring."""
    if not isinstance(data, dict):
        data = load_skeleton_npy(data)
    bodies = [data[key] for key in ("skel_body0", "skel_body1") if key in data]
    return Uncentred(np.concatenate(bodies, axis=1).astype(np.float64), FIRST_FRAME, NTU.root)


# ---------------------------------------------------------------- NTU RGB+D as a dataset kind

NTU_NAME = re.compile(r"^S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})$")
CLASS_NAMES_FILE = Path(__file__).with_name("resources") / "ntu120_class_names.txt"


@dataclass(frozen=True)
class NtuSample:
    setup: int
    camera: int
    performer: int
    replication: int
    action: int

    @property
    def label(self) -> int:
        return self.action


def parse_ntu_name(name: str) -> NtuSample:
    match = NTU_NAME.match(sample_id(name))
    if not match:
        raise ValueError(f"{name}: not an NTU RGB+D sample name (expected SsssCcccPpppRrrrAaaa)")
    sample = NtuSample(*map(int, match.groups()))
    if not (1 <= sample.setup <= 32 and 1 <= sample.camera <= 3 and 1 <= sample.performer <= 106
            and sample.replication in (1, 2) and 1 <= sample.action <= 120):
        raise ValueError(f"{name}: field out of range in NTU RGB+D sample name ({sample})")
    return sample


@lru_cache(maxsize=None)
def ntu120_class_names() -> tuple[str, ...]:
    lines = CLASS_NAMES_FILE.read_text().splitlines()
    return tuple(line for line in lines if line)


def ntu_uncentred(path: Path, mode: str, layout: Layout | None = None) -> Uncentred:
    """A .skeleton or txt2npy .skeleton.npy file -> its ``mode`` sequence before the final centring."""
    data = load_skeleton_npy(path) if path.name.endswith(".npy") else read_skeleton(path)
    if len(data["skel_body0"]) == 0:
        raise ValueError(f"{path}: no frames")
    # Clean mode replaces the release's "body slots 0 and 1" (quirk 6) by body selection.
    return (paper_uncentred if mode == "paper" else clean_uncentred)(data)


def _parse(dataset, name: str) -> NtuSample:
    return parse_ntu_name(name)


def _contains(dataset, sample: NtuSample) -> bool:
    """NTU-60 is NTU-120's setups S001-S017 and actions A001-A060."""
    return sample.setup <= dataset.max_setup and sample.action <= dataset.num_classes


def _class_names(dataset) -> tuple[str, ...]:
    return ntu120_class_names()[: dataset.num_classes]


NTU_KIND = SampleKind("ntu", NtuSample, _parse, ntu_uncentred, _class_names, (SKELETON_SUFFIX, NPY_SUFFIX),
                      contains=_contains, converter="txt2npy.py", numbered_classes=True)
