"""Score files (models/scores.py) and score fusion (models/ensemble.py, ensemble.py): round trips of
every format, one-line refusals of bad or malicious files, alignment by sample id, the fusion rules,
weight tuning on held-out scores only, and what --out writes. Pure numpy, no training."""
from __future__ import annotations

import builtins
import json
import os
import pickle

import numpy as np
import pytest
from conftest import SHARED, load_script

from models import ensemble
from models.evaluation import softmax
from models.scores import (LOGITS, PROBABILITIES, read_scores, write_ctrgcn, write_ours, write_pyskl)

CLI = load_script("ensemble")
FORMATS = SHARED / "data" / "formats"
SYNTHETIC = FORMATS / "synthetic_scores"
CTRGCN_FIXTURE = SYNTHETIC / "synthetic_ctrgcn_NTU60_CS_epoch1_test_score.pkl"
PYSKL_FIXTURE = SYNTHETIC / "synthetic_pyskl_ntu60_xsub_val_result.pkl"
FIXTURE_IDS = [f"test_{i}" for i in range(7)]
FIXTURE_LABELS = np.array([2, 16, 53, 54, 55, 56, 57])   # 0-based labels of NTU60_CS x_test (formats README)

needs_fixtures = pytest.mark.skipif(not SYNTHETIC.is_dir(),
                                    reason=f"synthetic score fixtures not found at {SYNTHETIC} (shared data "
                                           f"folder absent; set IMDAR_SHARED)")


# --------------------------------------------------------------------------- helpers

def ids_of(n, prefix="test"):
    return [f"{prefix}_{i}" for i in range(n)]


def logits(n=7, c=10, seed=0):
    return np.random.default_rng(seed).standard_normal((n, c)).astype(np.float32)


def labels_of(n=7, c=10, seed=1):
    return np.random.default_rng(seed).integers(0, c, n)


def ours(path, ids, labels, scores, key="GD", kind=LOGITS, **meta):
    return write_ours(path, ids, labels, {key: (scores, kind)}, **meta)


def plain_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def cli(argv, capsys):
    """ensemble.py's exit status, stdout and stderr."""
    rc = CLI.main(CLI.get_args_parser().parse_args([str(a) for a in argv]))
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(error, path):
    text = str(error)
    assert text.startswith(str(path)), text
    assert "\n" not in text


def assert_refused(capsys, argv, out_dir, names, *words):
    """The CLI refuses in one stderr line naming ``names``' file, and writes nothing in ``out_dir``."""
    rc, out, err = cli([*argv, "--out", out_dir], capsys)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert names is None or str(names) in lines[0]
    for word in words:
        assert word in lines[0]
    assert "fused" not in out
    assert not out_dir.exists()
    return lines[0]


