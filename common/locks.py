"""Locks on the project's shared files: one writer per output folder set (a split's descriptor
folders, a run's checkpoints), readers that keep writers out while they read (a training, an
evaluation), and packs that are not deleted while a process maps them.

The lock is ``fcntl.flock`` on an open file: the kernel drops it when the holder's file is
closed or its process dies (even by SIGKILL), so there are no stale locks to clean up. The file
holds one JSON line naming the current holder, read back for the message a second run gets.
It is never deleted: a waiting process may already have opened it, and deleting it would let
a third process lock a new file of the same name while the waiter locks the old one. Readers
take the same lock shared and name themselves in ``<lock>.readers/``, one small file each, so a
writer that is kept out can say who reads.
Where fcntl is unavailable (not Linux/Unix) the lock is skipped rather than failing the run.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
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


# A holder killed by SIGKILL or SIGTERM leaves its forked DataLoader workers holding the open file
# (and so the lock) until they notice their parent is gone (PyTorch checks every 5 s): a rerun
# started right after waits this long for them before it names the holder.
ORPHAN_GRACE = 20.0


def holder_died(text: str) -> bool:
    """Whether the lock file's recorded holder is a process of this host that no longer runs."""
    try:
        info = json.loads(text.splitlines()[0])
        return info["host"] == socket.gethostname() and not _alive(info)
    except (IndexError, ValueError, KeyError, TypeError):
        return False


def _try_lock(fd: int, how: int) -> bool:
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def readers_dir(path: Path) -> Path:
    """Where the readers of lock ``path`` name themselves, one JSON file each."""
    return path.with_name(path.name + ".readers")


def _alive(record: dict) -> bool:
    """Whether a reader's record may still be a live process (on another host: assumed so)."""
    if record.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(record["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def reader_message(path: Path) -> str | None:
    """The one-line 'in use by ...' message naming a live reader of lock ``path``, if one is recorded."""
    try:
        entries = sorted(readers_dir(path).iterdir())
    except OSError:
        return None
    for entry in entries:
        try:
            record = json.loads(entry.read_text())
            if _alive(record):
                return (f"{path}: in use by process {record['pid']} on {record['host']} since {record['since']} "
                        f"({' '.join(map(str, record['argv']))}), which reads these files; wait for it to finish "
                        f"or pass --wait")
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def _note_reader(path: Path) -> Path:
    folder = readers_dir(path)
    folder.mkdir(exist_ok=True)
    record = folder / f"{socket.gethostname()}_{os.getpid()}_{uuid.uuid4().hex[:8]}.json"
    record.write_text(json.dumps(holder_record()) + "\n")
    return record


def _forget_stale_readers(path: Path) -> None:
    """With the lock held exclusively no reader is left: their records are from killed processes."""
    folder = readers_dir(path)
    if folder.is_dir():
        for entry in folder.iterdir():
            entry.unlink(missing_ok=True)


@contextmanager
def folder_lock(path: str | Path, wait: bool = False, poll: float = 0.5,
                on_wait: Callable[[str], None] | None = None, shared: bool = False) -> Iterator[Path]:
    """Hold a lock on the file ``path`` (parents created) for the ``with`` body: exclusive (a
    writer), or ``shared`` (a reader: other readers may hold it too, writers may not).

    When the lock cannot be had (a writer holds it, or readers hold it and this is a writer):
    raise LockHeldError naming the holder, or with ``wait=True`` call ``on_wait(message)`` once
    and poll every ``poll`` seconds until it is free. Yields ``path``.
    """
    path = Path(path)
    if fcntl is None:
        yield path
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_RDWR without O_TRUNC: opening must not wipe the current holder's record.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    locked, noted = False, None
    try:
        told, grace = False, time.monotonic() + ORPHAN_GRACE
        while not _try_lock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX):
            text = path.read_text(errors="replace")
            message = (None if shared else reader_message(path)) or held_message(path, text)
            if not wait and holder_died(text) and time.monotonic() < grace:
                time.sleep(poll)   # the killed holder's forked workers still hold it until they notice
                continue
            if not wait:
                raise LockHeldError(message)
            if not told and on_wait is not None:
                on_wait(message)
            told = True
            time.sleep(poll)
        locked = True
        if shared:
            noted = _note_reader(path)
        else:
            _forget_stale_readers(path)
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(holder_record()) + "\n").encode(), 0)
        yield path
    finally:
        if noted is not None:
            noted.unlink(missing_ok=True)
        # Unlock explicitly: forked workers share the open file, and closing only our copy
        # would leave the lock held until they exit.
        if locked:
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextmanager
def folder_locks(paths: Iterable[str | Path], wait: bool = False, on_wait: Callable[[str], None] | None = None,
                 shared: bool = False) -> Iterator[None]:
    """``folder_lock`` on each of ``paths`` (in sorted order, so two runs never wait on each other)."""
    with ExitStack() as held:
        for path in sorted({Path(p) for p in paths}):
            held.enter_context(folder_lock(path, wait=wait, on_wait=on_wait, shared=shared))
        yield


class PackHold:
    """A shared lock on a pack file while an object maps it: ``remove_unless_held`` leaves the file
    alone until every holder has closed it (or died). Only closed, never unlocked: forked workers
    share the open file, and unlocking their copy would unlock the parent's."""

    def __init__(self, path: str | Path) -> None:
        self.fd: int | None = None
        if fcntl is not None:
            self.fd = os.open(path, os.O_RDONLY)
            fcntl.flock(self.fd, fcntl.LOCK_SH)

    @classmethod
    def if_there(cls, path: str | Path) -> PackHold | None:
        """A hold on ``path``, or None when there is no such file (or no such folder)."""
        try:
            return cls(path)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __del__(self) -> None:
        self.close()


def remove_unless_held(path: str | Path) -> bool:
    """Delete ``path`` unless a ``PackHold`` holds it; True when it is gone."""
    path = Path(path)
    if fcntl is None:
        path.unlink(missing_ok=True)
        return True
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        if not _try_lock(fd, fcntl.LOCK_EX):
            return False
        path.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)
