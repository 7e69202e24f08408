"""A run's networks to ONNX (export.py): one ``<prefix>.onnx`` per network with a dynamic batch
axis, and ``<prefix>.json`` beside it with what a predictor needs (models/onnx_predict.py):
the inputs and outputs, the descriptor, dataset, protocol, layout, mode, image size, class names,
the checkpoint (its digest, epoch, the epochs done and planned) and the provenance it recorded.
Ours and the release's checkpoints export alike.

The export is bound as a whole: the graph carries that record in its metadata (written before the
file's digest is taken) and the JSON records the digest, so the predictor refuses a graph swapped
for another's or a JSON edited after the export (models/onnx_predict.open_export).

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
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from common.atomic import atomic_path, check_writable, write_text_atomic
from common.errors import cause_text
from common.provenance import file_digest
from descriptors.core import DEFAULT_IMG_SIZE
from descriptors.names import FUSION, fused_inputs, is_fused
from skeletons.datasets import Dataset, check_protocol, get_dataset
from skeletons.layouts import layout_record
from .checkpoint import Checkpoint, load_model
from .inference import find_checkpoints, train_command
from .logs import last_logged_epoch
from .prediction import model_notes, unfinished_note
from .names import GROUP_OUTPUTS, checkpoint_prefix, fused_outputs, log_path
from .onnx_predict import EXPORT_FORMAT, RECORD_KEY, export_command
from .provenance import check_consistent, check_layout, check_role

DEFAULT_OPSET = 17
INPUT_NOTE = ("float32 (N, 3, H, W), 0..255, BGR channel order (the release's), a gray image repeated on the "
              "three channels: descriptors.core.network_input")


class ExportError(ValueError):
    """An export that cannot be made; str(e) is one line naming the file and the problem."""


class Fuse5Graph(nn.Module):
    """A fusion network (Fuse5, FuseN) with one input per descriptor and its heads as a flat tuple
    (ONNX has no dicts)."""

    def __init__(self, fuse5: nn.Module):
        super().__init__()
        self.fuse5 = fuse5

    def forward(self, *images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.fuse5(list(images))
        return (out["main"], *out["single"], *(out[g] for g in GROUP_OUTPUTS if g in out))


def graph_names(name: str) -> tuple[list[str], list[str]]:
    """(input names, output names) of a network's graph."""
    return (list(fused_inputs(name)), list(fused_outputs(name))) if is_fused(name) else (["images"], ["logits"])


def opset_range() -> tuple[int, int]:
    """The opsets the installed torch's (TorchScript) exporter writes."""
    constants = getattr(torch.onnx, "_constants", None)
    return getattr(constants, "ONNX_MIN_OPSET", 7), getattr(constants, "ONNX_MAX_OPSET", 20)


def check_opset(opset: int) -> None:
    """Refuse an opset the exporter cannot write before anything is exported."""
    low, high = opset_range()
    if not low <= opset <= high:
        raise ExportError(f"--opset {opset}: the installed torch {torch.__version__.split('+')[0]} exports ONNX "
                          f"opsets {low}..{high}; give one of them (default {DEFAULT_OPSET})")


@contextmanager
def silenced_output() -> Iterator[None]:
    """The process's stdout and stderr (file descriptors 1 and 2) on /dev/null: torch's exporter
    prints the whole graph from C++ (100+ lines) before it raises; its error is reported in one line."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, kept in zip((1, 2), saved):
            os.dup2(kept, fd)
            os.close(kept)


def with_record(path: Path, record: dict) -> None:
    """Write ``record`` into the graph's metadata (``RECORD_KEY``), so the graph says what it is."""
    import onnx

    graph = onnx.load(str(path))
    onnx.helper.set_model_props(graph, {RECORD_KEY: json.dumps(record, sort_keys=True)})
    onnx.save(graph, str(path))


def export_graph(model: nn.Module, name: str, img_size: int, path: Path, opset: int, record: dict | None = None) -> str:
    """Trace ``model`` at batch 2 and write its graph with a dynamic batch axis (and ``record`` in its
    metadata), atomically; the SHA-256 of the file written."""
    inputs, outputs = graph_names(name)
    graph = Fuse5Graph(model) if is_fused(name) else model
    dummy = tuple(torch.zeros(2, 3, img_size, img_size) for _ in inputs)
    with atomic_path(path, suffix=".onnx") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the tracer's notes on shape-dependent branches (fixed by img_size)
        try:
            with silenced_output():
                torch.onnx.export(graph.eval(), dummy, str(tmp), dynamo=False, input_names=inputs,
                                  output_names=outputs, dynamic_axes={n: {0: "batch"} for n in inputs + outputs},
                                  opset_version=opset)
        except (ValueError, RuntimeError, torch.onnx.errors.OnnxExporterError) as error:
            raise ExportError(f"{path}: not exported with --opset {opset} ({cause_text(error)})") from None
        if record is not None:
            with_record(tmp, record)
        return file_digest(tmp)   # of the final bytes: the record is in them


