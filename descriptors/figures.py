"""Figure of a skeleton sequence (frames drawn with the layout's bones) above its five descriptor
images, titled with the action its name gives; each image's axes say what its rows (features,
body 1's then body 2's) and columns (frames) are, and a caption names the features. predict.py
adds its top classes beside the frames. Used by visualize.py, predict.py, pipeline.py, the README
and data/samples. The images are drawn as they are (paper-mode pixels are exact): only the
presentation around them is made here."""
from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402

from common.atomic import atomic_path  # noqa: E402
from skeletons.layouts import Layout, layout_for_joints  # noqa: E402
import descriptors.registry as registry  # noqa: E402
from descriptors.base import Feature, angle_features, joint_features, pair_features  # noqa: E402
from descriptors.names import DESCRIPTORS  # noqa: E402

from skeletons.datasets import BUILTIN_DATASETS, get_dataset, sample_id  # noqa: E402
from skeletons.kinds import SampleKind  # noqa: E402

from .core import DEFAULT_IMG_SIZE, check_included, descriptor_images  # noqa: E402
from skeletons.reading import file_kind, load_sequence  # noqa: E402

from .extract import save_png  # noqa: E402

BODY_COLOURS = ("tab:blue", "tab:orange")
TRUE_COLOUR, OTHER_COLOUR = "tab:green", "tab:gray"
FIGURE_WIDTH = 12.0          # inches, at 100 dpi: 1200 pixels
IMAGES_HEIGHT = 2.75         # the row of five images with their axes
CAPTION_LINE = 0.17          # inches per caption line (8 pt)
STRIP_HEIGHT = (1.6, 3.4)    # the frames' panel: least and most inches
STRIP_TEXT = 0.4             # of which its title above and the frame numbers below
BARS_SHARE = 0.33            # predict.py's top classes: this share of the top row's width


# --------------------------------------------------------------------------- what the sample is


def class_label(dataset: str, label: int) -> str:
    """How a class is named to people: 'A058 handshaking' (NTU numbers its classes), else its name."""
    ds = get_dataset(dataset)
    name = ds.class_names[label - 1]
    return f"A{label:03d} {name}" if ds.kind.numbered_classes else name


def action_of(name: str, dataset: str | None) -> str | None:
    """The class a sample's name gives in ``dataset`` (an NTU id's A058, an NW-UCLA id's a01, a
    custom dataset's labels.csv), as ``class_label`` names it; None when it gives none."""
    if dataset is None:
        return None
    try:
        label = get_dataset(dataset).parse_name(name).label
        return class_label(dataset, label) if 1 <= label <= get_dataset(dataset).num_classes else None
    except (ValueError, KeyError, AttributeError, IndexError):
        return None


def file_dataset(path: str | Path) -> str | None:
    """The built-in dataset whose names a sample file's name follows (the one with the most
    classes: NTU-120 names NTU-60's classes too), None for a file no built-in kind reads."""
    try:
        kind = file_kind(path)
    except ValueError:
        return None
    rows = [get_dataset(name) for name in BUILTIN_DATASETS if get_dataset(name).kind is kind]
    return max(rows, key=lambda ds: ds.num_classes).name if rows else None


# --------------------------------------------------------------------------- the frames


@dataclass(frozen=True)
class Strip:
    """The chosen frames laid out in rows, each frame centred in its own cell."""
    segments: np.ndarray     # (N, 2, 2) bone segments
    body: np.ndarray         # (N,) body number of each segment
    points: np.ndarray       # (M, 2) joints
    labels: np.ndarray       # (frames, 2) where each frame's number is written: under its cell
    width: float             # data extent of the whole strip
    height: float


