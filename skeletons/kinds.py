"""What a kind of dataset does with its files: ``SampleKind``, one instance per kind.

A kind is the behaviour a row of the dataset table (skeletons/datasets.py) carries instead of a
tag: how a sample id becomes a sample (its label and whatever its protocols split on), which
samples a dataset of the kind holds, how one sample file becomes a sequence, which files it reads,
its class names. The built-in kinds live beside their formats: ``NTU_KIND`` in skeletons/ntu.py,
``UCLA_KIND`` in skeletons/ucla.py, ``CUSTOM_KIND`` in skeletons/custom.py; a new kind is its own
module and a row given to ``register_dataset``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from .centring import Uncentred
from .layouts import Layout


class Sample(Protocol):
    """A parsed sample id: its 1-based class label, and the fields its protocol rules read."""
    @property
    def label(self) -> int: ...


def sample_id(path: str | Path) -> str:
    """'.../S001C001P001R001A001.skeleton.npy' -> 'S001C001P001R001A001' (also for .json)."""
    # os.path, not Path: splits sort through 10^5 names, and Path() costs more than the rest.
    return os.path.basename(os.fspath(path)).split(".")[0]


def every_sample(dataset: Any, sample: Sample) -> bool:
    """``SampleKind.contains`` of a kind whose datasets hold every sample they can parse."""
    return True


@dataclass(frozen=True)
class SampleKind:
    """How the sample files of one kind of dataset are named, read and labelled.

    ``dataset`` below is the row (skeletons/datasets.py's ``Dataset``) asking, for what a kind
    reads off its row (NTU's number of classes, a custom dataset's labels.csv). The functions
    are module-level ones: a kind travels to extraction's worker processes, pickled by name.
    """
    name: str
    """Its name: extraction's front end is skels2desc_<name>.py; ``load_sequence`` takes it too."""
    sample_type: type
    """What ``parse`` gives: a dataset holds only samples of its kind."""
    parse: Callable[[Any, str], Sample]
    """(dataset, sample id or file name) -> its sample; ValueError naming it when it is no such name."""
    read: Callable[[Path, str, Layout | None], Uncentred]
    """(sample file, descriptor mode, the dataset's layout) -> its sequence before the final centring."""
    class_names: Callable[[Any], tuple[str, ...]]
    """(dataset) -> its class names, label 1 first."""
    suffixes: tuple[str, ...]
    """How the names of its sample files end (raw and converted ones)."""
    contains: Callable[[Any, Sample], bool] = every_sample
    """(dataset, one of its kind's samples) -> whether the dataset holds it (NTU-60 holds S001-S017)."""
    needs_layout: bool = False
    """Its files are read only with the dataset's layout: a file's name alone never picks this kind."""
    converter: str = ""
    """The script that makes its sample files from the raw ones (NTU: txt2npy.py), if there is one."""
    numbered_classes: bool = False
    """Its classes are known by number as well as by name (NTU's A001..A120)."""
    extractor: str = ""
    """Its extraction front end when not skels2desc_<name>.py (one-file formats use the custom one)."""

    @property
    def needs_conversion(self) -> bool:
        """Whether its raw files go through ``converter`` before anything reads them."""
        return bool(self.converter)

    def conversion_hint(self) -> str:
        """What an error about a folder without sample files adds: ' (run txt2npy.py first?)' or ''."""
        return f" (run {self.converter} first?)" if self.converter else ""

    def names_file(self, path: str | Path) -> bool:
        """Whether the name of ``path`` is that of one of its sample files."""
        return os.path.basename(os.fspath(path)).endswith(self.suffixes)
