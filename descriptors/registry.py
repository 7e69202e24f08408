"""The descriptors the code knows: the paper's five (``descriptors/builtin``, the release's order),
then every module of ``descriptors/extra/`` that defines ``DESCRIPTOR`` (by file name).

This is the one list of descriptors: names, defaults, folder lists, the fusion network's inputs
and the torch engine all ask it. A descriptor's identity is its name and a digest of its module's
code (``code_digest``): folder records and checkpoints keep it, so changed code makes what was made
with the old code stale (docs/EXTENDING.md).
"""
from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
import sys
from pathlib import Path
from types import ModuleType

from common.errors import cause_text
from skeletons.layouts import Layout

from .builtin import MODULES as BUILTIN_MODULES
from .base import COLOUR, Descriptor, Feature

EXTRA_DIR = Path(__file__).resolve().parent / "extra"
EXTRA_PACKAGE = f"{__package__}.extra"


def why_not(module: ModuleType, descriptors: dict[str, Descriptor], modules: dict[str, ModuleType]) -> str | None:
    """Why a module cannot join ``descriptors`` (None when it can): no DESCRIPTOR, a name already
    another module's, or parts it is made of that are not descriptors before it."""
    desc = getattr(module, "DESCRIPTOR", None)
    if not isinstance(desc, Descriptor):
        return "defines no DESCRIPTOR = Descriptor(...) (docs/EXTENDING.md)"
    if desc.name in descriptors and modules[desc.name] is not module:
        return f"its name {desc.name} is taken by {modules[desc.name].__file__}"
    if missing := [part for part in desc.made_of if part not in descriptors]:
        return f"made_of names {', '.join(missing)}, not a descriptor before it"
    return None


def _extra_modules() -> tuple[list[ModuleType], dict[str, str]]:
    """The modules of descriptors/extra/ (by file name) and, by file, why any could not be imported."""
    loaded, broken = [], {}
    for path in sorted(EXTRA_DIR.glob("*.py")) if EXTRA_DIR.is_dir() else []:
        if path.name.startswith("_"):
            continue
        try:
            loaded.append(importlib.import_module(f"{EXTRA_PACKAGE}.{path.stem}"))
        except Exception as e:   # any error of a user's file: named, never fatal to the other descriptors
            broken[str(path)] = cause_text(e)
    return loaded, broken


def _registry() -> tuple[dict[str, Descriptor], dict[str, ModuleType], dict[str, str]]:
    extras, broken = _extra_modules()
    descriptors: dict[str, Descriptor] = {}
    modules: dict[str, ModuleType] = {}
    for module in (*BUILTIN_MODULES, *extras):
        if why := why_not(module, descriptors, modules):
            broken[str(module.__file__)] = why
            continue
        descriptors[module.DESCRIPTOR.name], modules[module.DESCRIPTOR.name] = module.DESCRIPTOR, module
    return descriptors, modules, broken


REGISTRY, MODULES, BROKEN = _registry()
BUILTIN = tuple(module.DESCRIPTOR.name for module in BUILTIN_MODULES)   # the paper's five: the default set
for _file, _why in BROKEN.items():   # said once, where a user's file is first imported
    print(f"warning: {_file}: descriptor not loaded: {_why}", file=sys.stderr)


def register(module: ModuleType) -> Descriptor:
    """Add a descriptor module that is not in descriptors/extra/ (a notebook's, a package's own) for
    this process, as the registry adds the files it finds; refused in one line as they would be."""
    if why := why_not(module, REGISTRY, MODULES):
        raise ValueError(f"{getattr(module, '__file__', module)}: {why}")
    REGISTRY[module.DESCRIPTOR.name], MODULES[module.DESCRIPTOR.name] = module.DESCRIPTOR, module
    return module.DESCRIPTOR


def unregister(name: str) -> None:
    """Remove a descriptor that ``register`` added (the paper's five stay)."""
    if name in BUILTIN:
        raise ValueError(f"{name} is one of the paper's descriptors; it cannot be removed")
    REGISTRY.pop(name, None)
    MODULES.pop(name, None)


def names() -> tuple[str, ...]:
    """Every known descriptor, the five first."""
    return tuple(REGISTRY)


def get(name: str) -> Descriptor:
    if name not in REGISTRY:
        broken = f"; not loaded: {'; '.join(f'{f}: {w}' for f, w in BROKEN.items())}" if BROKEN else ""
        raise ValueError(f"unknown descriptor {name!r}; choose from {', '.join(REGISTRY)} (a descriptor of yours is a "
                         f"module in descriptors/extra/, docs/EXTENDING.md){broken}")
    return REGISTRY[name]


def ordered(descs) -> tuple[str, ...]:
    """A set of names in the registry's order, each checked, none twice."""
    wanted = {get(name).name for name in descs}
    return tuple(name for name in REGISTRY if name in wanted)


def fusion_order(descs) -> tuple[str, ...]:
    """The order in which the fusion network takes a set's images: the colour ones, then the gray
    ones, each in the registry's order. For the five: GD, FDD, JDD, ADD, LAD, the release's Fuse5."""
    chosen = ordered(descs)
    return tuple(d for d in chosen if get(d).channels == COLOUR) + tuple(d for d in chosen if get(d).channels != COLOUR)


def has_groups(inputs) -> bool:
    """Whether a fusion of these inputs has group heads: it has colour and gray images both."""
    return len({get(d).channels == COLOUR for d in inputs}) == 2


def computed(descs) -> tuple[str, ...]:
    """What must be computed to make a set's images: the set and what its members are made of."""
    wanted = set(ordered(descs))
    for name in reversed(REGISTRY):
        if name in wanted:
            wanted.update(get(name).made_of)
    return ordered(wanted)


def channel_features(name: str, layout: Layout) -> list[tuple[Feature, ...]]:
    """Each image channel's rows (per body): a made-of descriptor's channels are its parts' rows."""
    desc = get(name)
    if desc.made_of:
        return [get(part).features(layout) for part in desc.made_of]
    return [desc.features(layout)] * desc.channels


def _code_text(source: str) -> str:
    """A module's code without its docstrings, comments or layout: edits to those keep the digest."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def code_digest(name: str) -> str:
    """SHA-256 (first 16 hex digits) of the descriptor's module code, and of its parts' for a
    made-of descriptor: what a folder record keeps to know which code made its images."""
    desc = get(name)
    digest = hashlib.sha256(_code_text(inspect.getsource(MODULES[name])).encode())
    for part in desc.made_of:
        digest.update(code_digest(part).encode())
    return digest.hexdigest()[:16]


def identity(name: str) -> dict[str, str]:
    """{name, code}: what records keep of a descriptor."""
    return {"name": name, "code": code_digest(name)}
