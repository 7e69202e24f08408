"""Every default is stated once: train.py's and test.py's options take theirs from TrainConfig and
TestConfig, and no other line of the project writes one of those values down for the same setting
(as a parameter default, a dict entry, a getattr fallback or an option's default)."""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
from conftest import load_script

from models import config as cfg   # not its names: pytest would take TestConfig for a test class

REPO = Path(__file__).resolve().parents[1]
SOURCES = [p for p in REPO.rglob("*.py") if p.parts[len(REPO.parts)] not in ("tests", "benchmarks", ".git", "build")]


@pytest.mark.parametrize("script,config", [("train", cfg.TrainConfig), ("test", cfg.TestConfig)])
def test_the_parsers_are_built_from_the_configs(script, config):
    parser = load_script(script).get_args_parser()
    dests = {a.dest for a in parser._actions if a.dest != "help"}
    assert dests == {f.name for f in dataclasses.fields(config)}           # one option per field
    assert {d: parser.get_default(d) for d in dests} == cfg.defaults(config)   # with the field's default


def literal(node: ast.AST):
    """The value of a constant expression (numbers with a sign too), else a marker that equals nothing."""
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return NOT_LITERAL


NOT_LITERAL = object()


def option_dest(call: ast.Call) -> str | None:
    """The destination of an add_argument("--name-x", ...) call: name_x (or its dest=)."""
    for kw in call.keywords:
        if kw.arg == "dest":
            return literal(kw.value)
    flags = [literal(a) for a in call.args if isinstance(literal(a), str)]
    long = [f for f in flags if f.startswith("--")] or flags
    return long[0].lstrip("-").replace("-", "_") if long else None


def stated_defaults(tree: ast.AST):
    """(setting name, value, line) for every default written down in a module."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            positional = args.posonlyargs + args.args
            for arg, default in zip(positional[len(positional) - len(args.defaults):], args.defaults):
                yield arg.arg, literal(default), default.lineno
            for arg, default in zip(args.kwonlyargs, args.kw_defaults):
                if default is not None:
                    yield arg.arg, literal(default), default.lineno
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            yield node.target.id, literal(node.value), node.lineno
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if key is not None and isinstance(literal(key), str):
                    yield literal(key), literal(value), value.lineno
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name == "getattr" and len(node.args) == 3:
                yield literal(node.args[1]), literal(node.args[2]), node.lineno
            elif name == "add_argument":
                for kw in node.keywords:
                    if kw.arg == "default":
                        yield option_dest(node), literal(kw.value), node.lineno
            else:
                for kw in node.keywords:
                    if kw.arg:
                        yield kw.arg, literal(kw.value), node.lineno


def where_stated(name: str, value) -> list[str]:
    found = []
    for path in SOURCES:
        for setting, stated, line in stated_defaults(ast.parse(path.read_text())):
            if setting == name and stated is not NOT_LITERAL and type(stated) is type(value) and stated == value:
                found.append(f"{path.relative_to(REPO)}:{line}")
    return found


CONFIG_DEFAULTS = sorted({(f.name, f.default) for c in (cfg.TrainConfig, cfg.TestConfig) for f in dataclasses.fields(c)
                          if f.default is not dataclasses.MISSING and f.default not in (None, False)},
                         key=str)


@pytest.mark.parametrize("name,value", CONFIG_DEFAULTS, ids=lambda v: str(v))
def test_each_default_is_stated_in_one_place(name, value):
    """Written in the config's field, or (a fact of its own module, such as DEFAULT_ARCH) named there."""
    field = config_field(name)
    in_config = [f"models/config.py:{field.lineno}"] if literal(field.value) is not NOT_LITERAL else []
    assert where_stated(name, value) == in_config


def config_field(name: str) -> ast.AnnAssign:
    tree = ast.parse((REPO / "models/config.py").read_text())
    return next(n for n in ast.walk(tree) if isinstance(n, ast.AnnAssign) and n.target.id == name)


def test_the_scan_sees_a_default_written_twice(tmp_path):
    """The check finds what it is meant to find: a second epochs=50 in another module."""
    code = 'def train(epochs: int = 50): ...\nparser.add_argument("--epochs", type=int, default=50)\n' \
           'x = getattr(args, "epochs", 50)\nd = {"epochs": 50}\n'
    found = [(n, v) for n, v, _ in stated_defaults(ast.parse(code)) if n == "epochs"]
    assert found == [("epochs", 50)] * 4


def test_presets_name_only_settings_that_exist():
    known = set(cfg.preset_settings("release"))
    for name, values in cfg.PRESETS.items():
        assert set(values) <= known, name
    assert cfg.preset_settings("release")["epochs"] == cfg.TrainConfig().epochs
    assert cfg.preset_settings(cfg.DEMO_PRESET)["epochs"] != cfg.TrainConfig().epochs


def test_preset_cpu_gives_the_demo_recipe_and_flags_given_win(own_root, tmp_path):
    import test as test_script
    import train
    from cli.options import parse

    cpu = cfg.PRESETS["cpu"]
    base = ["-d", "ucla", "-desc", "GD", "-despth", str(own_root), "-ckpt", str(tmp_path), "--preset", "cpu"]
    args = parse(train.get_args_parser(), base)
    assert {k: getattr(args, k) for k in cpu if hasattr(args, k)} == {k: v for k, v in cpu.items() if k != "epoch"}
    assert parse(train.get_args_parser(), [*base, "--epochs", "3", "--lr", "1e-4"]).epochs == 3   # given: kept
    assert parse(train.get_args_parser(), base[:-2]).epochs == cfg.TrainConfig().epochs          # no preset
    tested = parse(test_script.get_args_parser(), ["-d", "ucla", "--preset", "cpu"])
    assert (tested.epoch, tested.gpu, tested.batch_size) == (cpu["epoch"], cpu["gpu"], cpu["batch_size"])
    # the recipe learns on 32-px images (its img_size agrees with the folders)
    assert train.main(parse(train.get_args_parser(), [*base, "--epochs", "4", "--workers", "0",
                                                      "--no-progress"])) == 0
    rows = (tmp_path / "ucla_GD_log.csv").read_text().splitlines()[1:]
    accuracies = [float(row.split(",")[3]) for row in rows]
    assert accuracies[-1] > max(0.3, accuracies[0])   # 10 classes: chance is 0.1


def test_pipeline_preset_cpu_without_the_demo_takes_the_same_settings():
    import pipeline

    args = pipeline.resolve(pipeline.get_args_parser().parse_args(["-d", "ntu60", "--preset", "cpu"]))
    demo = pipeline.resolve(pipeline.get_args_parser().parse_args(["--demo"]))
    assert {k: getattr(args, k) for k in pipeline.PRESET_OPTIONS} == {k: getattr(demo, k)
                                                                      for k in pipeline.PRESET_OPTIONS}
    assert args.epochs == cfg.PRESETS["cpu"]["epochs"] and not args.demo
