"""Evaluation: metrics, fusion rules, the release's oracle, results JSON, confusion PNG, paper table.

Everything here is a pure function of numpy arrays (logits, predictions, labels) or of results
files, so it is tested without networks. In memory, labels and predictions are 0-based class
indices (tensor positions); the results JSON writes them 1-based, as the files name classes.

Rows of a results table (``Row``) each hold one prediction per test sample; the release's rule
("voting and priority score selection", docs/METHOD.md §6) is kept as a row too, but it reads the true
label, so it is flagged ``honest=False`` and always placed last.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from common.atomic import write_bytes_atomic, write_text_atomic
from skeletons.datasets import BUILTIN_DATASETS, DATASETS
import descriptors.registry as registry
from descriptors.base import COLOUR
from descriptors.names import DESCRIPTORS, FUSION, FUSION_ORDER, is_fused
from models.config import DEFAULT_ARCH
from models.names import GROUP_OUTPUTS
from models.confusion import confusion_png
from models.scores import LOGITS, PROBABILITIES

if TYPE_CHECKING:  # torch is imported lazily: the pure metrics need only numpy
    import torch

ORACLE_LABEL = "oracle: any of 5 correct, uses test labels, not an accuracy"


def oracle_label(models: int) -> str:
    return ORACLE_LABEL.replace("5", str(models), 1)
TOP_K = 5
RESULTS_SUFFIX = "_results.json"
HELDOUT = "heldout"          # test.py --on heldout: the part of train that --val-fraction held out
ENSEMBLE_RESULTS_NAME = "ensemble_results.json"   # ensemble.py --out's (not a test.py results file)
CONFUSION_SUFFIX = "_confusion.png"
PAPER_TABLE_NAME = "paper_table.md"
LABELS_NOTE = ("samples.label and predictions are 1-based class labels, as in the image names and manifests: "
               "class_names[label - 1] names them")


# --------------------------------------------------------------------------- metrics

def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (shifted by the row max for stability)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def topk_correct(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(N,) bool: the true label is among the k highest scores (ties keep the lower class index)."""
    k = min(k, scores.shape[1])
    # Stable descending sort so a tie ranks like argmax does (lowest index first).
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return (top == np.asarray(labels)[:, None]).any(axis=1)


def per_class_accuracy(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(C,) fraction of each class's test samples predicted right; NaN for classes with none."""
    labels = np.asarray(labels)
    hits = np.bincount(labels[np.asarray(pred) == labels], minlength=num_classes).astype(np.float64)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, hits / np.maximum(counts, 1), np.nan)


def mean_class_accuracy(per_class: np.ndarray) -> float:
    """Mean over the classes present in the test split."""
    present = per_class[~np.isnan(per_class)]
    return float(present.mean()) if present.size else float("nan")


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) counts, rows = true class, columns = predicted class."""
    flat = np.asarray(labels) * num_classes + np.asarray(pred)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


# --------------------------------------------------------------------------- fusion rules

def mean_softmax(logits: Sequence[np.ndarray]) -> np.ndarray:
    """Score fusion: the mean of the members' softmax probabilities, (N, C)."""
    return np.mean([softmax(z) for z in logits], axis=0)


def majority_vote(preds: np.ndarray, priority: Sequence[int]) -> np.ndarray:
    """Most frequent class per sample among the voters' predictions ``preds`` (M, N).

    Ties are broken by ``priority`` (voter indices, most trusted first): the winner is the
    prediction of the most trusted voter whose class is among the tied classes.
    """
    preds = np.asarray(preds)
    num_voters, n = preds.shape
    if sorted(priority) != list(range(num_voters)):
        raise ValueError(f"priority {list(priority)} is not an ordering of the {num_voters} voters")
    num_classes = int(preds.max()) + 1
    counts = np.zeros((n, num_classes), dtype=np.int64)
    np.add.at(counts, (np.arange(n)[None, :].repeat(num_voters, 0), preds), 1)
    tied = counts == counts.max(axis=1, keepdims=True)              # (N, C) classes with the top count
    ordered = preds[list(priority)]                                  # (M, N) most trusted voter first
    in_tie = tied[np.arange(n)[None, :], ordered]                    # (M, N) that voter backs a top class
    first = in_tie.argmax(axis=0)                                    # at least one voter always does
    return ordered[first, np.arange(n)]


