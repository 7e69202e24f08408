"""Datasets, protocols, splits and class names (docs/METHOD.md §1-2): one table per fact.

A row of ``DATASETS`` is a dataset: its kind (skeletons/kinds.py: how its sample ids parse, which
samples it holds, how a sample file becomes a sequence, its class names), its layout, classes,
protocol rules and folders. NTU RGB+D 60/120 and NW-UCLA are fixed rows; a user's own dataset
(``-d custom``, skeletons/custom.py) is a row added at run time by ``register_dataset``, so every
step that takes a dataset name (folder and checkpoint names, images, training, evaluation) works
on it unchanged, as it does on a row of a new kind.
"""
from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from common.files import not_a_file

from .kinds import Sample, SampleKind, sample_id
from .layouts import NTU, UCLA, Layout
# The NTU and NW-UCLA names live with their formats; callers import these from here too.
from .ntu import NTU_KIND, NTU_NAME, ntu120_class_names, parse_ntu_name  # noqa: F401
from .ucla import UCLA_ACTIONS, UCLA_KIND, UCLA_NAME, parse_ucla_name  # noqa: F401

RESOURCES = Path(__file__).with_name("resources")

NTU60_CSUB_TRAIN_PERFORMERS = (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)
NTU120_CSUB_TRAIN_PERFORMERS = NTU60_CSUB_TRAIN_PERFORMERS + (
    45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89,
    91, 92, 93, 94, 95, 97, 98, 100, 103,
)
NTU60_CVIEW_TRAIN_CAMERAS = (2, 3)
UCLA_TRAIN_VIEWS = (1, 2)

CUSTOM = "custom"            # the name of a user's own dataset (-d custom --data ROOT --layout FILE_OR_NAME)
CUSTOM_PROTOCOL = "split"    # its one protocol: the train/test column of its labels.csv


@dataclass(frozen=True)
class CustomSample:
    label: int
    split: str | None     # "train" or "test"; None for a file that labels.csv does not list (not used)


class SampleTable(Protocol):
    """What a dataset that lists its samples in a file offers (skeletons/custom.py's CustomDataset):
    the sample behind an id, the class names, and the files it does not list."""
    class_names: tuple[str, ...]
    unlisted: tuple[str, ...]

    def sample(self, sample: str) -> CustomSample: ...


# (sample) -> True when the sample is in the training split, False in the test split, None in neither
# (a one-file dataset's split lists need not name every sample).
ProtocolRule = Callable[[Sample], "bool | None"]


@dataclass(frozen=True)
class Dataset:
    name: str
    kind: SampleKind      # how its sample files are named, read and labelled (skeletons/kinds.py)
    layout: Layout
    num_classes: int
    protocol_rules: Mapping[str, ProtocolRule] = field(hash=False)   # a row stays hashable
    """Protocol name -> its training-split rule; the first protocol is the default one."""
    raw_dir: str          # README layout: where the raw skeletons go
    seq_dir: str          # where the per-sample sequences the descriptors read live
    seq_suffix: str       # file suffix of those sequences
    max_setup: int = 0    # NTU: last setup of the dataset (17 for NTU-60)
    constant_lr: bool = False   # NW-UCLA trains at a constant rate, the others on NTU's schedule
    custom: SampleTable | None = field(default=None, compare=False, repr=False)
    """A custom dataset's samples, labels, splits and class names (skeletons/custom.py)."""
    source_flags: tuple[str, ...] = ()
    """Command-line flags that say where a custom dataset is: ("--data", ROOT, "--layout", FILE_OR_NAME)."""

    @property
    def protocols(self) -> tuple[str, ...]:
        return tuple(self.protocol_rules)

    def parse_name(self, name: str) -> Sample:
        return self.kind.parse(self, name)

    def contains(self, sample: Sample) -> bool:
        """Whether the dataset holds ``sample`` (a sample of another kind never)."""
        return isinstance(sample, self.kind.sample_type) and self.kind.contains(self, sample)

    def is_train(self, name: str, protocol: str) -> bool:
        return self.protocol_rules[protocol](self.parse_name(name))

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.kind.class_names(self)

    @property
    def extract_script(self) -> str:
        """The skels2desc front end of the dataset's sample files."""
        return self.kind.extractor or f"skels2desc_{self.kind.name}.py"

    def data_flags(self) -> str:
        """' --data ROOT --layout FILE_OR_NAME' for a custom dataset (commands printed in errors), else ''."""
        return "".join(f" {shlex.quote(flag)}" for flag in self.source_flags)


