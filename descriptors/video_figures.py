"""predict.py VIDEO --figure: frames of the video with the layout's skeleton drawn over them (where
BlazePose put its joints), the whole video's top classes beside them, and below the timeline of the
sliding windows' top classes, with the frames without a person marked."""
from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402

from skeletons.layouts import Layout  # noqa: E402

from .figures import FIGURE_WIDTH, TopClasses, draw_top, save_figure  # noqa: E402

FRAMES_SHOWN = 5
NO_PERSON = "no person"


@dataclass(frozen=True)
class Span:
    """One window of the timeline: first and last frame, its class (None: too few frames with a person)."""
    start: int
    end: int
    label: str | None
    probability: float


def shown_frames(present: np.ndarray, count: int = FRAMES_SHOWN) -> list[int]:
    """Frames spread evenly over the video, moved to the nearest frame with a person where there is one."""
    spread = np.linspace(0, len(present) - 1, min(count, len(present))).round().astype(int)
    with_person = np.flatnonzero(present)
    if not len(with_person):
        return sorted(set(spread.tolist()))
    return sorted({int(with_person[np.argmin(np.abs(with_person - f))]) for f in spread})


def draw_frame(ax: plt.Axes, frame: np.ndarray, joints: np.ndarray, layout: Layout, index: int,
               found: bool) -> None:
    """One frame with the layout's bones (left side blue, right side orange, the rest white) and joints."""
    ax.imshow(frame)
    if found:
        side = [("left" in layout.joints[a] + layout.joints[b], "right" in layout.joints[a] + layout.joints[b])
                for a, b in layout.bones]
        colours = ["tab:blue" if left else "tab:orange" if right else "white" for left, right in side]
        ax.add_collection(LineCollection([joints[[a, b]] for a, b in layout.bones], colors=colours, linewidths=2))
        ax.scatter(joints[:, 0], joints[:, 1], s=8, c="yellow", edgecolors="black", linewidths=0.4, zorder=3)
    ax.set_xlim(0, frame.shape[1]), ax.set_ylim(frame.shape[0], 0)
    ax.set_title(f"frame {index}" + ("" if found else f" ({NO_PERSON})"), fontsize=8)
    ax.axis("off")


def frame_spans(spans: Sequence[Span], frames: int) -> list[Span]:
    """Each frame given to the window whose centre is nearest among those covering it, then runs of
    frames with the same window's class merged: one class per frame, where windows overlap."""
    centres = np.array([(s.start + s.end) / 2 for s in spans])
    runs: list[Span] = []
    for frame in range(frames):
        covering = [i for i, s in enumerate(spans) if s.start <= frame <= s.end]
        best = spans[min(covering, key=lambda i: abs(centres[i] - frame))] if covering else Span(frame, frame, None, 0)
        if runs and runs[-1].label == best.label and runs[-1].end == frame - 1:
            runs[-1] = Span(runs[-1].start, frame, best.label, max(runs[-1].probability, best.probability))
        else:
            runs.append(Span(frame, frame, best.label, best.probability))
    return runs


def draw_timeline(ax: plt.Axes, spans: Sequence[Span], present: np.ndarray, fps: float | None) -> None:
    """A lane per class met (most frames on top), a bar per run of frames whose nearest window gives
    that class, with the run's highest probability written; red ticks under frames without a person."""
    runs = frame_spans(spans, len(present))
    names = [r.label or NO_PERSON for r in runs]
    frames_of = {n: sum(r.end - r.start + 1 for r, m in zip(runs, names) if m == n) for n in set(names)}
    lanes = sorted(frames_of, key=lambda n: (n == NO_PERSON, -frames_of[n], n))
    for run, name in zip(runs, names):
        row, width = lanes.index(name), run.end - run.start + 1
        ax.barh(row, width, left=run.start - 0.5, height=0.6, color="tab:gray" if run.label is None else f"C{row % 10}",
                alpha=0.85, edgecolor="black", linewidth=0.4)
        if run.label and width >= 0.06 * len(present):
            ax.text(run.start - 0.5 + width / 2, row, f"{run.probability:.0%}", ha="center", va="center", fontsize=7,
                    color="white")
    missing = np.flatnonzero(~present)
    if len(missing):
        ax.plot(missing, np.full(len(missing), len(lanes) - 0.35), "|", color="tab:red", markersize=7)
    ax.set_yticks(range(len(lanes)), [textwrap.shorten(n, 34, placeholder="...") for n in lanes], fontsize=8)
    ax.set_ylim(len(lanes) - 0.1, -0.6)
    ax.set_xlim(-0.5, len(present) - 0.5)
    seconds = f" ({len(present) / fps:.1f} s at {fps:g} frames/s)" if fps else ""
    ticks = f"; red ticks: the {len(missing)} frames without a person" if len(missing) else ""
    ax.set_xlabel(f"frame{seconds}; each frame shows the class of the window centred nearest to it "
                  f"(percent: that window's probability){ticks}", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title("timeline: the most probable class of each sliding window", fontsize=9)


def video_figure(frames: dict[int, np.ndarray], joints: np.ndarray, present: np.ndarray, layout: Layout,
                 spans: Sequence[Span], top: TopClasses, title: str, fps: float | None = None) -> plt.Figure:
    """``frames``: {index: RGB frame} to show; ``joints``: (T, J, 2) the layout's joints in pixels."""
    lanes = len({s.label for s in frame_spans(spans, len(present))}) + 1
    fig = plt.figure(figsize=(FIGURE_WIDTH, 2.9 + 1.0 + 0.3 * lanes), layout="constrained")
    fig.suptitle(textwrap.fill(title, 150), fontsize=10)
    upper, lower = fig.subfigures(2, 1, height_ratios=(2.9, 1.0 + 0.3 * lanes))
    strip, bars = upper.subfigures(1, 2, width_ratios=(0.66, 0.34))
    for ax, index in zip(np.atleast_1d(strip.subplots(1, len(frames))), sorted(frames)):
        draw_frame(ax, frames[index], joints[index], layout, index, bool(present[index]))
    draw_top(bars.subplots(), top)
    draw_timeline(lower.subplots(), spans, present, fps)
    return fig


def save_video_figure(path: str | Path, *args, **kwargs) -> Path:
    return save_figure(video_figure(*args, **kwargs), path)
