"""test.py's confusion figure: the row-normalised confusion matrix with class numbers on its axes
and, beside it and row for row, each class's accuracy as a bar with the class's name and test
sample count, so 60 or 120 class names stay readable (a name on each matrix row would need the
matrix's own width again). matplotlib is imported when a figure is drawn, not with the module."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CELL_INCHES = 0.14           # a matrix row at 60 or 120 classes: 10 pt, room for a 6.5 pt label
MATRIX_INCHES = (4.0, None)  # the matrix's side: at least this (few classes get larger cells)
BAR_INCHES = 2.2             # the per-class accuracy bars
DPI = 120
VALUES_UP_TO = 15            # classes up to which the matrix cells are written as percentages
BAR_VALUES_UP_TO = 40        # and each bar's accuracy beside it


@dataclass(frozen=True)
class ConfusionGeometry:
    """Inches of each part, from the number of classes shown and their longest label."""
    cell: float
    font: float
    left: float
    bottom: float
    top: float
    names: float

    def size(self, n: int) -> tuple[float, float]:
        side = self.cell * n
        width = self.left + side + 0.95 + BAR_INCHES + self.names + 0.15
        return width, self.bottom + side + self.top


def geometry(n: int, longest_label: int) -> ConfusionGeometry:
    cell = max(CELL_INCHES, MATRIX_INCHES[0] / max(n, 1))
    font = float(np.clip(cell * 72 * 0.65, 6.5, 9.0))
    names = longest_label * font * 0.56 / 72 + 0.2      # DejaVu Sans: about 0.56 em a character
    return ConfusionGeometry(cell, font, left=0.75, bottom=0.75, top=0.75, names=names)


def class_accuracies(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(accuracy of each true class, NaN where it has no test sample; its test sample count)."""
    counts = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, np.diag(cm) / counts, np.nan), counts


def confusion_figure(cm: np.ndarray, shown: np.ndarray, class_names: Sequence[str], title: str):
    """The figure (matplotlib ``Figure``) of a confusion matrix of counts ``cm`` between the
    classes ``shown`` (0-based, in this order): the row-normalised matrix on the left, numbered
    as the classes are (1-based), each class's accuracy beside its row, named."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(shown)
    labels = [f"{i + 1} {class_names[i]}" for i in shown]
    accuracy, counts = class_accuracies(cm)
    same = len(set(counts[counts > 0].tolist())) <= 1   # every class has as many test samples: said once
    names = labels if same else [f"{label}  (n={count})" for label, count in zip(labels, counts)]
    geo = geometry(n, max(map(len, names), default=1))
    width, height = geo.size(n)
    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    side = geo.cell * n
    frac = lambda x, y, w, h: [x / width, y / height, w / width, h / height]   # noqa: E731
    matrix_ax = figure.add_axes(frac(geo.left, geo.bottom, side, side))
    colour_ax = figure.add_axes(frac(geo.left + side + 0.1, geo.bottom, 0.12, side))
    bars_ax = figure.add_axes(frac(geo.left + side + 0.85, geo.bottom, BAR_INCHES, side))
    draw_matrix(matrix_ax, colour_ax, cm, shown, geo.font)
    draw_accuracies(bars_ax, accuracy, names, geo.font)
    bars_ax.set_ylim(matrix_ax.get_ylim())   # row for row (not sharey: that would share the tick labels)
    total = cm.sum()
    each = f" ({int(counts.max(initial=0))} a class)" if same else ""
    figure.suptitle(f"{title}\naccuracy {np.trace(cm) / max(total, 1):.1%} on {int(total)} test samples{each}, "
                    f"{n} classes shown (those that occur as a true or a predicted class)",
                    fontsize=10, y=1 - 0.12 / height, va="top")
    return figure


def row_normalised(cm: np.ndarray) -> np.ndarray:
    return cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)


def draw_matrix(ax, colour_ax, cm: np.ndarray, shown: np.ndarray, font: float) -> None:
    """The matrix, classes numbered on both axes, cells written as percentages when few."""
    n = len(shown)
    shares = row_normalised(cm.astype(np.float64))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    numbers = [str(i + 1) for i in shown]
    ax.set_xticks(range(n), numbers, rotation=90, fontsize=font)
    ax.set_yticks(range(n), numbers, fontsize=font)
    ax.tick_params(length=2, pad=1)
    ax.set_xlabel("predicted class (number)", fontsize=9)
    ax.set_ylabel("true class (number; named on the right)", fontsize=9)
    if n <= VALUES_UP_TO:
        for (row, col), share in np.ndenumerate(shares):
            if share > 0:
                ax.text(col, row, f"{share:.0%}", ha="center", va="center", fontsize=font - 1,
                        color="white" if share > 0.6 else "black")
    bar = ax.figure.colorbar(image, cax=colour_ax)
    bar.set_label("share of the true class's test samples", fontsize=8)
    bar.ax.tick_params(labelsize=7)


def draw_accuracies(ax, accuracy: np.ndarray, names: Sequence[str], font: float) -> None:
    """Each class's accuracy as a bar on its matrix row, the class named on the right."""
    from matplotlib.ticker import PercentFormatter

    rows = np.arange(len(names))
    ax.barh(rows, np.nan_to_num(accuracy), height=0.7, color="tab:blue")
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.tick_params(axis="x", labelsize=7)
    ax.yaxis.tick_right()
    ax.set_yticks(rows, names, fontsize=font)
    ax.tick_params(axis="y", length=0, pad=2)
    ax.set_xlabel("accuracy of the class", fontsize=9)
    mean = np.nanmean(accuracy) if np.isfinite(accuracy).any() else 0.0
    ax.axvline(mean, color="tab:red", linestyle="--", linewidth=1, label=f"mean per class {mean:.1%}")
    ax.legend(fontsize=7, loc="lower right", bbox_to_anchor=(1.0, 1.0), frameon=False, borderaxespad=0.2)
    ax.grid(axis="x", alpha=0.3)
    for row, value in zip(rows, accuracy):
        if np.isnan(value):
            ax.text(0.01, row, "no test sample", va="center", fontsize=font - 1, color="0.4")
        elif len(names) <= BAR_VALUES_UP_TO:   # beside the bar, or inside a long one
            inside = value > 0.85
            ax.text(value - 0.02 if inside else value + 0.02, row, f"{value:.0%}", va="center", fontsize=font - 1,
                    ha="right" if inside else "left", color="white" if inside else "black")


def confusion_png(cm: np.ndarray, shown: np.ndarray, class_names: Sequence[str], title: str) -> bytes:
    """The figure as PNG bytes."""
    import io

    buffer = io.BytesIO()
    confusion_figure(cm, shown, class_names, title).savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()
