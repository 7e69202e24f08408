"""Pure evaluation functions: metrics, score fusion, voting, tie-break, the oracle, outputs."""
from __future__ import annotations

import json

import numpy as np
import pytest

from models import evaluation as ev
from descriptors.names import DESCRIPTORS, FUSION, FUSION_ORDER


def one_hot_logits(classes, num_classes=4, high=5.0):
    z = np.zeros((len(classes), num_classes))
    z[np.arange(len(classes)), classes] = high
    return z


def test_topk_and_per_class_accuracy_on_known_scores():
    scores = np.array([[0.1, 0.5, 0.4],     # true 2: top-1 wrong, top-2 right
                       [0.7, 0.2, 0.1],     # true 0: right
                       [0.2, 0.3, 0.5],     # true 0: wrong even top-2
                       [0.3, 0.3, 0.4]])    # true 2: right
    labels = np.array([2, 0, 0, 2])
    assert ev.topk_correct(scores, labels, 1).tolist() == [False, True, False, True]
    assert ev.topk_correct(scores, labels, 2).tolist() == [True, True, False, True]
    per_class = ev.per_class_accuracy(scores.argmax(1), labels, 4)
    assert per_class[0] == 0.5 and np.isnan(per_class[1]) and per_class[2] == 0.5 and np.isnan(per_class[3])
    assert ev.mean_class_accuracy(per_class) == 0.5
    cm = ev.confusion_matrix(scores.argmax(1), labels, 3)
    assert cm.tolist() == [[1, 0, 1], [0, 0, 0], [0, 1, 1]]


