"""Peak memory of training from skeletons against the split's size: does it stay flat?

Makes NTU-60 csub train splits of --sizes samples as symbolic links to a few sequence files
(txt2npy's output of the real samples in shared/data/ntu, else of the demo's), under made-up sample
names, then, in a fresh process per (size, source), iterates one epoch of the skeleton loader
(GD, batch 64, CPU, no network) and prints that process's peak RSS. Sources:
- files: each batch's files read as they come, no image memo (--source skeletons with augmentation);
- files + memo: as train.py without augmentation, each sample's images kept (at most 1 GiB);
- pack + memo: the split packed once (skeletons/compact.py) and memory-mapped; the pages it touches
  count in RSS but are the page cache's, shared and reclaimable: the end-of-epoch split of RSS
  into the process's own memory and mapped files (/proc/self/status) tells them apart.
Asserts nothing.

  python benchmarks/bench_memory.py [--sizes 1000 4000 16000] [--img-size 32] [--data ../shared/data]
"""
from __future__ import annotations

import argparse
import itertools
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skeletons.convert import convert_folder  # noqa: E402
from skeletons.datasets import NTU60_CSUB_TRAIN_PERFORMERS  # noqa: E402
from demo.generate import generate_demo  # noqa: E402
from common.shared import shared_dir  # noqa: E402

DEFAULT_DATA = shared_dir() / "data"
SOURCES = ("files", "files + memo", "pack + memo")


def sequence_files(data: Path, work: Path) -> tuple[list[Path], str]:
    """txt2npy outputs to link to: of the real NTU samples when there, else of the small demo."""
    raw, what = data / "ntu", f"the real NTU samples in {data / 'ntu'}"
    if not any(raw.glob("*.skeleton")):
        generate_demo(work / "demo", seed=0, size="small")
        raw, what = work / "demo" / "ntu" / "txt60skel", "the small demo's NTU samples"
    out = work / "npy"
    convert_folder(raw, out, "ntu120", workers=1, progress=False)
    files = sorted(out.glob("*.skeleton.npy"))
    return files, f"{len(files)} txt2npy files of {what}"


def make_split(files: list[Path], count: int, folder: Path) -> None:
    """``count`` links named as distinct NTU-60 csub train samples, to ``files`` in turn."""
    folder.mkdir(parents=True)
    names = itertools.product(range(1, 18), range(1, 4), NTU60_CSUB_TRAIN_PERFORMERS, range(1, 3), range(1, 61))
    for k, (s, c, p, r, a) in zip(range(count), names):
        (folder / f"S{s:03d}C{c:03d}P{p:03d}R{r:03d}A{a:03d}.skeleton.npy").symlink_to(files[k % len(files)])


def child(folder: Path, source: str, img_size: int) -> None:
    """One epoch of the skeleton loader; prints samples, seconds and peak RSS (MB)."""
    import torch

    from descriptors.skeleton_source import MEMO_BUDGET, ImageMaker, SkeletonSequences, skeleton_loader

    torch.set_num_threads(1)
    start = time.perf_counter()
    data = SkeletonSequences(folder, "ntu60", "csub", "train", pack=source.startswith("pack"),
                             pack_dir=folder.parent / f"{folder.name}.cache")
    maker = ImageMaker("GD", data.layout, "paper", img_size, "cpu",
                       memo_budget=MEMO_BUDGET if source != "files" else 0)
    seen = sum(len(labels) for _, labels in skeleton_loader(data, maker, batch_size=64))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{seen} {time.perf_counter() - start:.1f} {peak:.0f} {resident('RssAnon')} {resident('RssFile')}")


def resident(field: str) -> str:
    """This process's resident MB of ``field`` of /proc/self/status now ('-' where there is none):
    RssAnon its own memory, RssFile mapped file pages (the page cache's, reclaimable)."""
    status = Path("/proc/self/status")
    lines = status.read_text().splitlines() if status.is_file() else []
    kb = next((line.split()[1] for line in lines if line.startswith(field + ":")), None)
    return "-" if kb is None else f"{int(kb) / 1024:.0f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 16000])
    p.add_argument("--img-size", type=int, default=32)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared/data: real NTU samples")
    p.add_argument("--child", nargs=2, metavar=("FOLDER", "SOURCE"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(Path(args.child[0]), args.child[1], args.img_size)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        files, what = sequence_files(args.data, work)
        print(f"Peak RSS of one epoch of the skeleton loader (GD, {args.img_size} px, batch 64, CPU, one "
              f"thread), splits of links to {what}")
        for count in args.sizes:
            folder = work / f"split{count}"
            make_split(files, count, folder)
            for source in SOURCES:
                run = subprocess.run([sys.executable, __file__, "--child", str(folder), source,
                                      "--img-size", str(args.img_size)], capture_output=True, text=True)
                if run.returncode:
                    last = (run.stderr.strip().splitlines() or [f"exit code {run.returncode} (killed?)"])[-1]
                    print(f"  {count:>6,} samples, {source:<12}: failed: {last}")
                    continue
                seen, seconds, peak, anon, mapped = run.stdout.split()
                print(f"  {count:>6,} samples, {source:<12}: peak RSS {float(peak):6.0f} MB; at the end "
                      f"{anon} MB own, {mapped} MB mapped files ({seen} samples in {seconds} s)", flush=True)


if __name__ == "__main__":
    main()
