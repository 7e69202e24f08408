"""Seals for the --cache packs: a pack's files are used only while they are what was written.

A seal is a small JSON file beside a pack (``<pack>.seal.json``) holding each file's size and the
CRC-32 of each 4 MiB block, written once the pack is complete. Opening a pack checks the sizes
(cheap: a truncated or emptied pack is caught before it is mapped); ``--verify-cache`` and
``verify=True`` check every block (flipped bytes too). A pack whose seal does not hold is moved
aside (``<name>.damaged``, for a look) and made again; a pack without a seal (an older version
made it) is made again in its place.
zlib.crc32 runs at several GB/s (benchmarks/bench_seals.py), so sealing costs one extra read of a
pack that was just written and is still in the page cache.
"""
from __future__ import annotations

import json
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path

from common.atomic import write_text_atomic

SEAL_SUFFIX = ".seal.json"
DAMAGED_SUFFIX = ".damaged"
BLOCK = 4 << 20


def seal_path(pack: Path) -> Path:
    return pack.with_name(pack.name + SEAL_SUFFIX)


def block_crcs(path: Path, block_size: int = BLOCK) -> list[int]:
    """CRC-32 of each ``block_size`` bytes of ``path``, read in order."""
    crcs = []
    with open(path, "rb") as f:
        while block := f.read(block_size):
            crcs.append(zlib.crc32(block))
    return crcs


def write_seal(files: Sequence[Path], written: Sequence[Path]) -> None:
    """Seal a pack before it goes in place: ``files`` are its final names (``files[0]`` the pack,
    the others belong with it: its index), ``written`` the complete temp files that become them.
    Sealed first, a pack in place always has its seal (and a seal without its pack is harmless)."""
    record = {f.name: {"size": w.stat().st_size, "crc32": block_crcs(w)} for f, w in zip(files, written)}
    write_text_atomic(seal_path(files[0]), json.dumps({"block": BLOCK, "files": record}) + "\n")


def seal_problem(files: Sequence[Path], verify: bool = False) -> str | None:
    """None when the pack's files are as sealed (sizes; with ``verify`` every block), else why not."""
    try:
        seal = json.loads(seal_path(files[0]).read_text())
        sealed, block = seal["files"], int(seal["block"])
    except FileNotFoundError:
        return "no seal (an older version made it)"
    except (OSError, ValueError, KeyError, TypeError):
        return "its seal is unreadable"
    for f in files:
        entry = sealed.get(f.name)
        if entry is None or not f.is_file():
            return f"{f.name} is missing" if entry is not None else f"{f.name} is not sealed"
        if (size := f.stat().st_size) != entry["size"]:
            return f"{f.name} is {size:,} bytes, sealed at {entry['size']:,} (truncated or rewritten)"
        if verify and (crcs := block_crcs(f, block)) != entry["crc32"]:   # the seal's own block size
            bad = next(k for k, (a, b) in enumerate(zip(crcs, entry["crc32"])) if a != b)
            return f"{f.name}: bytes {bad * block:,}-{(bad + 1) * block - 1:,} differ from its seal (damaged)"
    return None


def usable(files: Sequence[Path], what: str, verify: bool = False) -> bool:
    """Whether a pack found on disk may be used. A damaged one is named in one line (stderr) and
    moved aside; an unsealed one is left where it is, for the pack made again to replace."""
    if not files[0].is_file():
        return False
    problem = seal_problem(files, verify)
    if problem is None:
        return True
    if problem.startswith("no seal"):   # made again in its place (a rename: readers keep theirs)
        return False
    aside = [f.with_name(f.name + DAMAGED_SUFFIX) for f in files]
    for f, to in zip(files, aside):
        if f.is_file():
            f.replace(to)
    seal_path(files[0]).unlink(missing_ok=True)
    print(f"notice: {files[0]}: damaged {what} ({problem}); moved aside to {aside[0].name}, making it again",
          file=sys.stderr)
    return False
