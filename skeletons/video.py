"""Skeletons from a video: frames (a video file or a folder of images) -> BlazePose per frame ->
the joints of a layout (skeletons/pose_maps.py). docs/VIDEO.md says what it is good for.

The pose model is BlazePose "full" (``model_complexity=1``) from the mediapipe 0.10.14 wheel, the
one model of its three that the wheel ships (the others are downloaded at run time, which fails
offline). It follows ONE person: the one its detector finds first, tracked from frame to frame and
searched again when lost. Frames without a person are kept out of the skeleton sequence and counted.
OpenCV and mediapipe are imported when a video is read, so the rest of the project runs without
them; when they are missing the refusal names the install command.
"""
from __future__ import annotations

import itertools
import multiprocessing
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .pose_maps import BLAZEPOSE_LANDMARKS, PoseMap

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
INSTALL = "pip install --no-deps -r requirements-video.txt (docs/VIDEO.md)"
POSE_MODEL = "BlazePose full (mediapipe 0.10.14, model_complexity=1)"
LANDMARKS = len(BLAZEPOSE_LANDMARKS)
DEFAULT_WINDOW = 60    # frames per sliding window (2 s at 30 frames/s: NTU's actions last 1 to 4 s)
DEFAULT_STRIDE = 15    # frames between the windows' starts
# A part of a video tracked by another process: a spawned process takes about 2 s to start the pose
# model (measured: imports 1.5 s, the graph 0.5 s), which parts of this many frames (about 6 s of
# BlazePose on one core) pay for: videos of 240 frames and more are split (benchmarks/bench_video.py).
MIN_PART = 120
POSE_PROCESSES = min(2, os.cpu_count() or 1)   # predict.py VIDEO: BlazePose is single-threaded


def is_video(path: str | Path) -> bool:
    """A video file (by its suffix) or a folder holding image frames: what the video route reads."""
    path = Path(path)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return True
    return path.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir())


def _restore_get_prototype() -> None:
    """mediapipe 0.10.14 converts its outputs with ``GetPrototype``, which protobuf 5 removed; the
    same class comes from ``message_factory.GetMessageClass``. Added only where it is missing."""
    from google.protobuf import message_factory, symbol_database
    for cls in (message_factory.MessageFactory, symbol_database.SymbolDatabase):
        if not hasattr(cls, "GetPrototype"):
            cls.GetPrototype = lambda self, descriptor: message_factory.GetMessageClass(descriptor)


def opencv():
    """cv2, or a one-line refusal naming the install command."""
    # FFmpeg's own lines ("moov atom not found") would follow our one-line refusal of a damaged video
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    try:
        import cv2
    except ImportError as error:
        raise ValueError(f"the video route needs OpenCV and mediapipe ({error}); install them: {INSTALL}") from None
    return cv2


def pose_solution():
    """mediapipe's pose solution module, or a one-line refusal naming the fix."""
    opencv()
    try:
        import google.protobuf
        major = int(google.protobuf.__version__.split(".")[0])
        if major >= 7:   # FieldDescriptor.label, which the solution reads, is gone in protobuf 7
            raise ValueError(f"protobuf {google.protobuf.__version__} is too new for mediapipe 0.10.14's pose "
                             f"solution; install the range it runs with: {INSTALL}")
        _restore_get_prototype()
        from mediapipe.python.solutions import pose
    except ImportError as error:
        raise ValueError(f"the video route needs mediapipe ({error}); install it: {INSTALL}") from None
    return pose


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """Hide what C++ code writes to stderr meanwhile: TensorFlow Lite and absl print start-up lines
    ("Created TensorFlow Lite XNNPACK delegate", "Feedback manager requires...") that no flag silences."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def frame_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def _unreadable(path: Path, why: str) -> ValueError:
    return ValueError(f"{path}: {why}; give an {'/'.join(s[1:] for s in VIDEO_SUFFIXES)} video OpenCV can decode, "
                      f"or a folder of {'/'.join(s[1:] for s in IMAGE_SUFFIXES)} frames")


def check_video(path: str | Path) -> None:
    """Refuse, before any work, a path that is neither a file nor a folder holding frames."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such video or folder of frames")
    if path.is_dir() and not frame_files(path):
        raise _unreadable(path, "no image frames in this folder")


