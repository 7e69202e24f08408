"""Score fusion across models (ensemble.py): streams read from score files of any format
(models/scores.py), matched by sample id, combined by a weighted sum, weights given or tuned on a
held-out part of train (docs/ENSEMBLES.md). Pure numpy; every refusal a one-line ValueError
naming the file. Files that record what made them must agree: the ordered class names, and the
dataset, protocol, part and data file (common/provenance.py's ``check``); the fused file records
its inputs by content digest.
"""
from __future__ import annotations

import itertools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.atomic import write_text_atomic, writing_into
from common.provenance import ProvenanceError, check, first_difference
import descriptors.registry as registry
from descriptors.names import FUSION
from models import evaluation as ev
from models import scores as score_files
from models.scores import UNKNOWN, ScoreSet, read_scores

# Rows of our score files that are networks (the others are fusions of them): what a file of ours
# gives as streams unless FILE#ROW,ROW names rows.
NETWORK_ROWS = (*registry.names(), FUSION)   # a score file of ours: its descriptor models and fusion network
WEIGHT_GRID = tuple(np.round(np.arange(0.0, 2.01, 0.25), 2))   # coordinate search, per stream
TUNE_ROUNDS = 3
# What our score files record of the samples they score (data, split: a PYSKL or CTR-GCN file's
# SHA-256 and split name): the files fused must agree on each field they state, the files tuned on
# with them on TUNE_FIELDS (they score another part). The models' own settings (mode, size, epoch,
# network) may differ: fusing different models is the point.
SAMPLE_FIELDS = ("dataset", "protocol", "part", "data", "split")
TUNE_FIELDS = ("dataset", "protocol", "data")
# NAME in NAME=FILE: a plain name, so that a path holding '=' (runs/lr=0.1/...) stays a path.
PLAIN_NAME = re.compile(r"[\w.+-]+")
SCORES_NAME = "ensemble_scores.npz"
# --out names a folder; a missing one with a file's suffix was most likely meant as a file.
FILE_SUFFIXES = (".npz", ".json", ".pkl", ".pickle")


@dataclass
class Stream:
    """One model's scores in the order of the ensemble's samples."""
    name: str
    source: Path
    scores: np.ndarray      # (N, C)
    kind: str               # logits, probabilities, unknown
    digest: str | None = None   # SHA-256 of the file read


@dataclass
class Streams:
    """The streams of one set of files, aligned: the same samples, in one order, with labels."""
    ids: list[str]
    labels: np.ndarray      # 0-based
    streams: list[Stream]
    part: str | None        # what our files say they score (test, heldout); None when unknown
    classes: list[str] | None = None   # the ordered class names the files record (they agree)
    record: dict = field(default_factory=dict)   # SAMPLE_FIELDS as the files record them (they agree)


def parse_spec(spec: str) -> tuple[str | None, Path, list[str] | None]:
    """'[NAME=]FILE[#ROW,ROW]' -> (name, file, rows). A file that exists is a file, whatever it
    holds ('=' or '#'); NAME= is split off only when NAME is a plain name (no folder in it), and
    #ROWS only when the rows hold no folder."""
    if Path(spec).is_file():
        return None, Path(spec), None
    name, equals, rest = spec.partition("=")
    if not equals or not PLAIN_NAME.fullmatch(name):
        name, rest = None, spec
    if Path(rest).is_file():
        return name, Path(rest), None
    path, hash_sign, rows = rest.rpartition("#")
    if not hash_sign or not rows or "/" in rows or os.sep in rows:
        path, rows = rest, ""
    return name, Path(path), rows.split(",") if rows else None