DATASETS: dict[str, Dataset] = {
    "ntu60": Dataset("ntu60", NTU_KIND, NTU, 60, {
        "csub": lambda s: s.performer in NTU60_CSUB_TRAIN_PERFORMERS,
        "cview": lambda s: s.camera in NTU60_CVIEW_TRAIN_CAMERAS,
    }, "data/ntu/txt60skel", "data/ntu/npy60skel", ".skeleton.npy", max_setup=17),
    "ntu120": Dataset("ntu120", NTU_KIND, NTU, 120, {
        "csub": lambda s: s.performer in NTU120_CSUB_TRAIN_PERFORMERS,
        "csetup": lambda s: s.setup % 2 == 0,
    }, "data/ntu/txt120skel", "data/ntu/npy120skel", ".skeleton.npy", max_setup=32),
    "ucla": Dataset("ucla", UCLA_KIND, UCLA, 10, {"cview": lambda s: s.view in UCLA_TRAIN_VIEWS},
                    "data/ucla", "data/ucla", ".json", constant_lr=True),
}
BUILTIN_DATASETS = tuple(DATASETS)


def register_dataset(dataset: Dataset) -> Dataset:
    """Add (or replace) a run-time row of the table: the custom dataset named on the command line,
    or a dataset of a kind of its own (skeletons/kinds.py)."""
    if dataset.name in BUILTIN_DATASETS:
        raise ValueError(f"{dataset.name} is a built-in dataset and cannot be replaced")
    DATASETS[dataset.name] = dataset
    return dataset


PARTS = ("train", "test")


@dataclass(frozen=True)
class Split:
    """One part of one protocol of one dataset: the samples that a descriptor folder, a split lock,
    a sequence pack or one side of a training hold. Made by ``Split.of``, which checks the three;
    passed whole wherever they travel together (entry points such as ``extract_split`` take them
    loose, in this order, and make one)."""
    dataset: str
    protocol: str
    part: str

    @classmethod
    def of(cls, dataset: str, protocol: str | None, part: str) -> Split:
        """The checked split: a known part, dataset and protocol (None: a one-protocol dataset's)."""
        if part not in PARTS:
            raise ValueError(f"part must be one of {PARTS}, got {part!r}")
        return cls(dataset, check_protocol(dataset, protocol), part)

    def __str__(self) -> str:
        return f"{self.dataset} {self.protocol} {self.part}"

    def rule(self) -> Callable[[Sample], bool]:
        """(parsed sample) -> whether the split holds it: the dataset holds it, on this part's side
        of the protocol."""
        ds = get_dataset(self.dataset)
        in_train, want_train = ds.protocol_rules[self.protocol], self.part == "train"
        return lambda sample: ds.contains(sample) and in_train(sample) == want_train


def get_dataset(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        if name == CUSTOM:
            raise ValueError(f"-d {CUSTOM} needs --data ROOT (the dataset folder) and --layout FILE_OR_NAME") from None
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join((*BUILTIN_DATASETS, CUSTOM))}") from None


def check_protocol(dataset: str, protocol: str | None) -> str:
    """Validate a protocol for a dataset; NW-UCLA has only cross-view, so None means 'cview'."""
    ds = get_dataset(dataset)
    if protocol is None and len(ds.protocols) == 1:
        protocol = ds.protocols[0]
    if protocol not in ds.protocols:
        raise ValueError(f"protocol {protocol!r} is not defined for {dataset}; choose from {', '.join(ds.protocols)}")
    return protocol


