"""The field's one-file dataset formats, by their -d name: each unpacks a file (``--data FILE``)
into a folder of samples and registers it (skeletons/unpacked.py). A new format is a module with
a reader and a ``register_*`` function, and a line here. A file of another of these formats (told
by its first bytes, whatever its suffix) is refused with the -d that reads it."""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from .convert import zip_holds
from .ctrgcn import CTRGCN, register_ctrgcn_dataset
from .datasets import Dataset
from .pyskl import PYSKL, register_pyskl_dataset

ZIP_STARTS = (b"PK\x03\x04", b"PK\x05\x06")   # a zip's first member, or an empty zip (npz files are zips)
PICKLE_PROTOCOLS = range(2, 6)                 # b"\x80" + protocol: every pickle written since Python 2.3's default


def content_kind(path: str | Path) -> str | None:
    """'zip' or 'pickle' from the file's first bytes; None for anything else (or no readable file)."""
    try:
        with open(path, "rb") as f:
            start = f.read(4)
    except OSError:
        return None
    if start in ZIP_STARTS:
        return "zip"
    if len(start) >= 2 and start[0] == 0x80 and start[1] in PICKLE_PROTOCOLS:
        return "pickle"
    return None


def wrong_format(dataset: str, path: str | Path) -> str | None:
    """The one-line refusal of a --data file that is not ``dataset``'s format, naming what it is and
    the flag that reads it; None when its content may be the right format."""
    kind = content_kind(path)
    expected = "a PYSKL pickle" if dataset == PYSKL else "a CTR-GCN npz"
    if kind == "zip" and zip_holds(path, ".skeleton"):   # the NTU RGB+D download itself
        return (f"{path}: a zip of NTU RGB+D .skeleton files, not {expected}: convert it with python txt2npy.py "
                f"-d ntu60 -txt {path} (NTU-120: -d ntu120 and both zips), then use -d ntu60")
    if dataset == PYSKL and kind == "zip":
        if zip_holds(path, "x_train.npy"):
            return f"{path}: a CTR-GCN npz, not a PYSKL pickle: use -d {CTRGCN} --data {path}"
        return f"{path}: a zip archive (an npz?), not a PYSKL pickle; -d {CTRGCN} --data reads CTR-GCN's npz files"
    if dataset == CTRGCN and kind == "pickle":
        return f"{path}: a pickle (PYSKL's annotation format), not a CTR-GCN npz: use -d {PYSKL} --data {path}"
    return None


def _register_checked(dataset: str, register: Callable[..., Dataset], path: str | Path,
                      layout: str | Path | None = None, label_map: str | Path | None = None) -> Dataset:
    if problem := wrong_format(dataset, path):
        raise ValueError(problem)
    return register(path, layout, label_map)


# -d name -> (what --data is, register(file, layout or None, label map or None))
FILE_DATASETS: dict[str, tuple[str, Callable[[str | Path, str | Path | None, str | Path | None], Dataset]]] = {
    PYSKL: ("a PYSKL annotation .pkl", partial(_register_checked, PYSKL, register_pyskl_dataset)),
    CTRGCN: ("a CTR-GCN NTU .npz", partial(_register_checked, CTRGCN, register_ctrgcn_dataset)),
}
