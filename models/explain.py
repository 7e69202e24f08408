"""What a prediction looked at, said in joints and frames (predict.py --explain).

Method: integrated gradients (Sundararajan et al. 2017) of the explained class's logit (summed
over the models of the prediction: a sum's integrated gradients are the sum of each model's) with
respect to every descriptor image, from a black image (the baseline) along the straight path, with
``DEFAULT_STEPS`` midpoint steps computed in batches. Why not Grad-CAM: its map is the last block's,
4 x 4 cells for a 112-pixel image and 1 x 1 for the demo's 32 pixels, too coarse to name a frame or
a row; integrated gradients give one value per pixel and channel, and their sum over all inputs
equals logit(image) - logit(black) (completeness, tests/test_explain.py), so shares of it mean
something.

A descriptor image's rows are features and its columns frames, so the attribution is mapped back:
the network's input is BGR (descriptors.core.network_input) while the image's channels are RGB (GD:
R, G, B = x, y, z; FDD: R, G, B = JDD, ADD, LAD), and a gray image is the same on its three input
channels (their attributions are summed); each channel's (H, W) attribution goes back through the
resize to the (rows x columns) matrix by area overlap (``area_weights``: pixel y covers matrix rows
[y R/H, (y+1) R/H), sums kept), rows to features and bodies (``registry.channel_features``), columns
to frames (a ``steps`` descriptor's column t is the move from frame t to t+1: half to each), and a
feature's attribution to its joints in equal shares. Rankings use the ABSOLUTE attribution of each
pixel and channel: a pixel that argues against the class is looked at as much as one that argues
for it, and signed values of one feature would cancel.

Reading it: from a black baseline, attribution needs a bright pixel (it is the pixel times the mean
gradient), so it says which of the image's bright values the network weighed. In ADD, bright is a
joint that moves, and the explanation finds the limbs the demo's actions move (the truth test); in
GD and JDD, bright is a large coordinate or a long distance (a foot far from the head), which a
still joint has too, so their rows say which positions and distances counted, not what moved.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

import descriptors.registry as registry
from descriptors.base import COLOUR, Feature
from descriptors.core import network_input
from descriptors.names import needed_descriptors
from descriptors.explain_figures import save_explanation_figure
from skeletons.layouts import Layout
from .evaluation import mean_softmax, run_model
from .prediction import Prediction
from .recipe import main_logits

DEFAULT_STEPS = 32     # midpoint steps: on the demo's trained networks the sum is within ~1% of the logit
                       # change (median; 10% at worst), 64 steps within 3% at worst
STEP_BATCH = 8         # path points per forward pass (32 at once would need ~2 GB at full width)
METHOD = "integrated gradients from a black image"


# --------------------------------------------------------------------------- attribution of the images

def target_logits(models: Mapping[str, nn.Module], batches: Mapping[str, torch.Tensor], target: int) -> torch.Tensor:
    """(n,) the ``target`` class's logit summed over the models (a fusion network's main head)."""
    return sum(main_logits(run_model(name, model, batches))[:, target] for name, model in models.items())


def model_device(models: Mapping[str, nn.Module]) -> torch.device:
    return next(next(iter(models.values())).parameters()).device


def integrated_gradients(models: Mapping[str, nn.Module], inputs: Mapping[str, np.ndarray], target: int,
                         steps: int = DEFAULT_STEPS, batch: int = STEP_BATCH) -> dict[str, np.ndarray]:
    """Per descriptor: the (3, H, W) attribution of ``target_logits`` on its network input (float32
    (3, H, W) BGR 0..255), from black: x * the mean gradient at the midpoints (k + 1/2) x / steps."""
    device = model_device(models)
    for model in models.values():
        model.eval()   # the prediction's behaviour: batch statistics would mix the path's points
    x = {d: torch.as_tensor(np.asarray(inputs[d], np.float32), device=device) for d in needed_descriptors(models)}
    total = {d: torch.zeros_like(v) for d, v in x.items()}
    alphas = (torch.arange(steps, dtype=torch.float32, device=device) + 0.5) / steps
    with torch.enable_grad():
        for chunk in alphas.split(batch):
            scaled = {d: (chunk[:, None, None, None] * v[None]).requires_grad_() for d, v in x.items()}
            grads = torch.autograd.grad(target_logits(models, scaled, target).sum(), list(scaled.values()))
            for d, g in zip(scaled, grads):
                total[d] += g.sum(0)
    return {d: (x[d] * total[d] / steps).detach().cpu().numpy().astype(np.float64) for d in x}


def one_sample(models: Mapping[str, nn.Module], inputs: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """A sample's network inputs as batches of one on the models' device, those the models read."""
    device = model_device(models)
    return {d: torch.as_tensor(np.asarray(inputs[d], np.float32), device=device)[None] for d in needed_descriptors(models)}


def logit_change(models: Mapping[str, nn.Module], inputs: Mapping[str, np.ndarray], target: int) -> float:
    """logit(inputs) - logit(black images): what the attributions add up to (completeness)."""
    x = one_sample(models, inputs)
    with torch.no_grad():
        return float(target_logits(models, x, target)[0] - target_logits(models, {d: 0 * v for d, v in x.items()},
                                                                         target)[0])


def predicted_class(models: Mapping[str, nn.Module], inputs: Mapping[str, np.ndarray]) -> int:
    """The 0-based class of the mean of the models' softmax (predict.py's rule)."""
    x = one_sample(models, inputs)
    with torch.no_grad():
        logits = [main_logits(run_model(name, model, x)).float().cpu().numpy() for name, model in models.items()]
    return int(mean_softmax(logits)[0].argmax())


# --------------------------------------------------------------------------- back through the resize

def area_weights(pixels: int, cells: int) -> np.ndarray:
    """(pixels, cells): the share of pixel i that lies over matrix cell j, pixel i covering
    [i cells / pixels, (i + 1) cells / pixels) of the matrix axis; each pixel's shares sum to 1."""
    edges = np.arange(pixels + 1) * (cells / pixels)
    cell = np.arange(cells)[None]
    overlap = np.minimum(edges[1:, None], cell + 1) - np.maximum(edges[:-1, None], cell)
    return np.clip(overlap, 0.0, None) / (cells / pixels)