def default_protocol(dataset: str, protocol: str | None) -> str:
    """-p when given, else the dataset's first protocol (csub for NTU, cview for NW-UCLA)."""
    return check_protocol(dataset, protocol or get_dataset(dataset).protocols[0])


def split_names(names, split: Split) -> list[str]:
    """Sorted sample ids of ``names`` in ``split``.

    Names outside the dataset (e.g. NTU-120-only samples in an NTU-60 run) are dropped;
    malformed names raise ValueError naming the offending entry.
    """
    ds, holds = get_dataset(split.dataset), split.rule()
    samples = {n: ds.parse_name(n) for n in sorted({sample_id(n) for n in names})}
    return [n for n, s in samples.items() if holds(s)]


@dataclass
class SplitScan:
    """What ``scan_split_folder`` found: the usable files of a split and the files it had to skip."""
    paths: list[Path]                   # the split's files, sorted by sample id
    problems: list[tuple[Path, str]]    # (file, one-line reason), sorted by file name


def _name_problem(dataset: Dataset, sid: str) -> Sample | str:
    """The parsed sample id, or the one-line reason it is not a valid name of ``dataset``."""
    try:
        return dataset.parse_name(sid)
    except ValueError as e:
        return f"not a valid {dataset.name} sample name: {str(e).removeprefix(f'{sid}: ')}"