class Payload:
    """A pickle that runs ``function(*args)`` when loaded by plain pickle."""

    def __init__(self, function, args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


# --------------------------------------------------------------------------- 1. round trips

def test_ours_round_trip(tmp_path):
    ids, labels = ids_of(7), labels_of()
    gd, fused = logits(), softmax(logits(seed=3)).astype(np.float32)
    path = write_ours(tmp_path / "m_scores.npz", ids, labels,
                      {"GD": (gd, LOGITS), "Fuse5": (fused, PROBABILITIES)}, part="heldout", dataset="ucla")
    data = read_scores(path)
    assert data.format == "ours" and data.ids == ids and data.part == "heldout"
    np.testing.assert_array_equal(data.labels, labels)
    assert list(data.streams) == ["GD", "Fuse5"]
    np.testing.assert_array_equal(data.streams["GD"], gd)
    np.testing.assert_allclose(data.streams["Fuse5"], fused)
    assert data.kinds == {"GD": LOGITS, "Fuse5": PROBABILITIES}
    assert data.meta["dataset"] == "ucla" and data.count == 7


def test_ctrgcn_round_trip_keeps_insertion_order(tmp_path):
    ids = ["z", "a", "m", "b"]
    scores = logits(4, 6)
    data = read_scores(write_ctrgcn(tmp_path / "epoch1_test_score.pkl", ids, scores))
    assert (data.format, data.ids, data.labels, data.kinds) == ("ctrgcn", ids, None, {"scores": LOGITS})
    np.testing.assert_array_equal(data.streams["scores"], scores)


def test_pyskl_round_trip(tmp_path):
    probs = softmax(logits(5, 8)).astype(np.float32)
    data = read_scores(write_pyskl(tmp_path / "result.pkl", probs))
    assert (data.format, data.ids, data.labels, data.kinds) == ("pyskl", None, None, {"scores": PROBABILITIES})
    np.testing.assert_allclose(data.streams["scores"], probs)


@pytest.mark.parametrize("id_key", ["ids", "names"])
def test_plain_npz_round_trip(tmp_path, id_key):
    ids, labels, scores = ids_of(6), labels_of(6), logits(6, 4)
    data = read_scores(plain_npz(tmp_path / "s.npz", **{id_key: np.array(ids)}, scores=scores, labels=labels))
    assert data.format == "npz" and data.ids == ids
    np.testing.assert_array_equal(data.labels, labels)
    np.testing.assert_array_equal(data.streams["scores"], scores)


def test_results_json_is_followed(tmp_path):
    ids, labels, scores = ids_of(5), labels_of(5), logits(5)
    target = ours(tmp_path / "run_scores.npz", ids, labels, scores)
    for name, scores_file in (("abs_results.json", str(target.absolute())), ("rel_results.json", target.name)):
        (tmp_path / name).write_text(json.dumps({"scores_file": scores_file}))
        data = read_scores(tmp_path / name)
        assert data.source == target and data.ids == ids
        np.testing.assert_array_equal(data.streams["GD"], scores)


# --------------------------------------------------------------------------- 2. refusals of files

@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("fmt", ["ours", "npz", "ctrgcn", "pyskl"])
def test_non_finite_scores_refused(tmp_path, fmt, bad):
    scores = logits(4, 5)
    scores[2, 3] = bad
    ids, labels = ids_of(4), labels_of(4, 5)
    path = {"ours": lambda: ours(tmp_path / "x_scores.npz", ids, labels, scores),
            "npz": lambda: plain_npz(tmp_path / "x.npz", ids=np.array(ids), scores=scores),
            "ctrgcn": lambda: write_ctrgcn(tmp_path / "x.pkl", ids, scores),
            "pyskl": lambda: write_pyskl(tmp_path / "x.pkl", scores)}[fmt]()
    with pytest.raises(ValueError, match="NaN or infinite") as info:
        read_scores(path)
    assert_one_line_error(info.value, path)


@pytest.mark.parametrize("scores", [np.zeros(5), np.zeros((3, 4, 2)), np.zeros((3, 1)), np.zeros((0, 4)),
                                    np.zeros((3, 4), dtype=bool)], ids=["1d", "3d", "one-class", "empty", "bool"])
def test_npz_scores_of_wrong_shape_refused(tmp_path, scores):
    path = plain_npz(tmp_path / "x.npz", ids=np.array(ids_of(len(scores))), scores=scores)
    with pytest.raises(ValueError) as info:
        read_scores(path)
    assert_one_line_error(info.value, path)


def test_npz_labels_of_wrong_shape_refused(tmp_path):
    path = plain_npz(tmp_path / "x.npz", ids=np.array(ids_of(3)), scores=logits(3, 4), labels=np.zeros((3, 2), int))
    with pytest.raises(ValueError, match="labels") as info:
        read_scores(path)
    assert_one_line_error(info.value, path)


@pytest.mark.parametrize("obj, match", [
    ({"a": np.zeros(4, np.float32), "b": np.zeros(5, np.float32)}, "score vectors"),   # rows of different lengths
    ([np.zeros(4, np.float32), np.zeros((2, 2), np.float32)], "score vectors"),        # a matrix among vectors
    ([[0.1, 0.2], [0.3, 0.4]], "score vectors"),                                        # lists, not arrays
    ("text", "not a score file"), (42, "not a score file"), ({1: np.zeros(3)}, "not a score file"),
    ({}, "not a score file"), ([], "not a score file"), (None, "not a score file"), ({"a", "b"}, "not a score file"),
], ids=["ragged", "2d-entry", "plain-lists", "str", "int", "int-keys", "empty-dict", "empty-list", "none", "set"])
def test_pickle_of_other_content_refused(tmp_path, obj, match):
    """Entries of the wrong shape ("score vectors"), or neither a dict nor a list ("not a score file")."""
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps(obj))
    with pytest.raises(ValueError, match=match) as info:
        read_scores(path)
    assert_one_line_error(info.value, path)


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize("attack", ["os.system", "builtins.open"])
def test_malicious_pickle_refused_and_not_run(tmp_path, attack, protocol):
    def payload(marker):
        if attack == "os.system":
            return Payload(os.system, (f"touch {marker}",))
        return Payload(builtins.open, (str(marker), "w"))

    # Control: plain pickle does run such a file (so the check below can fail).
    control = tmp_path / "control"
    handle = pickle.loads(pickle.dumps(payload(control), protocol=protocol))
    if hasattr(handle, "close"):
        handle.close()
    assert control.exists()

    marker = tmp_path / "pwned"
    for name, obj in (("bare.pkl", payload(marker)), ("nested.pkl", {"test_0": payload(marker)}),
                      ("listed.pkl", [np.zeros(3, np.float32), payload(marker)])):
        path = tmp_path / name
        path.write_bytes(pickle.dumps(obj, protocol=protocol))
        with pytest.raises(ValueError, match="refused") as info:
            read_scores(path)
        assert_one_line_error(info.value, path)
        assert not marker.exists(), f"{name}: the payload ran"