def to_matrix(pixels: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """An (H, W) attribution of a resized image -> the (rows, columns) matrix it was resized from
    (descriptors.core.resize), each pixel's value shared by the cells it covers: sums kept."""
    height, width = pixels.shape
    return area_weights(height, rows).T @ pixels @ area_weights(width, columns)


def image_channels(desc: str, attribution: np.ndarray) -> list[np.ndarray]:
    """A (3, H, W) BGR input attribution -> the image's channels in its own order: R, G, B of a
    colour image; the one channel of a gray image (repeated on three inputs: summed)."""
    if registry.get(desc).channels == COLOUR:
        return [attribution[2], attribution[1], attribution[0]]
    return [attribution.sum(0)]


def channel_parts(desc: str) -> tuple[str, ...]:
    """Per image channel, the descriptor whose rows it holds: FDD's are JDD, ADD, LAD; GD's its own."""
    d = registry.get(desc)
    return d.made_of or (desc,) * d.channels


def columns_of(part: str, frames: int) -> int:
    return max(frames - 1, 0) if registry.get(part).steps else frames


def column_frames(part: str, frames: int) -> np.ndarray:
    """(columns, frames): how a column's attribution is shared by frames (a step's: half to each end)."""
    if not registry.get(part).steps:
        return np.eye(frames)
    share = np.zeros((columns_of(part, frames), frames))
    steps = np.arange(len(share))
    share[steps, steps] = share[steps, steps + 1] = 0.5
    return share


def part_matrices(desc: str, attribution: np.ndarray, layout: Layout, frames: int,
                  bodies: int) -> dict[str, np.ndarray]:
    """Absolute attribution of one image per part (FDD: JDD, ADD, LAD; GD: its x, y, z summed) as
    its (bodies * features, columns) matrix."""
    out: dict[str, np.ndarray] = {}
    features = registry.channel_features(desc, layout)
    for part, rows, channel in zip(channel_parts(desc), features, image_channels(desc, attribution)):
        columns = columns_of(part, frames)
        if columns == 0 or not rows:
            continue
        matrix = to_matrix(np.abs(channel), bodies * len(rows), columns)
        out[part] = out[part] + matrix if part in out else matrix
    return out


# --------------------------------------------------------------------------- features, joints, frames

@dataclass(frozen=True)
class FeatureAttribution:
    """One row of a descriptor image, of one body, and how much of the attribution it holds."""
    descriptor: str              # the image (GD, FDD, ...)
    part: str                    # whose row it is: FDD's channels are JDD's, ADD's, LAD's rows
    body: int                    # 0-based
    label: str                   # 'right hand - left knee'
    joints: tuple[int, ...]
    frames: tuple[int, int]      # first and last frame (0-based) of the shortest span holding half of it
    score: float                 # its share of the whole (absolute) attribution

    @property
    def source(self) -> str:
        return self.descriptor if self.part == self.descriptor else f"{self.descriptor}:{self.part}"


def concentrated_span(values: np.ndarray) -> tuple[int, int]:
    """(first, last) index of the shortest run of ``values`` (>= 0) holding at least half their sum."""
    if values.sum() <= 0:
        return 0, len(values) - 1
    before = np.concatenate([[0.0], np.cumsum(values)])
    ends = np.searchsorted(before, before[:-1] + 0.5 * before[-1] * (1 - 1e-12), side="left")   # exclusive
    lengths = np.where(ends <= len(values), ends - np.arange(len(values)), len(values) + 1)
    first = int(np.argmin(lengths))
    return first, max(int(ends[first]) - 1, first)


def span_frames(part: str, span: tuple[int, int], frames: int) -> tuple[int, int]:
    """A span of columns as frames: a step column t covers frames t and t + 1."""
    return (span[0], min(span[1] + 1, frames - 1)) if registry.get(part).steps else span


def part_features(desc: str, part: str, matrix: np.ndarray, rows: Sequence[Feature],
                  frames: int) -> list[FeatureAttribution]:
    """The features of one part's matrix (unnormalised scores)."""
    out = []
    for index, row in enumerate(matrix):
        body, feature = divmod(index, len(rows))
        span = span_frames(part, concentrated_span(row), frames)
        out.append(FeatureAttribution(desc, part, body, rows[feature].label, rows[feature].joints, span,
                                      float(row.sum())))
    return out


def shares(values: np.ndarray) -> np.ndarray:
    total = values.sum()
    return values / total if total > 0 else values


@dataclass
class Explanation:
    """An explained prediction: features ranked by share, joint and frame importance (shares of 1)."""
    target: int                               # 0-based class explained
    layout: Layout
    features: list[FeatureAttribution]        # every row of every image, largest share first
    joints: np.ndarray                        # (V,) per layout joint, over descriptors and bodies
    frames: np.ndarray                        # (T,) per frame
    heatmaps: dict[str, np.ndarray] = field(default_factory=dict)   # per image: (H, W) |attribution| over channels
    logit_change: float = 0.0                 # what the signed attributions add up to
    attributed: float = 0.0                   # their sum: completeness says they agree
    body_joints: np.ndarray | None = None     # (B, V): the joints' shares per body (the figure colours each body's)

    def top_joints(self, k: int = 5) -> list[tuple[str, float]]:
        order = np.argsort(-self.joints, kind="stable")[:k]
        return [(self.layout.joints[j], float(self.joints[j])) for j in order]

    def key_frames(self, k: int = 3) -> list[int]:
        """The k most important frames (0-based, in time order), at least T / (2k) frames apart."""
        gap, chosen = max(1, len(self.frames) // (2 * k)), []
        for frame in np.argsort(-self.frames, kind="stable"):
            if all(abs(int(frame) - c) >= gap for c in chosen):
                chosen.append(int(frame))
            if len(chosen) == k:
                break
        return sorted(chosen)


def explain_inputs(models: Mapping[str, nn.Module], inputs: Mapping[str, np.ndarray], layout: Layout,
                   frames: int, bodies: int, target: int, steps: int = DEFAULT_STEPS) -> Explanation:
    """The explanation of ``target`` (0-based) for one sample's network inputs (T ``frames``,
    ``bodies`` bodies of ``layout``): integrated gradients mapped to features, joints and frames."""
    attributions = integrated_gradients(models, inputs, target, steps)
    features: list[FeatureAttribution] = []
    frame_scores = np.zeros(frames)
    for desc, attribution in attributions.items():
        rows_of = dict(zip(channel_parts(desc), registry.channel_features(desc, layout)))
        for part, matrix in part_matrices(desc, attribution, layout, frames, bodies).items():
            features += part_features(desc, part, matrix, rows_of[part], frames)
            frame_scores += matrix.sum(0) @ column_frames(part, frames)
    total = sum(f.score for f in features)
    features = sorted((FeatureAttribution(**{**f.__dict__, "score": f.score / total if total > 0 else 0.0})
                       for f in features), key=lambda f: -f.score)
    body_joints = np.zeros((bodies, layout.num_joints))
    for f in features:
        np.add.at(body_joints[f.body], list(f.joints), f.score / len(f.joints))
    heatmaps = {d: np.abs(a).sum(0) for d, a in attributions.items()}
    return Explanation(target, layout, features, shares(body_joints.sum(0)), shares(frame_scores), heatmaps,
                       logit_change(models, inputs, target), float(sum(a.sum() for a in attributions.values())),
                       shares(body_joints))


# --------------------------------------------------------------------------- predict.py's explanation

def explain_prediction(prediction: Prediction, models: Mapping[str, nn.Module],
                       steps: int = DEFAULT_STEPS) -> Explanation:
    """The explanation of a prediction's most probable class, by the models that made it
    (predict.py --explain: ``prediction.networks``, loaded and checked once by predict_file)."""
    inputs = {d: network_input(prediction.images[d]) for d in needed_descriptors(models)}
    X = prediction.sequence
    bodies = X.shape[1] // prediction.layout.num_joints
    return explain_inputs(models, inputs, prediction.layout, X.shape[0], bodies,
                          int(np.argmax(prediction.probabilities)), steps)


def explanation_lines(explanation: Explanation, class_name: str, models: int, k: int = 5) -> list[str]:
    """What predict.py prints: the k most important features with their frames (1-based), the
    most important joints and the key frames."""
    bodies = len({f.body for f in explanation.features})
    top = explanation.features[:k]
    width = max((len(f.label) for f in top), default=0)
    lines = [f"explanation of {class_name} ({METHOD}, {models} model{'s' if models > 1 else ''}; "
             f"absolute attribution, shares of the whole):"]
    for f in top:
        body = f"  body {f.body + 1}" if bodies > 1 else ""
        frames = f"frames {f.frames[0] + 1}-{f.frames[1] + 1}"
        lines.append(f"  {f.source:8s} {f.label:{width}s}{body}   {frames:15s} {f.score:5.1%}")
    lines.append("  joints: " + ", ".join(f"{name} {share:.0%}" for name, share in explanation.top_joints(k)))
    lines.append("  key frames: " + ", ".join(str(f + 1) for f in explanation.key_frames()))
    return lines


def save_explanation(explanation: Explanation, prediction: Prediction, path: str | Path, title: str,
                     lines: Sequence[str]) -> Path:
    """predict.py --explain --figure: the explanation drawn (descriptors/explain_figures.py)."""
    return save_explanation_figure(path, prediction.sequence, prediction.layout, prediction.images,
                                   explanation.heatmaps, explanation.body_joints, explanation.frames,
                                   explanation.key_frames(), title, lines)
