"""NTU RGB+D 3D joints -> COCO-17 2D keypoints: the demo's custom dataset and the tests' 2D data
(a pinhole projection of named NTU joints; ears and eyes placed beside the head joint)."""
from __future__ import annotations

import numpy as np

from skeletons.layouts import NTU, shipped_layout

FOCAL_LENGTH = 1000.0               # pixels: a pinhole camera near the Kinect v2 colour camera's
PRINCIPAL_POINT = (960.0, 540.0)    # pixels: the centre of a 1920 x 1080 image
EYE_OFFSET = (0.03, 0.02)           # metres from the head joint: sideways, up
EAR_OFFSET = 0.075                  # metres from the head joint, sideways


def _unit(v: np.ndarray) -> np.ndarray:
    length = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.divide(v, length, out=np.zeros_like(v), where=length > 0)   # untracked: stays zero


def ntu_to_coco3d(ntu: np.ndarray) -> np.ndarray:
    """(..., 25, 3) NTU camera-space joints -> (..., 17, 3) COCO-17 keypoints in the same space.

    Joints COCO shares with Kinect (shoulders, elbows, wrists, hips, knees, ankles) are copied by
    name; the nose is Kinect's head joint (the head's centre, close to the nose in the image);
    eyes and ears, which Kinect lacks, are put beside the head joint along the shoulder line
    (eyes 3 cm sideways and 2 cm up along neck -> head, ears 7.5 cm sideways).
    """
    ntu = np.asarray(ntu, dtype=np.float64)
    if ntu.ndim < 2 or ntu.shape[-2:] != (NTU.num_joints, 3):
        raise ValueError(f"expected NTU joints (..., {NTU.num_joints}, 3), not shape {ntu.shape}")
    joint = {name: ntu[..., k, :] for k, name in enumerate(NTU.joints)}
    head = joint["head"]
    side = _unit(joint["left_shoulder"] - joint["right_shoulder"])   # towards the body's left
    up = _unit(head - joint["neck"])
    eye_side, eye_up = EYE_OFFSET
    made = {"nose": head, "left_eye": head + eye_side * side + eye_up * up,
            "right_eye": head - eye_side * side + eye_up * up,
            "left_ear": head + EAR_OFFSET * side, "right_ear": head - EAR_OFFSET * side}
    # an untracked frame (all zeros) has zero side and up vectors, so its made joints stay zero too
    return np.stack([made[name] if name in made else joint[name] for name in shipped_layout("coco17").joints], axis=-2)


def project(points: np.ndarray) -> np.ndarray:
    """(..., 3) camera-space points (z = depth > 0, y up) -> (..., 2) pixels (u right, v down),
    pinhole camera: u = cx + f x / z, v = cy - f y / z. Points with z <= 0 (untracked) become (0, 0)."""
    x, y, z = np.moveaxis(np.asarray(points, dtype=np.float64), -1, 0)
    seen = z > 0
    safe_z = np.where(seen, z, 1.0)
    uv = np.stack([PRINCIPAL_POINT[0] + FOCAL_LENGTH * x / safe_z, PRINCIPAL_POINT[1] - FOCAL_LENGTH * y / safe_z], -1)
    return np.where(seen[..., None], uv, 0.0)


def ntu_to_coco2d(ntu: np.ndarray) -> np.ndarray:
    """(..., 25, 3) NTU camera-space joints (e.g. ``read_skeleton(path)["skel_body0"]``, before any
    centring: projection needs the depth) -> (..., 17, 2) COCO-17 image keypoints."""
    return project(ntu_to_coco3d(ntu))
