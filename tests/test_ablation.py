"""test.py --ablation (models/ablation.py): the mean of softmax of every non-empty subset of the
single models evaluated, checked against a direct numpy computation on realistic scores, sorted as
documented, beside the fusion network's row; and once end to end on models trained on the demo."""
from __future__ import annotations

import itertools
import json
import shutil

import numpy as np
import pytest
import torch
from conftest import load_script

from cli.test import report
from descriptors.dataset import DescriptorImages
from descriptors.names import FUSION
from models import ablation
from models.checkpoint import load_model
from models import config as cfg   # not its names: pytest would take TestConfig for a test class
from models.names import checkpoint_path
from models.testing import evaluate, paper_table, write_outputs

test_script, train_script = load_script("test"), load_script("train")
CLASSES = 12


def model_logits(labels: np.ndarray, strength: float, seed: int) -> np.ndarray:
    """(N, C) logits of a model of some skill: noise plus ``strength`` on the true class, and a
    confusion of its own (each class leaks to the next), as trained networks' logits look."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 1.0, (labels.size, CLASSES)).astype(np.float32)
    z[np.arange(labels.size), labels] += strength
    z[np.arange(labels.size), (labels + 1) % CLASSES] += strength * rng.uniform(0.3, 0.9)
    return z


@pytest.fixture(scope="module")
def scored():
    """Labels of 300 test samples (every class present) and the logits of five models, weak to strong."""
    labels = np.random.default_rng(7).permutation(np.arange(300) % CLASSES)
    names = ["GD", "JDD", "ADD", "LAD", "FDD"]
    return labels, {n: model_logits(labels, s, k) for k, (n, s) in enumerate(zip(names, (1.2, 1.6, 2.0, 0.8, 2.4)))}


def direct(logits: list[np.ndarray], labels: np.ndarray) -> tuple[float, float, float]:
    """(top-1, top-5, mean per-class accuracy) of the mean of the members' softmax, by hand."""
    probs = []
    for z in logits:
        e = np.exp(z.astype(np.float64) - z.max(axis=1, keepdims=True))
        probs.append(e / e.sum(axis=1, keepdims=True))
    fused = sum(probs) / len(probs)
    pred = fused.argmax(axis=1)
    top5 = np.mean([labels[i] in np.argsort(-fused[i])[:5] for i in range(labels.size)])
    per_class = [np.mean(pred[labels == c] == c) for c in np.unique(labels)]
    return float(np.mean(pred == labels)), float(top5), float(np.mean(per_class))


def test_every_nonempty_subset_once_in_the_given_order():
    five = ablation.subsets(["GD", "JDD", "ADD", "LAD", "FDD"])
    assert len(five) == 31 and len(set(five)) == 31
    assert five[:5] == [("GD",), ("JDD",), ("ADD",), ("LAD",), ("FDD",)]
    assert five[-1] == ("GD", "JDD", "ADD", "LAD", "FDD")
    assert ("JDD", "GD") not in five and ("GD", "JDD") in five   # members keep the models' order
    three = ablation.subsets(["GD", "JDD", "JVD"])   # any set: a new descriptor is ablated alike
    assert three == [("GD",), ("JDD",), ("JVD",), ("GD", "JDD"), ("GD", "JVD"), ("JDD", "JVD"), ("GD", "JDD", "JVD")]


def test_each_subset_row_is_the_direct_mean_of_softmax(scored):
    labels, logits = scored
    rows = ablation.ablation_rows(logits, labels, CLASSES)
    assert len(rows) == 31
    assert {tuple(r["members"]) for r in rows} == set(ablation.subsets(list(logits)))
    for r in rows:
        top1, top5, mean_class = direct([logits[m] for m in r["members"]], labels)
        assert (r["top1"], r["top5"], r["mean_class"]) == pytest.approx((top1, top5, mean_class), abs=1e-12)
        assert r["key"] == "ablation." + "+".join(r["members"]) and set(r) == set(ablation.FIELDS)
    # A one-member subset is the single model itself (softmax keeps its argmax).
    gd = next(r for r in rows if r["members"] == ["GD"])
    assert gd["top1"] == pytest.approx(np.mean(logits["GD"].argmax(1) == labels))
    # The figures differ between subsets (the scores are not degenerate), and fusing helps here.
    assert len({r["top1"] for r in rows}) > 10 and rows[0]["top1"] > max(
        r["top1"] for r in rows if len(r["members"]) == 1)