def file_streams(spec: str) -> tuple[ScoreSet, list[Stream]]:
    """The streams one FILE argument gives: our file's network rows (or the rows named after #),
    another format's one stream; named NAME=, else by file and row."""
    name, path, rows = parse_spec(spec)
    if name and not path.exists():
        raise FileNotFoundError(f"{path.absolute()}: no such score file (read {spec!r} as NAME=FILE with NAME "
                                f"{name!r}; give the path of an existing file)")
    data = read_scores(path)
    if rows is None:
        rows = [r for r in NETWORK_ROWS if r in data.streams] if data.format == "ours" else list(data.streams)
        rows = rows or list(data.streams)
    missing = [r for r in rows if r not in data.streams]
    if missing:
        raise ValueError(f"{path}: no row {missing[0]!r}; it has {', '.join(data.streams)}")
    label = name or path.stem.removesuffix("_scores")
    streams = [Stream(label if len(rows) == 1 and (name or data.format != "ours") else f"{label}#{row}", path,
                      data.streams[row], data.kinds.get(row, UNKNOWN), data.digest) for row in rows]
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
    names, record = agreed([data for data, _ in sets])
    for data, streams in sets:
        order = _order(data, reference, ids, labels, by_position)
        aligned += [Stream(s.name, s.source, s.scores[order], s.kind, s.digest) for s in streams]
    classes = {s.scores.shape[1] for s in aligned}
    if len(classes) > 1:
        odd = next(s for s in aligned if s.scores.shape[1] != aligned[0].scores.shape[1])
        raise ValueError(f"{odd.source}: {odd.scores.shape[1]} classes, {aligned[0].source} has "
                         f"{aligned[0].scores.shape[1]}")
    if int(labels.max()) >= aligned[0].scores.shape[1]:
        raise ValueError(f"{reference.source}: label {int(labels.max())} beyond the {aligned[0].scores.shape[1]} classes")
    parts = {data.part for data, _ in sets if data.part}
    return Streams(ids, labels, aligned, parts.pop() if len(parts) == 1 else None, names, record)


def check_classes(data: ScoreSet | Streams, source: Path, classes: list[str] | None, reference: Path) -> None:
    """Refuse scores of other class names or another class order than ``reference``'s, naming the
    first difference; files without names are taken as they are."""
    if data.classes is None or classes is None:
        return
    if differ := first_difference(data.classes, classes):
        raise ProvenanceError(f"{source}: scores other classes than {reference} ({differ}, this file -> "
                              f"{reference.name}); fuse scores of models of the same classes, in the same order")


def sample_record(meta: dict) -> dict:
    """What a score file of ours records of its samples (SAMPLE_FIELDS), the unstated left out."""
    origin = meta.get("origin") if isinstance(meta.get("origin"), dict) else {}
    record = {"dataset": meta.get("dataset"), "protocol": meta.get("protocol"), "part": meta.get("part"),
              "data": origin.get("sha256"), "split": origin.get("split")}
    return {k: v for k, v in record.items() if v is not None}


def agreed(sets: list[ScoreSet]) -> tuple[list[str] | None, dict]:
    """(class names, sample record) that the files state, each checked against the first file
    that states it; files that record nothing (peers' formats, older files) agree."""
    named = next((data for data in sets if data.classes is not None), None)
    records = [(data, sample_record(data.meta)) for data in sets]
    first = next(((data, record) for data, record in records if record), None)
    for data, record in records:
        if named is not None:
            check_classes(data, data.source, named.classes, named.source)
        if first is not None:
            check(record, first[1], SAMPLE_FIELDS, file=data.source,
                  fix=f"fuse scores of the same samples (as {first[0].source}: {described(first[1])})")
    merged = {k: v for _, record in reversed(records) for k, v in record.items()}
    return (named.classes if named else None), merged


def described(record: dict) -> str:
    """'ntu60 xsub test, data 3f1c0a9b2e4d (split xsub_val)': a sample record in words."""
    words = " ".join(str(record[k]) for k in ("dataset", "protocol", "part") if record.get(k))
    data = f", data {str(record['data'])[:12]}" if record.get("data") else ""
    return words + data + (f" (split {record['split']})" if record.get("split") else "")