def test_truncated_pickle_refused(tmp_path):
    whole = write_ctrgcn(tmp_path / "whole.pkl", ids_of(5), logits(5))
    path = tmp_path / "cut.pkl"
    path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated") as info:
        read_scores(path)
    assert_one_line_error(info.value, path)


def test_npz_without_scores_refused(tmp_path):
    path = plain_npz(tmp_path / "x.npz", ids=np.array(ids_of(3)), logits=logits(3))
    with pytest.raises(ValueError, match="'scores'") as info:
        read_scores(path)
    assert_one_line_error(info.value, path)


def test_results_json_without_scores_file_refused(tmp_path):
    path = tmp_path / "x_results.json"
    path.write_text(json.dumps({"rows": []}))
    with pytest.raises(ValueError) as info:
        read_scores(path)
    assert_one_line_error(info.value, path)


@pytest.mark.parametrize("fmt", ["npz", "ours"])
def test_ids_count_differing_from_scores_refused(tmp_path, fmt):
    ids, labels, scores = ids_of(7), labels_of(7), logits(6)
    path = (plain_npz(tmp_path / "x.npz", ids=np.array(ids), scores=scores, labels=labels) if fmt == "npz"
            else ours(tmp_path / "x_scores.npz", ids, labels, scores))
    with pytest.raises(ValueError) as info:
        read_scores(path)
    assert_one_line_error(info.value, path)


def test_labels_count_differing_from_scores_refused(tmp_path):
    path = plain_npz(tmp_path / "x.npz", ids=np.array(ids_of(6)), scores=logits(6), labels=labels_of(7))
    with pytest.raises(ValueError) as info:
        read_scores(path)
    assert_one_line_error(info.value, path)


def test_truncated_npz_refused(tmp_path):
    whole = ours(tmp_path / "whole_scores.npz", ids_of(5), labels_of(5), logits(5))
    path = tmp_path / "cut_scores.npz"
    path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ValueError) as info:
        read_scores(path)
    assert_one_line_error(info.value, path)


# --------------------------------------------------------------------------- streams of a file

def test_parse_spec():
    assert ensemble.parse_spec("a.npz") == (None, ensemble.Path("a.npz"), None)
    assert ensemble.parse_spec("ours=d/a_scores.npz#GD,all") == ("ours", ensemble.Path("d/a_scores.npz"), ["GD", "all"])


def test_file_streams_of_ours_take_network_rows(tmp_path):
    ids, labels = ids_of(4), labels_of(4)
    path = write_ours(tmp_path / "m_scores.npz", ids, labels,
                      {"GD": (logits(4), LOGITS), "Fuse5": (softmax(logits(4)), PROBABILITIES),
                       "all": (logits(4, seed=2), LOGITS)})
    assert [s.name for s in ensemble.file_streams(str(path))[1]] == ["m#GD", "m#all"]
    (stream,) = ensemble.file_streams(f"fz={path}#Fuse5")[1]
    assert (stream.name, stream.kind) == ("fz", PROBABILITIES)
    with pytest.raises(ValueError, match="no row 'LAD'") as info:
        ensemble.file_streams(f"{path}#LAD")
    assert_one_line_error(info.value, path)