def any_correct(preds: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N,) bool: at least one of the predictions ``preds`` (M, N) equals the true label."""
    return (np.asarray(preds) == np.asarray(labels)[None, :]).any(axis=0)


def oracle_predictions(single_preds: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The release's test rule as a 'prediction': the true label when any single model is right,
    else the first model's prediction. It reads the labels, so it is an upper bound of what an
    ideal selector could reach, not a classifier's accuracy (docs/METHOD.md §6)."""
    single_preds = np.asarray(single_preds)
    return np.where(any_correct(single_preds, labels), labels, single_preds[0])


def vote_priority(voters: Sequence[str], recorded_acc: Mapping[str, float | None],
                  override: Sequence[str] | None = None) -> list[str]:
    """Tie-break order of the voters, most trusted first.

    Default: Fuse5 ("all") first, then the single models by the accuracy recorded in their
    checkpoints (highest first); models without a recorded accuracy (the release's files) follow
    in FUSION_ORDER (GD, FDD, JDD, ADD, LAD). ``override`` must name exactly the voters.
    """
    if override:
        if sorted(override) != sorted(voters):
            raise ValueError(f"--priority must list exactly the voters {', '.join(voters)}; "
                             f"got {', '.join(override)}")
        return list(override)
    order = (FUSION,) + registry.fusion_order([v for v in voters if v != FUSION])

    def key(name: str) -> tuple[int, float, int]:
        acc = recorded_acc.get(name)
        known = name != FUSION and acc is not None
        return (name != FUSION, -float(acc) if known else float("inf"), order.index(name))

    return sorted(voters, key=key)


# --------------------------------------------------------------------------- rows

@dataclass
class Row:
    """One line of the results table: a prediction per test sample and, where defined, scores."""
    key: str
    label: str
    pred: np.ndarray
    scores: np.ndarray | None = None      # (N, C) probabilities or logits; None -> no top-5
    honest: bool = True
    kind: str | None = None               # what ``scores`` are: logits (networks), probabilities (softmax fusions)

    def metrics(self, labels: np.ndarray, num_classes: int) -> dict:
        per_class = per_class_accuracy(self.pred, labels, num_classes)
        # With TOP_K classes or fewer every sample is in its top 5: no figure rather than a trivial 100%.
        top5 = None if self.scores is None or num_classes <= TOP_K else \
            float(topk_correct(self.scores, labels, TOP_K).mean())
        return {"key": self.key, "label": self.label, "honest": self.honest, "scores": self.kind,
                "top1": float((self.pred == labels).mean()), "top5": top5,
                "mean_class": mean_class_accuracy(per_class),
                "per_class": [None if np.isnan(a) else float(a) for a in per_class]}


def score_row(key: str, label: str, scores: np.ndarray, kind: str = LOGITS) -> Row:
    return Row(key, label, np.asarray(scores).argmax(axis=1), np.asarray(scores), kind=kind)


FUSE5_HEADS = (("main", "Fuse5 main head (all 5 features)"),
               ("g12", "Fuse5 GD+FDD head"),
               ("g345", "Fuse5 JDD+ADD+LAD head"))


def fused_heads(inputs: Sequence[str]) -> list[tuple[str, str]]:
    """(head, row label) of a fusion network's main and group heads: Fuse5's for the five, named by
    their inputs for another set (the group heads only where it has colour and gray inputs)."""
    if tuple(inputs) == FUSION_ORDER:
        return list(FUSE5_HEADS)
    colour = [d for d in inputs if registry.get(d).channels == COLOUR]
    gray = [d for d in inputs if d not in colour]
    heads = [("main", f"{network_label(inputs)} main head (all {len(inputs)} features)")]
    if registry.has_groups(inputs):
        heads += [(group, f"{network_label(inputs)} {'+'.join(members)} head")
                  for group, members in zip(GROUP_OUTPUTS, (colour, gray))]
    return heads


def network_label(inputs: Sequence[str]) -> str:
    """'Fuse5' for the release's network, 'Fuse3(GD,JVD,JDD)' for the fusion of another set."""
    return "Fuse5" if tuple(inputs) == FUSION_ORDER else f"Fuse{len(inputs)}({','.join(inputs)})"


def single_label(desc: str, arch: str = DEFAULT_ARCH) -> str:
    """Row label of a single-descriptor model: 'ResNet_c GD' (or the torchvision arch's name)."""
    return f"{'ResNet_c' if arch == DEFAULT_ARCH else arch} {desc}"


