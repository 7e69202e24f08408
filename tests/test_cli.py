"""One vocabulary across the scripts: every shared option has the same flags, default and help in
every script's --help, and the README's single-dash flags parse in the double-dash form too."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import load_script

from cli import options as cli

REPO = Path(__file__).resolve().parents[1]


def parsers() -> dict[str, argparse.ArgumentParser]:
    from cli.skels2desc import build_parser
    from skeletons.formats import FILE_DATASETS
    found = {name: load_script(name).get_args_parser()
             for name in ("txt2npy", "train", "test", "predict", "pipeline", "visualize", "ensemble", "export",
                          "video2skel")}
    found["skels2desc_ntu"] = build_parser(("ntu60", "ntu120"))
    found["skels2desc_ucla"] = build_parser(("ucla",))
    found["skels2desc_custom"] = build_parser(("custom", *FILE_DATASETS))
    return found


PARSERS = parsers()
# The minimal command line of each script; options are added to it one at a time.
REQUIRED = {
    "txt2npy": ["-d", "ntu60"], "train": ["-d", "ucla", "-desc", "GD"], "test": [], "predict": ["x.json", "-d", "ucla"],
    "pipeline": [], "visualize": ["x.json"], "skels2desc_ntu": ["-d", "ntu60", "-a", "train"],
    "skels2desc_ucla": ["-a", "train"], "skels2desc_custom": ["--data", "x", "--layout", "coco17", "-a", "train"],
    "ensemble": ["x_scores.npz"], "export": ["-d", "ucla", "--out", "x"],
    "video2skel": ["videos", "--out", "x", "--layout", "ntu25"],
}
NO_SHARED_OPTIONS = {"ensemble"}   # it reads score files only: no dataset, folder or device option
# Where a script gives a shared option another default, and why.
OWN_DEFAULTS = {
    # pipeline.py --demo changes these defaults; None lets it tell the demo's from the release's.
    ("pipeline", name) for name in ("gpu", "despth", "ckpt", "img_size", "epoch", "txt")
} | {("train", "mode"),           # train.py reads the mode from the folders' records; --mode only checks it
     ("train", "img_size"),       # likewise the size; it chooses it only with --source skeletons
     ("skels2desc_ucla", "dataset"), ("skels2desc_custom", "dataset"),   # their only dataset, so -d is optional
     ("video2skel", "processes")}   # two pose graphs at once by default (each holds its own)
VALUES = {int: "3", None: "x"}


def shared_actions():
    """(script, option name, action) for every shared option of every script."""
    for script, parser in PARSERS.items():
        for action in parser._actions:
            names = [n for n, (flags, _) in cli.OPTIONS.items() if set(action.option_strings) == set(flags)]
            # -workers has two meanings (processes, or data loaders): the one whose help it has
            named = [n for n in names if cli.OPTIONS[n][1]["help"] == action.help] or names[:1]
            for name in named:
                yield script, name, action


def test_every_script_is_covered():
    assert set(PARSERS) == set(REQUIRED)
    scripts = {script for script, _, _ in shared_actions()}
    assert scripts == set(PARSERS) - NO_SHARED_OPTIONS


@pytest.mark.parametrize("script,name,action", list(shared_actions()),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_shared_options_have_one_name_default_and_help(script, name, action):
    flags, expected = cli.OPTIONS[name]
    if (script, name) in OWN_DEFAULTS:
        return
    unset = False if expected.get("action") == "store_true" else None
    assert action.default == expected.get("default", unset), (script, name)
    assert action.help == expected["help"], (script, name)
    if "choices" in expected and action.choices is not None:
        assert set(action.choices) <= set(expected["choices"])


@pytest.mark.parametrize("script,name,action", [a for a in shared_actions() if len(a[2].option_strings) == 2],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_single_and_double_dash_forms_parse_alike(script, name, action):
    parser = PARSERS[script]
    value = list(action.choices)[-1] if action.choices else VALUES.get(action.type, "x")
    required = list(REQUIRED[script])
    if action.option_strings[0] in required:   # drop the required option itself; it is the one tested
        i = required.index(action.option_strings[0])
        del required[i:i + 2]
    single, double = sorted(action.option_strings, key=len)
    parsed = [vars(parser.parse_args([*required, flag, value])) for flag in (single, double)]
    assert parsed[0] == parsed[1] and str(parsed[0][action.dest]) == value


def test_help_shows_defaults_and_cites_only_the_repository():
    for script, parser in PARSERS.items():
        text = parser.format_help()
        assert "SPEC" not in text and "../shared" not in text, script
    assert "(default: 112)" in PARSERS["skels2desc_ntu"].format_help()
    assert "(default: 50)" in PARSERS["train"].format_help()


def test_skels2desc_ucla_needs_no_dataset_and_txt2npy_takes_double_dash_workers(tmp_path):
    assert PARSERS["skels2desc_ucla"].parse_args(["-a", "test"]).dataset == "ucla"
    result = subprocess.run([sys.executable, str(REPO / "txt2npy.py"), "-d", "ntu60", "--workers", "2",
                             "--txt", str(tmp_path / "none"), "--no-progress"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and f"{tmp_path / 'none'}: folder of .skeleton files does not exist" in result.stderr


def test_missing_paths_are_named_absolute_from_another_folder(tmp_path):
    """Default paths are relative to the current folder; the errors say where they looked."""
    result = subprocess.run([sys.executable, str(REPO / "test.py"), "-d", "ucla", "-gpu", "-1"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and str(tmp_path / "checkpoints" / "ucla_GD_epoch_best.tar") in result.stderr
    result = subprocess.run([sys.executable, str(REPO / "skels2desc_ucla.py"), "-a", "train"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and f"{tmp_path / 'data' / 'ucla'}: sequence folder does not exist" in result.stderr
