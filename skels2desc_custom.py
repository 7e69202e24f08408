"""Your own skeletons (a custom dataset folder, any joint layout, 2D or 3D), or a PYSKL or
CTR-GCN data file -> the five descriptor folders of one split.

    python skels2desc_custom.py --data my_data --layout coco17 -despth data/descriptors -a train
    (--data: ROOT/skeletons/<sample>.npy, ROOT/labels.csv, ROOT/classes.txt; --layout: a layout
    .json file or a shipped name; README: Your own skeletons)
    python skels2desc_custom.py -d pyskl --data ntu60_3danno.pkl -p xsub -a train
    python skels2desc_custom.py -d ctrgcn --data NTU60_CS.npz -a test
    (docs/CUSTOM_DATA.md: the field's files)
"""
import sys

from cli.skels2desc import main
from skeletons.datasets import CUSTOM
from skeletons.formats import FILE_DATASETS

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], datasets=(CUSTOM, *FILE_DATASETS), doc=__doc__))