# --------------------------------------------------------------------------- 3. alignment by id

def test_fusion_aligns_a_shuffled_file_by_id(tmp_path):
    ids, labels = ids_of(7), labels_of(7)
    a, b = logits(seed=10), logits(seed=11)
    order = np.random.default_rng(5).permutation(7)
    assert not np.array_equal(order, np.arange(7))
    file_a = ours(tmp_path / "a_scores.npz", ids, labels, a)
    file_b = write_ctrgcn(tmp_path / "b.pkl", [ids[k] for k in order], b[order])   # shuffled key order
    assert read_scores(file_b).ids == [ids[k] for k in order]

    result = ensemble.run([str(file_a), str(file_b)], weights="0.7,1.3")
    assert result.data.ids == ids
    np.testing.assert_array_equal(result.data.labels, labels)
    # weights are ratios: 0.7,1.3 fuse as 0.35,0.65
    np.testing.assert_allclose(result.fused, (0.7 * a.astype(np.float64) + 1.3 * b.astype(np.float64)) / 2, rtol=1e-12)
    assert result.rows[-1]["top1"] == pytest.approx(float(((0.7 * a + 1.3 * b).argmax(1) == labels).mean()))
    assert result.rows[1]["top1"] == pytest.approx(float((b.argmax(1) == labels).mean()))


@needs_fixtures
def test_real_ctrgcn_fixture_is_fused_by_id_in_any_key_order(tmp_path):
    fixture = read_scores(CTRGCN_FIXTURE)
    assert (fixture.format, fixture.ids) == ("ctrgcn", FIXTURE_IDS)
    expected = np.random.default_rng(0).standard_normal((7, 60)).astype(np.float32)   # formats README, section 3
    np.testing.assert_array_equal(fixture.streams["scores"], expected)

    mine = logits(7, 60, seed=42)
    file_ours = ours(tmp_path / "mine_scores.npz", FIXTURE_IDS, FIXTURE_LABELS, mine)
    reversed_copy = write_ctrgcn(tmp_path / "reversed_test_score.pkl", FIXTURE_IDS[::-1], expected[::-1])
    assert read_scores(reversed_copy).ids == FIXTURE_IDS[::-1]

    natural = ensemble.run([f"mine={file_ours}", f"gcn={CTRGCN_FIXTURE}"])
    flipped = ensemble.run([f"mine={file_ours}", f"gcn={reversed_copy}"])
    np.testing.assert_allclose(natural.fused, (mine.astype(np.float64) + expected.astype(np.float64)) / 2, rtol=1e-12)
    np.testing.assert_array_equal(natural.fused, flipped.fused)
    assert natural.rows == flipped.rows
    fused_top1 = float(((mine.astype(np.float64) + expected).argmax(1) == FIXTURE_LABELS).mean())
    assert natural.rows[-1]["top1"] == pytest.approx(fused_top1)


@needs_fixtures
def test_real_pyskl_fixture_by_position(tmp_path):
    fixture = read_scores(PYSKL_FIXTURE)
    assert (fixture.format, fixture.ids, fixture.count) == ("pyskl", None, 7)
    probs = fixture.streams["scores"]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    mine = logits(7, 60, seed=42)
    file_ours = ours(tmp_path / "mine_scores.npz", FIXTURE_IDS, FIXTURE_LABELS, mine)
    result = ensemble.run([str(file_ours), str(PYSKL_FIXTURE)], use_softmax=True, by_position=True)
    np.testing.assert_allclose(result.fused, (softmax(mine) + softmax(probs)) / 2, rtol=1e-12)   # equal ratios


# --------------------------------------------------------------------------- 4. refusals of the ensemble

@pytest.fixture
def pair(tmp_path):
    """A labelled file of ours over test_0..6 and its scores, 10 classes."""
    ids, labels, scores = ids_of(7), labels_of(7), logits(7)
    return ours(tmp_path / "a_scores.npz", ids, labels, scores), ids, scores


def test_cli_refuses_mismatched_samples(tmp_path, capsys, pair):
    file_a, ids, scores = pair
    other = write_ctrgcn(tmp_path / "b.pkl", [*ids[:-1], "test_99"], logits(seed=3))
    assert_refused(capsys, [file_a, other], tmp_path / "out", other, "test_6")


