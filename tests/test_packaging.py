"""The project installs as a package (pip install . / -e .): its packages and their data files
import from any folder, without the checkout on the path, and nothing else is installed."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

from conftest import REPO

PACKAGES = {"common", "skeletons", "descriptors", "models", "cli", "demo"}


def test_pip_install_gives_the_packages_and_the_custom_data_example_runs_from_any_folder(tmp_path):
    site, elsewhere, source = tmp_path / "site", tmp_path / "elsewhere", tmp_path / "source"
    elsewhere.mkdir()
    source.mkdir()
    # a copy of what a source distribution holds: the build writes build/ and *.egg-info beside it
    for name in ("pyproject.toml", "requirements.txt", "requirements-extra.txt", "requirements-video-full.txt",
                 "README.md", *PACKAGES):
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy
        copy(REPO / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                            if (REPO / name).is_dir() else {}))
    built = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                            "--target", str(site), str(source)], capture_output=True, text=True, timeout=300,
                           env={**os.environ, "PIP_CONSTRAINT": ""})   # dependencies: requirements.txt's
    assert built.returncode == 0, built.stderr
    installed = {p.name for p in site.iterdir() if not p.name.endswith(".dist-info")}
    assert installed == PACKAGES   # no top-level scripts (train, test, ...) shadowing other modules
    assert {p.name for p in (site / "skeletons" / "resources" / "layouts").iterdir()} >= {"coco17.json", "ntu25.json"}
    assert {p.name for p in (site / "skeletons" / "resources" / "pose_maps").iterdir()} >= {"blazepose_ntu25.json"}
    metadata = next(site.glob("*.dist-info")).joinpath("METADATA").read_text()
    assert 'Requires-Dist: mediapipe==0.10.14; extra == "video"' in metadata   # pip install -e ".[video]"
    example = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "CUSTOM_DATA.md").read_text(), flags=re.S)[0]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(site)}
    run = subprocess.run([sys.executable, "-c", example], cwd=elsewhere, capture_output=True, text=True, env=env,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "60 samples, 3 classes: sit, walk, wave\n"
    names = subprocess.run([sys.executable, "-c", "from skeletons.datasets import class_names\n"
                            "print(class_names('ntu60')[0])"], cwd=elsewhere, capture_output=True, text=True,
                           env=env, timeout=300)
    assert names.stdout == "drink water\n", names.stderr   # the class names ship with the package
