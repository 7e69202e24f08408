"""The README's quick start is two commands, and CI runs exactly its test command."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def quick_start_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def ci_commands() -> list[str]:
    lines = (REPO / ".ci" / "run").read_text().splitlines()
    keep = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    # Shell set-up lines are not commands of the project.
    return [ln for ln in keep if not ln.startswith(("set ", "cd ", "export "))]


def test_quick_start_is_two_commands_the_demo_and_the_tests():
    demo, tests = quick_start_commands()
    assert demo == "pip install -r requirements.txt && python pipeline.py --demo"
    assert "python -m pytest" in tests and "requirements-dev.txt" in tests


def test_ci_runs_only_the_readmes_test_command():
    assert ci_commands() == [quick_start_commands()[1]]


def test_dev_requirements_include_the_runtime_ones():
    lines = (REPO / "requirements-dev.txt").read_text().splitlines()
    assert "-r requirements.txt" in lines