def test_cli_refuses_mismatched_samples_of_two_labelled_files(tmp_path, capsys, pair):
    file_a, ids, scores = pair
    other = ours(tmp_path / "b_scores.npz", [*ids[:-1], "test_99"], labels_of(7), logits(seed=3))
    assert_refused(capsys, [file_a, other], tmp_path / "out", other)


def test_cli_refuses_different_class_counts(tmp_path, capsys, pair):
    file_a, ids, _ = pair
    other = write_ctrgcn(tmp_path / "b.pkl", ids, logits(7, 11))
    assert_refused(capsys, [file_a, other], tmp_path / "out", other, "11 classes")


def test_cli_refuses_pyskl_without_by_position(tmp_path, capsys, pair):
    file_a, _, _ = pair
    other = write_pyskl(tmp_path / "result.pkl", softmax(logits(seed=4)))
    assert_refused(capsys, [file_a, other], tmp_path / "out", other, "--by-position")
    rc, out, _ = cli([file_a, other, "--by-position"], capsys)
    assert rc == 0 and "fused" in out


def test_cli_refuses_pyskl_of_wrong_count(tmp_path, capsys, pair):
    file_a, _, _ = pair
    other = write_pyskl(tmp_path / "result.pkl", softmax(logits(6, seed=4)))
    assert_refused(capsys, [file_a, other, "--by-position"], tmp_path / "out", other, "6 samples")


def test_cli_refuses_files_without_labels(tmp_path, capsys):
    ids = ids_of(7)
    first = write_ctrgcn(tmp_path / "a.pkl", ids, logits(seed=1))
    second = write_ctrgcn(tmp_path / "b.pkl", ids, logits(seed=2))
    assert_refused(capsys, [first, second], tmp_path / "out", first, "labels")


def test_cli_refuses_files_without_ids(tmp_path, capsys):
    first = write_pyskl(tmp_path / "a.pkl", softmax(logits(seed=1)))
    assert_refused(capsys, [first, "--by-position"], tmp_path / "out", first, "ids")


def test_cli_refuses_wrong_weight_count(tmp_path, capsys, pair):
    file_a, ids, _ = pair
    other = write_ctrgcn(tmp_path / "b.pkl", ids, logits(seed=3))
    assert_refused(capsys, [file_a, other, "--weights", "1,2,3"], tmp_path / "out", None, "--weights", "3 weights")
    assert_refused(capsys, [file_a, other, "--weights", "1,x"], tmp_path / "out", None, "--weights")
    assert_refused(capsys, [file_a, other, "--weights", "0,0"], tmp_path / "out", None, "--weights")


def test_cli_refuses_weights_with_tuning_and_save_score_without_out(tmp_path, capsys, pair):
    file_a, _, _ = pair
    assert_refused(capsys, [file_a, "--weights", "1", "--tune-on", file_a], tmp_path / "out", None, "--tune-on")
    rc, _, err = cli([file_a, "--save-score", "ctrgcn"], capsys)
    assert rc == 2 and "--out" in err and len(err.strip().splitlines()) == 1


def test_cli_refuses_a_malicious_file_unrun(tmp_path, capsys, pair):
    file_a, _, _ = pair
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(Payload(os.system, (f"touch {marker}",))))
    assert_refused(capsys, [file_a, evil], tmp_path / "out", evil)
    assert not marker.exists()


# --------------------------------------------------------------------------- 5. softmax or as stored

@pytest.mark.parametrize("use_softmax", [False, True])
def test_fusion_rule(tmp_path, use_softmax):
    ids, labels = ids_of(7), labels_of(7)
    a, b = logits(seed=20) * 5, softmax(logits(seed=21)).astype(np.float32)   # as the files store them
    file_a = ours(tmp_path / "a_scores.npz", ids, labels, a)
    file_b = write_ctrgcn(tmp_path / "b.pkl", ids, b)
    weights = np.array([0.25, 1.5]) / 1.75   # used as ratios
    result = ensemble.run([str(file_a), str(file_b)], weights="0.25,1.5", use_softmax=use_softmax)
    stored = [a.astype(np.float64), b.astype(np.float64)]
    probabilities = [softmax(a), softmax(b)]
    parts, other = (probabilities, stored) if use_softmax else (stored, probabilities)
    expected = weights[0] * parts[0] + weights[1] * parts[1]
    np.testing.assert_allclose(result.fused, expected, rtol=1e-12)
    assert not np.allclose(result.fused, weights[0] * other[0] + weights[1] * other[1])
    assert result.use_softmax is use_softmax
    assert ("softmax" in result.rows[-1]["label"]) is use_softmax


