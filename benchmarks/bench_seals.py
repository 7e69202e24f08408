"""What sealing and checking a --cache pack costs (descriptors/seals.py).

    python benchmarks/bench_seals.py [--mb 512]

Writes a pack-sized file of random bytes in a temp folder, then times: CRC-32 per 4 MiB block
(the seal, as written: zlib.crc32), the same with the file just written (page cache warm, as when
a pack is sealed), the size check done on every open, and, for comparison, Adler-32 and BLAKE2b
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

from descriptors.seals import BLOCK, block_crcs, seal_problem, write_seal  # noqa: E402


def timed(label: str, mb: float, work) -> None:
    start = time.perf_counter()
    work()
    seconds = time.perf_counter() - start
    print(f"{label:<44} {mb / seconds:8,.0f} MB/s  {seconds:7.3f} s")


def over_blocks(path: Path, digest) -> None:
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            digest(block)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=512, help="pack size in MB (default 512)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pack = Path(tmp) / "pack.npy"
        with open(pack, "wb") as f:
            for _ in range(args.mb):
                f.write(os.urandom(1 << 20))
        print(f"{args.mb} MB pack, {BLOCK >> 20} MiB blocks, {os.cpu_count()} CPUs")
        timed("seal it (CRC-32, page cache warm)", args.mb, lambda: write_seal([pack], [pack]))
        start = time.perf_counter()
        seal_problem([pack])
        print(f"{'check its size on open':<44} {'':>13}  {(time.perf_counter() - start) * 1e3:7.3f} ms")
        timed("--verify-cache (CRC-32 of every block)", args.mb, lambda: seal_problem([pack], verify=True))
        timed("CRC-32 alone (zlib.crc32)", args.mb, lambda: block_crcs(pack))
        timed("Adler-32 (zlib.adler32), for comparison", args.mb, lambda: over_blocks(pack, zlib.adler32))
        timed("BLAKE2b, for comparison", args.mb, lambda: over_blocks(pack, lambda b: hashlib.blake2b(b).digest()))


if __name__ == "__main__":
    main()
