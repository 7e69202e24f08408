"""predict.py --explain (models/explain.py): integrated gradients add up to the logit change, the
attribution goes back through the resize to the matrix cell it came from (channels in the right
order), and where the truth is known it is found: on the demo, whose generator moves known limbs
for each action, a network trained on it looks at the legs for a kick and at the arms for a wave."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from conftest import load_script

import descriptors.registry as registry
from demo.generate import DEMO_NTU_ACTIONS
from descriptors.core import descriptor_images, network_input, resize, scale_to_uint8
from descriptors.names import FUSION_ORDER
from models import explain as ex
from models.networks import FuseN, ResNet_c
from skeletons.datasets import get_dataset, parse_ntu_name, sample_id
from skeletons.layouts import NTU
from skeletons.reading import load_sequence

IMG = 32
# The demo generator (demo/generate.py) moves, in NTU-60 numbers: a leg alone in 24 (kicking: the
# right leg kicks, the left wrist shifts a little for balance); an arm alone in 23 (hand waving),
# 38 (salute), 40 (cross hands in front). The others move both or the whole body (hopping and
# jump up lift everything and swing the arms, sitting and the two-person actions step and reach).
LEG_ACTIONS, ARM_ACTIONS = (24,), (23, 38, 40)
LIMB = {"arm": ("shoulder", "elbow", "wrist", "hand"), "leg": ("hip", "knee", "ankle", "foot")}


def joints_of(limb: str) -> list[int]:
    """The layout's joints of both arms or both legs, by name (left_elbow, right_knee, ...)."""
    names = {f"{side}_{part}" for side in ("left", "right") for part in LIMB[limb]}
    return [j for j, name in enumerate(NTU.joints) if name in names]


def demo_samples(demo_raw, descs) -> list[tuple[str, np.ndarray, dict, int, bool]]:
    """(name, sequence, images, 0-based class, in csub train?) of every NTU demo sample."""
    ntu60 = get_dataset("ntu60")
    out = []
    for path in sorted((demo_raw / "ntu" / "txt60skel").glob("*.skeleton")):
        X = load_sequence(path, "paper")
        name = sample_id(path)
        out.append((name, X, descriptor_images(X, NTU, "paper", IMG, descs),
                    DEMO_NTU_ACTIONS.index(parse_ntu_name(name).action), ntu60.is_train(name, "csub")))
    return out


# --------------------------------------------------------------------------- completeness


def test_attributions_add_up_to_the_logit_change(demo_raw):
    """IG's completeness: over all images, the attributions sum to logit(x) - logit(black), for a
    single model and a fusion network reading the same five images of a real demo sample."""
    torch.manual_seed(0)
    X = load_sequence(sorted((demo_raw / "ntu" / "txt60skel").glob("*A024.skeleton"))[0], "paper")
    images = descriptor_images(X, NTU, "paper", IMG)
    inputs = {d: network_input(images[d]) for d in FUSION_ORDER}
    models = {"JDD": ResNet_c(10, 0.03).eval(), "all": FuseN(10, 0.03).eval()}
    attributions = ex.integrated_gradients(models, inputs, 7)
    assert set(attributions) == set(FUSION_ORDER) and attributions["GD"].shape == (3, IMG, IMG)
    change = ex.logit_change(models, inputs, 7)
    assert abs(change) > 1e-3   # not the trivial 0 = 0
    assert sum(a.sum() for a in attributions.values()) == pytest.approx(change, rel=0.02)
    # A model's images alone: the single JDD model's attribution is its own logit change.
    alone = ex.integrated_gradients({"JDD": models["JDD"]}, inputs, 3)
    assert list(alone) == ["JDD"]
    assert alone["JDD"].sum() == pytest.approx(ex.logit_change({"JDD": models["JDD"]}, inputs, 3), rel=0.02)


# --------------------------------------------------------------------------- back through the resize


