"""txt2npy speed: .skeleton files/s of skeletons.convert vs a straightforward line-by-line reader.

    python benchmarks/bench_txt2npy.py [--files 300] [--data ../shared/data/ntu]

The real samples are copied under fresh sample ids until there are --files of them (in a temp
folder). Timed: (1) a line-by-line reader in the style of the official converter (one float()
list and three row assignments per joint line) followed by np.save, one process; (2) our
converter, one worker and all cores (planning, parsing and atomic writes included); and the
parsers alone on the same files. Prints files/s and the ratios; the goal is >= 5x per core.
Everything runs with the converter's allocator setting (skeletons.convert.keep_freed_memory).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skeletons.convert import convert_folder, keep_freed_memory  # noqa: E402
from skeletons.datasets import official_missing, parse_ntu_name  # noqa: E402
from skeletons.ntu import read_skeleton  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def line_by_line_reader(path: Path) -> dict:
    """The baseline: walk every line in Python, as the official converter does."""
    lines = path.read_text().splitlines()
    nframe = int(lines[0])
    slots: dict[int, dict[str, np.ndarray]] = {}
    nbodys, cursor = [], 1
    for frame in range(nframe):
        nbody = int(lines[cursor])
        cursor += 1
        if nbody:
            nbodys.append(nbody)
        for body in range(nbody):
            arrays = slots.setdefault(body, {"skel": np.zeros((nframe, 25, 3)), "rgb": np.zeros((nframe, 25, 2)),
                                             "depth": np.zeros((nframe, 25, 2))})
            njoints = int(lines[cursor + 1])
            cursor += 2
            for joint in range(njoints):
                values = np.array([float(v) for v in lines[cursor].split()])
                arrays["skel"][frame, joint] = values[0:3]
                arrays["depth"][frame, joint] = values[3:5]
                arrays["rgb"][frame, joint] = values[5:7]
                cursor += 1
    data = {"file_name": path.name[:20], "nbodys": nbodys, "njoints": 25}
    for body in sorted(slots):
        data.update({f"{field}_body{body}": array for field, array in slots[body].items()})
    return data


def make_copies(source: Path, target: Path, count: int) -> list[Path]:
    """``count`` copies of the real samples under distinct NTU-60 ids (performer varied)."""
    originals = sorted(source.glob("*.skeleton"))
    missing, made = official_missing("ntu60"), []
    for performer in range(1, 107):
        for path in originals:
            s = parse_ntu_name(path.name)
            name = f"S{s.setup:03d}C{s.camera:03d}P{performer:03d}R{s.replication:03d}A{s.action:03d}"
            if name not in missing and not (target / f"{name}.skeleton").exists():
                shutil.copy(path, target / f"{name}.skeleton")
                made.append(target / f"{name}.skeleton")
            if len(made) == count:
                return made
    return made


def timed(function) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process). CPU time is the steadier figure on a
    shared machine; it does not count worker processes."""
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ntu")
    args = parser.parse_args()
    if not any(args.data.glob("*.skeleton")):
        sys.exit(f"bench_txt2npy.py: error: no .skeleton files in {args.data}")
    cores = os.cpu_count() or 1
    # The converter sets this in its processes (in this one too, with one worker); set it before
    # anything is timed so that both readers run under the same allocator settings.
    keep_freed_memory()
    with tempfile.TemporaryDirectory() as tmp:
        txt = Path(tmp) / "txt"
        txt.mkdir()
        files = make_copies(args.data, txt, args.files)
        mb = sum(p.stat().st_size for p in files) / 1e6
        print(f"{len(files)} .skeleton files ({mb:.0f} MB) from {args.data}, {cores} cores")

        def baseline() -> None:
            out = Path(tmp) / "baseline"
            out.mkdir()
            for path in files:
                np.save(out / f"{path.name}.npy", line_by_line_reader(path))

        t_base_parse = timed(lambda: [line_by_line_reader(p) for p in files])
        t_ours_parse = timed(lambda: [read_skeleton(p) for p in files])
        t_base = timed(baseline)
        t_one = timed(lambda: convert_folder(txt, Path(tmp) / "one", "ntu60", workers=1, progress=False))
        t_all = timed(lambda: convert_folder(txt, Path(tmp) / "all", "ntu60", workers=cores, progress=False))

    n = len(files)
    (wb, cb), (wo, co) = t_base_parse, t_ours_parse
    print(f"{'':33s} {'wall files/s':>13s} {'CPU files/s':>12s}")
    print(f"parse only   line-by-line reader : {n / wb:13.1f} {n / cb:12.1f}")
    print(f"parse only   skeletons.ntu       : {n / wo:13.1f} {n / co:12.1f}   "
          f"({wb / wo:.1f}x wall, {cb / co:.1f}x CPU)")
    (wb, cb), (wo, co), (wa, _) = t_base, t_one, t_all
    print(f"txt2npy      line-by-line + save : {n / wb:13.1f} {n / cb:12.1f}")
    print(f"txt2npy      ours, 1 worker      : {n / wo:13.1f} {n / co:12.1f}   "
          f"({wb / wo:.1f}x wall, {cb / co:.1f}x CPU per core)")
    print(f"txt2npy      ours, {cores} workers     : {n / wa:13.1f} {'':12s}   ({wb / wa:.1f}x wall)")

if __name__ == "__main__":
    main()
