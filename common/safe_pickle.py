"""Pickles read without running code and without allocating more than they hold: numpy arrays
and plain data only.

The field ships data and scores as pickles (PYSKL annotation files, CTR-GCN and PYSKL score
files, txt2npy's .npy dicts). ``pickle.load`` runs whatever a crafted file names (os.system,
builtins.eval, ...); ``SafeUnpickler`` resolves only the globals in ``ALLOWED_GLOBALS`` and refuses
any other before looking it up, so a refused file has run nothing.

A small pickle can also declare a huge object: an array shape on a 4-byte buffer, a dtype whose
subarray makes 4 bytes a 6 GB block (or rows of zero stride), ``numpy.ndarray((10**9,))`` called
as a constructor, or lists that hold the same list many times over, whose printout or copy grows
exponentially. So the numpy globals are stand-ins that check what is declared against the bytes
that are there before anything is made (an array is made only from data of exactly its size;
dtypes are plain numbers, strings or objects; ``numpy.ndarray`` cannot be called), and a loaded
object is walked once: nesting depth and item count (shared parts counted each time they are
reached) are bounded by ``MAX_NESTING`` and ``MAX_ITEMS``. Protocol 5 (``_frombuffer``) pickles of
numpy arrays are plain data and are read as well.
"""
from __future__ import annotations

import codecs
import collections
import math
import pickle
from pathlib import Path
from typing import Callable

import numpy as np

from .provenance import MAX_ALLOCATION

MAX_NESTING = 100          # containers within containers; the field's files nest 4 or 5 deep
MAX_ITEMS = 50_000_000     # items of all containers, shared ones counted each time reached (NTU-120: ~2M)
DTYPE_KINDS = "biufcSUO"   # bool, integers, floats, complex, bytes, str, object: no structured or void
_RECONSTRUCT = np.ndarray((0,)).__reduce__()[0]      # numpy's _reconstruct
_SCALAR = np.float64(0).__reduce__()[0]               # numpy's scalar (a pickled numpy scalar)
ALLOWED_TEXT = "only numpy arrays, dict, list, tuple, str, bytes, int, float are allowed"


class RefusedPickle(ValueError):
    """A pickle that names a global outside ``ALLOWED_GLOBALS``, or declares more than it holds;
    nothing of it was run."""


def _refuse(problem: str):
    raise RefusedPickle(f"refused to load: {problem} (a damaged or crafted file); nothing of it was run")


def _size(count: int) -> str:
    return f"{count / 2**30:,.1f} GiB" if count >= 2**30 else f"{count / 2**20:,.1f} MiB" if count >= 2**20 \
        else f"{count:,} bytes"


class _NdarrayClass:
    """``numpy.ndarray`` as a pickle names it: only ever ``_reconstruct``'s first argument, never
    called (``ndarray(shape)`` would allocate whatever shape a file declares)."""
    __slots__ = ()

    def __repr__(self) -> str:
        return "numpy.ndarray"

    def __call__(self, *args: object) -> None:
        _refuse(f"numpy.ndarray called as a constructor with {str(args)[:80]} (numpy pickles never call it)")


NDARRAY = _NdarrayClass()


def _simple_dtype(obj: object) -> np.dtype:
    """The dtype a pickle names by a type string ('f2', 'U20', 'O8'), refused unless it is a plain
    number, string or object type of non-zero size."""
    if not isinstance(obj, str) or len(obj) > 16:
        _refuse(f"a dtype given as {type(obj).__name__}, not a type code")
    try:
        dtype = np.dtype(obj)
    except (TypeError, ValueError):
        _refuse(f"dtype {obj!r} is not a numpy type code")
    if dtype.kind not in DTYPE_KINDS or dtype.subdtype is not None or dtype.names is not None:
        _refuse(f"dtype {obj!r} ({dtype}) is not a plain number, string or object type")
    return dtype


class _DtypeSpec:
    """``numpy.dtype(obj, align, copy)`` and its pickled state, checked: byte order and, for
    strings, the size; a subarray, fields or flags in the state are refused."""

    def __init__(self, obj: object = None, align: object = False, copy: object = False):
        self.dtype = _simple_dtype(obj)

    def __setstate__(self, state: object) -> None:
        if not (isinstance(state, tuple) and len(state) == 8 and state[0] == 3 and state[1] in ("<", ">", "|", "=")
                and state[2] is None and state[3] is None and state[4] is None):
            _refuse(f"a dtype state that is not a plain type's ({str(state)[:80]})")
        endian, elsize, kind = state[1], state[5], self.dtype.kind
        if kind in "SU":
            unit = 4 if kind == "U" else 1
            if not (type(elsize) is int and 0 < elsize <= MAX_ALLOCATION and elsize % unit == 0):
                _refuse(f"a {kind} dtype of {elsize!r} bytes")
            self.dtype = np.dtype(f"{kind}{elsize // unit}")
        elif elsize not in (-1, self.dtype.itemsize):
            _refuse(f"dtype {self.dtype} declared {elsize!r} bytes long")
        if endian in "<>" and self.dtype.byteorder != "|":
            self.dtype = self.dtype.newbyteorder(endian)

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return repr(self.dtype)


