"""Score fusion across models (ensemble.py): streams read from score files of any format
(models/scores.py), matched by sample id, combined by a weighted sum, weights given or tuned on a
held-out part of train (docs/ENSEMBLES.md). Pure numpy; every refusal a one-line ValueError
naming the file.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.atomic import write_text_atomic
from descriptors.names import DESCRIPTORS, FUSION
from models import evaluation as ev
from models import scores as score_files
from models.scores import UNKNOWN, ScoreSet, read_scores

# Rows of our score files that are networks (the others are fusions of them): what a file of ours
# gives as streams unless FILE#ROW,ROW names rows.
NETWORK_ROWS = (*DESCRIPTORS, FUSION)
WEIGHT_GRID = tuple(np.round(np.arange(0.0, 2.01, 0.25), 2))   # coordinate search, per stream
TUNE_ROUNDS = 3


@dataclass
class Stream:
    """One model's scores in the order of the ensemble's samples."""
    name: str
    source: Path
    scores: np.ndarray      # (N, C)
    kind: str               # logits, probabilities, unknown


@dataclass
class Streams:
    """The streams of one set of files, aligned: the same samples, in one order, with labels."""
    ids: list[str]
    labels: np.ndarray      # 0-based
    streams: list[Stream]
    part: str | None        # what our files say they score (test, heldout); None when unknown


def parse_spec(spec: str) -> tuple[str | None, Path, list[str] | None]:
    """'[NAME=]FILE[#ROW,ROW]' -> (name, file, rows)."""
    name, _, rest = spec.rpartition("=") if "=" in spec else (None, "", spec)
    path, _, rows = rest.partition("#")
    return name or None, Path(path), rows.split(",") if rows else None


def file_streams(spec: str) -> tuple[ScoreSet, list[Stream]]:
    """The streams one FILE argument gives: our file's network rows (or the rows named after #),
    another format's one stream; named NAME=, else by file and row."""
    name, path, rows = parse_spec(spec)
    data = read_scores(path)
    if rows is None:
        rows = [r for r in NETWORK_ROWS if r in data.streams] if data.format == "ours" else list(data.streams)
        rows = rows or list(data.streams)
    missing = [r for r in rows if r not in data.streams]
    if missing:
        raise ValueError(f"{path}: no row {missing[0]!r}; it has {', '.join(data.streams)}")
    label = name or path.stem.removesuffix("_scores")
    streams = [Stream(label if len(rows) == 1 and (name or data.format != "ours") else f"{label}#{row}", path,
                      data.streams[row], data.kinds.get(row, UNKNOWN)) for row in rows]
    return data, streams


def align(sets: list[tuple[ScoreSet, list[Stream]]], by_position: bool) -> Streams:
    """Match the files' samples by id (or, with ``by_position``, files without ids by position);
    refuse any mismatch of samples, labels or classes in one line naming the file."""
    with_ids = [(data, streams) for data, streams in sets if data.ids is not None]
    if not with_ids:
        raise ValueError(f"{sets[0][0].source}: no file names its samples; at least one file must have sample ids "
                         f"(ours, CTR-GCN's, or an npz with ids)")
    reference = with_ids[0][0]
    ids = list(reference.ids)
    if len(set(ids)) < len(ids):
        raise ValueError(f"{reference.source}: a sample id repeats")
    labels = _labels(sets, ids)
    aligned: list[Stream] = []
    for data, streams in sets:
        order = _order(data, reference, ids, labels, by_position)
        aligned += [Stream(s.name, s.source, s.scores[order], s.kind) for s in streams]
    classes = {s.scores.shape[1] for s in aligned}
    if len(classes) > 1:
        odd = next(s for s in aligned if s.scores.shape[1] != aligned[0].scores.shape[1])
        raise ValueError(f"{odd.source}: {odd.scores.shape[1]} classes, {aligned[0].source} has "
                         f"{aligned[0].scores.shape[1]}")
    if int(labels.max()) >= aligned[0].scores.shape[1]:
        raise ValueError(f"{reference.source}: label {int(labels.max())} beyond the {aligned[0].scores.shape[1]} classes")
    parts = {data.part for data, _ in sets if data.part}
    return Streams(ids, labels, aligned, parts.pop() if len(parts) == 1 else None)


