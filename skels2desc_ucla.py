"""NW-UCLA sequences (all_sqe .json) -> the five descriptor folders of one split.

    python skels2desc_ucla.py -d ucla -dspath data/ucla -despth data/descriptors -a train
"""
import sys

from cli.skels2desc import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], datasets=("ucla",), doc=__doc__))