def fusion_rows(single_logits: Mapping[str, np.ndarray], fuse5: Mapping | None,
                labels: np.ndarray, priority: Sequence[str] | None = None,
                recorded_acc: Mapping[str, float | None] | None = None,
                archs: Mapping[str, str] | None = None,
                inputs: Sequence[str] = FUSION_ORDER) -> tuple[list[Row], list[str]]:
    """All rows of a ``-desc all`` evaluation, in table order, and the vote priority used.

    single_logits: desc -> (N, C) logits of the single-descriptor models that exist;
    fuse5: the fusion network's outputs dict(main, single=[one per input, in ``inputs`` order], and
    its group heads g12, g345) or None; its row keys are 'all...' whatever its set (``inputs``,
    default Fuse5's FUSION_ORDER; the labels name the set);
    archs: desc -> architecture name, for the labels (default resnet_c).
    Rules whose members are missing are left out; the oracle needs every single model of the set.
    """
    labels = np.asarray(labels)
    singles = list(registry.ordered(single_logits))
    rows = [score_row(d, single_label(d, (archs or {}).get(d, "resnet_c")), single_logits[d]) for d in singles]
    if fuse5 is not None:
        heads = fused_heads(inputs)
        rows.append(score_row(FUSION, heads[0][1], fuse5["main"]))
        rows += [score_row(f"{FUSION}.single.{d}", f"{network_label(inputs)} single head (convf1) on {d}", z)
                 for d, z in zip(inputs, fuse5["single"])]
        rows += [score_row(f"{FUSION}.{head}", text, fuse5[head]) for head, text in heads[1:]]
    if len(singles) >= 2:
        rows.append(score_row("mean_softmax.singles", f"mean of softmax: {'+'.join(singles)}",
                              mean_softmax([single_logits[d] for d in singles]), PROBABILITIES))
        if fuse5 is not None:
            rows.append(score_row("mean_softmax.singles+all",
                                  f"mean of softmax: {'+'.join(singles)}+{network_label(inputs)}",
                                  mean_softmax([single_logits[d] for d in singles] + [fuse5["main"]]),
                                  PROBABILITIES))
    voters = singles + ([FUSION] if fuse5 is not None else [])
    order: list[str] = []
    if len(voters) >= 3:
        order = vote_priority(voters, recorded_acc or {}, priority)
        by_key = {r.key: r.pred for r in rows}
        preds = np.stack([by_key[v] for v in voters])
        vote = majority_vote(preds, [voters.index(v) for v in order])
        rows.append(Row("vote", f"majority vote of {len(voters)} (ties: {' > '.join(_display(v, inputs) for v in order)})", vote))
    if len(singles) >= 2 and len(singles) == len(inputs if fuse5 is not None else DESCRIPTORS):
        preds = np.stack([single_logits[d].argmax(axis=1) for d in singles])
        rows.append(Row("oracle", oracle_label(len(singles)), oracle_predictions(preds, labels), honest=False))
    return rows, order


def _display(name: str, inputs: Sequence[str] = FUSION_ORDER) -> str:
    return network_label(inputs) if name == FUSION else name


def best_honest(metrics: Sequence[dict]) -> dict:
    """The honest row with the highest top-1 (the first one on ties)."""
    honest = [m for m in metrics if m["honest"]]
    return max(honest, key=lambda m: m["top1"])


# --------------------------------------------------------------------------- inference

def run_model(name: str, model: "torch.nn.Module", images: Mapping[str, "torch.Tensor"]):
    """A model on image batches by descriptor (``images[d]``): a fusion network on its inputs in its
    order (its heads' dict), a single model on its own descriptor's batch."""
    return model([images[d] for d in model.inputs]) if is_fused(name) else model(images[name])


def main_scores(outputs: Mapping[str, object]) -> list:
    """Each model's logits of ``model_outputs`` (a fusion network's: its main head), in order."""
    return [out["main"] if is_fused(name) else out for name, out in outputs.items()]


def model_outputs(models: Mapping[str, "torch.nn.Module"], loader, descs: Sequence[str],
                  device: "torch.device", progress: bool = False) -> dict:
    """Run every model over ``loader`` once, in the loader's (fixed) order.

    The loader yields (tuple of image batches in ``descs`` order, labels); each single model
    reads its own descriptor, a fusion network (Fuse5: "all") its inputs in its order (``model.inputs``).
    Returns name -> (N, C) float32 logits, and for a fusion network a dict(main, single=[one per
    input], and its group heads g12, g345) of them.
    ``progress``: a bar of the batches on stderr (test.py without --no-progress).
    """
    import torch

    chunks: dict[str, list] = {name: [] for name in models}
    with torch.inference_mode():
        for images, _ in tqdm(loader, desc="evaluating", unit="batch", leave=False, disable=not progress,
                              dynamic_ncols=True):
            # Images travel as uint8 when the dataset allows it; the cast happens on the device.
            batch = {d: img.to(device, non_blocking=True).float() for d, img in zip(descs, images)}
            for name, model in models.items():
                out = run_model(name, model, batch)
                chunks[name].append([out["main"], *out["single"], *(out[g] for g in GROUP_OUTPUTS if g in out)]
                                    if is_fused(name) else [out])
    results = {}
    for name, parts in chunks.items():
        heads = [torch.cat(h).float().cpu().numpy() for h in zip(*parts)]
        if not is_fused(name):
            results[name] = heads[0]
            continue
        n = len(models[name].inputs)
        results[name] = {"main": heads[0], "single": heads[1:1 + n], **dict(zip(GROUP_OUTPUTS, heads[1 + n:]))}
    return results