def _order(data: ScoreSet, reference: ScoreSet, ids: list[str], labels: np.ndarray, by_position: bool) -> list[int]:
    """Positions in ``data`` of the ensemble's samples."""
    if data.ids is None:
        if not by_position:
            raise ValueError(f"{data.source}: its scores name no samples ({data.format} format); match them by "
                             f"position with --by-position, if its rows are in the order of {reference.source}")
        if data.count != len(ids):
            raise ValueError(f"{data.source}: {data.count} samples, {reference.source} has {len(ids)}")
        if data.labels is not None and not np.array_equal(data.labels, labels):
            raise ValueError(f"{data.source}: its labels disagree with {reference.source}'s by position")
        return list(range(len(ids)))
    where = {sid: k for k, sid in enumerate(data.ids)}
    missing, extra = [s for s in ids if s not in where], [s for s in data.ids if s not in set(ids)]
    if missing or extra or len(where) != len(data.ids):
        what = (f"lacks {len(missing)} sample(s) of {reference.source} (first {missing[0]})" if missing else
                f"has {len(extra)} sample(s) that {reference.source} lacks (first {extra[0]})" if extra else
                "names a sample twice")
        raise ValueError(f"{data.source}: {what}; fuse scores of the same samples")
    return [where[s] for s in ids]


def _labels(sets: list[tuple[ScoreSet, list[Stream]]], ids: list[str]) -> np.ndarray:
    """The samples' labels, from every file that has them (they must agree)."""
    labels, source = None, None
    for data, _ in sets:
        if data.labels is None or data.ids is None:
            continue
        mine = dict(zip(data.ids, data.labels.tolist()))
        if not all(s in mine for s in ids):
            continue   # other samples: refused, and named, when the files are matched
        theirs = np.array([mine[s] for s in ids])
        if labels is None:
            labels, source = theirs, data.source
        elif not np.array_equal(labels, theirs):
            k = int(np.flatnonzero(labels != theirs)[0])
            raise ValueError(f"{data.source}: sample {ids[k]} has label {theirs[k]}, {source} says {labels[k]}")
    if labels is None:
        raise ValueError(f"{sets[0][0].source}: no file gives the true labels; add one of this project's score files "
                         f"(or an npz with ids, scores and labels) of the same samples")
    return labels


def fuse(streams: list[Stream], weights: np.ndarray, use_softmax: bool) -> np.ndarray:
    """The weighted sum of the streams' scores as stored (the rule of CTR-GCN's and PYSKL's
    ensemble scripts), or of their softmax probabilities."""
    parts = [ev.softmax(s.scores) if use_softmax else s.scores for s in streams]
    return sum(w * p for w, p in zip(weights, parts))


def tune_weights(streams: list[Stream], labels: np.ndarray, use_softmax: bool) -> np.ndarray:
    """Weights that maximise top-1 on these (held-out) scores: coordinate search over
    ``WEIGHT_GRID`` from equal weights, ties broken by the mean true-class probability of the
    weighted mean (so scaling every weight alike, which changes no prediction, gains nothing),
    then by staying put."""
    parts = [ev.softmax(s.scores) if use_softmax else s.scores for s in streams]
    rows = np.arange(len(labels))

    def objective(weights: np.ndarray) -> tuple[float, float]:
        if not weights.any():
            return -1.0, 0.0
        mean = sum(w * p for w, p in zip(weights, parts)) / weights.sum()
        top1 = float((mean.argmax(axis=1) == labels).mean())
        return top1, float((mean if use_softmax else ev.softmax(mean))[rows, labels].mean())

    weights = np.ones(len(streams))
    best = objective(weights)
    for _ in range(TUNE_ROUNDS):
        improved = False
        for k, value in itertools.product(range(len(streams)), WEIGHT_GRID):
            trial = weights.copy()
            trial[k] = value
            if (score := objective(trial)) > best:
                weights, best, improved = trial, score, True
        if not improved:
            break
    return weights


def kinds_note(streams: list[Stream], use_softmax: bool) -> str | None:
    """A warning when scores of different kinds are summed as stored (logits with probabilities)."""
    kinds = {s.kind for s in streams}
    if use_softmax or len(kinds - {UNKNOWN}) < 2:
        return None
    return (f"note: summing {' and '.join(sorted(kinds - {UNKNOWN}))} as stored weighs them unevenly; --softmax "
            f"turns every stream into probabilities first")


def metrics_rows(streams: list[Stream], fused: np.ndarray, labels: np.ndarray, fused_label: str) -> list[dict]:
    """Each stream's and the fusion's top-1, top-5, mean per-class (the results table's rows)."""
    num_classes = fused.shape[1]
    rows = [ev.score_row(s.name, f"{s.name} ({s.kind})", s.scores, s.kind).metrics(labels, num_classes)
            for s in streams]
    rows.append(ev.score_row("fused", fused_label, fused, None).metrics(labels, num_classes))
    return [{k: m[k] for k in ("key", "label", "honest", "top1", "top5", "mean_class")} for m in rows]


# --------------------------------------------------------------------------- one ensemble