def origin_meta(record: dict) -> dict:
    """A sample record as our score files' meta states it (the data file under ``origin``)."""
    origin = {key: record[name] for key, name in (("sha256", "data"), ("split", "split")) if name in record}
    return {**{k: record[k] for k in ("dataset", "protocol", "part") if k in record},
            **({"origin": origin} if origin else {})}


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
    tuned_on: dict[str, str | None] = field(default_factory=dict)   # file -> SHA-256 of the --tune-on files

    def gain_line(self) -> str:
        best = max(self.rows[:-1], key=lambda r: r["top1"])
        gain = self.rows[-1]["top1"] - best["top1"]
        return (f"fused top-1 {100 * self.rows[-1]['top1']:.2f}%: {'+' if gain >= 0 else ''}{100 * gain:.2f} points "
                f"over the best single stream ({best['key']}, {100 * best['top1']:.2f}%)")


def parse_weights(text: str, count: int) -> np.ndarray:
    """--weights: one finite, non-negative number per stream, not all zero (only their ratios matter)."""
    try:
        weights = np.array([float(w) for w in text.split(",")])
    except ValueError:
        raise ValueError(f"--weights {text}: not a comma-separated list of numbers") from None
    if len(weights) != count:
        raise ValueError(f"--weights {text}: {len(weights)} weights for {count} streams (in the order the table lists them)")
    if not np.isfinite(weights).all() or (weights < 0).any() or not weights.any():
        raise ValueError(f"--weights {text}: weights must be finite, non-negative and not all zero (only their "
                         f"ratios matter: 2,1 weighs the first stream twice the second)")
    return weights


def ratios(weights: np.ndarray) -> np.ndarray:
    """Weights as ratios summing to 1: scaled by their largest first, so that 1e308s (whose sum
    overflows) are 1s."""
    scaled = weights / weights.max()
    return scaled / scaled.sum()


def tuned(data: Streams, tune_on: list[str], by_position: bool, use_softmax: bool,
          allow_test: bool) -> tuple[np.ndarray, str, bool, dict[str, str | None]]:
    """(weights, where they came from, whether they are optimistic, {file: SHA-256} of the files
    tuned on): tuned on the scores of the same streams on a held-out part of train, of the same
    data and classes; the test split's own scores are refused (unless ``allow_test``, which
    labels the result optimistic)."""
    tune = align([file_streams(spec) for spec in tune_on], by_position)
    check_classes(tune, tune.streams[0].source, data.classes, data.streams[0].source)
    check(tune.record, data.record, TUNE_FIELDS, file=tune.streams[0].source,
          fix=f"tune on held-out scores of the same data as the files fused ({described(data.record)})")
    if len(tune.streams) != len(data.streams):
        raise ValueError(f"--tune-on: {len(tune.streams)} streams, the files fused give {len(data.streams)}; give the "
                         f"same models' scores on the held-out part, in the same order")
    on_test = tune.part == "test" or bool(set(tune.ids) & set(data.ids))
    if on_test and not allow_test:
        raise ValueError(f"--tune-on: {tune.streams[0].source} scores the test samples themselves; tune on a held-out "
                         f"part of train (test.py --on heldout), or add --allow-test-tuning for optimistic figures")
    weights = tune_weights(tune.streams, tune.labels, use_softmax)
    where = "the test split (optimistic)" if on_test else f"{len(tune.ids)} held-out samples"
    digests = {str(s.source): s.digest for s in tune.streams}
    return weights, f"tuned on {where}: {', '.join(map(str, tune_on))}", on_test, digests


