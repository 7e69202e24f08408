"""What predict.py prints, from either path (models/inference.py with torch, models/onnx_predict.py
without): the fused probabilities, the models used, the images and the sequence. Imports no torch."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skeletons.layouts import Layout


@dataclass
class Prediction:
    probabilities: np.ndarray          # (num_classes,) mean of the models' softmax
    models: dict[str, Path]            # model name -> checkpoint (or exported graph) used
    images: dict[str, np.ndarray]      # the five descriptor images fed to the models
    sequence: np.ndarray               # (T, V, C) skeleton sequence
    mode: str                          # descriptor mode the models were trained on
    layout: Layout                     # the skeletons' joint layout
    notes: list[str] = field(default_factory=list)   # what the caller should tell the user
    networks: dict = field(default_factory=dict, repr=False)   # torch's path: the loaded models (--explain reuses them)

    def top(self, names: tuple[str, ...], k: int = 5) -> list[tuple[str, int, float]]:
        """[(class name, 1-based label, probability)] of the k most probable classes."""
        best = np.argsort(-self.probabilities)[:k]
        return [(names[i], int(i) + 1, float(self.probabilities[i])) for i in best]


def model_notes(found: dict[str, Path], missing: dict[str, Path]) -> list[str]:
    """Which of the models asked for are used and which are missing (as test.py says it)."""
    if not missing:
        return []
    return [f"note: using {', '.join(found)}; missing {', '.join(missing)} (first: {next(iter(missing.values()))}): "
            f"the prediction is the used models' alone"]


def unfinished_note(name: str, done: int | None, planned: int | None) -> str | None:
    """The warning for a model whose training stopped before the epochs it was started for
    (torch's and ONNX predict.py's, and export.py's)."""
    if not planned or done is None or done >= planned:
        return None
    return (f"warning: {name}'s training stopped at epoch {done} of {planned} (unfinished); rerun its train.py "
            f"command to finish it")