def test_top5_is_left_out_with_five_classes_or_fewer():
    """Every sample is in its top 5 then: a trivial 100% is shown as '-', not as a figure."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 40)
    few = ev.score_row("r", "three classes", rng.normal(size=(40, 3))).metrics(labels, 3)
    many = ev.score_row("r", "ten classes", rng.normal(size=(40, 10))).metrics(labels, 10)
    assert few["top5"] is None and 0 < many["top5"] < 1
    assert ev.format_table([few]).splitlines()[1].split()[-2] == "-"


def test_mean_class_differs_from_top1_on_unbalanced_classes():
    labels = np.array([0, 0, 0, 1])
    pred = np.array([0, 0, 0, 0])
    assert ev.mean_class_accuracy(ev.per_class_accuracy(pred, labels, 2)) == 0.5
    assert (pred == labels).mean() == 0.75


def test_softmax_is_shift_invariant_and_normalised():
    z = np.array([[1000.0, 1001.0, 999.0], [0.0, 0.0, 0.0]])
    p = ev.softmax(z)
    np.testing.assert_allclose(p.sum(1), 1.0)
    np.testing.assert_allclose(p[0], ev.softmax(z[:1] - 1000)[0])
    np.testing.assert_allclose(p[1], 1 / 3)


def test_mean_softmax_lets_a_confident_model_win_over_a_hesitant_one():
    confident = np.array([[0.0, 8.0, 0.0]])      # says class 1, very sure
    hesitant = np.array([[1.0, 0.0, 0.9]])       # says class 0, barely
    hesitant2 = np.array([[1.0, 0.0, 0.9]])
    fused = ev.mean_softmax([confident, hesitant, hesitant2])
    assert fused.argmax(1).tolist() == [1]                 # a vote would say 0
    assert ev.majority_vote(np.array([[1], [0], [0]]), [0, 1, 2]).tolist() == [0]
    expected = (ev.softmax(confident) + 2 * ev.softmax(hesitant)) / 3
    np.testing.assert_allclose(fused, expected)


def test_majority_vote_and_tie_break_on_hand_made_predictions():
    preds = np.array([[0, 1, 2, 3, 2],     # voter 0
                      [0, 2, 1, 3, 0],     # voter 1
                      [1, 2, 1, 0, 1],     # voter 2
                      [1, 3, 0, 1, 3]])    # voter 3
    # sample 0: 0,0,1,1 tie -> trusted voter decides; sample 1: 2 wins 2-1-1;
    # sample 2: 1 wins 2 votes; sample 3: 3 wins; sample 4: all different -> trusted voter.
    assert ev.majority_vote(preds, [0, 1, 2, 3]).tolist() == [0, 2, 1, 3, 2]
    assert ev.majority_vote(preds, [3, 2, 1, 0]).tolist() == [1, 2, 1, 3, 3]
    # The most trusted voter is outvoted when it is not part of the tie.
    assert ev.majority_vote(preds, [2, 0, 1, 3]).tolist() == [1, 2, 1, 3, 1]
    with pytest.raises(ValueError, match="priority"):
        ev.majority_vote(preds, [0, 0, 1, 2])


def test_vote_priority_defaults_and_override():
    voters = list(DESCRIPTORS) + [FUSION]
    acc = {"GD": 0.5, "JDD": 0.7, "ADD": 0.6, "LAD": 0.4, "FDD": 0.9, FUSION: 0.1}
    assert ev.vote_priority(voters, acc) == [FUSION, "FDD", "JDD", "ADD", "GD", "LAD"]
    # Release files record no accuracy: Fuse5 then GD, FDD, JDD, ADD, LAD.
    assert ev.vote_priority(voters, {}) == [FUSION] + list(FUSION_ORDER)
    override = ["LAD", "GD", FUSION, "ADD", "JDD", "FDD"]
    assert ev.vote_priority(voters, acc, override) == override
    with pytest.raises(ValueError, match="exactly the voters"):
        ev.vote_priority(voters, acc, ["GD", "JDD"])


def test_oracle_is_any_of_five_correct_on_random_predictions():
    rng = np.random.default_rng(0)
    n, c = 500, 6
    labels = rng.integers(0, c, n)
    singles = {d: rng.normal(size=(n, c)) for d in DESCRIPTORS}
    fuse5 = {"main": rng.normal(size=(n, c)), "single": [rng.normal(size=(n, c)) for _ in FUSION_ORDER],
             "g12": rng.normal(size=(n, c)), "g345": rng.normal(size=(n, c))}
    rows, _ = ev.fusion_rows(singles, fuse5, labels)
    single_right = np.stack([singles[d].argmax(1) == labels for d in DESCRIPTORS])
    oracle = rows[-1]
    assert oracle.key == "oracle" and not oracle.honest and oracle.label == ev.ORACLE_LABEL
    np.testing.assert_array_equal(oracle.pred == labels, single_right.any(axis=0))
    # With random models it is far above every honest row: an upper bound, not an accuracy.
    metrics = [r.metrics(labels, c) for r in rows]
    assert metrics[-1]["top1"] > max(m["top1"] for m in metrics[:-1]) + 0.2
    assert ev.best_honest(metrics)["key"] != "oracle"
    assert rows[0].key == "GD" and all(r.honest for r in rows[:-1])


def test_fusion_rows_on_hand_made_logits():
    labels = np.array([0, 1, 2, 3])
    # GD, JDD right on samples 0, 1; ADD, LAD, FDD say 3 everywhere; Fuse5 right everywhere.
    singles = {"GD": one_hot_logits([0, 1, 1, 1]), "JDD": one_hot_logits([0, 1, 0, 0]),
               "ADD": one_hot_logits([3, 3, 3, 3]), "LAD": one_hot_logits([3, 3, 3, 3]),
               "FDD": one_hot_logits([2, 2, 2, 3])}
    main = one_hot_logits([0, 1, 2, 3], high=50.0)
    fuse5 = {"main": main, "single": [main] * 5, "g12": main, "g345": main}
    rows, order = ev.fusion_rows(singles, fuse5, labels)
    by_key = {r.key: r for r in rows}
    assert [r.key for r in rows][:6] == list(DESCRIPTORS) + [FUSION]
    assert order == [FUSION] + list(FUSION_ORDER)
    # Votes: sample 0 -> 3 (ADD, LAD) vs 0 (GD, JDD, Fuse5): 0 wins; sample 1: 1 wins 3-2;
    # sample 2: 2 (FDD, Fuse5) vs 3 (ADD, LAD) tie -> Fuse5's 2; sample 3: 3 wins.
    assert by_key["vote"].pred.tolist() == [0, 1, 2, 3]
    assert by_key["vote"].scores is None
    # Mean of softmax of the five singles: sample 2 -> 3 (two votes) beats 1, 0, 2 (one each).
    assert by_key["mean_softmax.singles"].pred.tolist() == [0, 1, 3, 3]
    assert by_key["mean_softmax.singles+all"].pred.tolist() == [0, 1, 2, 3]
    assert by_key["oracle"].pred.tolist() == [0, 1, 2, 3]
    metrics = [r.metrics(labels, 4) for r in rows]
    assert {m["key"]: m["top1"] for m in metrics}["GD"] == 0.5


def test_missing_members_drop_rules_not_rows():
    labels = np.array([0, 1])
    rows, order = ev.fusion_rows({"GD": one_hot_logits([0, 1]), "LAD": one_hot_logits([1, 1])}, None, labels)
    assert [r.key for r in rows] == ["GD", "LAD", "mean_softmax.singles"]
    assert order == []


def test_results_document_png_and_paper_table(tmp_path):
    labels = np.array([0, 1, 2, 2])
    rows, _ = ev.fusion_rows({d: one_hot_logits([0, 1, 2, i % 3], 3) for i, d in enumerate(DESCRIPTORS)},
                             None, labels)
    doc = ev.results_document(rows, labels, ["a", "b", "c", "d"], 3, dataset="ucla", protocol="cview")
    path = tmp_path / f"ucla_all_best{ev.RESULTS_SUFFIX}"
    ev.write_json(path, doc)
    back = ev.load_results(path)
    assert back == json.loads(json.dumps(doc))                  # the compact layout is plain JSON
    assert len(path.read_text().splitlines()) < 40              # not one line per prediction
    assert [m["key"] for m in back["rows"]] == [r.key for r in rows]
    assert back["predictions"]["GD"] == [1, 2, 3, 1] and back["samples"]["sample"] == ["a", "b", "c", "d"]
    assert back["samples"]["label"] == (np.asarray(labels) + 1).tolist() and "1-based" in back["labels"]
    assert back["best_honest_row"] == "ADD"   # last prediction i % 3 == 2 only for ADD: 100 %
    png = tmp_path / "cm.png"
    ev.write_confusion_png(png, rows[1].pred, labels, ["x", "y", "z"], "t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.tmp"))
    table = ev.paper_table([ev.load_results(p) for p in ev.find_results([tmp_path])])
    lines = table.splitlines()
    assert lines[0].count("|") == len(ev.paper_columns()) + 2
    gd = next(line for line in lines if line.startswith("| ResNet_c GD "))
    cells = [c.strip() for c in gd.strip(" |").split("|")]
    assert cells[1:] == [""] * (len(ev.paper_columns()) - 1) + ["75.00"]   # only the NW-UCLA column ran
    assert lines[-1].startswith(f"| {ev.ORACLE_LABEL}")
    assert "ucla cview (?)" in lines[0]   # a document that does not say its epoch
    best, last = dict(doc, epoch="best"), dict(doc, epoch="last")
    assert "| ucla cview (best) |" in ev.paper_table([best]).splitlines()[0]
    assert "| ucla cview (mixed: best, last) |" in ev.paper_table([best, last]).splitlines()[0]


def test_load_results_names_the_bad_file(tmp_path):
    bad = tmp_path / "x_results.json"
    bad.write_text(json.dumps({"rows": []}))
    with pytest.raises(ValueError, match="x_results.json: not a results JSON"):
        ev.load_results(bad)
