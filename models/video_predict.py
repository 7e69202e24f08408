"""Classify a video with trained checkpoints (predict.py VIDEO): BlazePose per frame
(skeletons/video.py) -> the run's layout (skeletons/pose_maps.py) -> descriptors -> the models,
once for the whole video (its top-k, as for a skeleton file) and once per sliding window (a
timeline of actions over a long video).

Frames without a person are left out of every sequence; a window with fewer than half its frames
with a person gets no class. A sequence is centred as a custom dataset's sample is (the root joint
at its first frame), so each window is classified as if it were a sample of its own.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from descriptors.core import descriptor_images
from descriptors.names import FUSION, needed_descriptors
from skeletons.centring import FIRST_FRAME, centre
from skeletons.datasets import get_dataset
from skeletons.layouts import Layout
from skeletons.pose_maps import pose_map_for
from skeletons.video import (DEFAULT_STRIDE, DEFAULT_WINDOW, POSE_PROCESSES, PoseTrack, check_video, image_joints, skeleton_sequence,
                             track_pose, window_spans)
from .inference import checked_models, classify_images
from .names import BEST
from .prediction import Prediction

@dataclass
class Window:
    start: int                 # first video frame (0-based)
    end: int                   # last video frame (inclusive)
    person_frames: int         # frames of the window with a person
    label: int | None = None   # 1-based most probable class; None: too few frames with a person
    probability: float = 0.0


@dataclass
class VideoPrediction:
    whole: Prediction                # the whole video's sequence, as predict_file's for a skeleton file
    windows: list[Window]            # the timeline
    track: PoseTrack                 # BlazePose's landmarks of every frame
    frames: np.ndarray               # (N,) the video frame of each row of whole.sequence
    joints_2d: np.ndarray            # (T, J, 2) the layout's joints in each frame's pixels (for figures)
    window: int = DEFAULT_WINDOW
    stride: int = DEFAULT_STRIDE
    notes: list[str] = field(default_factory=list)


def classify(models: dict, sequences: Sequence[np.ndarray], layout: Layout, mode: str, img_size: int,
             device: str) -> tuple[np.ndarray, list[dict]]:
    """((N, classes) mean softmax of the models, the N sequences' descriptor images), each
    sequence centred on its root joint at its first frame (as predict_file classifies one file)."""
    descs = needed_descriptors(models)
    images = [descriptor_images(centre(X, FIRST_FRAME, layout.root), layout, mode, img_size, descs) for X in sequences]
    return classify_images(models, images, device), images


def classify_video(models: dict, X: np.ndarray, frames: np.ndarray, total: int, window: int, stride: int,
                   layout: Layout, mode: str, img_size: int, device: str) -> tuple[np.ndarray, dict, list[Window]]:
    """(the whole sequence's probabilities, its images, the sliding windows with their top classes);
    ``frames``: the video frame of each row of ``X``. The whole video and its windows go through
    the networks in the same batches (a new batch shape costs oneDNN a set-up of up to a second)."""
    windows, sequences = [], []
    for start, end in window_spans(total, window, stride):
        rows = np.flatnonzero((frames >= start) & (frames <= end))
        windows.append(Window(start, end, len(rows)))
        if len(rows) >= max(2, (end - start + 1) / 2):
            sequences.append((windows[-1], X[rows]))
    probabilities, images = classify(models, [X, *(s for _, s in sequences)], layout, mode, img_size, device)
    for (w, _), p in zip(sequences, probabilities[1:]):
        w.label, w.probability = int(np.argmax(p)) + 1, float(p.max())
    return probabilities[0], images[0], windows


def predict_video(path: str | Path, ckpt_dir: str | Path, dataset: str, protocol: str | None = None,
                  desc: str = FUSION, epoch: str = BEST, device: str = "cpu", window: int = DEFAULT_WINDOW,
                  stride: int = DEFAULT_STRIDE) -> VideoPrediction:
    ds = get_dataset(dataset)
    pose_map = pose_map_for(ds.layout)   # before the models and the video: a layout without a map is refused
    window_spans(2, window, stride)       # the flags checked before the work
    check_video(path)
    models, found, notes, mode, img_size = checked_models(ckpt_dir, dataset, protocol, desc, epoch, str(path))
    track = track_pose(path, processes=POSE_PROCESSES)
    X, frames = skeleton_sequence(track, pose_map)
    if len(X) < 2:
        raise ValueError(f"{path}: {track.person_note() if not len(X) else 'a person in 1 frame only'}; "
                         f"nothing to classify")
    notes += [n for n in (track.person_note(), track.missing_note()) if n]
    probabilities, images, windows = classify_video(models, X, frames, track.frames, window, stride, ds.layout, mode,
                                                    img_size, device)
    whole = Prediction(probabilities, found, images, centre(X, FIRST_FRAME, ds.layout.root), mode, ds.layout, notes)
    return VideoPrediction(whole, windows, track, frames, image_joints(track, pose_map), window, stride, notes)
