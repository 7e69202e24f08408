"""test.py --ablation: the score fusion (mean of softmax, ``evaluation.mean_softmax``) of every
non-empty subset of the single-descriptor models one evaluation ran, each scored as the results
table's rows are, sorted by top-1 and shown beside the trained fusion network's row.

Which descriptors carry an action shows as which subsets gain: a member that lifts every subset it
joins carries information the others lack; one whose subsets rank as well without it adds little.
The single models are those the evaluation produced logits for, in their given order (never a fixed
list), so any descriptor set is ablated alike. Pure functions of numpy arrays and metric dicts.
"""
from __future__ import annotations

from itertools import combinations
from typing import Mapping, Sequence

import numpy as np

from descriptors.names import FUSION
from models.evaluation import format_table, score_row, softmax
from models.scores import PROBABILITIES

KEY_PREFIX = "ablation."      # a subset's key: ablation.GD+JDD (kept out of the file names: no score file has it)
FIELDS = ("members", "key", "label", "top1", "top5", "mean_class")
NETWORK_MARK = "trained fusion network"


def subsets(names: Sequence[str]) -> list[tuple[str, ...]]:
    """Every non-empty subset of ``names`` (2**n - 1), by size, each in the given order."""
    names = list(dict.fromkeys(names))
    return [members for size in range(1, len(names) + 1) for members in combinations(names, size)]


def subset_name(members: Sequence[str]) -> str:
    """'GD+JDD': how the table and the key name a subset."""
    return "+".join(members)


def fused_scores(probabilities: Mapping[str, np.ndarray], members: Sequence[str]) -> np.ndarray:
    """(N, C) mean of the members' softmax probabilities (``probabilities``: name -> softmax of its
    logits, computed once for all subsets); equal to ``evaluation.mean_softmax`` of their logits."""
    return np.mean([probabilities[m] for m in members], axis=0)


def subset_row(members: Sequence[str], scores: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    """One subset's entry: members, key, label and the figures of the results table's rows (top-1,
    top-5 where defined, mean per-class accuracy), computed by the same ``Row.metrics``."""
    name = subset_name(members)
    label = f"mean of softmax: {name}" if len(members) > 1 else f"softmax: {name}"
    metrics = score_row(KEY_PREFIX + name, label, scores, PROBABILITIES).metrics(np.asarray(labels), num_classes)
    return {"members": list(members), **{k: metrics[k] for k in FIELDS[1:]}}


def sort_rows(rows: Sequence[dict]) -> list[dict]:
    """By top-1, highest first; ties by fewer members, then by name."""
    return sorted(rows, key=lambda r: (-r["top1"], len(r["members"]), subset_name(r["members"])))


def check_members(names: Sequence[str]) -> list[str]:
    """``names`` when they are at least two single models (one has no subsets to compare), else the
    one-line refusal."""
    if len(names) < 2:
        raise ValueError(f"--ablation needs at least 2 single-descriptor models in one evaluation; this one has "
                         f"{', '.join(names) or 'none'}: run -desc {FUSION} where the single models' checkpoints are "
                         f"(or without --ablation)")
    return list(names)


def ablation_rows(single_logits: Mapping[str, np.ndarray], labels: np.ndarray, num_classes: int) -> list[dict]:
    """The sorted entries of every non-empty subset of the single models ``single_logits`` (name ->
    (N, C) logits, in their given order); at least two models (one has no subsets to compare)."""
    names = check_members(list(single_logits))
    probabilities = {n: softmax(single_logits[n]) for n in names}
    return sort_rows([subset_row(m, fused_scores(probabilities, m), labels, num_classes) for m in subsets(names)])


def network_rows(metrics: Sequence[dict]) -> list[dict]:
    """The trained fusion network's row among a results table's ``metrics`` (its main output, key
    ``FUSION``); none when it was not evaluated."""
    return [m for m in metrics if m["key"] == FUSION]


def ranked(ablation: Sequence[dict], networks: Sequence[dict]) -> list[dict]:
    """The subset rows, numbered by rank ('1. GD+JDD'), with each network row placed where its top-1
    ranks it (after the subsets it ties with), marked as the trained network."""
    rows = [{**r, "label": f"{k}. {subset_name(r['members'])}"} for k, r in enumerate(ablation, 1)]
    rows += [{**net, "label": f"-- {net['label']} [{NETWORK_MARK}]"} for net in networks]
    # a stable sort: the subsets keep their order among equal top-1s, a network row follows them
    return sorted(rows, key=lambda r: (-r["top1"], "members" not in r))


def heading(ablation: Sequence[dict]) -> str:
    """What the ablation table is, in one line."""
    names = max((r["members"] for r in ablation), key=len)   # all of them, in their given order
    return (f"ablation: mean of softmax over each of the {len(ablation)} non-empty subsets of {', '.join(names)}, "
            f"by top-1 (ties: fewer members first)")


def format_ablation(ablation: Sequence[dict], metrics: Sequence[dict]) -> str:
    """The console table: heading, then the ranked subsets with the trained network's row among them."""
    return heading(ablation) + "\n" + format_table(ranked(ablation, network_rows(metrics)))


def markdown_ablation(doc: dict) -> str:
    """--paper-table's section for one results document that has an ablation: a markdown table of
    the ranked subsets (members, their count, top-1, top-5, mean per-class accuracy, in %) with the
    trained network's row among them."""
    def pct(x: float | None) -> str:
        return "" if x is None else f"{100 * x:.2f}"
    lines = [f"### Ablation: {doc['dataset']} {doc['protocol']} (--epoch {doc.get('epoch', '?')})", "",
             heading(doc["ablation"]), "",
             "| subset (mean of softmax) | models | top-1 | top-5 | mean/class |", "|---|---|---|---|---|"]
    for r in ranked(doc["ablation"], network_rows(doc["rows"])):
        count = len(r["members"]) if "members" in r else ""
        lines.append(f"| {r['label']} | {count} | {pct(r['top1'])} | {pct(r.get('top5'))} | {pct(r['mean_class'])} |")
    return "\n".join(lines) + "\n"


def paper_sections(docs: Sequence[dict]) -> str:
    """The ablation sections of ``docs`` (oldest first; a later document of the same dataset,
    protocol and epoch replaces an earlier one, as in the paper table), '' when none has one."""
    latest = {(d["dataset"], d["protocol"], str(d.get("epoch"))): d for d in docs if d.get("ablation")}
    return "".join("\n" + markdown_ablation(d) for d in latest.values())
