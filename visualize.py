"""A skeleton sequence beside its five descriptor images, as one PNG.

    python visualize.py data/ntu/txt60skel/S001C001P001R001A050.skeleton -o figure.png [--mode clean]
    python visualize.py my_data/skeletons/clip_0001.npy --layout coco17     # your own skeletons
    (FILE: an NTU .skeleton or .skeleton.npy file, an NW-UCLA .json file, or with --layout a custom
    dataset's .npy sample)
"""
import argparse
import sys

from descriptors.figures import file_figure, save_images
from cli import options as cli
from skeletons.custom import CUSTOM_KIND
from skeletons.datasets import sample_id
from skeletons.layouts import find_layout

OUT_DIR = "results"   # ignored by git: figures are outputs, not sources


def get_args_parser() -> argparse.ArgumentParser:
    parser = cli.parser(__doc__)
    parser.add_argument("file", help=".skeleton, .skeleton.npy or NW-UCLA .json sample, or a custom .npy with --layout")
    cli.add(parser, "layout")
    parser.add_argument("-o", "--out", help=f"figure path (default: {OUT_DIR}/<sample>_descriptors.png; "
                                            f"git ignores {OUT_DIR}/)")
    cli.add(parser, "mode")
    cli.add(parser, "img_size")
    parser.add_argument("--frames", type=int, default=8, help="frames drawn in the strip")
    parser.add_argument("--images", metavar="DIR", help="also save the five images as DIR/<sample>_<DESC>.png")
    return parser


def parse(argv=None) -> argparse.Namespace:
    return get_args_parser().parse_args(argv)


def main(args: argparse.Namespace) -> int:
    try:
        name = sample_id(args.file)
        out = args.out or f"{OUT_DIR}/{name}_descriptors.png"
        layout = find_layout(args.layout) if args.layout else None
        images = file_figure(args.file, out, args.mode, args.img_size, args.frames,
                             kind=CUSTOM_KIND if layout else None, layout=layout)
        if args.images:
            save_images(images, args.images, name)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {out}" + (f" and the five images in {args.images}" if args.images else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(parse()))