def read_frames(path: str | Path) -> Iterator[np.ndarray]:
    """The frames of a video file or of a folder of images, in order, as RGB uint8 (H, W, 3)."""
    cv2, path = opencv(), Path(path)
    check_video(path)
    if path.is_dir():
        for file in frame_files(path):
            frame = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if frame is None:
                raise _unreadable(file, "not a readable image")
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        return
    capture = cv2.VideoCapture(str(path))
    try:
        ok, frame = capture.read() if capture.isOpened() else (False, None)
        if not ok:
            raise _unreadable(path, "not a readable video (OpenCV decodes no frame of it)")
        while ok:
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            ok, frame = capture.read()
    finally:
        capture.release()


def frames_at(path: str | Path, indices: Sequence[int]) -> dict[int, np.ndarray]:
    """{index: RGB frame} of the frames asked for (read in one pass)."""
    wanted, found = set(indices), {}
    for index, frame in enumerate(read_frames(path)):
        if index in wanted:
            found[index] = frame
            if len(found) == len(wanted):
                break
    return found


def frame_rate(path: str | Path) -> float | None:
    """Frames per second a video file declares (None for a folder of frames or when unknown)."""
    if Path(path).is_dir():
        return None
    capture = opencv().VideoCapture(str(path))
    fps = capture.get(opencv().CAP_PROP_FPS) if capture.isOpened() else 0.0
    capture.release()
    return float(fps) if fps and np.isfinite(fps) and fps > 0 else None


@dataclass
class PoseTrack:
    """BlazePose's landmarks in every frame of a video; NaN rows where it found no person."""
    source: Path
    world: np.ndarray        # (T, 33, 3) metres, origin between the hips, x right, y down, z away
    image: np.ndarray        # (T, 33, 2) pixels of the frame, x right, y down
    visibility: np.ndarray   # (T, 33) the model's visibility of each landmark, 0..1
    fps: float | None

    @property
    def frames(self) -> int:
        return len(self.world)

    @property
    def present(self) -> np.ndarray:
        """(T,) True where a person was found."""
        return ~np.isnan(self.world[:, 0, 0])

    def person_note(self) -> str:
        """Which person the skeletons are of: where BlazePose first found them, and whether it had
        to search again after losing them (then it may have taken someone else)."""
        present = self.present
        if not present.any():
            return f"no person found in any of the {self.frames} frames"
        first = int(np.argmax(present))
        seen = self.visibility[first] >= 0.5   # landmarks outside the frame are guessed: not in the box
        xs, ys = (self.image[first, seen if seen.any() else slice(None), k] for k in (0, 1))
        note = (f"person: the one BlazePose found in frame {first} (x {xs.min():.0f}-{xs.max():.0f}, "
                f"y {ys.min():.0f}-{ys.max():.0f} px) and followed; BlazePose follows one person, others are ignored")
        found_again = int(np.sum(present[1:] & ~present[:-1]))
        if found_again:
            note += f"; lost and found again {found_again} time(s), so later frames may show another person"
        return note

    def missing_note(self) -> str | None:
        missing = int((~self.present).sum())
        return f"{missing} of {self.frames} frames without a person (left out)" if missing else None


