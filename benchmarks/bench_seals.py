"""What sealing and checking a --cache pack costs (descriptors/seals.py).

    python benchmarks/bench_seals.py [--mb 512]

Writes a pack-sized file of random bytes in a temp folder, then times: sealing it (CRC-32 per
4 MiB block, zlib.crc32; the file just written, page cache warm, as when a pack is sealed), the
check every open makes (the seal's record, the sizes, every block), the same with the file's
pages dropped from the page cache first (read from the disk, as the first open after a reboot),
the read alone without CRC-32, one flipped byte found, and, for comparison, Adler-32 and BLAKE2b
over the same blocks. Prints MB/s and the seconds for the whole file.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from descriptors.seals import BLOCK, seal_problem, write_seal  # noqa: E402

MADE_FROM = {"pack": "bench", "files": "0" * 40}


def timed(label: str, mb: float, work) -> object:
    start = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - start
    print(f"{label:<52} {mb / seconds:8,.0f} MB/s  {seconds:7.3f} s")
    return result


def over_blocks(path: Path, digest) -> None:
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            digest(block)


def drop_from_page_cache(path: Path) -> bool:
    """Evict ``path``'s pages (this file only), so the next read comes from the disk."""
    if not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return True


def flip_last_byte(path: Path) -> None:
    with open(path, "r+b") as f:
        f.seek(-1, os.SEEK_END)
        byte = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([byte[0] ^ 0xFF]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--mb", type=int, default=512, help="pack size in MB (default 512)")
    parser.add_argument("--dir", help="folder for the pack (default: the system's temp folder; a disk, not a tmpfs, "
                                      "for the read from the disk)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        pack = Path(tmp) / "pack.npy"
        with open(pack, "wb") as f:
            for _ in range(args.mb):
                f.write(os.urandom(1 << 20))
        print(f"{args.mb} MB pack, {BLOCK >> 20} MiB blocks, {os.cpu_count()} CPUs")
        timed("seal it (CRC-32, page cache warm)", args.mb, lambda: write_seal([pack], [pack], MADE_FROM))
        assert timed("check on open (every block, page cache warm)", args.mb,
                     lambda: seal_problem([pack], MADE_FROM)) is None
        if drop_from_page_cache(pack):
            timed("check on open (every block, read from the disk)", args.mb, lambda: seal_problem([pack], MADE_FROM))
        timed("read alone, no CRC (page cache warm)", args.mb, lambda: over_blocks(pack, len))
        flip_last_byte(pack)
        found = timed("one flipped byte (last block) found", args.mb, lambda: seal_problem([pack], MADE_FROM))
        assert found and "differ from its seal" in found, found
        timed("Adler-32 (zlib.adler32), for comparison", args.mb, lambda: over_blocks(pack, zlib.adler32))
        timed("BLAKE2b, for comparison", args.mb, lambda: over_blocks(pack, lambda b: hashlib.blake2b(b).digest()))


if __name__ == "__main__":
    main()
