"""Where the real sample data that tests and benchmarks read lives (never shipped with the project)."""
from __future__ import annotations

import os
from pathlib import Path


def shared_dir() -> Path:
    """The real sample data tests and benchmarks read (README, Tests): $IMDAR_SHARED, else
    ../shared beside the checkout. The project never ships that data (its licences forbid it)."""
    return Path(os.environ.get("IMDAR_SHARED", Path(__file__).resolve().parents[2] / "shared"))
