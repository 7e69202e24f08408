"""The house rules of docs/ARCHITECTURE.md, checked on the source: packages import only their own
floor or floors below (common < skeletons < descriptors < models < cli, demo), no import circles,
no project import hidden inside a package function, no function over 60 lines outside benchmarks/."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FLOORS = {"common": 0, "skeletons": 1, "descriptors": 2, "models": 3, "cli": 4, "demo": 4}
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for floor in FLOORS for p in (REPO / floor).rglob("*.py")}


def imported(module: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The project modules an import statement names (relative imports resolved)."""
    if isinstance(node, ast.ImportFrom):
        base = module.split(".")
        if MODULES[module].name != "__init__.py":
            base = base[:-1]
        if node.level:
            target = ".".join(base[:len(base) - node.level + 1] + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        names = [target] + [f"{target}.{alias.name}" for alias in node.names]
    else:
        names = [alias.name for alias in node.names]
    found = set()
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)
    return found


def walk(tree: ast.AST):
    """(node, inside a function) for every node."""
    stack = [(tree, False)]
    while stack:
        node, inside = stack.pop()
        yield node, inside
        inner = inside or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        stack.extend((child, inner) for child in ast.iter_child_nodes(node))


def import_graph() -> tuple[dict[str, set[str]], list[str]]:
    """(module -> modules it imports, 'file:line' of project imports made inside functions)."""
    graph, late = {}, []
    for module, path in MODULES.items():
        graph[module] = set()
        for node, inside in walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                targets = imported(module, node)
                graph[module] |= targets
                if inside and targets:
                    late.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return graph, late


def floor(module: str) -> int:
    return FLOORS[module.split(".")[0]]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Imports of a higher floor, or of another package of the same floor."""
    return [f"{m} -> {t}" for m, targets in graph.items() for t in sorted(targets)
            if floor(t) > floor(m) or (floor(t) == floor(m) and m.split(".")[0] != t.split(".")[0])]


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path of modules, or None."""
    state: dict[str, int] = {}   # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return path + [module, target]
            if target not in state and (circle := visit(target, path + [module])):
                return circle
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (circle := visit(module, [])):
            return circle
    return None


def test_packages_import_only_their_floor_and_below():
    assert upward_imports(import_graph()[0]) == []


def test_no_import_circles():
    circle = find_circle(import_graph()[0])
    assert circle is None, " -> ".join(circle)


# Imports kept inside a function on purpose, each for a start-up cost its comment states.
LATE_IMPORTS_ALLOWED = {"descriptors/extract.py"}   # torch, only for the torch engine


def test_no_project_import_inside_package_functions():
    _, late = import_graph()
    hidden = [where for where in late if where.split(":")[0] not in LATE_IMPORTS_ALLOWED]
    assert not hidden, hidden


def test_no_function_over_60_lines():
    long = []
    for path in [*MODULES.values(), *REPO.glob("*.py")]:
        for node, _ in walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def test_the_checks_see_a_planted_bad_import():
    """The walks find what they are meant to find: an upward import and a circle planted in a copy."""
    real = import_graph()[0]
    graph = {m: set(t) for m, t in real.items()}
    assert "skeletons.layouts" in graph["skeletons.datasets"]
    graph["skeletons.layouts"].add("models.networks")
    assert set(upward_imports(graph)) - set(upward_imports(real)) == {"skeletons.layouts -> models.networks"}
    graph = {m: set(t) for m, t in real.items()}   # the circle alone (with the upward edge there are others)
    graph["skeletons.layouts"].add("skeletons.datasets")
    circle = find_circle(graph)
    assert circle is not None and "skeletons.layouts" in circle and "skeletons.datasets" in circle


# What starts without torch: the converters' and extraction's front ends (their options come from
# cli/options.py, which takes its defaults from models/config.py), the settings and the pure metrics,
# the score files and ensembles, and the predictor of exported networks (predict.py --onnx runs
# where torch is not installed; tests/test_export.py runs it so).
TORCH_FREE = ("txt2npy", "skels2desc_ntu", "skels2desc_ucla", "skels2desc_custom", "cli.options", "models.config",
              "models.evaluation", "models.names", "models.scores", "models.ensemble", "ensemble", "export", "predict",
              "models.onnx_predict", "models.prediction", "models.curves", "skeletons.formats")


def test_option_front_ends_start_without_torch():
    code = "import sys\n" + "".join(f"import {m}\n" for m in TORCH_FREE) + "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", "importing one of these pulled in torch (about 1 s of start-up)"
