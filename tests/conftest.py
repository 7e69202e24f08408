"""Shared test fixtures: where the real samples live, and skipping when they are absent."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# ../shared beside the checkout (CI has it); IMDAR_SHARED overrides.
SHARED = Path(os.environ.get("IMDAR_SHARED", REPO.parent / "shared"))


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real sample data not found at {path} (set IMDAR_SHARED to the shared/ folder)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data: real NTU RGB+D / NW-UCLA samples, lists and metadata."""
    return _need(SHARED / "data")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """../shared/reference: the release's images, converter output and state-dict keys."""
    return _need(SHARED / "reference")


@pytest.fixture(scope="session")
def ntu_raw_dir(shared_data: Path) -> Path:
    return _need(shared_data / "ntu")


@pytest.fixture(scope="session")
def ucla_dir(shared_data: Path) -> Path:
    return _need(shared_data / "ucla" / "all_sqe")
