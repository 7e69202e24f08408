"""Figure of a skeleton sequence (a strip of frames drawn with the layout's bones) above its five
descriptor images; used by visualize.py, the README and data/samples."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402

from common.atomic import atomic_path  # noqa: E402
from skeletons.layouts import Layout, layout_for_joints  # noqa: E402
from descriptors.names import DESCRIPTORS  # noqa: E402

from skeletons.datasets import sample_id  # noqa: E402
from skeletons.kinds import SampleKind  # noqa: E402

from .core import DEFAULT_IMG_SIZE, check_included, descriptor_images  # noqa: E402
from skeletons.reading import load_sequence  # noqa: E402

from .extract import save_png  # noqa: E402

BODY_COLOURS = ("tab:blue", "tab:orange")


def strip_segments(X: np.ndarray, layout: Layout, frames: np.ndarray, gap: float = 0.5):
    """Bone segments (N, 2, 2) of the chosen frames side by side in the x-y plane, their body
    numbers (N,), and the joint points (M, 2). Untracked (all-zero) bodies are left out; ``gap``
    is the space between frames as a fraction of the widest frame."""
    T, V = X.shape[:2]
    bodies = X[frames].reshape(len(frames), V // layout.num_joints, layout.num_joints, layout.dims)[..., :2]
    present = np.any(bodies != 0, axis=(2, 3))                         # (frames, B)
    span = np.ptp(bodies[present][..., 0]) if present.any() else 1.0
    shifted = bodies + (np.arange(len(frames)) * span * (1 + gap))[:, None, None, None] * np.array([1.0, 0.0])
    i, j = np.array(layout.bones).T
    segments = np.stack([shifted[:, :, i], shifted[:, :, j]], axis=-2)  # (frames, B, bones, 2, 2)
    body = np.broadcast_to(np.arange(bodies.shape[1])[None, :, None], segments.shape[:3])
    keep = np.broadcast_to(present[:, :, None], segments.shape[:3])
    return segments[keep], body[keep], shifted[present].reshape(-1, 2)


def descriptor_figure(X: np.ndarray, layout: Layout, images: dict[str, np.ndarray], title: str = "",
                      n_frames: int = 8) -> plt.Figure:
    """Matplotlib figure: frames of the sequence on top, the five images below (DESCRIPTORS order)."""
    frames = np.unique(np.linspace(0, X.shape[0] - 1, min(n_frames, X.shape[0])).round().astype(int))
    fig = plt.figure(figsize=(12, 5.2), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=(1.1, 1))
    ax = top.subplots()
    segments, body, points = strip_segments(X, layout, frames)
    ax.add_collection(LineCollection(segments, colors=np.array(BODY_COLOURS)[body % 2], linewidths=1.6))
    ax.scatter(points[:, 0], points[:, 1], s=4, c="k")
    ax.set_aspect("equal")
    ax.autoscale()
    if layout.dims == 2:   # image coordinates: y grows downwards
        ax.invert_yaxis()
    ax.set_axis_off()
    ax.set_title(f"{title}  frames {', '.join(map(str, frames + 1))} of {X.shape[0]}".strip(), fontsize=10)
    for axis, desc in zip(bottom.subplots(1, len(DESCRIPTORS)), DESCRIPTORS):
        image = images[desc]
        axis.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
        axis.set_title(desc)
        axis.set_axis_off()
    return fig


def save_figure(fig: plt.Figure, path: str | Path, dpi: int = 100) -> Path:
    """Save as PNG atomically and close the figure."""
    path = Path(path)
    try:
        with atomic_path(path, make_parents=True) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return path


def save_sample_figure(X: np.ndarray, images: dict[str, np.ndarray], name: str, path: str | Path,
                       mode: str, n_frames: int = 8, layout: Layout | None = None) -> Path:
    """The figure of one sample, titled with its id, layout, body count and descriptor mode; the
    layout defaults to the NTU or NW-UCLA one its joint count calls for."""
    layout, bodies = layout_for_joints(X.shape[1]) if layout is None else (layout, X.shape[1] // layout.num_joints)
    title = f"{name} ({layout.name}, {bodies} bod{'y' if bodies == 1 else 'ies'}, {mode} mode)"
    return save_figure(descriptor_figure(X, layout, images, title, n_frames), path)


def file_figure(path: str | Path, out: str | Path, mode: str = "paper", img_size: int = DEFAULT_IMG_SIZE,
                n_frames: int = 8, kind: SampleKind | str | None = None, layout: Layout | None = None
                ) -> dict[str, np.ndarray]:
    """Read a sample file (as ``load_sequence`` does: a custom .npy with the custom kind and its
    layout), make its five images, save its figure at ``out``; return the images."""
    X = load_sequence(path, mode, kind, layout)
    check_included(X, mode, path)
    layout = layout or layout_for_joints(X.shape[1])[0]
    images = descriptor_images(X, layout, mode, img_size)
    save_sample_figure(X, images, sample_id(path), out, mode, n_frames, layout)
    return images


def save_images(images: dict[str, np.ndarray], folder: str | Path, stem: str) -> list[Path]:
    """The five images as <folder>/<stem>_<DESC>.png."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}_{desc}.png" for desc in DESCRIPTORS]
    for desc, path in zip(DESCRIPTORS, paths):
        save_png(images[desc], path)
    return paths
