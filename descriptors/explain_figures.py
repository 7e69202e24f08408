"""predict.py --explain --figure: the skeleton at the key frames with each joint coloured by its
importance, the importance of each frame, and every descriptor image with its attribution drawn
over it, above the explanation's text (models/explain.py computes it; this module draws plain
arrays, so the descriptors floor needs nothing of the models)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402

from skeletons.layouts import Layout  # noqa: E402

from .figures import FIGURE_WIDTH, finish_strip, save_figure, strip_segments  # noqa: E402

HEAT = plt.get_cmap("inferno")
JOINT_COLOURS = plt.get_cmap("plasma")
KEY_FRAME_COLOUR = "tab:cyan"
TEXT_LINE = 0.19   # inches per line of the explanation's text (9 pt)
TOP_HEIGHT = 3.4   # inches: the key frames and the frames' importance


def normalised(values: np.ndarray) -> np.ndarray:
    top = float(np.max(values)) if np.size(values) else 0.0
    return values / top if top > 0 else np.zeros_like(values, dtype=float)


def draw_joints(ax: plt.Axes, X: np.ndarray, layout: Layout, frames: Sequence[int], joints: np.ndarray) -> None:
    """The skeleton at ``frames``, bones in gray, each joint's dot coloured (and sized) by its
    importance: ``joints`` (B, V) per body, or (V,) for every body alike."""
    V, frames = layout.num_joints, np.asarray(frames)
    strip = strip_segments(X, layout, frames)
    bodies = X.shape[1] // V
    per_body = np.broadcast_to(normalised(np.asarray(joints, float)), (bodies, V))
    present = np.any(X[frames].reshape(len(frames), bodies, V, -1) != 0, axis=(2, 3))   # as strip_segments keeps them
    level = per_body[np.nonzero(present)[1]].ravel()
    ax.add_collection(LineCollection(strip.segments, colors="0.65", linewidths=1.4, zorder=1))
    order = np.argsort(level)   # the important joints drawn last, on top
    ax.scatter(*strip.points[order].T, c=level[order], cmap=JOINT_COLOURS, vmin=0, vmax=1, s=8 + 70 * level[order],
               edgecolors="k", linewidths=0.3, zorder=2)
    finish_strip(ax, strip, frames, layout, fontsize=8, margins=(0.03, 0.04), colour="0.2")
    ax.set_title("the key frames, joints coloured by importance" + (" (each body's own)" if bodies > 1 else ""),
                 fontsize=9)


def draw_frames(ax: plt.Axes, frames: np.ndarray, key_frames: Sequence[int]) -> None:
    """Each frame's share of the attribution, the key frames marked."""
    numbers = np.arange(1, len(frames) + 1)
    ax.fill_between(numbers, frames, color="tab:purple", alpha=0.35, linewidth=0)
    ax.plot(numbers, frames, color="tab:purple", linewidth=1.2)
    for frame in key_frames:
        ax.axvline(frame + 1, color=KEY_FRAME_COLOUR, linestyle="--", linewidth=1)
    ax.set_xlim(1, max(len(frames), 2))
    ax.set_ylim(0, None)
    ax.set_xlabel("frame", fontsize=8)
    ax.set_ylabel("share of attribution", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title("importance of each frame (key frames dashed)", fontsize=9)


def heat_overlay(image: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """(H, W, 3) floats: the image in dimmed gray under the heat (opaque where it is strong)."""
    gray = image.astype(float).mean(axis=-1) if image.ndim == 3 else image.astype(float)
    base = np.repeat((0.15 + 0.5 * gray / 255.0)[..., None], 3, axis=-1)
    level = normalised(heat)
    alpha = (0.2 + 0.8 * level)[..., None]
    return (1 - alpha) * base + alpha * HEAT(level)[..., :3]


def draw_heat(ax: plt.Axes, desc: str, image: np.ndarray, heat: np.ndarray, frames: int, bodies: int,
              key_frames: Sequence[int], share: float) -> None:
    """One descriptor image with its attribution over it, the key frames' columns marked."""
    ax.imshow(heat_overlay(image, heat), interpolation="nearest")
    width = image.shape[1]
    for frame in key_frames:
        ax.axvline((frame + 0.5) / max(frames, 1) * width - 0.5, color=KEY_FRAME_COLOUR, linestyle="--", linewidth=0.8)
    ax.set_title(f"{desc}  ({share:.0%} of the attribution)", fontsize=9)
    ax.set_xticks([0, width - 1], ["1", str(frames)], fontsize=7)
    ax.set_xlabel("frames", fontsize=8, labelpad=-6)
    height = image.shape[0]
    centres = (np.arange(bodies) + 0.5) * height / bodies - 0.5   # body 1's rows, then body 2's
    ax.set_yticks(centres if bodies > 1 else [], [f"body {b + 1}" for b in range(bodies)] if bodies > 1 else [],
                  fontsize=7, rotation=90, va="center")
    ax.set_ylabel("features (rows)", fontsize=8)


def explanation_figure(X: np.ndarray, layout: Layout, images: Mapping[str, np.ndarray],
                       heatmaps: Mapping[str, np.ndarray], joints: np.ndarray, frames: np.ndarray,
                       key_frames: Sequence[int], title: str, lines: Sequence[str]) -> plt.Figure:
    """The skeleton at the key frames (``joints``: (V,) or (B, V) importance) and the frames'
    importance on top, the images with their heatmaps (``heatmaps``' order) below, the
    explanation's ``lines`` under them."""
    descs = list(heatmaps)
    total = sum(float(h.sum()) for h in heatmaps.values()) or 1.0
    text_in = TEXT_LINE * len(lines) + 0.15
    images_in = FIGURE_WIDTH / max(len(descs), 4) + 0.4
    fig = plt.figure(figsize=(FIGURE_WIDTH, 0.4 + TOP_HEIGHT + images_in + text_in), layout="constrained")
    fig.suptitle(title, fontsize=11)
    upper, middle, bottom = fig.subfigures(3, 1, height_ratios=(TOP_HEIGHT, images_in, text_in))
    skeleton_ax, frames_ax = upper.subplots(1, 2, width_ratios=(0.62, 0.38))
    draw_joints(skeleton_ax, X, layout, key_frames, joints)
    bar = upper.colorbar(plt.cm.ScalarMappable(cmap=JOINT_COLOURS), ax=skeleton_ax, shrink=0.6, pad=0.01)
    bar.set_label("importance / the top joint's", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    draw_frames(frames_ax, frames, key_frames)
    axes = middle.subplots(1, max(len(descs), 4))
    for ax in np.atleast_1d(axes)[len(descs):]:
        ax.set_axis_off()
    for ax, desc in zip(np.atleast_1d(axes), descs):
        draw_heat(ax, desc, images[desc], heatmaps[desc], X.shape[0], X.shape[1] // layout.num_joints, key_frames,
                  float(heatmaps[desc].sum()) / total)
    bottom.text(0.01, 0.98, "\n".join(lines), ha="left", va="top", fontsize=9, family="monospace")
    return fig


def save_explanation_figure(path: str | Path, *args, **kwargs) -> Path:
    """``explanation_figure`` saved as a PNG at ``path`` (atomically)."""
    return save_figure(explanation_figure(*args, **kwargs), path)
