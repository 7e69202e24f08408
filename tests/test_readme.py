"""The README's quick start is two commands, and CI runs exactly its test command; every command
of the README and of the docs it sends readers to parses, and the unmarked ones run."""
from __future__ import annotations

import re
from pathlib import Path

from conftest import SMALL_DEMO, copy_small_demo

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


def test_quick_start_is_the_demo_and_the_tests():
    demo, *install_alternatives, tests = quick_start_commands()
    assert demo == "pip install -r requirements.txt && python pipeline.py --demo"
    assert all("pip install" in line and "pipeline.py" not in line for line in install_alternatives)
    assert "python -m pytest" in tests and "requirements-dev.txt" in tests


def test_ci_runs_only_the_readmes_test_command():
    assert ci_commands() == [quick_start_commands()[-1]]


def test_dev_requirements_include_the_runtime_ones():
    lines = (REPO / "requirements-dev.txt").read_text().splitlines()
    assert "-r requirements.txt" in lines


# ---------------------------------------------------------------------------------------------
# Every command of the README and of its docs either runs here on the demo data (small settings)
# or its block says what it needs ("# needs ..."); all of them parse with their script's current
# flags.

NEEDS = "# needs "
QUICK_START_DEMO = ["--demo"]   # pipeline.py's argv in the quick start (pinned above)

# The documents whose bash blocks are the project's commands, in reading order: the README from
# its quick start on, then the docs it sends readers to. The blocks run in this order, in one
# folder (the workflow's predict.py commands use the checkpoints the quick start's demo made).
COMMAND_DOCS = ["README.md", "docs/WORKFLOW.md", "docs/CUSTOM_DATA.md", "docs/ENSEMBLES.md", "docs/DEPLOYMENT.md",
                "docs/CHECKS.md", "docs/PERFORMANCE.md", "docs/EXTENDING.md", "docs/VIDEO.md"]
TROUBLESHOOTING_DOC = "docs/WORKFLOW.md"
# Runnable blocks (and the command lines in them) when they were all in the README: never fewer.
RUNNABLE_BLOCKS, RUNNABLE_COMMANDS = 8, 21


def doc_text(name: str) -> str:
    text = (REPO / name).read_text()
    return text.split("## Quick start", 1)[1] if name == "README.md" else text


def readme_blocks() -> list[tuple[bool, list[str]]]:
    """(runnable here, command lines) of every bash block of COMMAND_DOCS, in their order."""
    out = []
    for name in COMMAND_DOCS:
        for block in re.findall(r"```bash\n(.*?)```", doc_text(name), flags=re.S):
            lines = [ln.strip() for ln in block.splitlines() if ln.strip()]
            marked = bool(lines) and lines[0].startswith(NEEDS)
            commands = [part.strip() for ln in lines if not ln.startswith("#") for part in ln.split("&&")]
            out.append((not marked, [c for c in commands if c.startswith(("python ", "torchrun "))]))
    return out


def troubleshooting_commands() -> list[str]:
    section = (REPO / TROUBLESHOOTING_DOC).read_text().split("## Troubleshooting\n", 1)[1].split("\n## ", 1)[0]
    return [c for c in re.findall(r"`(python [^`]+)`", section) if "..." not in c]


def test_no_command_block_was_lost_in_the_docs():
    blocks = readme_blocks()
    runnable = [commands for ok, commands in blocks if ok]
    assert len(runnable) >= RUNNABLE_BLOCKS
    assert sum(len(commands) for commands in runnable) >= RUNNABLE_COMMANDS
    assert troubleshooting_commands(), f"{TROUBLESHOOTING_DOC}: no command in its Troubleshooting section"


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors of a markdown file's headings (outside code blocks)."""
    anchors, code = set(), False
    for line in text.splitlines():
        if line.startswith("```"):
            code = not code
        elif not code and re.match(r"#{1,6} ", line):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def test_readme_is_the_front_door_and_its_links_resolve():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for name in ["README.md", *COMMAND_DOCS[1:]]:
        path = REPO / name
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            file, _, anchor = target.partition("#")
            linked = (path.parent / file).resolve() if file else path
            assert linked.exists(), f"{name}: link to {target}: no such file"
            if anchor and linked.suffix == ".md":
                assert anchor in heading_anchors(linked.read_text()), f"{name}: link to {target}: no such heading"


def script_argv(command: str) -> tuple[str, list[str]]:
    """'python x.py -a b  # note [--opt X]' -> ('x', ['-a', 'b']): optional [...] parts dropped."""
    import shlex
    command = re.sub(r"\s+#.*$", "", command)
    command = re.sub(r"\[[^\]]*\]", "", command)
    words = shlex.split(command)
    script = next(i for i, w in enumerate(words) if w.endswith(".py"))
    return Path(words[script]).stem, words[script + 1:]


def test_every_readme_command_parses_with_its_script():
    from test_cli import PARSERS
    commands = [c for _, block in readme_blocks() for c in block] + troubleshooting_commands()
    assert len(commands) > 25
    for command in commands:
        if " -m pytest" in command:
            continue
        script, argv = script_argv(command)
        parser = PARSERS["skels2desc_ntu" if script == "skels2desc_ntu" else script]
        try:
            parser.parse_args(argv)
        except SystemExit:
            raise AssertionError(f"README command does not parse: {command}") from None


def test_every_unmarked_readme_command_runs_on_the_demo_data(small_demo_run, tmp_path):
    """In a folder laid out as docs/WORKFLOW.md says, with the demo's small data as the datasets.
    The quick start's demo at test size (SMALL_DEMO) ran once for the session in an empty folder
    (conftest's small_demo_run, its exit status asserted here): its data/demo is copied in at its
    turn, and the command then runs again here on it."""
    import os
    import shutil
    import subprocess
    import sys

    from demo.generate import generate_demo

    demo = tmp_path / "demo"
    generate_demo(demo, seed=0, size="small")
    work = tmp_path / "work"
    for target in ("data/ntu/txt60skel", "data/ntu/txt120skel"):
        shutil.copytree(demo / "ntu" / "txt60skel", work / target)
    shutil.copytree(demo / "ucla", work / "data" / "ucla")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    ran, seeded = [], False
    for runnable, block in readme_blocks():
        for command in block if runnable else ():
            if " -m pytest" in command:
                continue
            script, argv = script_argv(command)
            if script == "pipeline" and argv == QUICK_START_DEMO and not seeded:
                copy_small_demo(small_demo_run, work)   # asserts the fresh run exited 0
                seeded = True
            if script == "pipeline" and "--demo" in argv:
                argv += SMALL_DEMO
            result = subprocess.run([sys.executable, str(REPO / f"{script}.py"), *argv], cwd=work, env=env,
                                    capture_output=True, text=True, timeout=600)
            assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            ran.append(script)
    assert seeded   # the quick start's demo ran (fresh in small_demo_run, then here)
    assert {"pipeline", "txt2npy", "skels2desc_ntu", "skels2desc_ucla", "predict", "visualize"} <= set(ran)
    assert len(ran) >= RUNNABLE_COMMANDS - 1   # every runnable command line but the tests' own
    assert (work / "results" / "sample.png").is_file()
