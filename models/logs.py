"""A run's CSV log (one row per epoch, rewritten whole so a resumed run has no duplicate epochs) and
the line each epoch prints."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from common.atomic import write_text_atomic
from .names import FUSE5_OUTPUTS

# Fuse5's eight training losses (models/recipe.py sums them), empty for a single-descriptor run.
HEAD_FIELDS = tuple(f"loss_{head}" for head in FUSE5_OUTPUTS)
LOG_FIELDS = ("epoch", "lr", "train_loss", "train_acc", "val_acc", "test_loss", "test_acc", "best_acc",
              "seconds", "images_per_s", *HEAD_FIELDS)


def last_logged_epoch(path: str | Path) -> int | None:
    """The last epoch a run's CSV log holds (None without a readable log)."""
    try:
        rows = list(csv.DictReader(io.StringIO(Path(path).read_text())))
        return int(rows[-1]["epoch"]) if rows else None
    except (OSError, ValueError, KeyError):
        return None


def write_csv_log(path: str | Path, rows: list[dict]) -> None:
    """Rewrite the whole (small) CSV log atomically, so a resumed run's log has no duplicate epochs."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, LOG_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue(), newline="")   # csv writes its own \r\n


def format_epoch_line(row: dict) -> str:
    val = f" val {row['val_acc']:.4f}" if row.get("val_acc") not in (None, "") else ""
    return (f"epoch {row['epoch']:3d} lr {row['lr']:.3g} train loss {row['train_loss']:.4f} "
            f"acc {row['train_acc']:.4f}{val} test loss {row['test_loss']:.4f} acc {row['test_acc']:.4f} "
            f"best {row['best_acc']:.4f} ({row['seconds']:.0f} s, {row['images_per_s']:.0f} img/s)")
