"""The NTU demo's recordings in the field's data files, for trying ``-d pyskl`` and ``-d ctrgcn``
without a download (``python -m demo --out DIR --format pyskl|pyskl2d|ctrgcn``) and for the tests.

- ``pyskl``: a PYSKL annotation pickle as its tools/data/ntu_preproc.py writes one: float16
  (M, T, 25, 3) camera-space keypoints, splits xsub_train/xsub_val and xview_train/xview_val.
- ``pyskl2d``: the same recordings as COCO-17 2D keypoints with keypoint_score, as PYSKL's HRNet
  files hold them; every third sample also holds a faint third person (low scores), which the
  reader leaves out (skeletons/pyskl.py).
- ``ctrgcn``: a CTR-GCN NTU60_CS.npz as its seq_transformation.py writes one: x (N, T, 150) with
  both bodies translated by body 0's spine-middle joint at frame 0, zero-padded to the longest
  sample; y one-hot over 60 classes.
The spurious extra bodies of the demo's .skeleton files are left out, as the peers' denoising does.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from common.atomic import write_bytes_atomic, write_npz_atomic
from skeletons.datasets import get_dataset, parse_ntu_name
from skeletons.layouts import NTU
from .coco import ntu_to_coco2d
from .generate import ntu_recordings

FIELD_FORMATS = ("pyskl", "pyskl2d", "ctrgcn")
CTRGCN_CLASSES = 60


def demo_recordings(seed: int, takes: int) -> list[tuple[str, int, np.ndarray]]:
    """(NTU name, 0-based label, (M, T, 25, 3) camera-space bodies) of the demo's NTU files,
    sorted by name, spurious bodies left out."""
    out = []
    for name, bodies, _, spurious in ntu_recordings(seed, takes):
        kept = bodies[:1] if spurious else bodies
        out.append((name, parse_ntu_name(name).action - 1, np.stack(kept)))
    return sorted(out, key=lambda item: item[0])


def ntu_splits(names: list[str]) -> dict[str, list[str]]:
    """PYSKL's NTU-60 split lists (cross-subject and cross-view) of ``names``, in their order."""
    ntu60 = get_dataset("ntu60")
    return {f"{protocol}_{part}": [n for n in names if ntu60.is_train(n, rule) == (part == "train")]
            for protocol, rule in (("xsub", "csub"), ("xview", "cview")) for part in ("train", "val")}


def pyskl_annotations(recordings, two_d: bool, rng: np.random.Generator) -> list[dict]:
    annotations = []
    for k, (name, label, bodies) in enumerate(recordings):
        item = {"frame_dir": name, "label": label, "total_frames": bodies.shape[1]}
        if two_d:
            keypoints = ntu_to_coco2d(bodies).astype(np.float32)                 # (M, T, 17, 2) pixels
            scores = rng.uniform(0.6, 1.0, keypoints.shape[:3]).astype(np.float32)
            if k % 3 == 0:   # a faint bystander: low scores, somewhere in the picture
                keypoints = np.concatenate([keypoints, keypoints[:1] + rng.uniform(300, 600, (1, 1, 1, 2))])
                scores = np.concatenate([scores, rng.uniform(0.05, 0.2, scores[:1].shape).astype(np.float32)])
            item.update(keypoint=keypoints.astype(np.float32), keypoint_score=scores, img_shape=(1080, 1920))
        else:
            item["keypoint"] = bodies.astype(np.float16)
        annotations.append(item)
    return annotations


def write_pyskl(path: str | Path, seed: int = 0, takes: int = 2, two_d: bool = False) -> Path:
    recordings = demo_recordings(seed, takes)
    data = {"split": ntu_splits([name for name, _, _ in recordings]),
            "annotations": pyskl_annotations(recordings, two_d, np.random.default_rng(seed))}
    write_bytes_atomic(path, pickle.dumps(data, protocol=2), make_parents=True)
    return Path(path)


def ctrgcn_arrays(recordings) -> tuple[np.ndarray, np.ndarray]:
    """(x (N, T, 150) float32, y (N, 60) one-hot) as CTR-GCN's seq_transformation.py lays them out."""
    frames = max(bodies.shape[1] for _, _, bodies in recordings)
    x = np.zeros((len(recordings), frames, 2 * NTU.num_joints * 3), dtype=np.float32)
    y = np.zeros((len(recordings), CTRGCN_CLASSES))
    for k, (_, label, bodies) in enumerate(recordings):
        origin = bodies[0, 0, NTU.root]
        moved = (bodies - origin).astype(np.float32)                # (M, T, 25, 3)
        x[k, : bodies.shape[1], : moved.shape[0] * 75] = moved.transpose(1, 0, 2, 3).reshape(bodies.shape[1], -1)
        y[k, label] = 1
    return x, y


def write_ctrgcn(path: str | Path, seed: int = 0, takes: int = 2) -> Path:
    """NTU60_CS.npz of the demo: train = the cross-subject training performers, test = the others."""
    recordings = demo_recordings(seed, takes)
    ntu60 = get_dataset("ntu60")
    arrays = {}
    for part, is_train in (("train", True), ("test", False)):
        x, y = ctrgcn_arrays([r for r in recordings if ntu60.is_train(r[0], "csub") == is_train])
        arrays[f"x_{part}"], arrays[f"y_{part}"] = x, y
    write_npz_atomic(path, arrays, make_parents=True)
    return Path(path)