def test_three_models_give_seven_rows_in_any_names(scored):
    labels, logits = scored
    three = {"GD": logits["GD"], "JDD": logits["JDD"], "JVD": logits["FDD"]}
    rows = ablation.ablation_rows(three, labels, CLASSES)
    assert len(rows) == 7 and {m for r in rows for m in r["members"]} == {"GD", "JDD", "JVD"}
    jvd = next(r for r in rows if r["members"] == ["GD", "JVD"])
    assert jvd["top1"] == pytest.approx(direct([logits["GD"], logits["FDD"]], labels)[0])


def test_sorted_by_top1_then_fewer_members_then_name(scored):
    labels, logits = scored
    # Two models with the same scores tie with each other and with their pair: A, B, then A+B.
    same = {"B": logits["ADD"], "A": logits["ADD"].copy(), "C": logits["LAD"]}
    rows = ablation.ablation_rows(same, labels, CLASSES)
    top1s = [r["top1"] for r in rows]
    assert top1s == sorted(top1s, reverse=True)
    single = next(r["top1"] for r in rows if r["members"] == ["A"])
    assert [r["members"] for r in rows if r["top1"] == single][:3] == [["A"], ["B"], ["B", "A"]]
    for a, b in itertools.pairwise(rows):
        if a["top1"] == b["top1"]:
            assert (len(a["members"]), "+".join(a["members"])) < (len(b["members"]), "+".join(b["members"]))


def test_fewer_than_two_models_are_refused_in_one_line(scored):
    labels, logits = scored
    with pytest.raises(ValueError) as refused:
        ablation.ablation_rows({"GD": logits["GD"]}, labels, CLASSES)
    message = str(refused.value)
    assert "\n" not in message and "at least 2" in message and "GD" in message and f"-desc {FUSION}" in message


def test_the_network_row_is_placed_by_its_top1_and_marked(scored):
    labels, logits = scored
    rows = ablation.ablation_rows(logits, labels, CLASSES)
    net = {"key": FUSION, "label": "Fuse5 main head (all 5 features)", "top1": rows[3]["top1"], "top5": None,
           "mean_class": 0.5}
    table = ablation.ranked(rows, ablation.network_rows([{"key": "GD", "label": "x", "top1": 1.0}, net]))
    where = next(k for k, r in enumerate(table) if "members" not in r)
    assert len(table) == 32 and all(r["top1"] >= net["top1"] for r in table[:where])
    assert all(r["top1"] < net["top1"] for r in table[where + 1:])
    assert table[0]["label"] == "1. " + "+".join(rows[0]["members"]) and ablation.NETWORK_MARK in table[where]["label"]
    text = ablation.format_ablation(rows, [net]).splitlines()
    assert len(text) == 2 + 32 and text[0].startswith("ablation: mean of softmax over each of the 31")


def test_paper_sections_take_the_latest_results_of_each_column(scored):
    labels, logits = scored
    rows = ablation.ablation_rows(logits, labels, CLASSES)
    older = {"dataset": "ntu60", "protocol": "csub", "epoch": "best", "rows": [], "ablation": rows[::-1][:3]}
    newer = {"dataset": "ntu60", "protocol": "csub", "epoch": "best", "rows": [], "ablation": rows}
    assert ablation.paper_sections([{"dataset": "ucla", "protocol": "cview", "rows": []}]) == ""
    text = ablation.paper_sections([older, newer])
    assert text.count("### Ablation: ntu60 csub") == 1
    body = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| subset")]
    assert len(body) == 31 and body[0].split(" | ")[2] == f"{100 * rows[0]['top1']:.2f}"


