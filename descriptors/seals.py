"""Seals for the --cache packs: a pack is used only while it is, byte for byte, what was written
from what the step would pack now.

A seal is a small JSON file beside a pack (``<pack>.seal.json``), written once the pack is
complete: each file's size, the CRC-32 of each 4 MiB block, and what the pack was made from
(``made_from``: the packer's record, e.g. the digest of its sources' names, sizes and mtimes, the
sample count, the folder record's fingerprint). Opening a pack checks, before anything is mapped,
that the seal's record agrees with what the step would pack now (common/provenance.py's
wording: a seal of another pack is refused), then the sizes, then every block: flipped bytes in a
file of the right size are caught before the pack is used. A pack whose seal does not hold is
named in one line, moved aside (``<name>.damaged``, for a look) and made again; a pack without a
seal (an older version made it) is made again in its place.

Every block on open, not each block on its first read: a pack is read in random order by several
DataLoader workers, each with its own map (a per-block record would be per worker, or shared
state), and a block found altered mid-epoch could no longer be made again without the batches
already read from it having been used. The whole check runs at the speed zlib.crc32 reads
(benchmarks/bench_seals.py: ~2 GB/s on one core of the 2-core VM, about 2 s for a 4.5 GB pack),
less than the first epoch spends reading the same pack, whose pages it leaves in the page cache.
"""
from __future__ import annotations

import json
import sys
import zlib
from collections.abc import Iterator, Mapping, Sequence
from itertools import zip_longest
from pathlib import Path

from common import provenance as contract
from common.atomic import write_text_atomic

SEAL_SUFFIX = ".seal.json"
DAMAGED_SUFFIX = ".damaged"
BLOCK = 4 << 20
MAX_SEAL_BYTES = 16 << 20   # a seal of 4 MiB blocks lists ~11 bytes per block: packs of terabytes
MAX_BLOCK = 256 << 20       # a seal's block size, bounded before a buffer of it is made


def seal_path(pack: Path) -> Path:
    return pack.with_name(pack.name + SEAL_SUFFIX)


def block_crc_stream(path: Path, block_size: int = BLOCK) -> Iterator[int]:
    """CRC-32 of each ``block_size`` bytes of ``path``, in order, read into one reused buffer
    (plain reads, not a map: a file truncated while it is read ends the reads, it is no SIGBUS)."""
    buffer = bytearray(block_size)
    view = memoryview(buffer)
    with open(path, "rb") as f:
        while n := f.readinto(buffer):   # buffered: fills the block unless the file ends
            yield zlib.crc32(view[:n])


def block_crcs(path: Path, block_size: int = BLOCK) -> list[int]:
    """CRC-32 of each ``block_size`` bytes of ``path``, read in order."""
    return list(block_crc_stream(path, block_size))


def write_seal(files: Sequence[Path], written: Sequence[Path], made_from: Mapping | None = None) -> None:
    """Seal a pack before it goes in place: ``files`` are its final names (``files[0]`` the pack,
    the others belong with it: its index), ``written`` the complete temp files that become them,
    ``made_from`` the packer's record of what it packed. Sealed first, a pack in place always has
    its seal (and a seal without its pack is harmless)."""
    record = {f.name: {"size": w.stat().st_size, "crc32": block_crcs(w)} for f, w in zip(files, written)}
    seal = {"block": BLOCK, "files": record, "made_from": dict(made_from or {})}
    write_text_atomic(seal_path(files[0]), json.dumps(seal) + "\n")


def read_seal(pack: Path) -> dict | str:
    """The seal of ``pack`` (its block size checked, each entry's size and CRC count consistent),
    or why there is none to use."""
    path = seal_path(pack)
    try:
        if path.stat().st_size > MAX_SEAL_BYTES:
            return f"its seal is {path.stat().st_size:,} bytes, more than any pack needs"
        seal = json.loads(path.read_text())
        block, files, made_from = seal["block"], seal["files"], seal.get("made_from") or {}
        if type(block) is not int or not 0 < block <= MAX_BLOCK or not isinstance(made_from, dict) or \
                any(type(e["size"]) is not int or len(e["crc32"]) != -(-e["size"] // block) for e in files.values()):
            return "its seal is unreadable"
    except FileNotFoundError:
        return "no seal (an older version made it)"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "its seal is unreadable"
    return seal


def altered(files: Sequence[Path], seal: Mapping) -> str | None:
    """None when each file has its sealed size and every block its sealed CRC-32 (read with the
    seal's own block size), else which file and bytes differ."""
    sealed, block = seal["files"], seal["block"]
    for f in files:
        entry = sealed.get(f.name)
        if entry is None or not f.is_file():
            return f"{f.name} is missing" if entry is not None else f"{f.name} is not sealed"
        if (size := f.stat().st_size) != entry["size"]:   # first: a truncated pack costs no read
            return f"{f.name} is {size:,} bytes, sealed at {entry['size']:,} (truncated or rewritten)"
    for f in files:
        crcs, entry = block_crc_stream(f, block), sealed[f.name]
        bad = next((k for k, (now, then) in enumerate(zip_longest(crcs, entry["crc32"])) if now != then), None)
        if bad is not None:   # the first altered block, found without reading the rest
            return f"{f.name}: bytes {bad * block:,}-{min((bad + 1) * block, entry['size']) - 1:,} differ from its seal"
    return None


def other_inputs(seal: Mapping, made_from: Mapping | None) -> list[str]:
    """'field: sealed -> now' for each field of ``made_from`` the seal records otherwise (a field
    the seal does not record agrees: a seal of an older version)."""
    return contract.differences(seal.get("made_from") or {}, made_from or {}, (made_from or {}).keys())


def seal_problem(files: Sequence[Path], made_from: Mapping | None = None) -> str | None:
    """None when the pack's files are, byte for byte, what was sealed from ``made_from``; else why not."""
    seal = read_seal(files[0])
    if isinstance(seal, str):
        return seal
    if differ := other_inputs(seal, made_from):
        return f"made from other inputs than this step uses ({'; '.join(differ)}, recorded -> now)"
    return altered(files, seal)


def move_aside(files: Sequence[Path]) -> Path:
    """Move a pack's files to ``<name>.damaged`` (kept for a look) and drop its seal; returns where
    the pack went."""
    aside = [f.with_name(f.name + DAMAGED_SUFFIX) for f in files]
    for f, to in zip(files, aside):
        if f.is_file():
            f.replace(to)
    seal_path(files[0]).unlink(missing_ok=True)
    return aside[0]


def usable(files: Sequence[Path], what: str, made_from: Mapping | None = None) -> bool:
    """Whether a pack found on disk may be used: its seal's record agrees with ``made_from`` and
    every byte is as sealed. One that is not is named in one line (stderr), moved aside and made
    again; an unsealed one is left where it is, for the pack made again to replace."""
    if not files[0].is_file():
        return False
    seal = read_seal(files[0])
    if isinstance(seal, str) and seal.startswith("no seal"):   # made again in its place (a rename: readers keep theirs)
        return False
    if not isinstance(seal, str) and (differ := other_inputs(seal, made_from)):
        aside = move_aside(files)
        print(f"notice: {contract.refusal(files[0], differ, f'moved aside to {aside.name}, making it again')}",
              file=sys.stderr)
        return False
    problem = seal if isinstance(seal, str) else altered(files, seal)
    if problem is None:
        return True
    aside = move_aside(files)
    print(f"notice: {files[0]}: damaged {what} ({problem}); moved aside to {aside.name}, making it again",
          file=sys.stderr)
    return False
