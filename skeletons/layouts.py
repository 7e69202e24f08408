"""Skeleton layouts: the one place for joints, bones, JDD pairs and LAD triplets.

Indices are 0-based joint indices of one body (SPEC §3). Two-body sequences put body 1's
joints after body 0's (offset = ``num_joints``); descriptors handle that by an axis, never by
a second copy of these tables.
"""
from __future__ import annotations

from dataclasses import dataclass

Pair = tuple[int, int]
Triplet = tuple[int, int, int]


@dataclass(frozen=True)
class Layout:
    name: str
    num_joints: int
    bones: tuple[Pair, ...]
    """Skeleton edges: graph of GD and the lines drawn by visualisations."""
    size_bones: tuple[Pair, ...]
    """Bones whose lengths at frame 0 sum to the body size used by JDD."""
    jdd_pairs: tuple[Pair, ...]
    lad_triplets: tuple[Triplet, ...]
    """(vertex, a, b): the angle at vertex between a and b."""
    root: int = 1
    """Joint that centres a sequence (X -= X[0, root])."""


NTU_BONES: tuple[Pair, ...] = (
    (0, 1), (1, 20), (20, 2), (2, 3), (0, 12), (12, 13), (13, 14), (14, 15), (0, 16), (16, 17),
    (17, 18), (18, 19), (20, 4), (4, 5), (5, 6), (6, 7), (7, 21), (7, 22), (20, 8), (8, 9),
    (9, 10), (10, 11), (11, 23), (11, 24),
)

NTU = Layout(
    name="ntu",
    num_joints=25,
    bones=NTU_BONES,
    size_bones=NTU_BONES,
    jdd_pairs=(
        (5, 9), (6, 10), (13, 17), (14, 18), (6, 12), (6, 13), (6, 14), (10, 16), (10, 17),
        (10, 18), (3, 14), (3, 18), (0, 17), (16, 18), (0, 13), (12, 14), (4, 6), (20, 5),
        (2, 4), (2, 8), (20, 9), (8, 10), (13, 18), (14, 17), (5, 10), (6, 9), (3, 17), (3, 10),
        (3, 9), (3, 13), (3, 6), (3, 5),
    ),
    lad_triplets=(
        (16, 17, 0), (17, 18, 16), (12, 0, 13), (13, 12, 14), (5, 4, 6), (4, 20, 5), (20, 4, 2),
        (20, 2, 8), (8, 9, 20), (9, 10, 8), (14, 15, 13), (18, 17, 19), (7, 22, 21), (11, 23, 24),
    ),
)

UCLA_BONES: tuple[Pair, ...] = (
    (0, 1), (1, 2), (2, 3), (0, 16), (16, 17), (17, 18), (18, 19), (0, 12), (12, 13), (13, 14),
    (14, 15), (2, 8), (8, 9), (9, 10), (10, 11), (2, 4), (4, 5), (5, 6), (6, 7),
)

UCLA = Layout(
    name="ucla",
    num_joints=20,
    bones=UCLA_BONES,
    # The release counts the neck-head bone (2, 3) twice in the NW-UCLA body size (SPEC §3).
    size_bones=UCLA_BONES + ((2, 3),),
    jdd_pairs=(
        (5, 9), (6, 10), (13, 17), (14, 18), (10, 16), (10, 17), (10, 18), (6, 12), (6, 13),
        (6, 14), (3, 18), (3, 14), (0, 13), (12, 14), (0, 17), (16, 18), (10, 8), (9, 2), (8, 3),
        (3, 4), (2, 5), (4, 6), (17, 14), (13, 18), (9, 6), (5, 10), (3, 13), (3, 6), (3, 5),
        (3, 17), (3, 10), (3, 9),
    ),
    lad_triplets=(
        (12, 13, 0), (13, 14, 12), (16, 0, 17), (17, 16, 18), (9, 8, 10), (8, 2, 9), (2, 8, 3),
        (2, 3, 4), (4, 5, 2), (5, 6, 4), (18, 19, 17), (14, 13, 15), (10, 9, 11), (6, 5, 7),
    ),
)

LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (NTU, UCLA)}


def layout_for_joints(num_joints: int) -> tuple[Layout, int]:
    """Return (layout, number of bodies) for a sequence with ``num_joints`` joints in total."""
    for layout in LAYOUTS.values():
        if num_joints % layout.num_joints == 0 and num_joints // layout.num_joints in (1, 2):
            return layout, num_joints // layout.num_joints
    raise ValueError(f"no skeleton layout has {num_joints} joints (expected 20, 25, 40 or 50)")
