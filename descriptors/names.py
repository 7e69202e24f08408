"""Descriptor and image-folder naming (docs/METHOD.md §3, the README's layout): the one place for them
(checkpoint names are in models/names.py)."""
from __future__ import annotations

import re
from pathlib import Path

from skeletons.datasets import Split, check_protocol, get_dataset

import descriptors.registry as registry

DESCRIPTORS = registry.BUILTIN   # the paper's five, in the release's order: the default set
# Order in which the release's Fuse5 feeds the five images to its shared trunk (GD, FDD, JDD, ADD, LAD).
FUSION_ORDER = registry.fusion_order(DESCRIPTORS)
FUSION = "all"
FUSED_SEPARATOR = "-"   # the fusion of another set: 'all-GD-JDD-JVD' (its checkpoints' and files' name)
DEFAULT_DESCRIPTOR_ROOT = "data/descriptors"


def fused_name(descs) -> str:
    """The fusion network of a set of descriptors: 'all' for the paper's five (the release's names),
    'all-GD-JDD-JVD' for another set (members in the registry's order)."""
    chosen = registry.ordered(descs)
    if len(chosen) < 2:
        raise ValueError(f"a fusion needs at least two descriptors, got {', '.join(chosen) or 'none'}")
    return FUSION if chosen == DESCRIPTORS else FUSED_SEPARATOR.join((FUSION, *chosen))


def is_fused(name: str) -> bool:
    return name == FUSION or name.startswith(FUSION + FUSED_SEPARATOR)


def fused_members(name: str) -> tuple[str, ...]:
    """The descriptors a fusion network's name says, in the registry's order."""
    if name == FUSION:
        return DESCRIPTORS
    return registry.ordered(name.split(FUSED_SEPARATOR)[1:])


def fused_inputs(name: str) -> tuple[str, ...]:
    """A fusion network's inputs in the order it takes them (the five: FUSION_ORDER)."""
    return registry.fusion_order(fused_members(name))


def needed_descriptors(models) -> tuple[str, ...]:
    """The descriptors a set of models reads (a fusion network its inputs), each once, in the
    order the fusion network takes them (Fuse5's FUSION_ORDER for the five)."""
    return registry.fusion_order([d for name in models for d in (fused_inputs(name) if is_fused(name) else (name,))])


def check_descriptor(desc: str, allow_fusion: bool = False) -> str:
    """A known descriptor's name, or (``allow_fusion``) a fusion network's ('all', 'all-GD-JDD-JVD')."""
    if allow_fusion and is_fused(desc):
        if fused_name(fused_members(desc)) != desc:
            raise ValueError(f"{desc!r} is not a fusion name; write {fused_name(fused_members(desc))!r}")
        return desc
    if desc not in registry.REGISTRY:
        allowed = registry.names() + ((FUSION,) if allow_fusion else ())
        raise ValueError(f"unknown descriptor {desc!r}; choose from {', '.join(allowed)}")
    return desc


def model_names(desc: str) -> list[str]:
    """The models a model name covers: a fusion network's members and itself; one descriptor's model."""
    return [*fused_members(desc), desc] if is_fused(check_descriptor(desc, allow_fusion=True)) else [desc]


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


def split_sources_path(root: str | Path, split: Split, descs=DESCRIPTORS) -> Path:
    """Hidden record of each sample file's size and mtime when the images of a set of descriptors
    were made (reruns remake the images of a file that changed). One per set: a run of another set
    that remakes a shared folder's images leaves this set's record stale, so its next run remakes them."""
    chosen = registry.ordered(descs)
    named = "" if chosen == DESCRIPTORS else "." + "-".join(chosen)
    return Path(root) / f".{split_stem(split)}{named}.sources.json"


def image_name(index: int, label: int) -> str:
    """<index>_<label>.png: position in the sorted split, 1-based label."""
    return f"{index}_{label}.png"


IMAGE_NAME = re.compile(r"^(\d+)_(\d+)\.png$")


def parse_image_name(name: str) -> tuple[int, int] | None:
    """'12_7.png' -> (12, 7); None for any other file name (a folder may hold other files)."""
    match = IMAGE_NAME.match(name)
    return (int(match.group(1)), int(match.group(2))) if match else None
