"""Layout files: the shipped ones, one-line errors for a bad user file, and which layouts get quirks."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from descriptors.core import NO_QUIRKS, PAPER_QUIRKS, quirks_for
from skeletons.layouts import (LAYOUT_DIR, NTU, UCLA, Layout, find_layout, layout_for_joints, layout_record,
                               layout_text, load_layout, shipped_layouts)

# The paper's tables (the release's indices), written once here: the shipped files must give them.
NTU_BONES = (
    (0, 1), (1, 20), (20, 2), (2, 3), (0, 12), (12, 13), (13, 14), (14, 15), (0, 16), (16, 17),
    (17, 18), (18, 19), (20, 4), (4, 5), (5, 6), (6, 7), (7, 21), (7, 22), (20, 8), (8, 9),
    (9, 10), (10, 11), (11, 23), (11, 24),
)
NTU_JDD = (
    (5, 9), (6, 10), (13, 17), (14, 18), (6, 12), (6, 13), (6, 14), (10, 16), (10, 17),
    (10, 18), (3, 14), (3, 18), (0, 17), (16, 18), (0, 13), (12, 14), (4, 6), (20, 5),
    (2, 4), (2, 8), (20, 9), (8, 10), (13, 18), (14, 17), (5, 10), (6, 9), (3, 17), (3, 10),
    (3, 9), (3, 13), (3, 6), (3, 5),
)
NTU_LAD = (
    (16, 17, 0), (17, 18, 16), (12, 0, 13), (13, 12, 14), (5, 4, 6), (4, 20, 5), (20, 4, 2),
    (20, 2, 8), (8, 9, 20), (9, 10, 8), (14, 15, 13), (18, 17, 19), (7, 22, 21), (11, 23, 24),
)
UCLA_BONES = (
    (0, 1), (1, 2), (2, 3), (0, 16), (16, 17), (17, 18), (18, 19), (0, 12), (12, 13), (13, 14),
    (14, 15), (2, 8), (8, 9), (9, 10), (10, 11), (2, 4), (4, 5), (5, 6), (6, 7),
)
UCLA_JDD = (
    (5, 9), (6, 10), (13, 17), (14, 18), (10, 16), (10, 17), (10, 18), (6, 12), (6, 13),
    (6, 14), (3, 18), (3, 14), (0, 13), (12, 14), (0, 17), (16, 18), (10, 8), (9, 2), (8, 3),
    (3, 4), (2, 5), (4, 6), (17, 14), (13, 18), (9, 6), (5, 10), (3, 13), (3, 6), (3, 5),
    (3, 17), (3, 10), (3, 9),
)
UCLA_LAD = (
    (12, 13, 0), (13, 14, 12), (16, 0, 17), (17, 16, 18), (9, 8, 10), (8, 2, 9), (2, 8, 3),
    (2, 3, 4), (4, 5, 2), (5, 6, 4), (18, 19, 17), (14, 13, 15), (10, 9, 11), (6, 5, 7),
)


def test_shipped_ntu_and_ucla_files_give_the_papers_tables():
    assert (NTU.name, NTU.num_joints, NTU.root, NTU.dims) == ("ntu", 25, 1, 3)
    assert (NTU.bones, NTU.size_bones, NTU.jdd_pairs, NTU.lad_triplets) == (NTU_BONES, NTU_BONES, NTU_JDD, NTU_LAD)
    assert (UCLA.name, UCLA.num_joints, UCLA.root, UCLA.dims) == ("ucla", 20, 1, 3)
    # The release counts the neck-head bone twice in the NW-UCLA body size.
    assert (UCLA.bones, UCLA.size_bones) == (UCLA_BONES, UCLA_BONES + ((2, 3),))
    assert (UCLA.jdd_pairs, UCLA.lad_triplets) == (UCLA_JDD, UCLA_LAD)
    assert load_layout(LAYOUT_DIR / "ntu25.json") == NTU and find_layout("ntu25") is NTU
    assert NTU.joints[NTU.root] == "spine_mid" and UCLA.joints[UCLA.root] == "spine"


def test_layout_for_joints_picks_only_ntu_and_ucla():
    assert layout_for_joints(25) == (NTU, 1) and layout_for_joints(50) == (NTU, 2)
    assert layout_for_joints(20) == (UCLA, 1) and layout_for_joints(40) == (UCLA, 2)
    for joints in (17, 18, 34):   # custom layouts are passed explicitly, never guessed
        with pytest.raises(ValueError, match=f"no skeleton layout has {joints} joints"):
            layout_for_joints(joints)


def names(layout: Layout, table) -> list[tuple[str, ...]]:
    return [tuple(layout.joints[j] for j in row) for row in table]


def test_2d_layouts_follow_the_ntu_rule():
    assert shipped_layouts() == ("coco17", "ntu25", "openpose18", "ucla20")
    coco, openpose = find_layout("coco17"), find_layout("openpose18")
    assert coco.joints == ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
                           "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
                           "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")
    assert set(openpose.joints) == set(coco.joints) | {"neck"} and openpose.joints[:2] == ("nose", "neck")
    for layout in (coco, openpose):
        assert layout.dims == 2 and len(layout.jdd_pairs) == len(NTU_JDD) and len(layout.lad_triplets) == len(NTU_LAD)
    # One rule made both: they differ only where NTU's spine-shoulder joint becomes OpenPose's neck
    # (JDD pairs 17 and 20; LAD triplets 5 to 8) instead of the opposite shoulder.
    def differing(table: str) -> list[int]:
        rows = zip(names(coco, getattr(coco, table)), names(openpose, getattr(openpose, table)))
        return [k for k, (a, b) in enumerate(rows) if a != b]

    jdd, lad = differing("jdd_pairs"), differing("lad_triplets")
    assert jdd == [17, 20] and lad == [5, 6, 7, 8]
    # Same-named joints keep NTU's pairs: NTU's (elbow, elbow), (wrist, hip)... read by name.
    for k, (a, b) in enumerate(names(NTU, NTU.jdd_pairs)):
        if a in coco.joints and b in coco.joints:
            assert names(coco, coco.jdd_pairs)[k] == (a, b)
    # LAD angles sit at the limb joints: shoulders, elbows, hips, knees (and the neck with OpenPose).
    vertices = {row[0].split("_")[-1] for row in names(coco, coco.lad_triplets)}
    assert vertices == {"shoulder", "elbow", "hip", "knee"}


GOOD = {
    "name": "stick5",
    "comment": "a test figure",
    "dims": 2,
    "root": "hip",
    "joints": ["head", "neck", "hip", "hand", "foot"],
    "bones": [["head", "neck"], ["neck", "hip"], ["neck", "hand"], ["hip", "foot"]],
    "size_bones": [["head", "neck"], ["neck", "hip"], ["neck", "hip"]],
    "jdd_pairs": [["hand", "foot"], ["head", 4]],
    "lad_triplets": [["neck", "head", "hand"], ["hip", "neck", "foot"]],
}


def write(tmp_path: Path, data) -> Path:
    path = tmp_path / "my.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_a_user_layout_loads(tmp_path):
    layout = load_layout(write(tmp_path, GOOD))
    assert layout == Layout("stick5", ("head", "neck", "hip", "hand", "foot"), ((0, 1), (1, 2), (1, 3), (2, 4)),
                            ((0, 1), (1, 2), (1, 2)), ((3, 4), (0, 4)), ((1, 0, 3), (2, 1, 4)), root=2, dims=2)
    no_comment = {k: v for k, v in GOOD.items() if k != "comment"}
    assert load_layout(write(tmp_path, no_comment)) == layout
    assert find_layout(tmp_path / "my.json") == layout
    assert quirks_for(layout, "paper") is NO_QUIRKS


def changed(**fields) -> dict:
    return {**GOOD, **fields}


BAD_LAYOUTS = [
    (changed(lad_triplets=[["neck", "head", "hand"], ["elbw", "neck", "foot"]]),
     "lad_triplets[1]: joint 'elbw' is not in joints"),
    (changed(jdd_pairs=[["hand", 5]]), "jdd_pairs[0]: index 5 is out of range 0..4"),
    (changed(jdd_pairs=[["hand", -1]]), "jdd_pairs[0]: index -1 is out of range 0..4"),
    (changed(root=1.5), "root: 1.5 is not a joint name or index"),
    (changed(root="tail"), "root: joint 'tail' is not in joints"),
    (changed(lad_triplets=[["neck", "head", "neck"]]), "lad_triplets[0]: repeats joint 'neck'"),
    (changed(bones=[["head", "neck"], ["hip", 2]]), "bones[1]: joins joint 'hip' to itself"),
    (changed(size_bones=[["foot", "foot"]]), "size_bones[0]: joins joint 'foot' to itself"),
    (changed(bones=[["head", "neck"], ["neck", "head"]]), "bones[1]: repeats bones[0]"),
    (changed(lad_triplets=[["neck", "head", "hand"], ["neck", "hand", "head"]]),
     "lad_triplets[1]: repeats lad_triplets[0]"),
    (changed(jdd_pairs=[["hand", "foot", "head"]]), 'jdd_pairs[0]: expected [a, b], found ["hand", "foot", "head"]'),
    (changed(lad_triplets=[["neck", "head"]]), 'lad_triplets[0]: expected [vertex, a, b], found ["neck", "head"]'),
    (changed(bones=[]), "bones: expected a non-empty list of [a, b]"),
    (changed(joints=["head", "neck", "hip", "neck", "foot"]), "joints[3]: 'neck' repeats joints[1]"),
    (changed(joints=["head", "", "hip"]), 'joints[1]: "" is not a joint name (a non-empty string)'),
    (changed(joints="head neck"), "joints: expected a non-empty list of joint names"),
    (changed(dims=4), "dims: 4 is not 2 or 3"),
    (changed(dims="2"), 'dims: "2" is not 2 or 3'),
    (changed(dims=True), "dims: true is not 2 or 3"),
    (changed(name="my layout"), "name: 'my layout' must be letters, digits, '_' and '-'"),
    (changed(comment=["x"]), "comment: expected free text (a string)"),
    ({k: v for k, v in GOOD.items() if k != "size_bones"}, "size_bones: missing field"),
    ({k: v for k, v in GOOD.items() if k != "dims"}, "dims: missing field"),
    (changed(size_bone=[]), "size_bone: unknown field (the fields are name, comment, dims, root, joints, bones, "
                            "size_bones, jdd_pairs, lad_triplets)"),
    ([1, 2], "expected a JSON object with the fields name, comment, dims, root, joints, bones, size_bones, "
             "jdd_pairs, lad_triplets"),
    ('{"name": "x",\n "dims": 2,,}', "not valid JSON: Expecting property name enclosed in double quotes "
                                     "at line 2 column 12"),
]


@pytest.mark.parametrize("data, problem", BAD_LAYOUTS, ids=[problem.split(":")[0] + str(k)
                                                           for k, (_, problem) in enumerate(BAD_LAYOUTS)])
def test_bad_layout_files_are_one_line_errors(tmp_path, data, problem):
    path = write(tmp_path, data)
    with pytest.raises(ValueError) as error:
        load_layout(path)
    assert str(error.value) == f"{path}: {problem}"


def test_missing_layout_file_and_unknown_name(tmp_path):
    with pytest.raises(ValueError, match=r"nothere\.json: cannot read the layout file \(No such file"):
        load_layout(tmp_path / "nothere.json")
    with pytest.raises(ValueError, match=r"^coco18: no such layout; give a layout \.json file or one of "
                                         r"coco17, ntu25, openpose18, ucla20$"):
        find_layout("coco18")


def test_paper_quirks_stay_with_the_builtin_layouts(tmp_path):
    assert quirks_for(NTU, "paper") is PAPER_QUIRKS["ntu"] and quirks_for(UCLA, "paper") is PAPER_QUIRKS["ucla"]
    assert quirks_for(NTU, "clean") is NO_QUIRKS
    # A user's layout named "ntu" with other pairs must not get NTU's row-numbered quirks.
    data = json.loads((LAYOUT_DIR / "ntu25.json").read_text())
    data["jdd_pairs"] = data["jdd_pairs"][:20]
    impostor = load_layout(write(tmp_path, data))
    assert impostor.name == "ntu" and impostor != NTU
    assert quirks_for(impostor, "paper") is NO_QUIRKS
    for name in ("coco17", "openpose18"):
        assert quirks_for(find_layout(name), "paper") is NO_QUIRKS


def test_shipped_layouts_are_found_by_file_and_by_layout_name():
    """ntu25.json and ucla20.json name their layouts ntu and ucla (what every record carries):
    either name finds them, and messages show both."""
    for stem, name in (("ntu25", "ntu"), ("ucla20", "ucla")):
        assert find_layout(stem) is find_layout(name)
        assert layout_text(layout_record(find_layout(name))).startswith(f"{name} ({stem}.json, digest ")
    assert layout_text(layout_record(find_layout("coco17"))).startswith("coco17 (digest ")
