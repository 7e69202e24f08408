"""Atomic file writes, written once: a temp file in the same folder, then ``os.replace``.

Readers never see a half-written file under the final name, and an interrupted run leaves at
most a hidden temp file (``.<name>.<random>.tmp<suffix>``), which no reader of a folder picks up:
dataset listings match final suffixes such as ``.skeleton.npy`` or ``.png``, and
descriptors/extract.py deletes stale ``.*.tmp`` files before it resumes.

The writer itself creates the temp file, so it gets an ordinary file's mode (0666 minus the
umask), not the 0600 of ``tempfile.mkstemp``: results, images and checkpoints are meant to be
shared. The name is not reserved beforehand (that costs a create + reopen per file, ~5 % of
writing a small PNG); its 64 random bits keep concurrent writers of one target apart.
"""
from __future__ import annotations

import errno
import io
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

TEMP_SUFFIX = ".tmp"


@contextmanager
def atomic_path(path: str | Path, suffix: str = "", make_parents: bool = False) -> Iterator[Path]:
    """Yield a temp path beside ``path`` for the caller to create and write; on success it replaces ``path``.

    On any exception (KeyboardInterrupt included) the temp file is removed and ``path`` is left
    as it was. ``suffix`` ends the temp name, for writers that choose a format or append an
    extension from it (``np.save`` appends ``.npy`` unless the name ends with it).
    ``make_parents`` creates the missing folders above ``path`` first.
    """
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}{TEMP_SUFFIX}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes, make_parents: bool = False) -> None:
    """``Path(path).write_bytes(data)``, atomically."""
    with atomic_path(path, make_parents=make_parents) as tmp:
        tmp.write_bytes(data)


def write_npz_atomic(path: str | Path, arrays: dict, make_parents: bool = False) -> None:
    """``np.savez(path, **arrays)`` (stored, no pickle needed to read), atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue(), make_parents=make_parents)


def write_text_atomic(path: str | Path, text: str, newline: str | None = None,
                      make_parents: bool = False) -> None:
    """``Path(path).write_text(text)`` in UTF-8, atomically; ``newline=""`` writes line ends untranslated."""
    with atomic_path(path, make_parents=make_parents) as tmp:
        tmp.write_text(text, encoding="utf-8", newline=newline)


@contextmanager
def writing_into(folder: str | Path, what: str, remedy: str) -> Iterator[None]:
    """Turn an OSError raised while writing ``what`` into ``folder`` (read-only, a file in the way,
    a full disk; also while creating the folders above it) into a one-line ValueError naming the
    folder, the cause and ``remedy``. Errors about files elsewhere (an input that cannot be read)
    pass through unchanged."""
    folder = Path(folder)
    try:
        yield
    except OSError as error:
        path = Path(error.filename) if error.filename else folder
        if path != folder and folder not in path.parents and path not in folder.parents:
            raise   # not about the folder, a file in it or a folder on its way
        raise ValueError(f"{folder}: cannot write {what} there ({error.strerror or error}); {remedy}") from None



def check_writable(folder: str | Path, what: str, remedy: str) -> None:
    """Refuse, before any work, a folder where ``what`` cannot be written (read-only, a file in the
    way): one line naming it, as ``writing_into`` words it. Nothing is created: an existing folder
    is written a test file, a missing one is checked at its nearest existing parent."""
    folder = Path(folder)
    with writing_into(folder, what, remedy):
        existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "a file is in the way", str(existing))
        if existing != folder.absolute() and existing != folder:
            if not os.access(existing, os.W_OK | os.X_OK):
                raise PermissionError(errno.EACCES, "permission denied", str(existing))
            return
        probe = folder / f".write-test.{secrets.token_hex(4)}"
        probe.write_bytes(b"")
        probe.unlink()