@pytest.mark.parametrize("pixels, cells", [(32, 25), (32, 60), (112, 50), (112, 300), (32, 32)])
def test_area_weights_share_each_pixel_once(pixels, cells):
    weights = ex.area_weights(pixels, cells)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    # every cell is covered, in order: the first pixel starts at cell 0, the last ends on the last cell
    assert weights[0, 0] > 0 and weights[-1, -1] > 0 and (weights.sum(axis=0) > 0).all()
    attribution = np.random.default_rng(0).normal(size=(pixels, pixels))
    assert ex.to_matrix(attribution, cells, 17).sum() == pytest.approx(attribution.sum())


@pytest.mark.parametrize("rows, columns, cell", [(25, 20, (17, 9)), (50, 61, (30, 44)), (14, 120, (3, 100))])
def test_one_bright_cell_comes_back_to_its_row_and_column(rows, columns, cell):
    """A matrix black but for one cell, resized as the images are (Pillow bicubic): its image mapped
    back lights that cell, exactly when there are fewer cells than pixels, within the cells one pixel
    spans when there are more; and the image's sum is kept."""
    matrix = np.zeros((rows, columns))
    matrix[cell] = 1.0
    back = ex.to_matrix(resize(scale_to_uint8(matrix), IMG).astype(float), rows, columns)
    r, c = np.unravel_index(np.argmax(back), back.shape)
    assert back.sum() == pytest.approx(resize(scale_to_uint8(matrix), IMG).sum())
    assert abs(r - cell[0]) <= -(-rows // IMG) - 1 and abs(c - cell[1]) <= -(-columns // IMG) - 1


def test_channels_rows_and_steps_are_named_as_the_images_hold_them():
    """BGR input vs RGB images: FDD's green channel (input channel 1) is ADD's rows, GD's red one
    (input channel 2) is x; a step column goes half to each of its two frames."""
    T, joint = 40, NTU.joints.index("right_knee")
    add = np.zeros((NTU.num_joints, T - 1))
    add[joint, 10] = 1.0
    attribution = np.zeros((3, IMG, IMG))
    attribution[1] = resize(scale_to_uint8(add), IMG)
    parts = ex.part_matrices("FDD", attribution, NTU, T, 1)
    assert parts["JDD"].sum() == parts["LAD"].sum() == 0 and parts["ADD"].shape == (NTU.num_joints, T - 1)
    assert np.unravel_index(np.argmax(parts["ADD"]), parts["ADD"].shape) == (joint, 10)
    features = ex.part_features("FDD", "ADD", parts["ADD"], registry.get("ADD").features(NTU), T)
    best = max(features, key=lambda f: f.score)
    assert (best.label, best.joints, best.source) == ("right_knee", (joint,), "FDD:ADD")
    assert best.frames[0] <= 10 and best.frames[1] >= 11   # step 10 is the move from frame 10 to 11
    np.testing.assert_allclose(ex.column_frames("ADD", T).sum(axis=1), 1.0)
    assert ex.column_frames("ADD", T)[10, [10, 11]].tolist() == [0.5, 0.5]
    gd = np.zeros((3, IMG, IMG))
    gd[2, 5] = 1.0   # input channel 2 is R: x
    assert ex.image_channels("GD", gd)[0].sum() == IMG and ex.image_channels("GD", gd)[2].sum() == 0
    assert ex.concentrated_span(np.array([0, 0, 1, 5, 1, 0, 0.])) == (3, 3)
    assert ex.concentrated_span(np.array([1, 0, 3, 3, 0, 1.])) == (2, 3)


# --------------------------------------------------------------------------- the truth test


@pytest.fixture(scope="module")
def trained_add(demo_raw):
    """A ResNet_c trained on the ADD images (32 px) of the NTU demo's cross-subject train half, and
    the test half. ADD's pixels are how far each joint moves: the attribution of a black-baseline
    method follows bright pixels, so this is the image where 'looked at' can be checked against
    what moved (docs: models/explain.py)."""
    torch.manual_seed(0)
    samples = demo_samples(demo_raw, ("ADD",))
    train = [s for s in samples if s[4]]
    x = torch.tensor(np.stack([network_input(s[2]["ADD"]) for s in train]))
    y = torch.tensor([s[3] for s in train])
    model = ResNet_c(len(DEMO_NTU_ACTIONS), 0.03)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(30):
        model.train()
        for batch in torch.randperm(len(x)).split(15):
            loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval(), [s for s in samples if not s[4]]


def test_the_explanation_names_the_limbs_the_demo_moves(trained_add):
    """Over the correctly classified test samples, per action: the mean importance of the leg joints
    is above the arm joints' for the kick, and below for waving, saluting and crossing the hands."""
    model, test = trained_add
    arms, legs = joints_of("arm"), joints_of("leg")
    assert len(arms) == len(legs) == 8
    limbs: dict[int, list[tuple[float, float]]] = {}
    correct, gaps = 0, []
    for name, X, images, label, _ in test:
        inputs = {"ADD": network_input(images["ADD"])}
        if ex.predicted_class({"ADD": model}, inputs) != label:
            continue
        correct += 1
        found = ex.explain_inputs({"ADD": model}, inputs, NTU, X.shape[0], X.shape[1] // NTU.num_joints, label, 16)
        assert found.joints.sum() == pytest.approx(1.0) and found.frames.sum() == pytest.approx(1.0)
        gaps.append(abs(found.attributed - found.logit_change) / abs(found.logit_change))
        limbs.setdefault(DEMO_NTU_ACTIONS[label], []).append((found.joints[legs].mean(), found.joints[arms].mean()))
    assert np.median(gaps) < 0.05   # completeness on a trained network too, at 16 steps
    assert correct >= len(test) // 3, f"the ADD model learnt too little to be explained ({correct}/{len(test)})"
    legs_seen = [a for a in LEG_ACTIONS if a in limbs]
    arms_seen = [a for a in ARM_ACTIONS if a in limbs]
    assert legs_seen and len(arms_seen) >= 2, f"too few correct leg/arm samples: {sorted(limbs)}"
    for action in legs_seen:
        leg, arm = np.mean(limbs[action], axis=0)
        assert leg > 1.2 * arm, f"A{action:03d}: legs {leg:.3f} vs arms {arm:.3f}"
    for action in arms_seen:
        leg, arm = np.mean(limbs[action], axis=0)
        assert arm > 1.5 * leg, f"A{action:03d}: arms {arm:.3f} vs legs {leg:.3f}"


def test_lines_name_features_frames_and_joints(trained_add):
    model, test = trained_add
    name, X, images, label, _ = next(s for s in test if DEMO_NTU_ACTIONS[s[3]] == 23)
    found = ex.explain_inputs({"ADD": model}, {"ADD": network_input(images["ADD"])}, NTU, X.shape[0],
                              X.shape[1] // NTU.num_joints, label, 8)
    lines = ex.explanation_lines(found, "A023 hand waving", 1, k=3)
    assert lines[0].startswith("explanation of A023 hand waving (integrated gradients")
    assert all(re.match(r"^  ADD\s+\S+.*frames \d+-\d+\s+\d+\.\d%$", line) for line in lines[1:4]), lines
    assert lines[4].startswith("  joints: ")
    named = [joint.rsplit(" ", 1)[0] for joint in lines[4][len("  joints: "):].split(", ")]
    assert len(named) == 3 and set(named) <= set(NTU.joints)   # the layout's joints, by name
    key = [int(f) for f in lines[5].split(":")[1].split(",")]
    assert len(key) == 3 and key == sorted(key) and all(1 <= f <= X.shape[0] for f in key)


def test_explain_refuses_onnx_in_one_line(capsys):
    predict = load_script("predict")
    args = predict.get_args_parser().parse_args(["x.skeleton", "-d", "ntu60", "--onnx", "exported", "--explain"])
    assert predict.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --explain explains one skeleton sample")
