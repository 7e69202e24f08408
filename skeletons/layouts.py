"""Skeleton layouts: the one place for joints, bones, JDD pairs and LAD triplets.

A layout is a small JSON file; the shipped ones are in ``resources/layouts/`` (``ntu25``,
``ucla20``: the paper's NTU RGB+D and NW-UCLA layouts; ``coco17``, ``openpose18``: 2D keypoints),
and a user's own skeleton is a file of the same form, read by ``load_layout``:

    name          short name: letters, digits, '_' and '-'
    comment       free text, optional: where the joints come from, which rule chose pairs and triplets
    dims          2 (image x, y) or 3 (x, y, z)
    joints        joint names, in index order
    root          the joint that centres a sequence (X -= X[0, root])
    bones         [[a, b], ...] edges of GD's graph (and the lines figures draw)
    size_bones    [[a, b], ...] bones whose lengths at frame 0 sum to JDD's body size (may repeat)
    jdd_pairs     [[a, b], ...] joint pairs whose distances make JDD
    lad_triplets  [[vertex, a, b], ...] the angle at vertex between a and b makes LAD

Joints are given by name (or by 0-based index). In memory, indices are 0-based joint indices of
one body. Two-body sequences put body 1's joints after body 0's (offset = ``num_joints``);
descriptors handle that by an axis, never by a second copy of these tables.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import NoReturn

Pair = tuple[int, int]
Triplet = tuple[int, int, int]

LAYOUT_DIR = Path(__file__).with_name("resources") / "layouts"
FIELDS = ("name", "comment", "dims", "root", "joints", "bones", "size_bones", "jdd_pairs", "lad_triplets")
OPTIONAL_FIELDS = ("comment",)
DIMS = (2, 3)
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]+")   # layout names may end up in folder and file names


@dataclass(frozen=True)
class Layout:
    name: str
    joints: tuple[str, ...]
    """Joint names, in index order."""
    bones: tuple[Pair, ...]
    """Skeleton edges: graph of GD and the lines drawn by visualisations."""
    size_bones: tuple[Pair, ...]
    """Bones whose lengths at frame 0 sum to the body size used by JDD."""
    jdd_pairs: tuple[Pair, ...]
    lad_triplets: tuple[Triplet, ...]
    """(vertex, a, b): the angle at vertex between a and b."""
    root: int = 1
    """Joint that centres a sequence (X -= X[0, root])."""
    dims: int = 3
    """Coordinates per joint: 3 (x, y, z) or 2 (image x, y)."""

    @property
    def num_joints(self) -> int:
        return len(self.joints)


def _fail(where: str, problem: str) -> NoReturn:
    raise ValueError(f"{where}: {problem}")


def _joint_names(value: object, source: str, field: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        _fail(f"{source}: {field}", "expected a non-empty list of joint names")
    seen: dict[str, int] = {}
    for k, name in enumerate(value):
        if not isinstance(name, str) or not name.strip():
            _fail(f"{source}: {field}[{k}]", f"{json.dumps(name)} is not a joint name (a non-empty string)")
        if name in seen:
            _fail(f"{source}: {field}[{k}]", f"{name!r} repeats {field}[{seen[name]}]")
        seen[name] = k
    return tuple(value)


def _joint(value: object, joints: tuple[str, ...], where: str) -> int:
    """The index of a joint given by name or by 0-based index."""
    if isinstance(value, str):
        if value not in joints:
            _fail(where, f"joint {value!r} is not in joints")
        return joints.index(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < len(joints):
            _fail(where, f"index {value} is out of range 0..{len(joints) - 1}")
        return value
    _fail(where, f"{value!r} is not a joint name or index")


def _joint_tuples(value: object, size: int, joints: tuple[str, ...], source: str, field: str,
                  unique: bool = True) -> tuple[tuple[int, ...], ...]:
    """A list of joint pairs (size 2) or (vertex, a, b) triplets (size 3) as index tuples."""
    shape = "[a, b]" if size == 2 else "[vertex, a, b]"
    if not isinstance(value, list) or not value:
        _fail(f"{source}: {field}", f"expected a non-empty list of {shape}")
    out: list[tuple[int, ...]] = []
    seen: dict[tuple, int] = {}
    for k, item in enumerate(value):
        at = f"{source}: {field}[{k}]"
        if not isinstance(item, list) or len(item) != size:
            _fail(at, f"expected {shape}, found {json.dumps(item)}")
        indices = tuple(_joint(v, joints, at) for v in item)
        repeated = next((i for i in indices if indices.count(i) > 1), None)
        if repeated is not None:
            _fail(at, (f"joins joint {joints[repeated]!r} to itself" if size == 2
                       else f"repeats joint {joints[repeated]!r}"))
        # (a, b) and (b, a) are one edge; (p, a, b) and (p, b, a) one angle
        key = (indices[0], frozenset(indices[1:])) if size == 3 else frozenset(indices)
        if unique and key in seen:
            _fail(at, f"repeats {field}[{seen[key]}]")
        seen.setdefault(key, k)
        out.append(indices)
    return tuple(out)


def layout_from_dict(data: object, source: str) -> Layout:
    """A Layout from the parsed JSON of a layout file; ``source`` (the file) starts every error."""
    if not isinstance(data, dict):
        _fail(source, f"expected a JSON object with the fields {', '.join(FIELDS)}")
    for key in data:
        if key not in FIELDS:
            _fail(f"{source}: {key}", f"unknown field (the fields are {', '.join(FIELDS)})")
    for key in FIELDS:
        if key not in data and key not in OPTIONAL_FIELDS:
            _fail(f"{source}: {key}", "missing field")
    name, dims = data["name"], data["dims"]
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        _fail(f"{source}: name", f"{name!r} must be letters, digits, '_' and '-'")
    if not isinstance(data.get("comment", ""), str):
        _fail(f"{source}: comment", "expected free text (a string)")
    if type(dims) is not int or dims not in DIMS:
        _fail(f"{source}: dims", f"{json.dumps(dims)} is not 2 or 3")
    joints = _joint_names(data["joints"], source, "joints")
    return Layout(
        name=name,
        joints=joints,
        bones=_joint_tuples(data["bones"], 2, joints, source, "bones"),
        size_bones=_joint_tuples(data["size_bones"], 2, joints, source, "size_bones", unique=False),
        jdd_pairs=_joint_tuples(data["jdd_pairs"], 2, joints, source, "jdd_pairs"),
        lad_triplets=_joint_tuples(data["lad_triplets"], 3, joints, source, "lad_triplets"),
        root=_joint(data["root"], joints, f"{source}: root"),
        dims=dims,
    )


def read_json(path: str | Path, what: str) -> object:
    """A data file's JSON (layouts, pose maps); a file that cannot be read, is not UTF-8 or not
    JSON is a one-line ValueError naming it (``what``: 'layout file')."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        _fail(str(path), f"cannot read the {what} ({error.strerror or error})")
    except UnicodeDecodeError:
        _fail(str(path), "not a UTF-8 text file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        _fail(str(path), f"not valid JSON: {error.msg} at line {error.lineno} column {error.colno}")


def load_layout(path: str | Path) -> Layout:
    """Read and check a layout file; every problem is a one-line ValueError naming the file and field."""
    return layout_from_dict(read_json(path, "layout file"), str(path))


def shipped_layouts() -> tuple[str, ...]:
    """Names of the layout files shipped in resources/layouts (without .json)."""
    return tuple(sorted(path.stem for path in LAYOUT_DIR.glob("*.json")))


@lru_cache(maxsize=None)
def shipped_layout(stem: str) -> Layout:
    """A shipped layout, one object per file (so ``is`` comparisons with NTU and UCLA hold)."""
    return load_layout(LAYOUT_DIR / f"{stem}.json")


def shipped_by_name() -> dict[str, str]:
    """{layout name: shipped file stem}: ntu25.json and ucla20.json name their layouts ``ntu`` and
    ``ucla``, the names every record and digest made so far carries; either name finds them."""
    return {shipped_layout(stem).name: stem for stem in shipped_layouts()}


def find_layout(name_or_path: str | Path) -> Layout:
    """A shipped layout by file name (``coco17``, ``ntu25``) or by its layout name (``ntu``), or a
    layout file by path (``my_layout.json``)."""
    text = str(name_or_path)
    if text in shipped_layouts():
        return shipped_layout(text)
    if text in shipped_by_name():
        return shipped_layout(shipped_by_name()[text])
    if text.endswith(".json") or Path(text).exists():
        return load_layout(text)
    _fail(text, f"no such layout; give a layout .json file or one of {', '.join(shipped_layouts())}")


def layout_record(layout: Layout) -> dict:
    """{"name", "digest"}: what descriptor folder records and checkpoints keep of a layout. The digest
    covers all that decides the images (name, dims, root, joints, the four tables; not the comment
    or the file's formatting), so two files that define the same layout give the same digest."""
    content = json.dumps(asdict(layout), sort_keys=True, separators=(",", ":"))
    return {"name": layout.name, "digest": hashlib.sha256(content.encode()).hexdigest()[:16]}


def layout_text(record: dict) -> str:
    """'coco17 (digest 1a2b3c4d)', 'ntu (ntu25.json, digest 41324dbc)': a layout record as one-line
    errors show it, with the shipped file where its name is not the layout's."""
    stem = shipped_by_name().get(str(record.get("name")))
    shipped = f"{stem}.json, " if stem and stem != record.get("name") else ""
    return f"{record.get('name')} ({shipped}digest {str(record.get('digest'))[:8]})"


NTU = shipped_layout("ntu25")
UCLA = shipped_layout("ucla20")   # counts the neck-head bone twice in its body size, as the release does

LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (NTU, UCLA)}
"""The layouts a sequence's joint count selects; custom layouts are always passed explicitly."""


def layout_for_joints(num_joints: int) -> tuple[Layout, int]:
    """Return (layout, number of bodies) for a sequence with ``num_joints`` joints in total."""
    for layout in LAYOUTS.values():
        if num_joints % layout.num_joints == 0 and num_joints // layout.num_joints in (1, 2):
            return layout, num_joints // layout.num_joints
    raise ValueError(f"no skeleton layout has {num_joints} joints (expected 20, 25, 40 or 50)")
