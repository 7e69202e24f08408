"""Training curves from a run's log rows: ``<prefix>_curves.png`` beside the checkpoints and
TensorBoard event files in ``<ckpt>/tensorboard/<prefix>/``, both rewritten whole from the rows
after every epoch, so a resumed run continues the same curves with no duplicate or missing epoch
(the rows are its CSV log's, which a resume restores). Drawing takes 0.15-0.3 s of CPU, more than
a demo's epoch, so ``CurveWriter`` draws in a background thread, at most every ``MIN_INTERVAL``
seconds while the run goes on (every epoch of a real run, whose epochs take longer), each drawing
showing the newest rows, and once more at the end, which the run waits for. The PNG needs only matplotlib; the event files need
the tensorboard package (``requirements-extra.txt``) and are skipped, with one notice, without it."""
from __future__ import annotations

import io
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from common.atomic import write_bytes_atomic
from common.notices import notice_once
from .logs import BASE_FIELDS, HEAD_PREFIX
from .names import CURVES_SUFFIX, curves_path, tensorboard_dir

# TensorBoard tag -> log column.
SCALARS = {"loss/train": "train_loss", "loss/test": "test_loss", "accuracy/train": "train_acc",
           "accuracy/val": "val_acc", "accuracy/test": "test_acc", "lr": "lr", "images_per_s": "images_per_s"}


def logged_heads(rows: Sequence[dict]) -> list[str]:
    """The head-loss columns that a fusion network's log filled (Fuse5's eight; none for a single model)."""
    columns = [k for k in (rows[0] if rows else {}) if k.startswith(HEAD_PREFIX) and k not in BASE_FIELDS]
    return [k for k in columns if any(row.get(k) not in (None, "") for row in rows)]


def scalar_tags(rows: Sequence[dict]) -> dict[str, str]:
    """TensorBoard tag -> log column, the heads' included (fuse5_loss/main, ...: the tags as before)."""
    return {**SCALARS, **{f"fuse5_loss/{k.removeprefix(HEAD_PREFIX)}": k for k in logged_heads(rows)}}


def _series(rows: Sequence[dict], column: str) -> tuple[list[int], list[float]]:
    """(epochs, values) of a column, leaving out the epochs where it is empty."""
    pairs = [(int(row["epoch"]), float(row[column])) for row in rows if row.get(column) not in (None, "")]
    return [e for e, _ in pairs], [v for _, v in pairs]


PANELS = (("loss", ("train_loss", "test_loss"), "cross-entropy"),
          ("accuracy", ("train_acc", "val_acc", "test_acc"), "accuracy"),
          ("learning rate", ("lr",), "learning rate (log scale)"),
          ("images/s (training)", ("images_per_s",), "images per second"))
TICK_EVERY_EPOCH_UP_TO = 15   # epochs: beyond, matplotlib's integer ticks


def epoch_axis(axes, epochs: Sequence[int]) -> None:
    """Whole epochs on the x axis, each one when they are few, and half an epoch of room on each
    side (one epoch would otherwise get ticks 0.95 ... 1.05)."""
    from matplotlib.ticker import FixedLocator, MaxNLocator

    first, last = (min(epochs), max(epochs)) if epochs else (1, 1)
    if last - first < TICK_EVERY_EPOCH_UP_TO:
        axes.xaxis.set_major_locator(FixedLocator(range(first, last + 1)))
        axes.set_xlim(first - 0.5, last + 0.5)
    else:
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("epoch", fontsize=8)