def frame_boxes(bodies: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """(x centre of each frame, the widest frame's width, the lowest y, the y extent) of the bodies
    present in (frames, B, V, 2) ``bodies``."""
    if not present.any():
        return np.zeros(len(bodies)), 1.0, 0.0, 1.0
    x = bodies[..., 0]
    low = np.where(present[..., None], x, np.inf).min(axis=(1, 2))
    high = np.where(present[..., None], x, -np.inf).max(axis=(1, 2))
    drawn = np.isfinite(low)                                            # frames with a body
    centres = np.where(drawn, (np.where(drawn, low, 0) + np.where(drawn, high, 0)) / 2, 0.0)
    ys = bodies[..., 1][present]
    return centres, max(float((high - low)[drawn].max()), 1e-6), float(ys.min()), max(float(np.ptp(ys)), 1e-6)


def strip_segments(X: np.ndarray, layout: Layout, frames: np.ndarray, columns: int | None = None,
                   gap: float = 0.35) -> Strip:
    """Bone segments of the chosen frames in the x-y plane, ``columns`` frames a row (all in one
    row by default), each frame centred on its own x range (a walking person stays in its cell,
    two bodies keep their distance). Untracked (all-zero) bodies are left out; ``gap`` is the
    space between cells as a fraction of the widest frame and of the tallest."""
    V = layout.num_joints
    columns = columns or len(frames)
    bodies = X[frames].reshape(len(frames), X.shape[1] // V, V, layout.dims)[..., :2].astype(np.float64)
    present = np.any(bodies != 0, axis=(2, 3))                          # (frames, B)
    centres, width, lowest, height = frame_boxes(bodies, present)
    down = 1.0 if layout.dims == 2 else -1.0                           # image y grows downwards
    column, row = np.arange(len(frames)) % columns, np.arange(len(frames)) // columns
    x, y = column * width * (1 + gap), row * height * (1 + gap) * down  # each cell's centre and low y
    shifted = bodies + np.stack([x - centres, y - lowest], axis=1)[:, None, None, :]
    i, j = np.array(layout.bones).T
    segments = np.stack([shifted[:, :, i], shifted[:, :, j]], axis=-2)  # (frames, B, bones, 2, 2)
    body = np.broadcast_to(np.arange(bodies.shape[1])[None, :, None], segments.shape[:3])
    keep = np.broadcast_to(present[:, :, None], segments.shape[:3])
    under = y + (height if layout.dims == 2 else 0.0) + down * 0.03 * height   # just below the cell on screen
    rows = int(row.max()) + 1
    return Strip(segments[keep], body[keep], shifted[present].reshape(-1, 2), np.stack([x, under], axis=1),
                 columns * width + (columns - 1) * width * gap, rows * height + (rows - 1) * height * gap)


def strip_columns(X: np.ndarray, layout: Layout, frames: np.ndarray, width_in: float) -> int:
    """Frames a row: the layout that draws the skeletons largest in ``width_in`` inches by at most
    ``STRIP_HEIGHT[1]`` (two bodies side by side make a frame wide, and one row of them a thin
    band beside predict.py's bars); another row only where it draws them a fifth larger."""
    best, best_scale = len(frames), 0.0
    for rows in range(1, min(len(frames), 3) + 1):
        columns = math.ceil(len(frames) / rows)
        strip = strip_segments(X, layout, frames, columns)
        scale = min(width_in / strip.width, (STRIP_HEIGHT[1] - STRIP_TEXT) / strip.height)   # inches per metre
        if scale > best_scale * 1.2:
            best, best_scale = columns, scale
    return best


def strip_height(X: np.ndarray, layout: Layout, frames: np.ndarray, columns: int, width_in: float) -> float:
    """Inches the strip needs at ``width_in`` inches wide with ``columns`` frames a row, within ``STRIP_HEIGHT``."""
    strip = strip_segments(X, layout, frames, columns)
    return float(np.clip(width_in * strip.height / strip.width + STRIP_TEXT, *STRIP_HEIGHT))


def finish_strip(ax: plt.Axes, strip, frames: np.ndarray, layout: Layout, fontsize: int = 7,
                 margins: tuple[float, float] = (0.01, 0.02), colour: str = "0.3") -> None:
    """A drawn strip's frame numbers under its skeletons, equal axes fitted to it (image keypoints
    with y downwards), no frame around it."""
    for (x, y), frame in zip(strip.labels, frames):
        ax.text(x, y, f"frame {frame + 1}", ha="center", va="top", fontsize=fontsize, color=colour)
    ax.set_aspect("equal")
    ax.margins(*margins)
    ax.autoscale()
    if layout.dims == 2:   # image coordinates: y grows downwards
        ax.invert_yaxis()
    ax.set_axis_off()


def draw_strip(ax: plt.Axes, X: np.ndarray, layout: Layout, frames: np.ndarray, columns: int) -> None:
    strip = strip_segments(X, layout, frames, columns)
    ax.add_collection(LineCollection(strip.segments, colors=np.array(BODY_COLOURS)[strip.body % 2],
                                     linewidths=1.6))
    ax.scatter(strip.points[:, 0], strip.points[:, 1], s=4, c="k")
    finish_strip(ax, strip, frames, layout)
    bodies = X.shape[1] // layout.num_joints
    colours = "" if bodies == 1 else " (body 1 blue, body 2 orange)"
    ax.set_title(f"{len(frames)} of its {X.shape[0]} frames{colours}" if X.shape[0] > 1 else f"its one frame{colours}",
                 fontsize=9)


# --------------------------------------------------------------------------- the images


ROW_KINDS = {joint_features: "joints", pair_features: "joint pairs", angle_features: "angles"}


def row_name(feature: Feature, joints: Sequence[str]) -> str:
    """A row's short name for the figures: 'a-b' for a pair, 'at p between a and b' for an angle."""
    if len(feature.joints) == 2:
        return "-".join(joints[j] for j in feature.joints)
    if len(feature.joints) == 3:
        p, a, b = (joints[j] for j in feature.joints)
        return f"at {p} between {a} and {b}"
    return feature.label


def feature_names(layout: Layout, descs: Sequence[str] | None = None) -> dict[str, tuple[str, list[str]]]:
    """Per descriptor (default: every known one): (what one of its rows is, each row's name) for one body."""
    out = {}
    for name in registry.names() if descs is None else descs:
        desc = registry.get(name)
        if desc.made_of:
            out[name] = (f"as in {', '.join(desc.made_of)}", [])
        else:
            rows = desc.features(layout)
            out[name] = (ROW_KINDS.get(desc.features, "features"), [row_name(f, layout.joints) for f in rows])
    return out


def draw_image(ax: plt.Axes, desc: str, image: np.ndarray, layout: Layout, bodies: int, frames: int) -> None:
    """One descriptor image with axes that say what its rows (features, by body) and columns are."""
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
    size_y, size_x = image.shape[:2]
    what, names = feature_names(layout)[desc]
    rows = f"{len(names)} {what}" if names else what
    ax.set_title(desc, fontsize=11, fontweight="bold")
    ax.set_ylabel(f"rows: {rows}" + (" per body" if bodies == 2 else ""), fontsize=8)
    steps = registry.get(desc).steps   # ADD: the moves from frame t to t+1
    columns = frames - 1 if steps else frames
    first, last = ("1→2", f"{frames - 1}→{frames}") if steps else ("1", str(frames))
    ax.set_xticks(*(([0, size_x - 1], [first, last]) if columns > 1 else
                    ([(size_x - 1) / 2], [first]) if columns == 1 else ([], [])), fontsize=7)
    ax.set_xlabel(f"columns: {'frame step' if steps else 'frame'}s" if columns else "columns: none (one frame, no step)",
                  fontsize=8)
    if bodies == 2:   # each half named, a longer tick where body 2's rows begin
        centres = (np.arange(bodies) + 0.5) * size_y / bodies - 0.5
        ax.set_yticks(centres, [f"body {b + 1}" for b in range(bodies)], fontsize=7, rotation=90, va="center")
        ax.set_yticks([size_y / 2 - 0.5], minor=True)
        ax.tick_params(axis="y", which="minor", length=12)
    else:
        ax.set_yticks([])
    ax.tick_params(axis="both", which="major", length=2, pad=2)


def listed(names: Sequence[str], shown: int = 3) -> str:
    """'a, b, c, ...' (the first few of a long list)."""
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")


def caption(layout: Layout, X: np.ndarray, img_size: int, extras: Sequence[str] = ()) -> str:
    """What the rows and columns of the images are, with the features named, and which body is
    missing in which share of the frames (its rows are flat there: the band is not a fault)."""
    T, bodies = X.shape[0], X.shape[1] // layout.num_joints
    names = feature_names(layout)
    axes = "x y z as red green blue" if layout.dims == 3 else "x y as red green"
    order = "body 1's rows, then body 2's" if bodies == 2 else "one body"
    columns = f"the {T} frames from left to right" if T > 1 else "its one frame"
    lines = [f"Each image: rows are features ({order}), columns are {columns}, both resized to {img_size} pixels.",
             f"GD: the {layout.num_joints} joints ({listed(names['GD'][1])}), coordinates averaged over the "
             f"bone graph, {axes}.  JDD: {len(layout.jdd_pairs)} joint pairs ({listed(names['JDD'][1])}), "
             f"distance / body size.  ADD: the {layout.num_joints} joints, distance moved from one frame to "
             f"the next ({T - 1} step{'' if T == 2 else 's'}).  LAD: {len(layout.lad_triplets)} angles "
             f"({listed(names['LAD'][1], 2)}).  FDD: JDD, ADD and LAD as red, green and blue."
             + "".join(f"  {d}: {len(names[d][1])} {names[d][0]}, {registry.get(d).summary}."
                       for d in extras if registry.get(d).summary)]
    present = np.any(X.reshape(T, bodies, -1) != 0, axis=2).sum(axis=0)
    lines += [f"Body {b + 1} is not tracked in {T - n} of the {T} frames: its rows are flat there."
              for b, n in enumerate(present) if n < T]
    return "\n".join(textwrap.fill(line, 190, break_on_hyphens=False) for line in lines)


# --------------------------------------------------------------------------- predict.py's classes


@dataclass(frozen=True)
class TopClasses:
    """predict.py's most probable classes, for the figure."""
    ranked: Sequence[tuple[str, float]]   # (class as class_label names it, probability), most probable first
    truth: str | None = None              # the true class, when the sample's name gives it
    models: str = ""                      # what made the probabilities (e.g. 'mean softmax of 6 models')


def draw_top(ax: plt.Axes, top: TopClasses) -> None:
    """Horizontal bars, the most probable on top, the true class in green, probabilities written."""
    names = [textwrap.shorten(name, 38, placeholder="...") for name, _ in top.ranked]
    probs = np.array([p for _, p in top.ranked], dtype=float)
    colours = [TRUE_COLOUR if name == top.truth else OTHER_COLOUR for name, _ in top.ranked]
    rows = np.arange(len(probs))
    ax.barh(rows, probs, color=colours)
    ax.set_yticks(rows, names, fontsize=8)
    ax.invert_yaxis()
    right = max(float(probs.max(initial=0)) * 1.3, 0.05)
    ax.set_xlim(0, right)
    for row, p in zip(rows, probs):
        ax.text(p + right * 0.01, row, f"{p:.1%}", va="center", fontsize=8)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xlabel("probability" + (f" ({top.models})" if top.models else ""), fontsize=8)
    found = top.truth is not None and top.truth in [name for name, _ in top.ranked]
    truth = ("" if top.truth is None else
             f"\ntrue class (green): {top.truth}" if found else f"\ntrue class {top.truth}: not in the top {len(probs)}")
    ax.set_title(f"top {len(probs)} classes{truth}", fontsize=9)


# --------------------------------------------------------------------------- the figure


def descriptor_figure(X: np.ndarray, layout: Layout, images: dict[str, np.ndarray], title: str = "",
                      n_frames: int = 8, top: TopClasses | None = None) -> plt.Figure:
    """Matplotlib figure: frames of the sequence on top (with ``top``'s bars beside them), the images
    below (the registry's order: the five, then yours) with their axes, and a caption naming rows and columns."""
    frames = np.unique(np.linspace(0, X.shape[0] - 1, min(n_frames, X.shape[0])).round().astype(int))
    bodies = X.shape[1] // layout.num_joints
    strip_width = FIGURE_WIDTH * (1 - BARS_SHARE if top else 1) - 0.2
    columns = strip_columns(X, layout, frames, strip_width)
    strip_in = strip_height(X, layout, frames, columns, strip_width)
    shown = registry.ordered(images)   # the five, and any other descriptor made for the sample
    text = caption(layout, X, images[shown[0]].shape[0], [d for d in shown if d not in DESCRIPTORS])
    caption_in = CAPTION_LINE * (text.count("\n") + 1) + 0.1
    fig = plt.figure(figsize=(FIGURE_WIDTH, 0.35 + strip_in + IMAGES_HEIGHT + caption_in), layout="constrained")
    fig.suptitle(title, fontsize=11)
    upper, lower, bottom = fig.subfigures(3, 1, height_ratios=(strip_in, IMAGES_HEIGHT, caption_in))
    if top:
        strip_ax, bars_ax = upper.subplots(1, 2, width_ratios=(1 - BARS_SHARE, BARS_SHARE))
        draw_top(bars_ax, top)
    else:
        strip_ax = upper.subplots()
    draw_strip(strip_ax, X, layout, frames, columns)
    for axis, desc in zip(lower.subplots(1, len(shown), squeeze=False)[0], shown):
        draw_image(axis, desc, images[desc], layout, bodies, X.shape[0])
    bottom.text(0.01, 0.98, text, ha="left", va="top", fontsize=8)
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


def sample_title(name: str, layout: Layout, bodies: int, mode: str, action: str | None) -> str:
    """'A058 handshaking: S001C001P001R001A058 (ntu layout, 2 bodies, paper mode)'."""
    what = f"{name} ({layout.name} layout, {bodies} bod{'y' if bodies == 1 else 'ies'}, {mode} mode)"
    return f"{action}: {what}" if action else what


def save_sample_figure(X: np.ndarray, images: dict[str, np.ndarray], name: str, path: str | Path,
                       mode: str, n_frames: int = 8, layout: Layout | None = None, dataset: str | None = None,
                       top: TopClasses | None = None) -> Path:
    """The figure of one sample, titled with the action its name gives in ``dataset`` (if any),
    its id, layout, body count and descriptor mode; the layout defaults to the NTU or NW-UCLA one
    its joint count calls for."""
    layout, bodies = layout_for_joints(X.shape[1]) if layout is None else (layout, X.shape[1] // layout.num_joints)
    title = sample_title(name, layout, bodies, mode, action_of(name, dataset))
    return save_figure(descriptor_figure(X, layout, images, title, n_frames, top), path)


def file_figure(path: str | Path, out: str | Path, mode: str = "paper", img_size: int = DEFAULT_IMG_SIZE,
                n_frames: int = 8, kind: SampleKind | str | None = None, layout: Layout | None = None,
                dataset: str | None = None, descs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Read a sample file (as ``load_sequence`` does: a custom .npy with the custom kind and its
    layout), make its images (``descs``: default the five), save its figure at ``out``; return the
    images. The action in
    the title is the one the name gives in ``dataset``; without a dataset or a kind, in the
    built-in dataset the file's name calls for."""
    X = load_sequence(path, mode, kind, layout)
    check_included(X, mode, path)
    layout = layout or layout_for_joints(X.shape[1])[0]
    images = descriptor_images(X, layout, mode, img_size, descs)   # descs: default the five
    dataset = dataset or (file_dataset(path) if kind is None else None)
    save_sample_figure(X, images, sample_id(path), out, mode, n_frames, layout, dataset)
    return images


def save_images(images: dict[str, np.ndarray], folder: str | Path, stem: str) -> list[Path]:
    """The images (the five, or a set's) as <folder>/<stem>_<DESC>.png."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shown = registry.ordered(images)
    paths = [folder / f"{stem}_{desc}.png" for desc in shown]
    for desc, path in zip(shown, paths):
        save_png(images[desc], path)
    return paths
