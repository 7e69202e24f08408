"""A skeleton sequence beside its five descriptor images, as one PNG.

    python visualize.py data/ntu/txt60skel/S001C001P001R001A050.skeleton -o figure.png [--mode clean]
    (FILE: an NTU .skeleton or .skeleton.npy file, or an NW-UCLA .json file)
"""
import argparse
import sys

from descriptors.core import DEFAULT_IMG_SIZE, MODES
from descriptors.figures import file_figure, save_images
from skeletons.datasets import sample_id


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help=".skeleton, .skeleton.npy or NW-UCLA .json sample")
    parser.add_argument("-o", "--out", help="figure path (default: <sample>_descriptors.png)")
    parser.add_argument("--mode", default="paper", choices=MODES)
    parser.add_argument("--img-size", type=int, default=DEFAULT_IMG_SIZE)
    parser.add_argument("--frames", type=int, default=8, help="frames drawn in the strip")
    parser.add_argument("--images", metavar="DIR", help="also save the five images as DIR/<sample>_<DESC>.png")
    return parser.parse_args(argv)


def main(args: argparse.Namespace) -> int:
    try:
        name = sample_id(args.file)
        out = args.out or f"{name}_descriptors.png"
        images = file_figure(args.file, out, args.mode, args.img_size, args.frames)
        if args.images:
            save_images(images, args.images, name)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {out}" + (f" and the five images in {args.images}" if args.images else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(parse()))
