"""The per-split output lock (common/locks.py): exclusive across processes, freed when the holder dies."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common import locks
from common.locks import LockHeldError, folder_lock

REPO = Path(__file__).resolve().parents[1]

# Takes the lock, says so, holds it for argv[2] seconds, releases it and exits.
HOLDER = """
import sys, time
from common.locks import folder_lock
with folder_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def start_holder(lock: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock), str(seconds)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


@pytest.fixture
def lock(tmp_path) -> Path:
    return tmp_path / "desc" / ".ntu60_train_csub.lock"


def test_second_process_is_refused_naming_the_holder(lock):
    holder = start_holder(lock, 30)
    try:
        with pytest.raises(LockHeldError) as info:
            with folder_lock(lock):
                pytest.fail("acquired a lock another process holds")
        message = str(info.value)
        assert "\n" not in message
        assert message.startswith(f"{lock}: held by process {holder.pid} on {socket.gethostname()} since ")
        assert f"{lock} 30" in message and message.endswith("; wait for it to finish or pass --wait")
    finally:
        holder.kill()
        holder.wait()


def test_killed_holder_frees_the_lock(lock):
    holder = start_holder(lock, 30)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with folder_lock(lock) as path:
        assert path == lock
        record = json.loads(lock.read_text())
    # The killed holder's record was replaced by ours, not appended to.
    assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
    assert record["argv"] == sys.argv and len(lock.read_text().splitlines()) == 1


# Takes the lock, then forks a "DataLoader worker" that shares the open lock file and outlives its
# parent by argv[2] seconds, as PyTorch's workers do until they notice the parent is gone.
HOLDER_WITH_WORKER = """
import os, sys, time
from common.locks import folder_lock
with folder_lock(sys.argv[1]):
    if os.fork() == 0:
        time.sleep(float(sys.argv[2]))
        os._exit(0)
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_rerun_right_after_a_kill_waits_for_the_orphaned_workers(lock):
    """train.py killed with SIGKILL or SIGTERM: its forked workers hold the lock a few seconds more;
    a rerun started at once takes it when they exit instead of naming the dead process."""
    for sig in (signal.SIGKILL, signal.SIGTERM):
        holder = subprocess.Popen([sys.executable, "-c", HOLDER_WITH_WORKER, str(lock), "1.5"], cwd=REPO,
                                  stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "locked"
        os.kill(holder.pid, sig)
        holder.wait()
        start = time.monotonic()
        with folder_lock(lock, poll=0.1):
            assert json.loads(lock.read_text())["pid"] == os.getpid()
        assert 0.5 < time.monotonic() - start < locks.ORPHAN_GRACE


def test_two_opens_in_one_process_exclude_each_other(lock):
    with folder_lock(lock):
        with pytest.raises(LockHeldError, match=f"held by process {os.getpid()} "):
            with folder_lock(lock):
                pass
    assert lock.exists()    # kept on release: a waiter may hold the inode open
    with folder_lock(lock):
        pass


def test_wait_acquires_after_the_holder_releases(lock):
    holder = start_holder(lock, 1.0)
    messages = []
    started = time.monotonic()
    try:
        with folder_lock(lock, wait=True, poll=0.05, on_wait=messages.append):
            waited = time.monotonic() - started
            assert json.loads(lock.read_text())["pid"] == os.getpid()
    finally:
        holder.wait(timeout=30)
    assert waited > 0.5
    assert len(messages) == 1 and f"held by process {holder.pid}" in messages[0]


def test_exception_in_body_releases(lock):
    with pytest.raises(KeyError):
        with folder_lock(lock):
            raise KeyError("boom")
    with folder_lock(lock):
        pass


def test_without_fcntl_runs_unlocked(lock, monkeypatch):
    monkeypatch.setattr(locks, "fcntl", None)
    with folder_lock(lock):
        with folder_lock(lock) as inner:
            assert inner == lock