def test_logits_with_probabilities_as_stored_gives_a_note(tmp_path, capsys):
    ids, labels = ids_of(7), labels_of(7)
    file_a = ours(tmp_path / "a_scores.npz", ids, labels, logits(seed=1))
    file_b = write_pyskl(tmp_path / "b.pkl", softmax(logits(seed=2)))
    assert ensemble.run([str(file_a), str(file_b)], by_position=True).notes
    assert not ensemble.run([str(file_a), str(file_b)], by_position=True, use_softmax=True).notes
    rc, _, err = cli([file_a, file_b, "--by-position"], capsys)
    assert rc == 0 and "--softmax" in err


# --------------------------------------------------------------------------- 6. tuning

def informative_and_noise(folder, prefix, n, part, seed, c=5):
    """Two files over ids <prefix>_0..: stream A weakly tells the label, stream B is loud noise."""
    rng = np.random.default_rng(seed)
    ids, labels = ids_of(n, prefix), rng.integers(0, c, n)
    a = np.eye(c)[labels] * 2.0 + rng.standard_normal((n, c))
    b = rng.standard_normal((n, c)) * 4.0
    file_a = ours(folder / f"a_{prefix}_scores.npz", ids, labels, a, part=part)
    file_b = ours(folder / f"b_{prefix}_scores.npz", ids, labels, b, part=part)
    return [f"A={file_a}", f"B={file_b}"], labels, a, b


def top1(scores, labels):
    return float((scores.argmax(1) == labels).mean())


def test_tuning_on_held_out_scores(tmp_path):
    val, val_labels, val_a, val_b = informative_and_noise(tmp_path, "val", 60, "heldout", seed=1)
    test, _, _, _ = informative_and_noise(tmp_path, "test", 40, "test", seed=2)
    result = ensemble.run(test, tune_on=val)
    assert result.weights_source.startswith("tuned on") and "60 held-out samples" in result.weights_source
    assert result.optimistic is False and "optimistic" not in result.rows[-1]["label"]
    w_a, w_b = result.weights
    assert w_a > w_b
    assert top1(w_a * val_a + w_b * val_b, val_labels) >= top1(val_a + val_b, val_labels)
    a, b = (s.scores for s in result.data.streams)
    np.testing.assert_allclose(result.fused, w_a * a + w_b * b)


def test_tuning_on_the_test_files_refused_unless_allowed(tmp_path, capsys):
    test, _, _, _ = informative_and_noise(tmp_path, "test", 40, "test", seed=2)
    with pytest.raises(ValueError, match="--allow-test-tuning"):
        ensemble.run(test, tune_on=test)
    assert_refused(capsys, [*test, "--tune-on", *test], tmp_path / "out", None, "--allow-test-tuning")

    result = ensemble.run(test, tune_on=test, allow_test_tuning=True)
    assert result.optimistic is True
    assert "optimistic" in result.rows[-1]["label"] and "optimistic" in result.weights_source


def test_tuning_on_a_file_of_the_test_part_refused(tmp_path):
    test, _, _, _ = informative_and_noise(tmp_path, "test", 40, "test", seed=2)
    other, _, _, _ = informative_and_noise(tmp_path, "other", 30, "test", seed=3)   # other ids, part "test"
    with pytest.raises(ValueError, match="--allow-test-tuning"):
        ensemble.run(test, tune_on=other)


def test_tuning_needs_the_same_stream_count(tmp_path):
    val, _, _, _ = informative_and_noise(tmp_path, "val", 30, "heldout", seed=1)
    test, _, _, _ = informative_and_noise(tmp_path, "test", 30, "test", seed=2)
    with pytest.raises(ValueError, match="--tune-on: 1 streams"):
        ensemble.run(test, tune_on=val[:1])


# --------------------------------------------------------------------------- 7. write()