@dataclass
class Ensemble:
    """What ensemble.py computed: the aligned streams, the weights and where they came from, the
    fused scores and the table's rows."""
    data: Streams
    weights: np.ndarray
    weights_source: str
    optimistic: bool
    use_softmax: bool
    fused: np.ndarray
    rows: list[dict]
    notes: list[str]

    def gain_line(self) -> str:
        best = max(self.rows[:-1], key=lambda r: r["top1"])
        gain = self.rows[-1]["top1"] - best["top1"]
        return (f"fused top-1 {100 * self.rows[-1]['top1']:.2f}%: {'+' if gain >= 0 else ''}{100 * gain:.2f} points "
                f"over the best single stream ({best['key']}, {100 * best['top1']:.2f}%)")


def parse_weights(text: str, count: int) -> np.ndarray:
    try:
        weights = np.array([float(w) for w in text.split(",")])
    except ValueError:
        raise ValueError(f"--weights {text}: not a comma-separated list of numbers") from None
    if len(weights) != count:
        raise ValueError(f"--weights {text}: {len(weights)} weights for {count} streams (in the order the table lists them)")
    if not np.isfinite(weights).all() or not weights.any():
        raise ValueError(f"--weights {text}: weights must be finite and not all zero")
    return weights


def tuned(data: Streams, tune_on: list[str], by_position: bool, use_softmax: bool,
          allow_test: bool) -> tuple[np.ndarray, str, bool]:
    """(weights, where they came from, whether they are optimistic): tuned on the scores of the
    same streams on a held-out part of train; the test split's own scores are refused (unless
    ``allow_test``, which labels the result optimistic)."""
    tune = align([file_streams(spec) for spec in tune_on], by_position)
    if len(tune.streams) != len(data.streams):
        raise ValueError(f"--tune-on: {len(tune.streams)} streams, the files fused give {len(data.streams)}; give the "
                         f"same models' scores on the held-out part, in the same order")
    on_test = tune.part == "test" or bool(set(tune.ids) & set(data.ids))
    if on_test and not allow_test:
        raise ValueError(f"--tune-on: {tune.streams[0].source} scores the test samples themselves; tune on a held-out "
                         f"part of train (test.py --on heldout), or add --allow-test-tuning for optimistic figures")
    weights = tune_weights(tune.streams, tune.labels, use_softmax)
    where = "the test split (optimistic)" if on_test else f"{len(tune.ids)} held-out samples"
    return weights, f"tuned on {where}: {', '.join(map(str, tune_on))}", on_test


def run(files: list[str], weights: str | None = None, use_softmax: bool = False, by_position: bool = False,
        tune_on: list[str] | None = None, allow_test_tuning: bool = False) -> Ensemble:
    data = align([file_streams(spec) for spec in files], by_position)
    optimistic = False
    if weights and tune_on:
        raise ValueError("--weights and --tune-on: give weights, or have them tuned, not both")
    if weights:
        chosen, source = parse_weights(weights, len(data.streams)), "given (--weights)"
    elif tune_on:
        chosen, source, optimistic = tuned(data, tune_on, by_position, use_softmax, allow_test_tuning)
    else:
        chosen, source = np.ones(len(data.streams)), "equal (no --weights or --tune-on)"
    fused = fuse(data.streams, chosen, use_softmax)
    rule = "softmax, then weighted sum" if use_softmax else "weighted sum of the scores as stored"
    label = f"fused: {rule}" + (" (weights tuned on test: optimistic)" if optimistic else "")
    notes = [n for n in [kinds_note(data.streams, use_softmax)] if n]
    return Ensemble(data, chosen, source, optimistic, use_softmax, fused,
                    metrics_rows(data.streams, fused, data.labels, label), notes)


def write(result: Ensemble, out: str | Path, save_score: tuple[str, ...]) -> dict[str, str]:
    """ensemble_results.json and the fused scores (ours, and the formats of ``save_score``) in ``out``."""
    out = Path(out)
    data = result.data
    files = {"npz": str(score_files.write_ours(out / "ensemble_scores.npz", data.ids, data.labels,
                                               {"fused": (result.fused, "fused")}, part=data.part))}
    for fmt in save_score:
        files[fmt] = str(score_files.write_row(fmt, out, "ensemble", "fused", "test", data.ids, result.fused))
    doc = {"rows": result.rows, "weights": {s.name: float(w) for s, w in zip(data.streams, result.weights)},
           "weights_source": result.weights_source, "optimistic": result.optimistic, "softmax": result.use_softmax,
           "inputs": {s.name: {"file": str(s.source), "scores": s.kind} for s in data.streams},
           "num_samples": len(data.ids), "part": data.part, "gain": result.gain_line(), "score_files": files,
           "samples": {"sample": data.ids, "label": (data.labels + 1).tolist()},
           "predictions": {"fused": (result.fused.argmax(axis=1) + 1).tolist()}, "labels": ev.LABELS_NOTE}
    write_text_atomic(out / ev.ENSEMBLE_RESULTS_NAME, json.dumps(doc, indent=1) + "\n", make_parents=True)
    return files
