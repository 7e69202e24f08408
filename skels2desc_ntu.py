"""NTU RGB+D sequences (txt2npy's .skeleton.npy) -> the five descriptor folders of one split.

    python skels2desc_ntu.py -d ntu60 -p csub -dspath data/ntu/npy60skel -despth data/descriptors -a train
"""
import sys

from cli.skels2desc import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], datasets=("ntu60", "ntu120"), doc=__doc__))