def _landmarks(result, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    world = np.array([(p.x, p.y, p.z) for p in result.pose_world_landmarks.landmark], dtype=np.float64)
    marks = result.pose_landmarks.landmark
    image = np.array([(p.x * width, p.y * height) for p in marks], dtype=np.float64)
    return world, image, np.array([p.visibility for p in marks], dtype=np.float64)


def _track_part(path: Path, static: bool, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, ...]:
    """(world, image, visibility) of BlazePose on frames [start, stop) of ``path``: the part's first
    frame searches for the person, the next ones follow them."""
    pose = pose_solution()
    world, image, visibility = [], [], []
    nothing = (np.full((LANDMARKS, 3), np.nan), np.full((LANDMARKS, 2), np.nan), np.zeros(LANDMARKS))
    frames = itertools.islice(read_frames(path), start, stop)
    first = next(frames)   # an unreadable video is refused before the graph starts
    with quiet_stderr(), warnings.catch_warnings():   # the graph's start-up lines come with its first frame
        warnings.filterwarnings("ignore", r"label\(\) is deprecated", DeprecationWarning)   # protobuf 6, read by mediapipe
        model = pose.Pose(static_image_mode=static, model_complexity=1, smooth_landmarks=not static,
                          enable_segmentation=False)
        results = [model.process(first)]
    with model:
        for frame in itertools.chain([first], frames):
            result = results.pop() if results else model.process(frame)
            found = result.pose_landmarks is not None and result.pose_world_landmarks is not None
            w, i, v = _landmarks(result, frame.shape[1], frame.shape[0]) if found else nothing
            world.append(w), image.append(i), visibility.append(v)
    return np.stack(world), np.stack(image), np.stack(visibility)


def frame_count(path: str | Path) -> int:
    """The frames a folder holds, or a video file declares (0 when it does not say)."""
    path = Path(path)
    if path.is_dir():
        return len(frame_files(path))
    capture = opencv().VideoCapture(str(path))
    count = capture.get(opencv().CAP_PROP_FRAME_COUNT) if capture.isOpened() else 0
    capture.release()
    return int(count) if count and np.isfinite(count) and count > 0 else 0


def part_bounds(frames: int, processes: int) -> list[tuple[int, int | None]]:
    """[start, stop) of the contiguous parts a video is split into, one per process (the last one
    to the end, whatever the declared count); one part when a part would be shorter than MIN_PART."""
    parts = max(1, min(processes, frames // MIN_PART))
    edges = [round(frames * k / parts) for k in range(parts)]
    return [(start, stop) for start, stop in zip(edges, edges[1:] + [None])]


def track_pose(path: str | Path, static: bool = False, processes: int = 1) -> PoseTrack:
    """BlazePose on every frame of ``path`` (``static``: each frame on its own, no tracking).

    BlazePose uses one core; ``processes`` > 1 splits a long video into that many contiguous parts,
    each tracked by its own process (spawned: mediapipe aborts in a forked one), this one taking the
    first. Each part starts by searching for the person, as a lost track does (docs/VIDEO.md)."""
    path = Path(path)
    next(read_frames(path))   # an unreadable video is refused before any graph or process starts
    parts = part_bounds(frame_count(path), processes)
    if len(parts) == 1:
        tracked = [_track_part(path, static)]
    else:
        with ProcessPoolExecutor(len(parts) - 1, mp_context=multiprocessing.get_context("spawn")) as pool:
            later = [pool.submit(_track_part, path, static, start, stop) for start, stop in parts[1:]]
            tracked = [_track_part(path, static, *parts[0])] + [job.result() for job in later]
    world, image, visibility = (np.concatenate(arrays) for arrays in zip(*tracked))
    return PoseTrack(path, world, image, visibility, frame_rate(path))


def skeleton_sequence(track: PoseTrack, pose_map: PoseMap) -> tuple[np.ndarray, np.ndarray]:
    """((N, J, C) joints of ``pose_map``'s layout in the N frames with a person, (N,) their frame
    indices): world maps give metres in the layout's axes, image maps pixels."""
    frames = np.flatnonzero(track.present)
    points = track.world if pose_map.space == "world" else track.image
    return pose_map.apply(points[frames]), frames


def image_joints(track: PoseTrack, pose_map: PoseMap) -> np.ndarray:
    """(T, J, 2) where the layout's joints lie in each frame's pixels (for drawing over the frames):
    the map's weighted means of the image landmarks, whatever the map's space."""
    return np.einsum("jl,tlc->tjc", pose_map.weights, track.image)


def window_spans(frames: int, window: int, stride: int) -> list[tuple[int, int]]:
    """(first, last) frames of the windows: every ``stride`` frames, the last one ending at the
    video's last frame; one window over the whole video when it is shorter than ``window``."""
    if window < 2 or stride < 1:
        raise ValueError(f"--window {window} and --stride {stride}: a window needs >= 2 frames, a stride >= 1")
    if frames <= window:
        return [(0, frames - 1)]
    starts = list(range(0, frames - window + 1, stride))
    if starts[-1] + window < frames:
        starts.append(frames - window)
    return [(s, s + window - 1) for s in starts]
