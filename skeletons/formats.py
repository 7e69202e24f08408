"""The field's one-file dataset formats, by their -d name: each unpacks a file (``--data FILE``)
into a folder of samples and registers it (skeletons/unpacked.py). A new format is a module with
a reader and a ``register_*`` function, and a line here."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .ctrgcn import CTRGCN, register_ctrgcn_dataset
from .datasets import Dataset
from .pyskl import PYSKL, register_pyskl_dataset

# -d name -> (what --data is, register(file, layout or None, label map or None))
FILE_DATASETS: dict[str, tuple[str, Callable[[str | Path, str | Path | None, str | Path | None], Dataset]]] = {
    PYSKL: ("a PYSKL annotation .pkl", register_pyskl_dataset),
    CTRGCN: ("a CTR-GCN NTU .npz", register_ctrgcn_dataset),
}