def _dtype_of(value: object) -> np.dtype:
    if isinstance(value, _DtypeSpec):
        return value.dtype
    _refuse(f"an array whose dtype is a {type(value).__name__}")


def _shape_of(value: object) -> tuple[int, ...]:
    if not (isinstance(value, tuple) and len(value) <= 32 and all(type(n) is int and n >= 0 for n in value)):
        _refuse(f"an array shape {str(value)[:80]} that is not a tuple of sizes")
    return value


def _check_data(shape: tuple[int, ...], dtype: np.dtype, data: object) -> None:
    """The bytes (or, for object arrays, the items) an array declares are exactly those given."""
    count = math.prod(shape)
    if dtype.hasobject:
        if not isinstance(data, list) or len(data) != count:
            _refuse(f"an object array of shape {shape} without its {count:,} items")
        return
    if not isinstance(data, (bytes, bytearray)):
        _refuse(f"a {shape} {dtype} array whose data is a {type(data).__name__}")
    if len(data) != count * dtype.itemsize:
        _refuse(f"a {shape} {dtype} array ({_size(count * dtype.itemsize)}) declared on {_size(len(data))} "
                f"of data")


class _ArraySpec:
    """An array ``_reconstruct`` announces; its pickled state (shape, dtype, data) is checked when
    it arrives, and the array is made from it by ``build`` once its items (object arrays) are known."""
    __hash__ = None   # as an ndarray: no dict key, no set member

    def __init__(self):
        self.state: tuple | None = None

    def __setstate__(self, state: object) -> None:
        if not (isinstance(state, tuple) and len(state) in (4, 5)):
            _refuse("an array state that is not numpy's (version, shape, dtype, fortran, data)")
        shape, dtype, fortran, data = state[-4:]
        shape, dtype = _shape_of(shape), _dtype_of(dtype)
        _check_data(shape, dtype, data)
        self.state = (1, shape, dtype, bool(fortran), data)

    def build(self, items: list | None = None) -> np.ndarray:
        if self.state is None:
            _refuse("an array without its data")
        array = _RECONSTRUCT(np.ndarray, (0,), b"b")
        array.__setstate__(self.state if items is None else self.state[:4] + (items,))
        return array


def _reconstruct(cls: object, shape: object = None, dtype: object = None) -> _ArraySpec:
    if cls is not NDARRAY:
        _refuse(f"numpy's _reconstruct of {type(cls).__name__}, not of numpy.ndarray")
    return _ArraySpec()   # shape and dtype here are placeholders: the state that follows says them


def _frombuffer(buffer: object, dtype: object, shape: object, order: object) -> np.ndarray:
    """Protocol 5's array: its buffer, dtype, shape and order, checked."""
    dtype, shape = _dtype_of(dtype), _shape_of(shape)
    if dtype.hasobject or order not in ("C", "F"):
        _refuse(f"a protocol-5 array of dtype {dtype} and order {order!r}")
    _check_data(shape, dtype, buffer)
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order)


def _scalar(dtype: object, data: object = None) -> object:
    dtype = _dtype_of(dtype)
    if dtype.hasobject:
        return data
    _check_data((), dtype, data)
    return _SCALAR(dtype, data)


def _encode(text: object, encoding: object = "utf-8") -> bytes:
    if not isinstance(text, str) or encoding != "latin1":
        _refuse(f"_codecs.encode with {encoding!r}, not as protocol 2 writes bytes")
    return codecs.encode(text, "latin1")


def _bytes(*args: object) -> bytes:
    if args:
        _refuse("bytes() with arguments")   # bytes(10**10) would allocate them
    return b""                              # protocol 2 writes b"" as bytes()


# numpy 1.x pickles name numpy.core.*, numpy 2.x numpy._core.*; both map to the checked stand-ins
# above, so old files load without importing the deprecated numpy.core.
ALLOWED_GLOBALS: dict[tuple[str, str], object] = {
    ("numpy", "ndarray"): NDARRAY, ("numpy", "dtype"): _DtypeSpec,
    **{(f"numpy.{core}.multiarray", name): function for core in ("core", "_core")
       for name, function in (("_reconstruct", _reconstruct), ("scalar", _scalar))},
    **{(f"numpy.{core}.numeric", "_frombuffer"): _frombuffer for core in ("core", "_core")},
    ("_codecs", "encode"): _encode,                  # protocol 2 writes bytes (array data) this way
    ("collections", "OrderedDict"): collections.OrderedDict,
    # protocol 2 names builtins as Python 2 did (__builtin__)
    **{(module, name): function for module in ("builtins", "__builtin__")
       for name, function in (("bytes", _bytes), ("set", set), ("frozenset", frozenset))},
}
_LEAVES = (str, bytes, bytearray, int, float, complex, bool, type(None), np.ndarray, np.generic)
_LEAF_TYPES = frozenset(_LEAVES[:-1])   # exact types, tested first (most items are these)