def test_write_results_and_scores(tmp_path):
    ids, labels = ids_of(7), labels_of(7)
    a, b = logits(seed=30), logits(seed=31)
    file_a = ours(tmp_path / "a_scores.npz", ids, labels, a, part="test")
    file_b = write_ctrgcn(tmp_path / "b.pkl", ids[::-1], b[::-1])
    result = ensemble.run([f"first={file_a}", str(file_b)], weights="2,0.5")
    out = tmp_path / "out"
    files = ensemble.write(result, out, save_score=("ctrgcn", "pyskl"))

    doc = json.loads((out / "ensemble_results.json").read_text())
    assert [r["key"] for r in doc["rows"]] == ["first", "b", "fused"]
    for row, stream in zip(doc["rows"], (a, b, 2 * a.astype(np.float64) + 0.5 * b)):
        assert set(row) >= {"key", "top1", "top5", "mean_class"}
        assert row["top1"] == pytest.approx(top1(stream, labels))
    assert doc["weights"] == pytest.approx({"first": 0.8, "b": 0.2})   # 2,0.5 as ratios
    assert doc["weights_source"] == result.weights_source == "given (--weights)"
    assert doc["num_samples"] == 7 and doc["part"] == "test" and doc["gain"] == result.gain_line()
    assert doc["samples"]["label"] == (labels + 1).tolist()

    saved = read_scores(out / "ensemble_scores.npz")
    assert saved.format == "ours" and saved.ids == ids and list(saved.streams) == ["fused"]
    np.testing.assert_array_equal(saved.labels, labels)
    np.testing.assert_allclose(saved.streams["fused"], result.fused, rtol=1e-6)

    assert set(files) == {"npz", "ctrgcn", "pyskl"}
    ctr, pys = read_scores(files["ctrgcn"]), read_scores(files["pyskl"])
    assert (ctr.format, ctr.ids, pys.format, pys.ids) == ("ctrgcn", ids, "pyskl", None)
    np.testing.assert_allclose(ctr.streams["scores"], result.fused, rtol=1e-6)
    np.testing.assert_allclose(pys.streams["scores"], result.fused, rtol=1e-6)


def test_gain_line(tmp_path):
    ids, labels = ids_of(7), labels_of(7)
    result = ensemble.run([str(ours(tmp_path / "a_scores.npz", ids, labels, logits(seed=40))),
                           str(write_ctrgcn(tmp_path / "b.pkl", ids, logits(seed=41)))])
    best = max(result.rows[:-1], key=lambda r: r["top1"])
    gain = result.rows[-1]["top1"] - best["top1"]
    line = result.gain_line()
    assert f"{100 * result.rows[-1]['top1']:.2f}%" in line and f"{100 * abs(gain):.2f} points" in line
    assert f"({best['key']}, {100 * best['top1']:.2f}%)" in line
    assert line.split(": ")[1].startswith("+" if gain >= 0 else "-")


# --------------------------------------------------------------------------- 8. the CLI's happy path

def test_cli_happy_path(tmp_path, capsys, pair):
    file_a, ids, _ = pair
    other = write_ctrgcn(tmp_path / "b.pkl", ids[::-1], logits(seed=3)[::-1])
    out = tmp_path / "out"
    rc, text, err = cli([f"ours={file_a}", f"gcn={other}", "--out", out, "--save-score", "ctrgcn", "pyskl"], capsys)
    assert rc == 0, err
    lines = text.splitlines()
    assert any(line.startswith("fused") for line in lines)
    assert any(line.startswith("ours") for line in lines) and any(line.startswith("gcn") for line in lines)
    assert any("over the best single stream" in line for line in lines)
    assert "7 samples; weights equal" in text
    assert {p.name for p in out.iterdir()} == {"ensemble_results.json", "ensemble_scores.npz",
                                               "ensemble_fused_test_score.pkl", "ensemble_fused_result.pkl"}


def test_cli_follows_a_results_json(tmp_path, capsys, pair):
    file_a, ids, _ = pair
    results = tmp_path / "a_results.json"
    results.write_text(json.dumps({"scores_file": file_a.name}))
    rc, text, err = cli([results, write_ctrgcn(tmp_path / "b.pkl", ids, logits(seed=3))], capsys)
    assert rc == 0, err
    assert "over the best single stream" in text
