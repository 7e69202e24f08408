"""Which directory entries are files to read: only regular files (or links to them). A FIFO
would block a reader forever, a folder or a broken or looping link cannot be read; each is one
named problem among good files, not a reason to stop. And what an ``.npy`` (or npz member)
declares, read before its data."""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.lib import format as npy_format


def not_a_file(entry: os.DirEntry | str | Path) -> str | None:
    """None for a regular file (or a link to one), else the one-line reason it is not read. Asked
    before a file is opened: opening a FIFO would wait for a writer forever."""
    try:
        mode = (entry.stat() if isinstance(entry, os.DirEntry) else os.stat(entry)).st_mode   # follows links
    except OSError as error:
        return f"unreadable link or entry ({error.strerror or error})"
    if stat.S_ISREG(mode):
        return None
    kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a socket or device"
    return f"{kind}, not a regular file; not read"


def where_they_are(folder: str | Path, suffix: str) -> str:
    """For an error about a folder without any ``*suffix`` file: ' (they are in SUB: pass that
    folder instead)' when subfolders one level down hold such files, as unpacked archives do
    (NTU's nturgb+d_skeletons/, CTR-GCN's NW-UCLA all_sqe/); else ''."""
    found = []
    try:
        with os.scandir(folder) as entries:
            subfolders = sorted(e.path for e in entries if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return ""
    for sub in subfolders:
        try:
            with os.scandir(sub) as entries:
                if any(e.name.endswith(suffix) for e in entries):
                    found.append(sub)
        except OSError:
            continue
    if not found:
        return ""
    return f" (they are in {' and '.join(found)}: pass {'that folder' if len(found) == 1 else 'each folder'} instead)"


def npy_header(stream: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) an open ``.npy`` stream declares, the stream left at its data:
    what a reader checks before numpy allocates the array. numpy's ValueError or EOFError for a
    header that is not one."""
    version = npy_format.read_magic(stream)
    read = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
    return read(stream)
