"""A run's CSV log (one row per epoch, rewritten whole so a resumed run has no duplicate epochs), the
line each epoch prints, and how a training ended (``Ending``: best and last epoch, on what split
the best was chosen, files, time and rate; the table of a ``-desc`` list)."""
from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from common.atomic import write_text_atomic
from descriptors.names import FUSION, is_fused
from .names import BEST_SUFFIX, CURVES_SUFFIX, LAST_SUFFIX, LOG_SUFFIX, fused_outputs

HEAD_PREFIX = "loss_"
BASE_FIELDS = ("epoch", "lr", "train_loss", "train_acc", "val_acc", "test_loss", "test_acc", "best_acc",
               "seconds", "images_per_s")


def head_fields(name: str) -> tuple[str, ...]:
    """A fusion network's training losses by head (models/recipe.py sums them): Fuse5's eight."""
    return tuple(f"{HEAD_PREFIX}{head}" for head in fused_outputs(name))


HEAD_FIELDS = head_fields(FUSION)
LOG_FIELDS = (*BASE_FIELDS, *HEAD_FIELDS)   # single models' logs keep Fuse5's (empty) head columns, as before


def log_fields(name: str) -> tuple[str, ...]:
    """The log's columns for a model: another set's fusion network has its own heads' columns."""
    return (*BASE_FIELDS, *head_fields(name)) if is_fused(name) else LOG_FIELDS


def last_logged_epoch(path: str | Path) -> int | None:
    """The last epoch a run's CSV log holds (None without a readable log)."""
    try:
        rows = list(csv.DictReader(io.StringIO(Path(path).read_text())))
        return int(rows[-1]["epoch"]) if rows else None
    except (OSError, ValueError, KeyError):
        return None


def write_csv_log(path: str | Path, rows: list[dict], fields: Sequence[str] = LOG_FIELDS) -> None:
    """Rewrite the whole (small) CSV log atomically, so a resumed run's log has no duplicate epochs."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue(), newline="")   # csv writes its own \r\n


def rate_text(images_per_s: float) -> str:
    """'35 img/s'; under one image a second (a full-width network on the CPU) '4.2 s/image', where
    '0 img/s' would say nothing."""
    if images_per_s >= 1 or images_per_s <= 0:
        return f"{images_per_s:.0f} img/s"
    return f"{1 / images_per_s:.1f} s/image"


def duration_text(seconds: float) -> str:
    """'12.3 s', '3 min 12 s', '2 h 05 min'."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def format_epoch_line(row: dict) -> str:
    val = f" val {row['val_acc']:.4f}" if row.get("val_acc") not in (None, "") else ""
    return (f"epoch {row['epoch']:3d} lr {row['lr']:.3g} train loss {row['train_loss']:.4f} "
            f"acc {row['train_acc']:.4f}{val} test loss {row['test_loss']:.4f} acc {row['test_acc']:.4f} "
            f"best {row['best_acc']:.4f} ({row['seconds']:.0f} s, {rate_text(row['images_per_s'])})")


HELD_OUT, TEST = "held-out", "test"   # the split a run's best epoch is chosen on


