"""python -m demo: write the demo data (docs/WORKFLOW.md) in the real datasets' formats, as a
custom COCO-17 dataset, or as the field's data files (PYSKL, CTR-GCN)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .field_files import FIELD_FORMATS, write_ctrgcn, write_pyskl
from .generate import FORMATS, SIZES, __doc__ as GENERATE_DOC, generate_coco17, generate_demo

FIELD_FILES = {"pyskl": "ntu60_3danno.pkl", "pyskl2d": "ntu60_2danno.pkl", "ctrgcn": "NTU60_CS.npz"}


def write(args: argparse.Namespace) -> str:
    """Write the data ``args`` ask for; the summary line(s)."""
    if args.format == "coco17":
        summary = generate_coco17(args.out, args.seed, args.size)
        return (f"COCO-17: {summary['coco17']} .npy samples (2D keypoints) in the custom dataset "
                f"{summary['coco17_dir']}")
    if args.format in FIELD_FORMATS:
        path = Path(args.out) / FIELD_FILES[args.format]
        takes = SIZES[args.size]["ntu"]
        if args.format == "ctrgcn":
            write_ctrgcn(path, args.seed, takes)
        else:
            write_pyskl(path, args.seed, takes, two_d=args.format == "pyskl2d")
        return f"{args.format}: {path} (python pipeline.py -d {args.format.removesuffix('2d')} --data {path} ...)"
    summary = generate_demo(args.out, args.seed, args.size)
    return (f"NTU: {summary['ntu']} .skeleton files in {summary['ntu_dir']} ({summary['ntu_two_body']} with two "
            f"bodies, {summary['ntu_spurious']} of them a spurious extra body)\n"
            f"NW-UCLA: {summary['ucla']} .json files in {summary['ucla_dir']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=GENERATE_DOC.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--out", required=True, help="output folder (gets ntu/txt60skel/ and ucla/; with "
                                                      "--format coco17 it is the custom dataset's folder; with a "
                                                      "field format it gets the data file)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", choices=tuple(SIZES), default="full",
                        help="full: ~300 NTU + 210 NW-UCLA files (demo pipeline); small: for tests")
    parser.add_argument("--format", choices=(*FORMATS, *FIELD_FORMATS), default=FORMATS[0],
                        help="ntu-ucla: the NTU and NW-UCLA file formats; coco17: the NTU actions as a custom "
                             "dataset of COCO-17 2D keypoints (-d custom --data OUT --layout coco17); pyskl, "
                             "pyskl2d, ctrgcn: the NTU actions as a PYSKL annotation pickle (3D, or COCO-17 2D "
                             "with scores) or a CTR-GCN NTU60_CS.npz (docs/CUSTOM_DATA.md)")
    args = parser.parse_args(argv)
    try:
        print(write(args))
    except OSError as e:
        print(f"error: {e.filename or args.out}: {e.strerror or e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
