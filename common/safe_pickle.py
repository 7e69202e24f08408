"""Pickles read without running code: numpy arrays and plain data only.

The field ships data and scores as pickles (PYSKL annotation files, CTR-GCN and PYSKL score
files, txt2npy's .npy dicts). ``pickle.load`` runs whatever a crafted file names (os.system,
builtins.eval, ...); ``SafeUnpickler`` resolves only the globals in ``ALLOWED_GLOBALS`` and refuses
any other before looking it up, so a refused file has run nothing.
"""
from __future__ import annotations

import codecs
import collections
import pickle
from pathlib import Path
from typing import Callable

import numpy as np

# numpy 1.x pickles name numpy.core.multiarray, numpy 2.x numpy._core.multiarray; both map to this
# numpy's own functions, so old files load without importing the deprecated numpy.core.
_RECONSTRUCT = np.ndarray((0,)).__reduce__()[0]      # numpy's _reconstruct
_SCALAR = np.float64(0).__reduce__()[0]               # numpy's scalar (a pickled numpy scalar)
ALLOWED_GLOBALS: dict[tuple[str, str], object] = {
    ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
    **{(module, name): function for module in ("numpy.core.multiarray", "numpy._core.multiarray")
       for name, function in (("_reconstruct", _RECONSTRUCT), ("scalar", _SCALAR))},
    ("_codecs", "encode"): codecs.encode,                  # protocol 2 writes bytes (array data) this way
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset,
}
ALLOWED_TEXT = "only numpy arrays, dict, list, tuple, str, bytes, int, float are allowed"


class RefusedPickle(ValueError):
    """A pickle that names a global outside ``ALLOWED_GLOBALS``; nothing of it was run."""


class SafeUnpickler(pickle.Unpickler):
    """An unpickler of numpy arrays and plain data: any other global is refused before lookup.
    ``refuse(module, name)`` makes the exception to raise (default: ``RefusedPickle``)."""

    def __init__(self, file, refuse: Callable[[str, str], Exception] | None = None):
        super().__init__(file)              # encoding "ASCII", as np.load
        self.refuse = refuse or (lambda module, name: RefusedPickle(
            f"refused to load: the pickle references {module}.{name} ({ALLOWED_TEXT}); nothing of it was run"))

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED_GLOBALS[module, name]
        except KeyError:
            raise self.refuse(module, name) from None


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
    except Exception as error:   # pickle raises EOFError, UnpicklingError, ValueError, TypeError...
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{path}: not a readable {what} (truncated or not a pickle: {text})") from None