@dataclass
class Ending:
    """How one training ended, as train.py says it at the end (CTR-GCN and MMAction2 print the
    same): the best epoch and its accuracy on the split that chose it, the last epoch, the files,
    wall time and images/s. A run already finished is summarised from its checkpoint's log rows."""
    prefix: str
    status: str                  # fresh | resume | finished (already finished: nothing trained now)
    history: list[dict]          # every epoch's log row, earlier runs' included
    best_acc: float              # the score that chose the best epoch
    val_fraction: float          # 0: chosen on the test split, as released
    trained_from: int | None     # the first epoch this run trained (None: it trained none)
    seconds: float = 0.0         # wall time of this run
    files: list[Path] = field(default_factory=list)

    @property
    def chosen_on(self) -> str:
        return HELD_OUT if self.val_fraction else TEST

    @property
    def best(self) -> dict | None:
        """The best epoch's row: the first epoch that reached the best score (later ties do not replace it)."""
        column = "val_acc" if self.val_fraction else "test_acc"
        return next((row for row in self.history if _number(row.get(column)) >= self.best_acc), None)

    @property
    def last(self) -> dict | None:
        return self.history[-1] if self.history else None

    @property
    def trained(self) -> list[dict]:
        """The rows of the epochs this run trained (all of them for a finished run: what its time was spent on)."""
        if self.trained_from is None:
            return self.history
        return [row for row in self.history if int(row["epoch"]) >= self.trained_from]

    def lines(self) -> list[str]:
        """The summary: a header, best and last epoch, time and rate, the files."""
        best, last = self.best, self.last
        out = [self._header()]
        if best is None or last is None:
            out.append(f"  best accuracy {self.best_acc:.2%} (its checkpoint keeps no per-epoch log)")
        else:
            out.append(f"  best epoch {best['epoch']}: {self._best_text(best)} ({self._chosen_text()})")
            out.append(f"  last epoch {last['epoch']}: test accuracy {float(last['test_acc']):.2%}")
        out.append(f"  time: {self._time_text()}")
        out.append("  files:")
        width = max((len(str(path)) for path in self.files), default=0)
        return out + [f"    {str(path):{width}s}{_role(path, self.prefix, best)}".rstrip() for path in self.files]

    def _header(self) -> str:
        last = self.last["epoch"] if self.last else "?"
        if self.trained_from is None:
            return f"{self.prefix}: already finished at epoch {last}; nothing trained now (from its checkpoint):"
        span = f"epoch {last}" if self.trained_from == last else f"epochs {self.trained_from}-{last}"
        return f"{self.prefix}: finished at epoch {last} ({span} trained now{', resumed' * (self.status == 'resume')}):"

    def _best_text(self, best: dict) -> str:
        test = f"test accuracy {float(best['test_acc']):.2%}"
        return f"held-out accuracy {self.best_acc:.2%}, {test}" if self.val_fraction else test

    def _chosen_text(self) -> str:
        if self.val_fraction:
            return f"chosen on the {self.val_fraction:.0%} of train held out by --val-fraction {self.val_fraction:g}"
        return "chosen on the test split, as the release does; --val-fraction chooses on held-out training samples"

    def _time_text(self) -> str:
        rows = self.trained
        train_s = sum(_number(row.get("seconds")) for row in rows)
        images = sum(_number(row.get("images_per_s")) * _number(row.get("seconds")) for row in rows)
        rate = f", {rate_text(images / train_s)}" if train_s > 0 else ""
        if self.trained_from is None:
            return f"training took {duration_text(train_s)} in earlier runs{rate}" if rows else "not recorded"
        return f"{duration_text(self.seconds)} (training {duration_text(train_s)}{rate})"

    def row(self) -> list[str]:
        """This run's row of the -desc list's table (ENDING_COLUMNS)."""
        best, last = self.best, self.last
        how = "already finished" if self.trained_from is None else "resumed" if self.status == "resume" else "trained"
        return [self.prefix, how, str(best["epoch"]) if best else "?", f"{self.best_acc:.2%}", self.chosen_on,
                str(last["epoch"]) if last else "?", f"{float(last['test_acc']):.2%}" if last else "?",
                duration_text(self.seconds) if self.trained_from is not None else "-"]


ENDING_COLUMNS = ("model", "how it ended", "best epoch", "best acc", "chosen on", "last epoch", "last test acc",
                  "time")


def ending_table(rows: Sequence[list[str]]) -> str:
    """The -desc list's table: one row per model (Ending.row, or a failed model's own row)."""
    rows = [list(ENDING_COLUMNS), *rows]
    widths = [max(len(row[k]) if k < len(row) else 0 for row in rows) for k in range(len(ENDING_COLUMNS))]
    return "\n".join("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in rows)


def _number(value) -> float:
    """A log cell as a number; 0 for an empty or absent one (a row of an older checkpoint)."""
    return float(value) if value not in (None, "") else 0.0


def _role(path: Path, prefix: str, best: dict | None) -> str:
    """What a run file is, after its path."""
    name = path.name
    if name == f"{prefix}{BEST_SUFFIX}":
        epoch = f" ({best['epoch']})" if best else ""
        return f"  the best epoch{epoch}: test.py and predict.py use it"
    if name == f"{prefix}{LAST_SUFFIX}":
        return "  the last epoch with the optimiser's state: a rerun continues from it"
    if name == f"{prefix}{LOG_SUFFIX}":
        return "  one row per epoch"
    if name == f"{prefix}{CURVES_SUFFIX}":
        return "  training curves"
    if name.startswith(f"{prefix}_") and name.endswith("_epoch.tar"):
        return f"  epoch {name[len(prefix) + 1:-len('_epoch.tar')]}"
    return "  TensorBoard event files" if path.is_dir() else ""
