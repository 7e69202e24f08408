"""Pose maps: how a pose model's landmarks become the joints of a layout, kept as data.

A map is a JSON file in ``resources/pose_maps/`` (``blazepose_ntu25``: BlazePose's 3D world
landmarks -> NTU-25 in Kinect's axes; ``blazepose_coco17``: its image landmarks -> COCO-17 in
pixels):

    name     short name
    comment  where the points come from, which axes and units go in and out
    source   the landmark set (``blazepose33``: BLAZEPOSE_LANDMARKS below, the model's output order)
    space    ``world`` (3D, metres) or ``image`` (2D, scaled to pixels by the frame's size)
    layout   the shipped layout the joints belong to (skeletons/resources/layouts)
    axes     world maps: a factor per axis applied after the weighted means (e.g. [-1, -1, 1])
    joints   {joint: {"from": {landmark: weight, ...}, "why": text}} for every joint of the layout

Each joint is a weighted mean of landmarks: weights sum to 1, so moving every landmark moves each
joint alike (an affine combination; the descriptors' invariances keep holding). Every problem is
a one-line ValueError naming the file.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NoReturn

import numpy as np

from .layouts import Layout, find_layout, read_json

POSE_MAP_DIR = Path(__file__).with_name("resources") / "pose_maps"
SPACES = {"world": 3, "image": 2}   # space -> coordinates per landmark
# BlazePose's 33 landmarks in the order the model outputs them (mediapipe's PoseLandmark enum).
BLAZEPOSE_LANDMARKS = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index")
SOURCES = {"blazepose33": BLAZEPOSE_LANDMARKS}


@dataclass(frozen=True)
class PoseMap:
    name: str
    layout: Layout
    space: str                 # "world" or "image"
    weights: np.ndarray        # (J, L): joint j = sum over landmarks of weights[j, l] * landmark l
    axes: tuple[float, ...]    # a factor per output axis (image maps: ones)

    def apply(self, landmarks: np.ndarray) -> np.ndarray:
        """(..., L, C) landmarks -> (..., J, C) joints of the layout, float64."""
        joints = np.einsum("jl,...lc->...jc", self.weights, np.asarray(landmarks, dtype=np.float64))
        return joints * np.asarray(self.axes)


def _fail(where: object, problem: str) -> NoReturn:
    raise ValueError(f"{where}: {problem}")


def _weights_row(spec: object, landmarks: tuple[str, ...], where: str) -> np.ndarray:
    """One joint's {"from": {landmark: weight}} as a row of weights over ``landmarks``."""
    sources = spec.get("from") if isinstance(spec, dict) else None
    if not isinstance(sources, dict) or not sources:
        _fail(where, 'needs {"from": {landmark: weight, ...}, "why": text}')
    row = np.zeros(len(landmarks))
    for name, weight in sources.items():
        if name not in landmarks:
            _fail(where, f"unknown landmark {name!r} (known: {', '.join(landmarks)})")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not np.isfinite(weight):
            _fail(where, f"weight of {name!r} is not a finite number")
        row[landmarks.index(name)] = weight
    if abs(row.sum() - 1.0) > 1e-9:
        _fail(where, f"weights sum to {row.sum():g}, not 1 (a joint is a weighted mean of landmarks)")
    return row


def pose_map_from_dict(data: object, source: str) -> PoseMap:
    """A checked ``PoseMap`` from a map file's content (``source`` names the file in errors)."""
    if not isinstance(data, dict):
        _fail(source, "not a JSON object")
    for key in ("name", "source", "space", "layout", "joints"):
        if key not in data:
            _fail(source, f"missing field {key!r}")
    if data["source"] not in SOURCES:
        _fail(source, f"source {data['source']!r} is not one of {', '.join(SOURCES)}")
    if data["space"] not in SPACES:
        _fail(source, f"space {data['space']!r} is not one of {', '.join(SPACES)}")
    layout = find_layout(data["layout"])
    dims = SPACES[data["space"]]
    if layout.dims != dims:
        _fail(source, f"a {data['space']} map gives {dims}D joints, the {layout.name} layout has dims {layout.dims}")
    joints = data["joints"]
    if not isinstance(joints, dict) or set(joints) != set(layout.joints):
        given = set(joints) if isinstance(joints, dict) else set()
        _fail(source, f"joints must be the {layout.name} layout's (missing: {sorted(set(layout.joints) - given)}, "
                      f"unknown: {sorted(given - set(layout.joints))})")
    landmarks = SOURCES[data["source"]]
    weights = np.stack([_weights_row(joints[j], landmarks, f"{source}: joint {j!r}") for j in layout.joints])
    axes = data.get("axes", [1.0] * dims)
    if not (isinstance(axes, list) and len(axes) == dims and all(isinstance(a, (int, float)) for a in axes)):
        _fail(source, f"axes must be {dims} numbers")
    return PoseMap(str(data["name"]), layout, data["space"], weights, tuple(float(a) for a in axes))


def load_pose_map(path: str | Path) -> PoseMap:
    return pose_map_from_dict(read_json(path, "pose map"), str(path))


@lru_cache(maxsize=None)
def shipped_pose_maps() -> tuple[PoseMap, ...]:
    return tuple(load_pose_map(p) for p in sorted(POSE_MAP_DIR.glob("*.json")))


def pose_map_for(layout: Layout) -> PoseMap:
    """The shipped map whose joints are ``layout``'s (same names, order and dims), or a one-line refusal."""
    for pose_map in shipped_pose_maps():
        if pose_map.layout.joints == layout.joints and pose_map.layout.dims == layout.dims:
            return pose_map
    offered = ", ".join(f"{m.layout.name} ({m.layout.dims}D)" for m in shipped_pose_maps())
    _fail(f"layout {layout.name}", f"no pose map turns video landmarks into its joints; the video route gives "
                                   f"{offered} (skeletons/resources/pose_maps)")
