"""Descriptor and image-folder naming (docs/METHOD.md §3, the README's layout): the one place for them
(checkpoint names are in models/names.py)."""
from __future__ import annotations

import re
from pathlib import Path

from skeletons.datasets import Split, check_protocol, get_dataset

DESCRIPTORS = ("GD", "JDD", "ADD", "LAD", "FDD")
# Order in which the release's Fuse5 feeds the five images to its shared trunk.
FUSION_ORDER = ("GD", "FDD", "JDD", "ADD", "LAD")
FUSION = "all"
DEFAULT_DESCRIPTOR_ROOT = "data/descriptors"


def check_descriptor(desc: str, allow_fusion: bool = False) -> str:
    allowed = DESCRIPTORS + ((FUSION,) if allow_fusion else ())
    if desc not in allowed:
        raise ValueError(f"unknown descriptor {desc!r}; choose from {', '.join(allowed)}")
    return desc


def protocol_suffix(dataset: str, protocol: str | None) -> str:
    """'_<protocol>' in folder and checkpoint names; '' for a dataset with one protocol (NW-UCLA,
    custom), whose names never had it."""
    protocol = check_protocol(dataset, protocol)
    return "" if len(get_dataset(dataset).protocols) == 1 else f"_{protocol}"


def descriptor_dir(root: str | Path, split: Split, desc: str) -> Path:
    """<root>/<ds>_<DESC>_<part>_<protocol> for NTU; <root>/ucla_<DESC>_<part> for NW-UCLA and
    <root>/custom_<DESC>_<part> for a custom dataset (one protocol each)."""
    check_descriptor(desc)
    return Path(root) / f"{split.dataset}_{desc}_{split.part}{protocol_suffix(split.dataset, split.protocol)}"


def split_stem(split: Split) -> str:
    """'ntu60_train_csub', 'ucla_train', 'custom_train': names the five folders of one split as a whole."""
    return f"{split.dataset}_{split.part}{protocol_suffix(split.dataset, split.protocol)}"


def split_lock_path(root: str | Path, split: Split) -> Path:
    """Hidden lock file beside a split's five descriptor folders: one extraction at a time."""
    return Path(root) / f".{split_stem(split)}.lock"


def split_sources_path(root: str | Path, split: Split) -> Path:
    """Hidden record of each sample file's size and mtime when its images were made (reruns
    remake the images of a file that changed)."""
    return Path(root) / f".{split_stem(split)}.sources.json"


def image_name(index: int, label: int) -> str:
    """<index>_<label>.png: position in the sorted split, 1-based label."""
    return f"{index}_{label}.png"


IMAGE_NAME = re.compile(r"^(\d+)_(\d+)\.png$")


def parse_image_name(name: str) -> tuple[int, int] | None:
    """'12_7.png' -> (12, 7); None for any other file name (a folder may hold other files)."""
    match = IMAGE_NAME.match(name)
    return (int(match.group(1)), int(match.group(2))) if match else None
