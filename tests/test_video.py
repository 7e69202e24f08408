"""The video route (docs/VIDEO.md): BlazePose on scikit-image's bundled astronaut photo and on a
synthetic video made from it, the NTU-25 and COCO-17 mappings, frames without a person, an
unreadable video, predict.py VIDEO with the demo's models, and videos -> a custom dataset that the
custom reader and skels2desc accept. Offline: the pose model ships in the mediapipe wheel."""
from __future__ import annotations

import csv
import json
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from conftest import load_script

MISSING = [m for m in ("cv2", "mediapipe", "skimage") if importlib.util.find_spec(m) is None]
if MISSING:
    pytest.skip(f"the video route's packages are not installed ({', '.join(MISSING)}): pip install --no-deps -r "
                f"requirements-video.txt and pip install scikit-image", allow_module_level=True)

import cv2  # noqa: E402
import skimage.data  # noqa: E402

from skeletons.custom import read_custom_dataset, register_custom_dataset  # noqa: E402
from skeletons.datasets import DATASETS  # noqa: E402
from skeletons.layouts import find_layout  # noqa: E402
from skeletons.pose_maps import BLAZEPOSE_LANDMARKS, pose_map_for, pose_map_from_dict, shipped_pose_maps  # noqa: E402
from skeletons.video import pose_solution, read_frames, skeleton_sequence, track_pose, window_spans  # noqa: E402
from skeletons.video_dataset import ALREADY_DONE, CONVERTED, FAILED, videos_to_dataset  # noqa: E402

try:
    pose_solution()
except ValueError as error:   # e.g. protobuf 7, which mediapipe 0.10.14 cannot run on
    pytest.skip(str(error), allow_module_level=True)

NTU, COCO = find_layout("ntu25"), find_layout("coco17")
SIDE, FRAMES, BLANK = 320, 24, (9, 10)


def write_clip(path: Path, frames: int = FRAMES, blank: tuple[int, ...] = BLANK, phase: float = 0.0) -> np.ndarray:
    """A video of the astronaut photo moved and zoomed (crops of a grey canvas), ``blank`` frames
    black; returns each frame's zoom (frame pixels per photo pixel)."""
    canvas = np.full((704, 704, 3), 128, np.uint8)
    canvas[96:608, 96:608] = skimage.data.astronaut()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (SIDE, SIDE))
    zooms = []
    for t in range(frames):
        size = 560 + int(60 * np.sin(t / 5 + phase))
        x, y = 72 + int(40 * np.sin(t / 7 + phase)), 72 + int(30 * np.cos(t / 6))
        frame = cv2.resize(canvas[y:y + size, x:x + size], (SIDE, SIDE), interpolation=cv2.INTER_AREA)
        writer.write(np.zeros_like(frame) if t in blank else frame[:, :, ::-1])
        zooms.append(SIDE / size)
    writer.release()
    return np.array(zooms)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, np.ndarray]:
    path = tmp_path_factory.mktemp("video") / "astronaut.mp4"
    return path, write_clip(path)


@pytest.fixture(scope="module")
def clip_track(clip):
    return track_pose(clip[0])


def bone_variation(X: np.ndarray, layout, bones: list[tuple[str, str]], scale: np.ndarray | float = 1.0) -> dict:
    """{bone: std/mean of its length over the frames} (lengths divided by ``scale`` per frame)."""
    out = {}
    for a, b in bones:
        length = np.linalg.norm(X[:, layout.joints.index(a)] - X[:, layout.joints.index(b)], axis=-1) / scale
        out[f"{a}-{b}"] = float(length.std() / length.mean())
    return out


def test_the_astronaut_is_found_with_her_left_and_right(tmp_path):
    """She faces the camera: her left side is on the image's right; in NTU's Kinect axes her left
    shoulder has the smaller x (as in NTU's files), her head the larger y (up), and her shoulders
    are an adult's width apart."""
    cv2.imwrite(str(tmp_path / "0.png"), skimage.data.astronaut()[:, :, ::-1])
    track = track_pose(tmp_path, static=True)
    assert track.present.tolist() == [True]
    names = BLAZEPOSE_LANDMARKS
    image = track.image[0]
    for part in ("shoulder", "elbow", "eye", "ear"):
        assert image[names.index(f"left_{part}"), 0] > image[names.index(f"right_{part}"), 0] + 10, part
    coco, _ = skeleton_sequence(track, pose_map_for(COCO))
    assert coco[0, COCO.joints.index("nose"), 1] < coco[0, COCO.joints.index("left_shoulder"), 1]   # y down
    assert 0 <= coco[0, COCO.joints.index("nose"), 0] <= 512
    ntu, _ = skeleton_sequence(track, pose_map_for(NTU))
    joint = {name: ntu[0, i] for i, name in enumerate(NTU.joints)}
    assert joint["left_shoulder"][0] < joint["right_shoulder"][0]
    assert joint["head"][1] > joint["spine_shoulder"][1] > joint["spine_mid"][1] > joint["spine_base"][1]
    assert 0.25 < np.linalg.norm(joint["left_shoulder"] - joint["right_shoulder"]) < 0.45


