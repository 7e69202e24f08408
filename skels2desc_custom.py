"""Your own skeletons (a custom dataset folder, any joint layout, 2D or 3D) -> the five descriptor
folders of one split.

    python skels2desc_custom.py --data my_data --layout coco17 -despth data/descriptors -a train
    (--data: ROOT/skeletons/<sample>.npy, ROOT/labels.csv, ROOT/classes.txt; --layout: a layout
    .json file or a shipped name; README: Your own skeletons)
"""
import sys

from cli.skels2desc import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], datasets=("custom",), doc=__doc__))
