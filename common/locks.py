"""An exclusive lock per output folder set, so two runs writing the same split cannot interleave.

The lock is ``fcntl.flock`` on an open file: the kernel drops it when the holder's file is
closed or its process dies (even by SIGKILL), so there are no stale locks to clean up. The file
holds one JSON line naming the current holder, read back for the message a second run gets.
It is never deleted: a waiting process may already have opened it, and deleting it would let
a third process lock a new file of the same name while the waiter locks the old one.
Where fcntl is unavailable (not Linux/Unix) the lock is skipped rather than failing the run.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:     # Windows: no flock; run unlocked
    fcntl = None


class LockHeldError(RuntimeError):
    """Another process holds the lock; ``str(e)`` is one line naming the holder."""


def holder_record() -> dict:
    """This process as the lock file records it."""
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": list(sys.argv)}


def held_message(path: Path, text: str) -> str:
    """The one-line 'held by ...' message for a lock file whose content is ``text``."""
    try:
        info = json.loads(text.splitlines()[0])
        holder = (f"held by process {info['pid']} on {info['host']} since {info['since']} "
                  f"({' '.join(map(str, info['argv']))})")
    except (IndexError, ValueError, KeyError, TypeError):
        # The holder locks before it writes, so a reader can see an empty or partial file.
        holder = "held by another process (holder not recorded yet)"
    return f"{path}: {holder}; wait for it to finish or pass --wait"


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextmanager
def folder_lock(path: str | Path, wait: bool = False, poll: float = 0.5,
                on_wait: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Hold an exclusive lock on the file ``path`` (parents created) for the ``with`` body.

    When another process (or another open of the file in this one) holds it: raise
    LockHeldError, or with ``wait=True`` call ``on_wait(message)`` once and poll every
    ``poll`` seconds until it is free. Yields ``path``.
    """
    path = Path(path)
    if fcntl is None:
        yield path
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_RDWR without O_TRUNC: opening must not wipe the current holder's record.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    locked = False
    try:
        told = False
        while not _try_lock(fd):
            message = held_message(path, path.read_text(errors="replace"))
            if not wait:
                raise LockHeldError(message)
            if not told and on_wait is not None:
                on_wait(message)
            told = True
            time.sleep(poll)
        locked = True
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder_record()) + "\n").encode(), 0)
        yield path
    finally:
        # Unlock explicitly: forked workers share the open file, and closing only our copy
        # would leave the lock held until they exit.
        if locked:
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