def scan_split_folder(folder: str | Path, split: Split) -> SplitScan:
    """The split's sequence files in ``folder``, skipping bad files instead of failing.

    Files named <id><seq_suffix> are considered; hidden files (atomic writers' temps) are not.
    A name that does not parse cannot be placed in either part, so both parts report it; an entry
    that is not a regular file (a FIFO, a folder, a broken or looping link) is reported, not read;
    files sharing a sample id (e.g. a ``.bak`` copy) are all reported, and none used, when that id
    is in the requested split. Samples of another dataset (NTU-120-only ones in an NTU-60 run,
    a custom dataset's files that its labels.csv does not list) are silently outside the split.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{os.path.abspath(folder)}: sequence folder does not exist")
    ds, holds = get_dataset(split.dataset), split.rule()
    # Plain names from os.scandir, not Path objects: NTU-120 folders hold 114k files.
    by_id: dict[str, list[str]] = {}
    unreadable: dict[str, str] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            name = entry.name
            if not name.startswith(".") and name.endswith(ds.seq_suffix):
                by_id.setdefault(sample_id(name), []).append(name)
                if reason := not_a_file(entry):
                    unreadable[name] = reason
    chosen: list[str] = []
    problems: list[tuple[str, str]] = []
    for sid, names in by_id.items():
        sample = _name_problem(ds, sid)
        if isinstance(sample, str):
            problems.extend((name, sample) for name in names)
        elif not holds(sample):
            continue
        elif bad := [name for name in names if name in unreadable]:
            problems.extend((name, unreadable[name]) for name in bad)
        elif len(names) > 1:
            unused = "neither is used" if len(names) == 2 else "none is used"
            for name in names:
                others = ", ".join(sorted(n for n in names if n != name))
                problems.append((name, f"same sample id as {others}; {unused}"))
        else:
            chosen.append(sid)
    return SplitScan(paths=[folder / by_id[sid][0] for sid in sorted(chosen)],
                     problems=[(folder / name, reason) for name, reason in sorted(problems)])


def split_from_folder(folder: str | Path, split: Split) -> list[Path]:
    """Sorted sequence files of a split found in ``folder`` (files named <id><seq_suffix>).

    Strict: any file ``scan_split_folder`` would skip raises ValueError naming the first one.
    """
    scan = scan_split_folder(folder, split)
    if scan.problems:
        path, reason = scan.problems[0]
        more = f" (and {len(scan.problems) - 1} more)" if len(scan.problems) > 1 else ""
        raise ValueError(f"{Path(folder)}: {path.name}: {reason}{more}; rename or remove the file")
    return scan.paths


def label_of(name: str, dataset: str) -> int:
    """1-based class label of a sample id."""
    return get_dataset(dataset).parse_name(name).label


def class_names(dataset: str) -> tuple[str, ...]:
    return get_dataset(dataset).class_names


@lru_cache(maxsize=None)
def official_missing(dataset: str) -> frozenset[str]:
    """Official missing-skeleton sample ids (docs/METHOD.md §1), shipped with the package."""
    ds = get_dataset(dataset)
    names = read_name_list(RESOURCES / "ntu120_missing_skeletons.txt")
    return frozenset(n for n in names if ds.contains(parse_ntu_name(n)))


def read_name_list(path: str | Path) -> list[str]:
    """Sample ids in a list file: one per line; header sentences, blank lines, CRLF and a
    missing final newline are all accepted (both official forms of the missing lists)."""
    names = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if NTU_NAME.match(line) or UCLA_NAME.match(line):
            names.append(line)
    return names


NTU_CAMERAS = (1, 2, 3)
NTU_REPLICATIONS = (1, 2)


@lru_cache(maxsize=None)
def official_samples(dataset: str) -> frozenset[str]:
    """Every sample id an NTU dataset ships, missing skeletons included (56,880 / 114,480).

    Built from the performers of each setup: every (setup, performer) pair was recorded by all
    cameras, in both replications, for all actions of its setup (NTU-60's for S001-S017).
    """
    ds = get_dataset(dataset)
    if ds.layout is not NTU:
        raise ValueError(f"official_samples: {dataset} is not an NTU RGB+D dataset")
    ntu60 = DATASETS["ntu60"]
    names = set()
    for line in (RESOURCES / "ntu_setup_performers.txt").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        setup, *performers = line.split()
        if int(setup[1:]) > ds.max_setup:
            continue
        in_ntu60 = int(setup[1:]) <= ntu60.max_setup
        actions = range(1, ntu60.num_classes + 1) if in_ntu60 else range(ntu60.num_classes + 1, ds.num_classes + 1)
        names.update(f"{setup}C{c:03d}{p}R{r:03d}A{a:03d}" for p in performers for c in NTU_CAMERAS
                     for r in NTU_REPLICATIONS for a in actions)
    return frozenset(names)


@lru_cache(maxsize=None)
def _official_parsed(dataset: str) -> tuple[Sample, ...]:
    """The official samples of an NTU dataset, missing skeletons left out, parsed once (each
    split counts them with its own rule)."""
    ds = get_dataset(dataset)
    return tuple(ds.parse_name(name) for name in official_samples(dataset) - official_missing(dataset))


# NW-UCLA as released (CTR-GCN's all_sqe files; docs/METHOD.md §2): cross-view train = views 1 and 2,
# test = view 3.
UCLA_OFFICIAL_SIZES = {("cview", "train"): 1020, ("cview", "test"): 464}


def official_split_size(split: Split) -> int | None:
    """How many samples the official release gives ``split``: NTU RGB+D's (missing skeletons left
    out), NW-UCLA's; None for other datasets."""
    kind = get_dataset(split.dataset).kind.name
    if kind == "ucla":
        return UCLA_OFFICIAL_SIZES.get((split.protocol, split.part))
    if kind != "ntu":
        return None
    return sum(map(split.rule(), _official_parsed(split.dataset)))


def presence_note(present: Mapping[Split, int]) -> str | None:
    """One line when splits hold fewer samples than the official ones (a partial download, or
    NTU-60's folder given for NTU-120; NTU and NW-UCLA alike), else None. ``present``: {split:
    samples there}. The same splits give the same line: said once per process (common/notices.py)."""
    partial = [(split, n, official) for split, n in present.items()
               if (official := official_split_size(split)) is not None and n < official]
    if not partial:
        return None
    counts = "; ".join(f"{split}: {n:,} of {official:,} ({n / official:.1%})" for split, n, official in partial)
    return f"notice: fewer samples than the official split{'s' if len(partial) > 1 else ''} ({counts}); " \
           f"the figures are not comparable with published ones"