def value_axis(axes, name: str, label: str, values: Sequence[float]) -> None:
    """The y axis: accuracies in %, the learning rate on a log scale written as plain numbers
    (the minor ticks written too when it stays within a decade, where no major tick may fall)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter, PercentFormatter

    if name == "accuracy":
        axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    if name == "learning rate":
        axes.set_yscale("log")
        plain = FuncFormatter(lambda value, _: f"{value:g}")
        axes.yaxis.set_major_formatter(plain)
        positive = [v for v in values if v > 0]
        within_a_decade = bool(positive) and max(positive) < 10 * min(positive) and len(set(positive)) > 1
        axes.yaxis.set_minor_formatter(plain if within_a_decade else NullFormatter())
        axes.tick_params(axis="y", which="minor", labelsize=7)
    axes.set_ylabel(label, fontsize=8)


def curves_figure(rows: Sequence[dict], title: str):
    """The curves (a matplotlib ``Figure``): losses, accuracies, learning rate, images/s (and
    Fuse5's heads) by epoch."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    heads = logged_heads(rows)
    figure = Figure(figsize=(10, 7 if not heads else 9.5), dpi=80)
    FigureCanvasAgg(figure)
    grid = figure.subplots(3 if heads else 2, 2, squeeze=False)
    panels = list(PANELS) + ([("fusion network's head losses (train)", heads, "cross-entropy")] if heads else [])
    epochs = [int(row["epoch"]) for row in rows]
    for axes, (name, columns, label) in zip(grid.flat, panels):
        for column in columns:
            found, values = _series(rows, column)
            if found:
                axes.plot(found, values, marker="." if len(found) < 30 else None,
                          label=column.removeprefix("loss_"))
        axes.set_title(name, fontsize=10)
        epoch_axis(axes, epochs)
        value_axis(axes, name, label, _series(rows, columns[0])[1])
        if len(columns) > 1:
            axes.legend(fontsize=7)
    for axes in list(grid.flat)[len(panels):]:
        axes.set_visible(False)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    return figure


def curves_png(rows: Sequence[dict], title: str) -> bytes:
    """The curves as PNG bytes."""
    buffer = io.BytesIO()
    curves_figure(rows, title).savefig(buffer, format="png")
    return buffer.getvalue()


def write_event_files(rows: Sequence[dict], folder: Path) -> bool:
    """TensorBoard event files of ``rows`` in ``folder``, replacing the earlier ones; False when
    the tensorboard package is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return False
    staging = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:8]}"
    try:
        writer = SummaryWriter(log_dir=str(staging))
        for row in rows:
            for tag, column in scalar_tags(rows).items():
                if row.get(column) not in (None, ""):
                    writer.add_scalar(tag, float(row[column]), int(row["epoch"]))
        writer.close()
        folder.mkdir(parents=True, exist_ok=True)
        old = [p for p in folder.iterdir() if "tfevents" in p.name]
        for path in staging.iterdir():
            os.replace(path, folder / path.name)
        for path in old:
            path.unlink(missing_ok=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True


def write_curves(rows: Sequence[dict], ckpt_dir: str | Path, prefix: str) -> bool:
    """Rewrite the run's PNG and event files from its log rows; whether the event files were written."""
    write_bytes_atomic(curves_path(ckpt_dir, prefix), curves_png(rows, prefix), make_parents=True)
    return write_event_files(rows, tensorboard_dir(ckpt_dir, prefix))


MIN_INTERVAL = 30.0   # seconds between drawings while a run goes on: the demo's whole pipeline doubled without it


class CurveWriter:
    """A run's curves, redrawn in a background thread after an epoch (``update``; at most every
    ``MIN_INTERVAL`` seconds) and once more, waited for, at the end (``close``). A drawing that
    fails (a full disk) is told once and never stops the training: the CSV log and the
    checkpoints are what matter."""

    def __init__(self, ckpt_dir: str | Path, prefix: str, log: Callable[[str], None]):
        self.ckpt_dir, self.prefix, self.log = ckpt_dir, prefix, log
        self._rows: list[dict] | None = None
        self._lock, self._wake = threading.Lock(), threading.Event()
        self._closing, self._told, self._drawn_at = False, set(), time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"curves {prefix}", daemon=True)
        self._thread.start()

    def update(self, rows: Sequence[dict]) -> None:
        with self._lock:
            self._rows = [dict(row) for row in rows]
        if time.monotonic() - self._drawn_at >= MIN_INTERVAL:
            self._wake.set()

    def close(self) -> None:
        self._closing = True
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                rows, self._rows = self._rows, None
            if rows:
                self._draw(rows)
            if self._closing and self._rows is None:
                return

    def _draw(self, rows: list[dict]) -> None:
        self._drawn_at = time.monotonic()
        try:
            if not write_curves(rows, self.ckpt_dir, self.prefix):
                # once per process, not once per model of a -desc list
                notice_once(f"notice: tensorboard is not installed, so the training curves are only drawn as "
                            f"<model>{CURVES_SUFFIX} in {self.ckpt_dir} (pip install -r requirements-extra.txt)",
                            self.log)
        except (OSError, ValueError, RuntimeError) as error:
            self._tell(f"warning: the training curves could not be written ({error}); the run goes on")

    def _tell(self, line: str) -> None:
        if line not in self._told:
            self._told.add(line)
            self.log(line)