# --------------------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def trained(tmp_path_factory, demo_descriptors):
    """GD, JDD, ADD and the fusion network trained by train.py on the demo's NW-UCLA folders (2
    epochs, tiny width); LAD and FDD are not: the ablation is over the single models evaluated."""
    ckpt = tmp_path_factory.mktemp("ablation") / "ckpt"
    for name in ("GD", "JDD", "ADD", FUSION):
        assert train_script.main(train_script.get_args_parser().parse_args(
            ["-d", "ucla", "-desc", name, "-gpu", "-1", "-despth", str(demo_descriptors), "-ckpt", str(ckpt),
             "--epochs", "2", "--width", "0.03", "--lr", "3e-3", "--workers", "0", "--no-progress"])) == 0
    return demo_descriptors, ckpt


def test_ablation_end_to_end_on_trained_demo_models(trained, capsys):
    desc_root, ckpt = trained
    config = cfg.TestConfig(dataset="ucla", desc=FUSION, gpu=-1, despth=str(desc_root), ckpt=str(ckpt), workers=0,
                        out=str(ckpt.parent / "out"), ablation=True, no_progress=True)
    doc, rows = evaluate(config)
    assert sorted(doc["missing"]) == ["FDD", "LAD"] and len(doc["ablation"]) == 7
    assert [r["key"] for r in doc["rows"]][:3] == ["GD", "JDD", "ADD"]   # the ablation rows stay out of the table
    labels = np.array(doc["samples"]["label"]) - 1
    logits = {}
    for name in ("GD", "JDD", "ADD"):   # each model's logits computed here, without test.py
        model, _ = load_model(checkpoint_path(ckpt, "ucla", None, name), desc=name, num_classes=10)
        data = DescriptorImages(desc_root, "ucla", None, "test", name)
        with torch.inference_mode():
            logits[name] = torch.cat([model(x) for x, _ in torch.utils.data.DataLoader(data, batch_size=32)]).numpy()
    for r in doc["ablation"]:
        assert r["top1"] == pytest.approx(direct([logits[m] for m in r["members"]], labels)[0])
    assert doc["ablation"] == ablation.sort_rows(doc["ablation"])
    json_path, png = write_outputs(config, doc, rows)
    assert json.loads(json_path.read_text())["ablation"] == json.loads(json.dumps(doc["ablation"]))
    text = report(config, doc, json_path, png)
    assert "ablation: mean of softmax over each of the 7 non-empty subsets of GD, JDD, ADD" in text
    assert sum(line.split(".")[0].strip().isdigit() for line in text.splitlines()) == 7
    assert f"[{ablation.NETWORK_MARK}]" in text
    table = paper_table(cfg.TestConfig(ckpt=str(ckpt), out=str(ckpt.parent / "out")))
    section = table[table.index("### Ablation: ucla cview"):].splitlines()
    assert sum(line.split(".")[0].lstrip("| ").isdigit() for line in section) == 7
    assert sum(ablation.NETWORK_MARK in line for line in section) == 1


def test_ablation_of_one_model_is_refused_before_anything_runs(trained, tmp_path, capsys):
    desc_root, ckpt = trained
    common = ["-d", "ucla", "-gpu", "-1", "-despth", str(desc_root), "-ckpt", str(ckpt), "--workers", "0",
              "--out", str(tmp_path), "--ablation"]
    assert test_script.main(test_script.get_args_parser().parse_args([*common, "-desc", "GD"])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --ablation: -desc GD evaluates one single model")
    assert not list(tmp_path.iterdir())
    # -desc all where one single model's checkpoint is: refused once the checkpoints are found, before they run
    one = tmp_path / "one"
    one.mkdir()
    for name in ("GD", FUSION):
        shutil.copy(checkpoint_path(ckpt, "ucla", None, name), checkpoint_path(one, "ucla", None, name))
    common[common.index(str(ckpt))] = str(one)
    assert test_script.main(test_script.get_args_parser().parse_args([*common, "-desc", FUSION])) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "--ablation needs at least 2 single-descriptor models" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one"]
