"""Which directory entries are files to read: only regular files (or links to them). A FIFO
would block a reader forever, a folder or a broken or looping link cannot be read; each is one
named problem among good files, not a reason to stop."""
from __future__ import annotations

import os
import stat


def not_a_file(entry: os.DirEntry) -> str | None:
    """None for a regular file (or a link to one), else the one-line reason it is not read."""
    try:
        mode = entry.stat().st_mode   # follows links
    except OSError as error:
        return f"unreadable link or entry ({error.strerror or error})"
    if stat.S_ISREG(mode):
        return None
    kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a socket or device"
    return f"{kind}, not a regular file; not read"
