"""How far the images from the field's data files are from those of the raw .skeleton route, on
the same real samples (prints figures; not a test; docs/CUSTOM_DATA.md quotes them).

    python benchmarks/compare_field_files.py [--img-size 224]

The peers' fixtures (../shared/data/formats: PYSKL's ntu60_3danno.pkl and CTR-GCN's NTU60_CS.npz,
made by their own preprocessing code from the 35 real .skeleton files in ../shared/data/ntu) are
unpacked as -d pyskl and -d ctrgcn do, and each sample's five images are compared with the images
of its .skeleton file read in paper mode (the release's body slots) and in clean mode (our body
selection). Per descriptor: the share of samples whose image is identical, and the mean and
largest absolute pixel difference (0..255) over all pixels.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.shared import shared_dir  # noqa: E402
from descriptors.core import descriptor_images  # noqa: E402
from descriptors.names import DESCRIPTORS  # noqa: E402
from skeletons.ctrgcn import register_ctrgcn_dataset  # noqa: E402
from skeletons.layouts import NTU  # noqa: E402
from skeletons.pyskl import register_pyskl_dataset  # noqa: E402
from skeletons.reading import load_sequence  # noqa: E402

SHARED = shared_dir()


def images_of(path: Path, mode: str, img_size: int, kind=None) -> dict[str, np.ndarray]:
    return descriptor_images(load_sequence(path, mode, kind, NTU if kind else None), NTU, mode, img_size)


def compare(pairs: list[tuple[dict, dict]]) -> str:
    cells = []
    for desc in DESCRIPTORS:
        diffs = [np.abs(a[desc].astype(int) - b[desc].astype(int)) for a, b in pairs]
        same = sum(int(d.max() == 0) for d in diffs)
        cells.append(f"{desc} {same}/{len(diffs)} same, mean {np.mean([d.mean() for d in diffs]):.2f}, "
                     f"max {max(int(d.max()) for d in diffs)}")
    return "; ".join(cells)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--img-size", type=int, default=224)
    args = parser.parse_args()
    formats, raw = SHARED / "data" / "formats", SHARED / "data" / "ntu"
    if not (formats / "pyskl" / "ntu60_3danno.pkl").is_file():
        print(f"no fixtures at {formats}; set IMDAR_SHARED", file=sys.stderr)
        return 1
    os.chdir(tempfile.mkdtemp())   # the unpacked folders go to data/<format>/ here
    pyskl = register_pyskl_dataset(formats / "pyskl" / "ntu60_3danno.pkl")
    ctrgcn_ds = register_ctrgcn_dataset(formats / "ctrgcn" / "NTU60_CS.npz")
    # CTR-GCN's rows carry no names: each is paired with the PYSKL sample of its part, label and shape.
    order = {part: ctrgcn_ds.custom.row_order("split", part) for part in ("train", "test")}
    pyskl_order = {part: pyskl.custom.row_order("xsub", part) for part in ("train", "test")}
    print(f"{len(pyskl.custom.labels)} samples, {args.img_size}-px images; raw route: ../shared/data/ntu/*.skeleton")
    for mode in ("paper", "clean"):
        raw_images = {name: images_of(raw / f"{name}.skeleton", mode, args.img_size) for name in pyskl.custom.labels}
        from_pyskl = [(images_of(Path(pyskl.seq_dir) / f"{n}.npy", mode, args.img_size, pyskl.kind), raw_images[n])
                      for n in raw_images]
        print(f"PYSKL  vs .skeleton ({mode}): {compare(from_pyskl)}")
        pairs = []
        for part in ("train", "test"):
            for sid in order[part]:
                X = np.load(Path(ctrgcn_ds.seq_dir) / f"{sid}.npy")
                match = [n for n in pyskl_order[part] if pyskl.custom.labels[n] == ctrgcn_ds.custom.labels[sid]
                         and np.load(Path(pyskl.seq_dir) / f"{n}.npy").shape == X.shape]
                if len(match) == 1:
                    pairs.append((images_of(Path(ctrgcn_ds.seq_dir) / f"{sid}.npy", mode, args.img_size,
                                            ctrgcn_ds.kind), raw_images[match[0]]))
        print(f"CTR-GCN vs .skeleton ({mode}): {compare(pairs)} ({len(pairs)} samples paired by label and shape)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
