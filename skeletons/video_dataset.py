"""Videos -> a custom dataset folder (video2skel.py): one subfolder of videos per class becomes
``skeletons/<id>.npy``, ``labels.csv`` and ``classes.txt`` in the format skeletons/custom.py reads.

Each video is turned into skeletons in a worker process (BlazePose, skeletons/video.py) and written
atomically, so an interrupted run resumes by running again: a video whose .npy is newer than it is
'already done'. A video OpenCV cannot decode, or one without a person, is named in one line and
left out; the others go on. The train/test split is stratified by class and seeded, drawn among
the videos that gave skeletons: the same videos, fraction and seed give the same split.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
import multiprocessing
from pathlib import Path

import numpy as np

from common.errors import cause_text, ignore_interrupts
from .custom import read_custom_dataset, skeleton_path, write_custom_sample, write_custom_tables
from .layouts import find_layout
from .pose_maps import pose_map_for
from .video import VIDEO_SUFFIXES, skeleton_sequence, track_pose

CONVERTED, ALREADY_DONE, FAILED = "converted", "already done", "failed"


@dataclass(frozen=True)
class VideoSample:
    sample: str     # the dataset's sample id: <class>_<video stem>, letters, digits, '_' and '-'
    video: Path
    label: int      # 1-based, the line of classes.txt


@dataclass
class Summary:
    counts: dict[str, int] = field(default_factory=lambda: {CONVERTED: 0, ALREADY_DONE: 0, FAILED: 0})
    failures: list[str] = field(default_factory=list)   # one line per video left out
    notes: list[str] = field(default_factory=list)      # frames without a person, per video

    def line(self) -> str:
        return ", ".join(f"{n} {what}" for what, n in self.counts.items())


def sample_id(class_name: str, video: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", f"{class_name}_{video.stem}").strip("-")


def class_videos(video_dir: str | Path) -> tuple[list[str], list[VideoSample]]:
    """(class names, samples) of a folder with one subfolder of videos per class (sorted by name)."""
    video_dir = Path(video_dir)
    if not video_dir.is_dir():
        raise ValueError(f"{video_dir}: no such folder (one subfolder of videos per class)")
    classes = sorted(p.name for p in video_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    samples, seen = [], {}
    for label, name in enumerate(classes, start=1):
        for video in sorted((video_dir / name).iterdir()):
            if video.suffix.lower() not in VIDEO_SUFFIXES or video.name.startswith("."):
                continue
            sample = sample_id(name, video)
            if sample in seen:
                raise ValueError(f"{video}: its sample id {sample!r} is also {seen[sample]}'s; rename one of them")
            seen[sample] = video
            samples.append(VideoSample(sample, video, label))
    if not samples:
        raise ValueError(f"{video_dir}: no videos ({'/'.join(s[1:] for s in VIDEO_SUFFIXES)}) in class subfolders")
    return classes, samples


def stratified_split(samples: list[VideoSample], test_fraction: float, seed: int) -> dict[str, str]:
    """{sample: 'train' | 'test'}: in each class, a seeded random ``test_fraction`` of its videos
    (rounded; at least one each way for a class of two or more when 0 < fraction < 1) is test."""
    if not 0 <= test_fraction < 1:
        raise ValueError(f"--test-fraction {test_fraction} is not in [0, 1)")
    rng, splits = np.random.default_rng(seed), {}
    for label in sorted({s.label for s in samples}):
        names = sorted(s.sample for s in samples if s.label == label)
        tests = int(round(test_fraction * len(names)))
        if test_fraction > 0 and len(names) >= 2:
            tests = min(max(tests, 1), len(names) - 1)
        chosen = set(rng.permutation(len(names))[:tests].tolist())
        splits.update({name: "test" if i in chosen else "train" for i, name in enumerate(names)})
    return splits


def convert_video(task: tuple[Path, Path, str, str]) -> tuple[str, str, str | None]:
    """(video, status, message): one video's skeletons written as the dataset ``root``'s sample, or why not."""
    video, root, sample, layout = task
    try:
        track = track_pose(video)
        X, _ = skeleton_sequence(track, pose_map_for(find_layout(layout)))
        if not len(X):
            return str(video), FAILED, f"{video}: {track.person_note()}; left out"
        write_custom_sample(root, sample, X.astype(np.float32))
        return str(video), CONVERTED, track.missing_note() and f"{video}: {track.missing_note()}"
    except ValueError as error:
        return str(video), FAILED, f"{cause_text(error)}; left out"


def _done(sample: VideoSample, out: Path) -> bool:
    return out.is_file() and out.stat().st_mtime_ns >= sample.video.stat().st_mtime_ns


def videos_to_dataset(video_dir: str | Path, out: str | Path, layout: str, test_fraction: float = 0.2,
                      seed: int = 0, workers: int = 1, report=print) -> Summary:
    """Turn ``video_dir``'s class subfolders into the custom dataset folder ``out`` (``layout``:
    ntu25 or coco17, a layout with a pose map); ``report`` gets a line per video left out. The split
    is drawn among the videos that gave skeletons."""
    pose_map_for(find_layout(layout))   # refuse a layout without a pose map before any work
    classes, samples = class_videos(video_dir)
    stratified_split(samples, test_fraction, seed)   # the fraction checked before the work
    root, summary = Path(out), Summary()
    todo = [s for s in samples if not _done(s, skeleton_path(root, s.sample))]
    summary.counts[ALREADY_DONE] = len(samples) - len(todo)
    tasks = [(s.video, root, s.sample, layout) for s in todo]
    if workers > 1 and len(tasks) > 1:
        # spawn: a forked child of a process that already ran mediapipe aborts in its graph's set-up
        with multiprocessing.get_context("spawn").Pool(min(workers, len(tasks)), initializer=ignore_interrupts) as pool:
            results = list(pool.imap_unordered(convert_video, tasks))
    else:
        results = [convert_video(task) for task in tasks]
    failed = set()
    for video, status, message in sorted(results):
        summary.counts[status] += 1
        if status == FAILED:
            failed.add(video)
            summary.failures.append(message)
            report(message)
        elif message:
            summary.notes.append(message)
    kept = [s for s in samples if str(s.video) not in failed]
    if not kept:
        raise ValueError(f"{video_dir}: no video gave skeletons ({summary.line()})")
    # the tables of the samples written
    write_custom_tables(root, [s.sample for s in kept], {s.sample: s.label for s in kept},
                        stratified_split(kept, test_fraction, seed), classes)
    read_custom_dataset(root, find_layout(layout))   # what -d custom will read, checked now
    return summary
