"""A run's networks to ONNX (export.py): one ``<prefix>.onnx`` per network with a dynamic batch
axis, and ``<prefix>.json`` beside it with what a predictor needs (models/onnx_predict.py):
the inputs and outputs, the descriptor, dataset, protocol, layout, mode, image size, class names,
and the provenance the checkpoint recorded. Ours and the release's checkpoints export alike.

The inputs are what the networks are trained on: float32 (N, 3, H, W), 0..255, the release's BGR
channel order, a gray descriptor image repeated on the three channels
(``descriptors.core.network_input``). A single-descriptor network has one input, ``images``, and
one output, ``logits``; Fuse5 has one input per descriptor in its order (GD, FDD, JDD, ADD, LAD)
and its eight heads as outputs (``main`` first).
"""
from __future__ import annotations

import importlib.util
import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from common.atomic import atomic_path, write_text_atomic
from common.errors import cause_text
from descriptors.core import DEFAULT_IMG_SIZE
from descriptors.names import FUSION, FUSION_ORDER
from skeletons.datasets import Dataset, check_protocol, get_dataset
from skeletons.layouts import layout_record
from .checkpoint import Checkpoint, load_model
from .inference import find_checkpoints, train_command
from .prediction import model_notes
from .names import FUSE5_OUTPUTS, checkpoint_prefix
from .onnx_predict import EXPORT_FORMAT
from .provenance import check_consistent, check_layout, check_role

DEFAULT_OPSET = 17
INPUT_NOTE = ("float32 (N, 3, H, W), 0..255, BGR channel order (the release's), a gray image repeated on the "
              "three channels: descriptors.core.network_input")


class ExportError(ValueError):
    """An export that cannot be made; str(e) is one line naming the file and the problem."""


class Fuse5Graph(nn.Module):
    """Fuse5 with one input per descriptor and its heads as a flat tuple (ONNX has no dicts)."""

    def __init__(self, fuse5: nn.Module):
        super().__init__()
        self.fuse5 = fuse5

    def forward(self, *images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.fuse5(list(images))
        return (out["main"], *out["single"], out["g12"], out["g345"])


def graph_names(name: str) -> tuple[list[str], list[str]]:
    """(input names, output names) of a network's graph."""
    return (list(FUSION_ORDER), list(FUSE5_OUTPUTS)) if name == FUSION else (["images"], ["logits"])


def export_graph(model: nn.Module, name: str, img_size: int, path: Path, opset: int) -> None:
    """Trace ``model`` at batch 2 and write its graph with a dynamic batch axis, atomically."""
    inputs, outputs = graph_names(name)
    graph = Fuse5Graph(model) if name == FUSION else model
    dummy = tuple(torch.zeros(2, 3, img_size, img_size) for _ in inputs)
    with atomic_path(path, suffix=".onnx") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the tracer's notes on shape-dependent branches (fixed by img_size)
        try:
            torch.onnx.export(graph.eval(), dummy, str(tmp), dynamo=False, input_names=inputs, output_names=outputs,
                              dynamic_axes={n: {0: "batch"} for n in inputs + outputs}, opset_version=opset)
        except (ValueError, RuntimeError, torch.onnx.errors.OnnxExporterError) as error:
            raise ExportError(f"{path}: not exported with --opset {opset} ({cause_text(error)})") from None


def sidecar(name: str, ckpt: Checkpoint, ds: Dataset, protocol: str, mode: str, img_size: int) -> dict:
    """What a predictor needs to feed the graph and read its outputs, and where the model came from."""
    inputs, outputs = graph_names(name)
    settings = ckpt.settings if ckpt.kind == "ours" else {}
    return {"format": EXPORT_FORMAT, "model": name, "inputs": inputs, "outputs": outputs, "input": INPUT_NOTE,
            "dataset": ds.name, "protocol": protocol, "layout": layout_record(ds.layout), "mode": mode,
            "img_size": img_size, "num_classes": ds.num_classes, "class_names": list(ds.class_names),
            "checkpoint": {"path": str(ckpt.path.absolute()), "kind": ckpt.kind, "epoch": ckpt.epoch,
                           "best_acc": ckpt.best_acc},
            "arch": settings.get("arch"), "width": settings.get("width"), "data": settings.get("data")}


def check_writable(out: Path) -> None:
    """Refuse a folder that cannot be written before anything is exported."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / ".write-test") as tmp:
            tmp.write_bytes(b"")
        (out / ".write-test").unlink()
    except OSError as error:
        raise ExportError(f"{out}: the output folder cannot be written ({error.strerror or error})") from None


def export_run(ckpt_dir: str | Path, dataset: str, protocol: str | None, desc: str, epoch: str, out: str | Path,
               opset: int = DEFAULT_OPSET, log=print) -> list[Path]:
    """Export every network that ``desc`` names (``all``: the five and Fuse5) found in ``ckpt_dir``;
    the .onnx files written."""
    if importlib.util.find_spec("onnx") is None:
        raise ExportError("export.py needs the onnx package: pip install -r requirements-extra.txt")
    ds = get_dataset(dataset)
    protocol = check_protocol(dataset, protocol or ds.protocols[0])
    out = Path(out)
    found, missing = find_checkpoints(ckpt_dir, dataset, protocol, desc, epoch)
    for note in model_notes(found, missing):
        log(note)
    models = {n: load_model(p, desc=n, num_classes=ds.num_classes) for n, p in found.items()}
    for name, (_, ckpt) in models.items():
        check_role(ckpt, name, dataset, protocol, train_command(ds, protocol, name))
        check_layout(ckpt, ds.layout, f"{dataset} ({ds.layout.name} layout)", train_command(ds, protocol, name))
    pixels = check_consistent({n: c for n, (_, c) in models.items()})
    mode, img_size = pixels.get("mode", "paper"), int(pixels.get("img_size", DEFAULT_IMG_SIZE))
    check_writable(out)
    written = []
    for name, (model, ckpt) in models.items():
        path = out / f"{checkpoint_prefix(dataset, protocol, name)}.onnx"
        export_graph(model, name, img_size, path, opset)
        try:
            write_text_atomic(path.with_suffix(".json"),
                              json.dumps(sidecar(name, ckpt, ds, protocol, mode, img_size), indent=1) + "\n")
        except OSError:
            os.unlink(path)   # an .onnx without its description is of no use to a predictor
            raise
        written.append(path)
    return written