def run(files: list[str], weights: str | None = None, use_softmax: bool = False, by_position: bool = False,
        tune_on: list[str] | None = None, allow_test_tuning: bool = False) -> Ensemble:
    if weights and tune_on:
        raise ValueError("--weights and --tune-on: give weights, or have them tuned, not both")
    data = align([file_streams(spec) for spec in files], by_position)
    optimistic, tuned_on = False, {}
    if weights:
        chosen, source = parse_weights(weights, len(data.streams)), "given (--weights)"
    elif tune_on:
        chosen, source, optimistic, tuned_on = tuned(data, tune_on, by_position, use_softmax, allow_test_tuning)
    else:
        chosen, source = np.ones(len(data.streams)), "equal (no --weights or --tune-on)"
    chosen = ratios(chosen)
    fused = fuse(data.streams, chosen, use_softmax)
    rule = "softmax, then weighted sum" if use_softmax else "weighted sum of the scores as stored"
    label = f"fused: {rule}" + (" (weights tuned on test: optimistic)" if optimistic else "")
    notes = [n for n in [kinds_note(data.streams, use_softmax)] if n]
    return Ensemble(data, chosen, source, optimistic, use_softmax, fused,
                    metrics_rows(data.streams, fused, data.labels, label), notes, tuned_on)


def check_out(out: str | Path) -> Path:
    """--out: a folder to write into, refused before anything is read when it is a file, has a
    file on its way, looks like a file's name (a missing ``fused.npz``) or cannot be written."""
    out = Path(out)
    what = f"the folder that gets {ev.ENSEMBLE_RESULTS_NAME} and {SCORES_NAME}"
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: a file, not a folder; --out names {what} (give a folder's path)")
    if not out.exists() and out.suffix.lower() in FILE_SUFFIXES:
        raise ValueError(f"--out {out}: --out names {what}, not a file; give a folder (e.g. --out "
                         f"{out.parent / out.stem})")
    above = next(p for p in (out, *out.parents) if p.exists())
    if not above.is_dir():
        raise ValueError(f"--out {out}: {above} is a file, not a folder; --out names {what}")
    if not os.access(above, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: {above} cannot be written (read-only); give a folder you can write")
    return out


def made_from(result: Ensemble) -> dict:
    """What made the fused scores: each stream's file (by SHA-256), scores and weight, the rule,
    the files the weights were tuned on."""
    return {"inputs": {s.name: {"file": str(s.source), "sha256": s.digest, "scores": s.kind, "weight": float(w)}
                       for s, w in zip(result.data.streams, result.weights)},
            "weights_source": result.weights_source, "softmax": result.use_softmax, "tuned_on": result.tuned_on}


def write(result: Ensemble, out: str | Path, save_score: tuple[str, ...]) -> dict[str, str]:
    """ensemble_results.json and the fused scores (ours, and the formats of ``save_score``) in
    ``out``; ours records the class names, the samples' record and the inputs (``made_from``)."""
    out = check_out(out)
    data, made = result.data, made_from(result)
    with writing_into(out, "the ensemble's results", "give --out a folder you can write"):
        files = {"npz": str(score_files.write_ours(out / SCORES_NAME, data.ids, data.labels,
                                                   {"fused": (result.fused, "fused")}, data.classes,
                                                   **{**origin_meta(data.record), "part": data.part}, **made))}
        for fmt in save_score:
            files[fmt] = str(score_files.write_row(fmt, out, "ensemble", "fused", "test", data.ids, result.fused))
        doc = {"rows": result.rows, "weights": {s.name: float(w) for s, w in zip(data.streams, result.weights)},
               **made, "optimistic": result.optimistic, "classes": data.classes, **origin_meta(data.record),
               "num_samples": len(data.ids), "part": data.part, "gain": result.gain_line(), "score_files": files,
               "samples": {"sample": data.ids, "label": (data.labels + 1).tolist()},
               "predictions": {"fused": (result.fused.argmax(axis=1) + 1).tolist()}, "labels": ev.LABELS_NOTE}
        write_text_atomic(out / ev.ENSEMBLE_RESULTS_NAME, json.dumps(doc, indent=1) + "\n", make_parents=True)
    return files