def epochs_done(ckpt_dir: str | Path, dataset: str, protocol: str, name: str, ckpt: Checkpoint) -> int | None:
    """The epochs the model's training has run: its log's last (as torch predict.py reads it: a
    best or earlier epoch of a finished training is not unfinished), else the checkpoint's epoch."""
    logged = last_logged_epoch(log_path(ckpt_dir, dataset, protocol, name))
    return logged if logged is not None else ckpt.epoch


def record(name: str, ckpt: Checkpoint, ds: Dataset, protocol: str, pixels: tuple[str, int], done: int | None,
           command: str) -> dict:
    """What the export is and what made it: the JSON's fields that the graph carries too."""
    inputs, outputs = graph_names(name)
    settings = ckpt.settings if ckpt.kind == "ours" else {}
    classes = settings.get("class_names") or ds.class_names   # equal once check_role has passed
    return {"model": name, "inputs": inputs, "outputs": outputs, "dataset": ds.name, "protocol": protocol,
            "layout": layout_record(ds.layout), "mode": pixels[0], "img_size": pixels[1],
            "num_classes": ds.num_classes, "class_names": [str(c) for c in classes],
            "checkpoint": {"path": str(ckpt.path.absolute()), "kind": ckpt.kind, "epoch": ckpt.epoch,
                           "best_acc": ckpt.best_acc, "digest": file_digest(ckpt.path)},
            "epochs_done": done, "epochs_planned": settings.get("epochs"), "arch": settings.get("arch"),
            "width": settings.get("width"), "data": settings.get("data"), "command": command}


def sidecar(fields: dict, onnx_digest: str) -> dict:
    """The JSON beside the graph: the record, what the input is, and the graph's digest."""
    return {"format": EXPORT_FORMAT, **fields, "input": INPUT_NOTE, "onnx_digest": onnx_digest}


def checked_models(ckpt_dir: str | Path, ds: Dataset, protocol: str, desc: str, epoch: str, log) -> dict:
    """name -> (model, checkpoint) of the networks to export, each of this dataset (its classes in
    their order), protocol and layout."""
    found, missing = find_checkpoints(ckpt_dir, ds.name, protocol, desc, epoch)
    for note in model_notes(found, missing):
        log(note)
    models = {n: load_model(p, desc=n, num_classes=ds.num_classes) for n, p in found.items()}
    for name, (_, ckpt) in models.items():
        check_role(ckpt, name, ds.name, protocol, train_command(ds, protocol, name))
        check_layout(ckpt, ds.layout, f"{ds.name} ({ds.layout.name} layout)", train_command(ds, protocol, name))
    return models


def export_run(ckpt_dir: str | Path, dataset: str, protocol: str | None, desc: str, epoch: str, out: str | Path,
               opset: int = DEFAULT_OPSET, log=print) -> list[Path]:
    """Export every network that ``desc`` names (``all``: the five and Fuse5) found in ``ckpt_dir``;
    the .onnx files written."""
    if importlib.util.find_spec("onnx") is None:
        raise ExportError("export.py needs the onnx package: pip install -r requirements-extra.txt")
    ds = get_dataset(dataset)
    protocol = check_protocol(dataset, protocol or ds.protocols[0])
    out = Path(out)
    check_opset(opset)
    models = checked_models(ckpt_dir, ds, protocol, desc, epoch, log)
    pixels = check_consistent({n: c for n, (_, c) in models.items()})
    mode, img_size = pixels.get("mode", "paper"), int(pixels.get("img_size", DEFAULT_IMG_SIZE))
    check_writable(out, "the exported graphs", "give --out a folder you can write")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (model, ckpt) in models.items():
        path = out / f"{checkpoint_prefix(dataset, protocol, name)}.onnx"
        done = epochs_done(ckpt_dir, dataset, protocol, name, ckpt)
        fields = record(name, ckpt, ds, protocol, (mode, img_size), done,
                        export_command(ds, protocol, name, Path(ckpt_dir).absolute(), epoch, out.absolute()))
        if note := unfinished_note(name, done, fields["epochs_planned"]):
            log(note)
        digest = export_graph(model, name, img_size, path, opset, fields)
        try:
            write_text_atomic(path.with_suffix(".json"), json.dumps(sidecar(fields, digest), indent=1) + "\n")
        except OSError:
            os.unlink(path)   # an .onnx without its description is of no use to a predictor
            raise
        written.append(path)
    return written