def test_a_synthetic_video_gives_ntu25_and_coco17_with_stable_bones(clip, clip_track):
    """Upper-body bones (the photo shows her from the waist up) keep their lengths while the camera
    moves and zooms: metres in NTU-25, and pixels once divided by the zoom in COCO-17."""
    path, zooms = clip
    track = clip_track
    assert track.frames == FRAMES
    ntu, frames = skeleton_sequence(track, pose_map_for(NTU))
    assert ntu.shape == (FRAMES - len(BLANK), 25, 3) and set(BLANK).isdisjoint(frames.tolist())
    trunk = [("spine_base", "spine_mid"), ("spine_mid", "spine_shoulder"), ("spine_shoulder", "left_shoulder"),
             ("spine_shoulder", "right_shoulder"), ("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow"),
             ("neck", "head")]
    assert max(bone_variation(ntu, NTU, trunk).values()) < 0.15, bone_variation(ntu, NTU, trunk)
    coco, coco_frames = skeleton_sequence(track, pose_map_for(COCO))
    assert coco.shape == (FRAMES - len(BLANK), 17, 2) and (coco_frames == frames).all()
    upper = [("left_shoulder", "right_shoulder"), ("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow"),
             ("left_eye", "right_eye"), ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip")]
    variation = bone_variation(coco, COCO, upper, zooms[frames])
    assert max(variation.values()) < 0.15, variation


def test_frames_without_a_person_are_counted_and_named(clip_track):
    track = clip_track
    assert np.flatnonzero(~track.present).tolist() == list(BLANK)
    assert track.missing_note() == f"{len(BLANK)} of {FRAMES} frames without a person (left out)"
    note = track.person_note()
    assert note.startswith("person: the one BlazePose found in frame 0 (x ") and "lost and found again 1 time" in note


def test_a_long_video_is_split_between_processes_with_the_same_frames(clip, clip_track, monkeypatch):
    """BlazePose uses one core: predict.py splits a long video into contiguous parts, one process each
    (here parts of 12 frames). Every frame comes back in order with the same ones holding a person;
    the first part is exactly one process's track, and the second (which starts by searching for the
    person, its own tracking from there) keeps the bones as stable."""
    import skeletons.video as video

    assert video.part_bounds(1000, 2) == [(0, 500), (500, None)] and video.part_bounds(200, 2) == [(0, None)]
    assert video.frame_count(clip[0]) == FRAMES
    monkeypatch.setattr(video, "MIN_PART", 12)
    split = track_pose(clip[0], processes=2)
    assert split.frames == FRAMES and (split.present == clip_track.present).all()
    first = clip_track.present.copy()
    first[12:] = False
    assert np.array_equal(split.world[first], clip_track.world[first])
    ntu, _ = skeleton_sequence(split, pose_map_for(NTU))
    trunk = [("spine_mid", "spine_shoulder"), ("spine_shoulder", "left_shoulder"), ("spine_shoulder", "right_shoulder"),
             ("neck", "head")]
    assert max(bone_variation(ntu, NTU, trunk).values()) < 0.15, bone_variation(ntu, NTU, trunk)


def test_an_unreadable_video_is_one_line(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00garbage, not a video" * 50)
    with pytest.raises(ValueError) as refused:
        track_pose(bad)
    line = str(refused.value)
    assert "\n" not in line and line.startswith(f"{bad}: not a readable video")
    with pytest.raises(ValueError, match="no such video"):
        next(read_frames(tmp_path / "absent.mp4"))


def test_pose_maps_are_weighted_means_of_landmarks_and_refuse_bad_files():
    assert {m.name for m in shipped_pose_maps()} == {"blazepose_ntu25", "blazepose_coco17"}
    for pose_map in shipped_pose_maps():
        assert np.allclose(pose_map.weights.sum(axis=1), 1.0)
        shift = np.random.default_rng(0).normal(size=(33, pose_map.layout.dims))
        moved = pose_map.apply(shift + 1.5) - pose_map.apply(shift)   # a shift moves every joint alike
        assert np.allclose(moved, moved[:1])
    with pytest.raises(ValueError) as refused:
        pose_map_from_dict({"name": "x", "source": "blazepose33", "space": "image", "layout": "coco17",
                            "joints": {j: {"from": {"nose": 0.5}} for j in COCO.joints}}, "bad.json")
    assert str(refused.value) == "bad.json: joint 'nose': weights sum to 0.5, not 1 (a joint is a weighted mean of landmarks)"
    with pytest.raises(ValueError, match="no pose map turns video landmarks into its joints"):
        pose_map_for(find_layout("ucla20"))


def test_window_spans_cover_the_video():
    assert window_spans(10, 60, 15) == [(0, 9)]
    assert window_spans(100, 60, 15) == [(0, 59), (15, 74), (30, 89), (40, 99)]
    with pytest.raises(ValueError, match="--window 1"):
        window_spans(100, 1, 15)


@pytest.fixture(scope="module")
def demo_models(demo_descriptors, tmp_path_factory) -> Path:
    """The demo's six NTU-60 models (width 1/16, 32 px images) trained for one epoch."""
    from models.config import TrainConfig
    from models.training import fit

    ckpt = tmp_path_factory.mktemp("video_ckpt")
    for desc in ("GD", "JDD", "ADD", "LAD", "FDD", "all"):
        fit(TrainConfig(dataset="ntu60", protocol="csub", desc=desc, despth=str(demo_descriptors), ckpt=str(ckpt),
                        epochs=1, width=0.0625, lr=1e-3, batch_size=16, workers=0, gpu=-1))
    return ckpt


def test_predict_video_with_the_demos_models(demo_models, clip, tmp_path, capfd):
    predict = load_script("predict")
    figure = tmp_path / "clip.png"
    args = predict.get_args_parser().parse_args([str(clip[0]), "-d", "ntu60", "-p", "csub", "-ckpt", str(demo_models),
                                                 "--epoch", "last", "--window", "12", "--stride", "6",
                                                 "--figure", str(figure), "-gpu", "-1"])
    assert predict.main(args) == 0
    out, err = capfd.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("astronaut: GD, JDD, ADD, LAD, FDD, all (ntu60); 24 frames, 22 with a person")
    ranked = [line for line in lines if line.startswith("  ") and "%" in line and "frames" not in line]
    assert len(ranked) == 5 and all(" A0" in line for line in ranked)
    assert "timeline (windows of 12 frames every 6):" in lines
    assert any(line.startswith("  frames 0-") for line in lines)
    assert "2 of 24 frames without a person (left out)" in err and "person: the one BlazePose found" in err
    assert "TensorFlow Lite" not in err and "W0000" not in err   # the pose graph's start-up lines are hidden
    assert figure.stat().st_size > 20_000
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"garbage" * 100)
    args.file, args.figure = str(bad), None
    assert predict.main(args) == 2
    errors = capfd.readouterr().err.strip().splitlines()   # FFmpeg and TFLite print nothing of their own
    assert len(errors) == 1 and errors[0].startswith(f"error: {bad}: not a readable video")


def test_videos_become_a_custom_dataset_that_the_pipeline_takes(tmp_path, monkeypatch):
    videos = tmp_path / "videos"
    for number, name in enumerate(("wave", "stand")):
        (videos / name).mkdir(parents=True)
        for take in range(2):
            write_clip(videos / name / f"take{take}.mp4", frames=8, blank=(), phase=number + take)
    (videos / "stand" / "broken.avi").write_bytes(b"not a video" * 40)
    out, lines = tmp_path / "dataset", []
    summary = videos_to_dataset(videos, out, "ntu25", test_fraction=0.5, seed=3, workers=2, report=lines.append)
    assert summary.counts == {CONVERTED: 4, ALREADY_DONE: 0, FAILED: 1}
    assert len(lines) == 1 and lines[0].startswith(f"{videos / 'stand' / 'broken.avi'}: not a readable video")
    rows = list(csv.DictReader((out / "labels.csv").open()))
    assert sorted(r["sample_id"] for r in rows) == ["stand_take0", "stand_take1", "wave_take0", "wave_take1"]
    assert sorted((r["label"], r["split"]) for r in rows) == [("1", "test"), ("1", "train"), ("2", "test"), ("2", "train")]
    assert (out / "classes.txt").read_text() == "stand\nwave\n"
    data = read_custom_dataset(out, NTU)
    assert np.load(data.path("wave_take0")).shape == (8, 25, 3)
    again = videos_to_dataset(videos, out, "ntu25", test_fraction=0.5, seed=3, workers=1, report=lines.append)
    assert again.counts == {CONVERTED: 0, ALREADY_DONE: 4, FAILED: 1}
    assert list(csv.DictReader((out / "labels.csv").open())) == rows   # the same seeded split
    # the README's sequence takes it unchanged: pipeline.py -d custom (the demo's CPU recipe, one epoch)
    monkeypatch.setitem(DATASETS, "custom", None)   # the table's custom row as it was, after the test
    pipeline = load_script("pipeline")
    args = pipeline.get_args_parser().parse_args(
        ["-d", "custom", "--data", str(out), "--layout", "ntu25", "--preset", "cpu", "--epochs", "1",
         "-despth", str(tmp_path / "desc"), "-ckpt", str(tmp_path / "ckpt")])
    assert pipeline.main(args) == 0
    results = list((tmp_path / "ckpt").glob("custom_all_*_results.json"))
    assert len(results) == 1 and json.loads(results[0].read_text())["class_names"] == ["stand", "wave"]