class _Walk:
    """One pass over a loaded object: stand-ins replaced by the arrays and dtypes they check, nesting
    and expanded size bounded, a container that holds itself refused."""

    def __init__(self):
        self.sizes: dict[int, int] = {}                       # id -> items below, shared ones counted again
        self.made: dict[int, tuple[object, object]] = {}      # id -> (stand-in kept alive, what it became)
        self.open: set[int] = set()

    def __call__(self, value: object, depth: int = 0) -> tuple[object, int]:
        if isinstance(value, _LEAVES):
            return value, 1
        key = id(value)
        if key in self.sizes:
            return self.made[key][1] if key in self.made else value, self.sizes[key]
        if key in self.open:
            _refuse("a container that holds itself")
        if depth >= MAX_NESTING:
            _refuse(f"containers nested more than {MAX_NESTING} deep")
        self.open.add(key)
        result, size = self._inside(value, depth + 1)
        self.open.discard(key)
        if size > MAX_ITEMS:
            _refuse(f"more than {MAX_ITEMS:,} items once its shared parts are counted where they recur")
        self.sizes[key] = size
        if result is not value:
            self.made[key] = (value, result)
        return result, size

    def _items(self, values, depth: int) -> tuple[list, int]:
        out, total = [], 1
        for item in values:
            if type(item) in _LEAF_TYPES:
                size = 1
            else:
                item, size = self(item, depth)
            out.append(item)
            total += size
            if total > MAX_ITEMS:
                _refuse(f"more than {MAX_ITEMS:,} items once its shared parts are counted where they recur")
        return out, total

    def _inside(self, value: object, depth: int) -> tuple[object, int]:
        if isinstance(value, _DtypeSpec):
            return value.dtype, 1
        if isinstance(value, _ArraySpec):
            data = value.state[4] if value.state else None
            if isinstance(data, list):
                items, size = self._items(data, depth)
                return value.build(items), size
            return value.build(), 1
        if isinstance(value, list):
            value[:], size = self._items(value, depth)
            return value, size
        if isinstance(value, dict):
            keys, key_size = self._items(value.keys(), depth)
            values, size = self._items(value.values(), depth)
            if any(a is not b for a, b in zip(keys, value)):
                return type(value)(zip(keys, values)), key_size + size
            value.update(zip(keys, values))
            return value, key_size + size
        if isinstance(value, (tuple, set, frozenset)):
            items, size = self._items(value, depth)
            same = all(a is b for a, b in zip(items, value))
            return (value if same else type(value)(items)), size
        _refuse(f"a {type(value).__name__} ({value!r}) where data belongs")


class SafeUnpickler(pickle.Unpickler):
    """An unpickler of numpy arrays and plain data: any other global is refused before lookup, and
    what a file declares is checked against what it holds before it is made. ``refuse(module,
    name)`` makes the exception to raise for a global (default: ``RefusedPickle``)."""

    def __init__(self, file, refuse: Callable[[str, str], Exception] | None = None):
        super().__init__(file)              # encoding "ASCII", as np.load
        self.refuse = refuse or (lambda module, name: RefusedPickle(
            f"refused to load: the pickle references {module}.{name} ({ALLOWED_TEXT}); nothing of it was run"))

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED_GLOBALS[module, name]
        except KeyError:
            raise self.refuse(module, name) from None

    def load(self) -> object:
        return _Walk()(super().load())[0]


def load_pickle(path: str | Path, what: str = "pickle") -> object:
    """The object in a pickle file, loaded by ``SafeUnpickler``; every problem a one-line
    ValueError naming the file (``what`` says what the file should have been)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            return SafeUnpickler(handle).load()
    except RefusedPickle as error:
        raise ValueError(f"{path}: {error}") from None
    except FileNotFoundError:
        raise FileNotFoundError(f"{path.absolute()}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: a folder, not a {what}") from None
    except MemoryError:
        raise ValueError(f"{path}: not a readable {what} (it needs more memory than there is)") from None
    except Exception as error:   # pickle raises EOFError, UnpicklingError, ValueError, TypeError...
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{path}: not a readable {what} (truncated or not a pickle: {text[:200]})") from None