# --------------------------------------------------------------------------- output files

def results_document(rows: Sequence[Row], labels: np.ndarray, sample_ids: Sequence[str],
                     num_classes: int, **info) -> dict:
    """The results JSON: ``info`` (dataset, settings, checkpoints, ...), every row's metrics and
    per-sample predictions aligned with ``samples``."""
    labels = np.asarray(labels)
    metrics = [r.metrics(labels, num_classes) for r in rows]
    # Labels and predictions as the files name them: 1-based (image names, manifests, NTU's A001).
    return {**info,
            "num_classes": num_classes,
            "num_samples": int(labels.size),
            "labels": LABELS_NOTE,
            "rows": metrics,
            "best_honest_row": best_honest(metrics)["key"],
            "samples": {"sample": list(sample_ids), "label": (labels + 1).tolist()},
            "predictions": {r.key: (np.asarray(r.pred) + 1).tolist() for r in rows}}


def results_json_text(doc: dict) -> str:
    """JSON with one line per top-level entry and one per row / per prediction list: readable
    without putting each of 60,000 predictions on its own line."""
    def value(v) -> str:
        if isinstance(v, dict) and v:
            return "{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(x)}" for k, x in v.items()) + "\n }"
        if isinstance(v, list) and v and isinstance(v[0], dict):
            return "[\n" + ",\n".join(f"  {json.dumps(x)}" for x in v) + "\n ]"
        return json.dumps(v)
    return "{\n" + ",\n".join(f" {json.dumps(k)}: {value(v)}" for k, v in doc.items()) + "\n}\n"


def write_json(path: str | Path, doc: dict) -> None:
    write_text_atomic(path, results_json_text(doc), make_parents=True)


def write_confusion_png(path: str | Path, pred: np.ndarray, labels: np.ndarray,
                        class_names: Sequence[str], title: str) -> None:
    """Row-normalised confusion matrix with each class's accuracy beside it (models/confusion.py),
    restricted to the classes that occur as a true label or a prediction (a 10-class demo split
    of a 60-class model)."""
    cm = confusion_matrix(pred, labels, len(class_names))
    shown = np.flatnonzero(cm.sum(axis=0) + cm.sum(axis=1))
    write_bytes_atomic(path, confusion_png(cm[np.ix_(shown, shown)], shown, class_names, title), make_parents=True)


def format_table(metrics: Sequence[dict]) -> str:
    """Plain-text table of rows: top-1, top-5 (or '-'), mean per-class accuracy, in %."""
    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:6.2f}"
    width = max(len(m["label"]) for m in metrics)
    lines = [f"{'row':<{width}}  {'top-1':>6}  {'top-5':>6}  {'mean/class':>10}"]
    lines += [f"{m['label']:<{width}}  {pct(m['top1']):>6}  {pct(m['top5']):>6}  {pct(m['mean_class']):>10}"
              for m in metrics]
    return "\n".join(lines)


# --------------------------------------------------------------------------- paper table

def paper_columns() -> list[tuple[str, str]]:
    """(dataset, protocol) columns in the paper's order: NTU-60, NTU-120, NW-UCLA (a custom dataset
    is not among the paper's)."""
    return [(name, p) for name in BUILTIN_DATASETS for p in DATASETS[name].protocols]


def all_results(folders: Iterable[str | Path]) -> list[Path]:
    """Every ``*_results.json`` under ``folders`` (recursively): test.py's of either part and
    ensemble.py's, oldest first."""
    files = {p.resolve() for f in folders if Path(f).is_dir() for p in Path(f).rglob(f"*{RESULTS_SUFFIX}")}
    return sorted(files, key=lambda p: p.stat().st_mtime)


