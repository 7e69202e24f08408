"""Shared test fixtures: where the real samples live, and skipping when they are absent."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Tiny test networks run as fast on one thread, and one thread never spins against other
# processes sharing the CPU (OpenMP oversubscription made training 10-50x slower on 2 busy
# cores). Set before torch is imported; subprocesses (CLI tests) inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common.shared import shared_dir  # noqa: E402  (after the path and the thread count)

SHARED = shared_dir()   # ../shared beside the checkout (CI has it); IMDAR_SHARED overrides


def load_script(name: str):
    """Import a top-level script by path ("test" is also a standard-library package name)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"{name}_script", REPO / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real sample data not found at {path} (set IMDAR_SHARED to a folder holding data/ and "
                    f"reference/; README, Tests)")
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


@pytest.fixture(scope="session")
def demo_descriptors(demo_raw, tmp_path_factory) -> Path:
    """Descriptor folders (paper mode, 32 x 32 images) of the demo data: ntu60 csub train/test and
    ucla train/test, made with txt2npy's and skels2desc's functions. Returns the descriptor root
    (<root>/ntu60_GD_train_csub/..., <root>/ucla_GD_train/...)."""
    from descriptors.extract import extract_split
    from skeletons.convert import convert_folder

    raw = Path(demo_raw["ntu_dir"]).parents[1] if isinstance(demo_raw, dict) else Path(demo_raw)
    work = tmp_path_factory.mktemp("demo_descriptors")
    npy = work / "npy60skel"
    convert_folder(raw / "ntu" / "txt60skel", npy, "ntu60", workers=1, progress=False)
    root = work / "descriptors"
    for dataset, protocol, seq_dir in (("ntu60", "csub", npy), ("ucla", None, raw / "ucla")):
        for part in ("train", "test"):
            summary = extract_split(dataset, protocol, part, seq_dir, root, workers=1, img_size=32, progress=False)
            assert summary.ok and summary.total, summary.lines()
    return root


@pytest.fixture(scope="session")
def demo_raw(tmp_path_factory) -> Path:
    """Synthetic demo data (demo.generate, size "small", seed 0): <folder>/ntu/txt60skel/*.skeleton
    (10 NTU-60 actions) and <folder>/ucla/*.json (the 10 NW-UCLA actions); every protocol split
    holds every class. Returns the folder."""
    from demo.generate import generate_demo

    folder = tmp_path_factory.mktemp("demo_raw")
    generate_demo(folder, seed=0, size="small")
    return folder


# The README's quick-start demo at test size: its commands (tests/test_readme.py) and every test
# that needs trained demo models use this one run.
SMALL_DEMO = ["--demo-size", "small", "--epochs", "2"]


@pytest.fixture(scope="session")
def small_demo_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """``python pipeline.py --demo --demo-size small --epochs 2`` run once in an empty folder:
    (that folder, the run). Its data/demo holds the small demo data, its npy, descriptor folders
    (32 px) and the six NTU-60 csub models (width 1/16) with their results. Read it only: a test
    that writes or changes anything works on ``copy_small_demo``'s copy."""
    work = tmp_path_factory.mktemp("small_demo")
    proc = subprocess.run([sys.executable, str(REPO / "pipeline.py"), "--demo", *SMALL_DEMO], cwd=work,
                          capture_output=True, text=True, timeout=600)
    return work, proc


def copy_small_demo(run: tuple[Path, subprocess.CompletedProcess], folder: Path) -> Path:
    """``small_demo_run``'s data/demo copied to ``folder``/data/demo (times kept, so every step of the
    same command finds its work done); asserts the run succeeded. Returns ``folder``."""
    import shutil
    work, proc = run
    assert proc.returncode == 0, proc.stderr[-3000:]
    shutil.copytree(work / "data" / "demo", folder / "data" / "demo", symlinks=True)
    return folder


def visible(folder: Path) -> list[str]:
    """Sorted names of the files in ``folder`` that are not hidden (the run and split locks are), and
    are not training curves (<prefix>_curves.png, tensorboard/: tests/test_curves.py covers them)."""
    return sorted(p.name for p in Path(folder).iterdir()
                  if not p.name.startswith(".") and not p.name.endswith("_curves.png") and p.name != "tensorboard")


def synthetic_ucla(root: Path) -> Path:
    """NW-UCLA train and test descriptor folders of 32-pixel class-dependent images (2 per class)."""
    from descriptors.dataset import write_synthetic_split

    for part in ("train", "test"):
        write_synthetic_split(root, "ucla", None, part, per_class=2, num_classes=10, size=32)
    return root


@pytest.fixture
def own_root(tmp_path) -> Path:
    """``synthetic_ucla`` folders a test may damage."""
    return synthetic_ucla(tmp_path / "descriptors")


@pytest.fixture
def small_disk(tmp_path):
    """small_disk(size) -> a folder on a tmpfs of that size ("256k", "1m"): a real full disk.
    Skips the test where mounting is not allowed (not root)."""
    mounted = []

    def make(size: str) -> Path:
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.decode().strip()}")
        mounted.append(folder)
        return folder

    yield make
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture(autouse=True)
def fresh_notices():
    """Each test starts as a new process would: the notices said once per process are said again."""
    from common.notices import forget_notices
    forget_notices()
    yield
