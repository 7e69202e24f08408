"""A dataset of a new kind needs only its kind and its row: a kind defined here (text files of
another naming scheme), registered as a row of the table, goes through descriptor extraction of
both parts and one training step with no change anywhere else."""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import train
from demo.generate import NTU_ACTIONS, NTU_BODY, make_body, performance, seeded
from descriptors import provenance
from descriptors.extract import extract_split
from descriptors.names import DESCRIPTORS, descriptor_dir, image_name
from models.checkpoint import load_checkpoint
from models.config import TrainConfig, from_args
from models.names import checkpoint_path
from models.training import fit
from skeletons import datasets
from skeletons.centring import FIRST_FRAME, Uncentred
from skeletons.datasets import Dataset, Split, get_dataset, label_of, register_dataset, split_names
from skeletons.kinds import SampleKind, sample_id
from skeletons.layouts import NTU, Layout
from skeletons.reading import load_sequence

NAME = "runs"                               # the dataset, and its kind
RUN_NAME = re.compile(r"^run(\d+)_cls(\d{2})_sub(\d+)$")
ACTIONS = (23, 24)                          # the demo's hand waving and kicking: classes 1 and 2
SUBJECTS, RUNS, TRAIN_SUBJECTS = (1, 2, 3), (1, 2), (1, 2)


# ---------------------------------------------------------------- the kind: "T J C" text files

@dataclass(frozen=True)
class RunSample:
    run: int
    action: int      # 1-based class
    subject: int

    @property
    def label(self) -> int:
        return self.action


def parse_run(dataset: Dataset, name: str) -> RunSample:
    match = RUN_NAME.match(sample_id(name))
    if not match:
        raise ValueError(f"{name}: not a run sample name (expected runR_clsCC_subS)")
    return RunSample(*map(int, match.groups()))


def read_run(path: Path, mode: str, layout: Layout | None) -> Uncentred:
    """First line 'T J C', then T * J lines of C coordinates."""
    with path.open() as handle:
        shape = tuple(int(n) for n in handle.readline().split())
        values = np.loadtxt(handle, dtype=np.float64, ndmin=2)
    return Uncentred(values.reshape(shape), FIRST_FRAME, (layout or NTU).root)


def run_class_names(dataset: Dataset) -> tuple[str, ...]:
    return tuple(NTU_ACTIONS[action].name for action in ACTIONS)


RUN_KIND = SampleKind(NAME, RunSample, parse_run, read_run, run_class_names, (".txt",))


def cross_subject(sample: RunSample) -> bool:
    return sample.subject in TRAIN_SUBJECTS


def write_run(path: Path, joints: np.ndarray) -> None:
    T, J, C = joints.shape
    np.savetxt(path, joints.reshape(T * J, C), fmt="%.6f", header=f"{T} {J} {C}", comments="")


@pytest.fixture
def runs_dataset(tmp_path) -> Iterator[Dataset]:
    """The kind's row over a folder of moving demo bodies: 2 classes x 3 subjects x 2 runs."""
    folder = tmp_path / "runs"
    folder.mkdir()
    for label, action in enumerate(ACTIONS, start=1):
        for subject in SUBJECTS:
            body = make_body(NTU_BODY, seeded(7, 1, subject))
            for run in RUNS:
                (joints,) = performance(NTU_BODY, NTU_ACTIONS[action], [body], seeded(7, 2, action, subject, run), {})
                write_run(folder / f"run{run}_cls{label:02d}_sub{subject}.txt", joints)
    ds = register_dataset(Dataset(NAME, RUN_KIND, NTU, len(ACTIONS), {"csub": cross_subject}, raw_dir=str(folder),
                                  seq_dir=str(folder), seq_suffix=".txt"))
    yield ds
    datasets.DATASETS.pop(NAME)


def test_the_row_answers_through_its_kind(runs_dataset):
    ds = runs_dataset
    names = sorted(p.name for p in Path(ds.seq_dir).iterdir())
    train_ids = split_names(names, Split.of(NAME, None, "train"))
    test_ids = split_names(names, Split.of(NAME, None, "test"))
    assert len(train_ids) == 8 and len(test_ids) == 4 and all(s.endswith("_sub3") for s in test_ids)
    assert get_dataset(NAME) is ds and ds.protocols == ("csub",) and ds.extract_script == "skels2desc_runs.py"
    assert label_of("run2_cls02_sub1", NAME) == 2 and ds.class_names == ("hand waving", "kicking something")
    with pytest.raises(ValueError, match="not a run sample name"):
        split_names(["S001C001P001R001A001.skeleton.npy"], Split.of(NAME, None, "train"))
    X = load_sequence(Path(ds.seq_dir) / "run1_cls01_sub1.txt", "paper", RUN_KIND, NTU)
    assert X.shape[1:] == (25, 3) and X.shape[0] > 30 and not X[0, NTU.root].any() and X.std(0).mean() > 0.01


def test_a_new_kind_extracts_and_trains(runs_dataset, tmp_path):
    ds, desc_root, ckpt = runs_dataset, tmp_path / "descriptors", tmp_path / "checkpoints"
    for part, size in (("train", 8), ("test", 4)):
        # Two workers: the kind travels to worker processes.
        summary = extract_split(NAME, None, part, ds.seq_dir, desc_root, workers=2, img_size=32, progress=False)
        assert summary.ok and summary.total == summary.written == size, summary.lines()
        rows = provenance.read_manifest(descriptor_dir(desc_root, Split.of(NAME, None, part), "GD"))
        assert [r["sample"] for r in rows] == split_names(Path(ds.seq_dir).iterdir(), Split.of(NAME, None, part))
        assert all(r["label"] == label_of(r["sample"], NAME) and r["bodies"] == 1 for r in rows)
        for desc in DESCRIPTORS:
            folder = descriptor_dir(desc_root, Split.of(NAME, None, part), desc)
            assert sorted(p.name for p in folder.iterdir()) == sorted(image_name(r["index"], r["label"]) for r in rows)
            assert provenance.read_record(folder)["dataset"] == NAME
    # train.py's -d offers the shipped datasets; the run takes any row of the table.
    args = train.get_args_parser().parse_args(
        ["-d", "ucla", "-desc", "GD", "-gpu", "-1", "-despth", str(desc_root), "-ckpt", str(ckpt), "--width", "0.0625",
         "--workers", "0", "--batch-size", "4", "--epochs", "1", "--max-steps", "1", "--no-progress"])
    args.dataset = NAME
    result = fit(from_args(TrainConfig, args))
    (row,) = result["history"]
    assert np.isfinite(row["train_loss"]) and row["train_loss"] > 0
    last = load_checkpoint(checkpoint_path(ckpt, NAME, "csub", "GD", "last"))
    assert last.epoch == 1 and last.settings["dataset"] == NAME and last.settings["num_classes"] == 2