def tabulated(path: Path) -> bool:
    """A results file of a test split (not a held-out part's, not ensemble.py's)."""
    return not path.name.endswith(f"_{HELDOUT}{RESULTS_SUFFIX}") and path.name != ENSEMBLE_RESULTS_NAME


def find_results(folders: Iterable[str | Path]) -> list[Path]:
    """Results JSONs of test splits under ``folders`` (recursively; not those of held-out parts),
    oldest first so newer runs win cells."""
    return [p for p in all_results(folders) if tabulated(p)]


def in_paper(doc: dict) -> bool:
    """Results of one of the paper's (dataset, protocol) columns."""
    return (doc["dataset"], doc["protocol"]) in paper_columns()


def results_summary(docs: Mapping[Path, dict], most: int = 6) -> str:
    """'a_results.json (pyskl xsub, --epoch last), ...': what results files hold, ``most`` named."""
    named = [f"{p.name} ({d['dataset']} {d['protocol']}, --epoch {d.get('epoch', '?')})" for p, d in docs.items()]
    return ", ".join(named[:most]) + (f" and {len(named) - most} more" if len(named) > most else "")


def no_paper_results(folders: Sequence[Path], docs: Mapping[Path, dict], others: Sequence[Path]) -> str:
    """Why there is no paper table: what ``folders`` hold instead (results of other data, of
    held-out parts, ensemble.py's) and what the table needs."""
    where = ", ".join(map(str, folders))
    columns = ", ".join(f"{ds} {p}" for ds, p in paper_columns())
    found = [f"results of other data: {results_summary(docs)}"] if docs else []
    found += [f"not of a test split: {', '.join(p.name for p in others)}"] if others else []
    if not found:
        return f"no *{RESULTS_SUFFIX} in {where}; run test.py first"
    return (f"no results for the paper's table in {where} (its columns: {columns}); found {'; '.join(found)}; "
            f"the table needs test.py results of -d {', '.join(BUILTIN_DATASETS[:-1])} or {BUILTIN_DATASETS[-1]} on "
            f"the test split (pass the folder that holds them as -ckpt or --out)")


def paper_table(docs: Sequence[dict]) -> str:
    """Markdown table of top-1 accuracy (%): rows = descriptors and fusion rules, columns = the
    five (dataset, protocol) settings; empty where not run. A later doc overrides an earlier one."""
    columns = paper_columns()
    cells: dict[tuple[str, tuple[str, str]], float] = {}
    labels: dict[str, str] = {}
    epochs: dict[tuple[str, str], set[str]] = {}   # which checkpoints each column's figures come from
    for doc in docs:
        col = (doc["dataset"], doc["protocol"])
        epochs.setdefault(col, set()).add(str(doc.get("epoch", "?")))
        for m in doc["rows"]:
            labels.setdefault(m["key"], m["label"].split(" (ties:")[0])
            cells[(m["key"], col)] = m["top1"]
    if not cells:
        raise ValueError("no results to tabulate")
    # Rows in the order one full -desc all run lists them; the oracle stays last.
    keys = sorted(labels, key=lambda k: (k == "oracle", _row_rank(k)))
    # Each column says its checkpoints (best epoch or last), and says so loudly when they are mixed.
    head = ["descriptor / rule"] + [f"{ds} {p}" + (f" ({epoch_note(epochs[(ds, p)])})" if (ds, p) in epochs else "")
                                    for ds, p in columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k in keys:
        vals = [f"{100 * cells[(k, c)]:.2f}" if (k, c) in cells else "" for c in columns]
        lines.append("| " + " | ".join([labels[k]] + vals) + " |")
    return "\n".join(lines) + "\n"


def epoch_note(epochs: set[str]) -> str:
    """'best', or 'mixed: best, last' when a column's figures come from different checkpoints."""
    return next(iter(epochs)) if len(epochs) == 1 else f"mixed: {', '.join(sorted(epochs))}"


def _row_rank(key: str) -> int:
    canonical = (list(registry.names()) + [FUSION] + [f"{FUSION}.single.{d}" for d in registry.fusion_order(registry.names())]
                 + [f"{FUSION}.{h}" for h in GROUP_OUTPUTS]
                 + ["mean_softmax.singles", "mean_softmax.singles+all", "vote", "oracle"])
    return canonical.index(key) if key in canonical else len(canonical)


def load_results(path: str | Path) -> dict:
    """A results JSON, with a one-line error naming the file when it is not one."""
    try:
        doc = json.loads(Path(path).read_text())
        doc["dataset"], doc["protocol"], doc["rows"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a results JSON written by test.py ({e.__class__.__name__}: {e})") from None
    return doc
