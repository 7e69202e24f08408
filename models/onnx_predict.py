"""Classify one raw sample with exported networks (predict.py --onnx DIR), importing no torch: the
numpy descriptor engine makes the five images, onnxruntime runs the graphs that export.py wrote
(models/export.py), and the probabilities are fused as the torch path fuses them (the mean of
the models' softmax). A deployed predictor needs numpy, Pillow and onnxruntime only.

An export is trusted only as a whole: its JSON records the SHA-256 of its ``.onnx`` and the graph
carries the JSON's record in its metadata (``RECORD_KEY``), so a graph swapped for another's, a
damaged one or an edited JSON is refused in one line naming the file and the export.py command
that makes it again; the classes of the data must be the model's, in name and order."""
from __future__ import annotations

import importlib.util
import json
import shlex
from pathlib import Path

import numpy as np

from common.provenance import check, check_class_names, file_digest
from descriptors.core import check_included, descriptor_images, network_input
from descriptors.names import FUSION, model_names, needed_descriptors
from models.evaluation import mean_softmax
from models.names import checkpoint_prefix
from models.prediction import Prediction, model_notes, unfinished_note
from skeletons.datasets import Dataset, check_protocol, get_dataset
from skeletons.layouts import layout_record, layout_text
from skeletons.reading import check_file, load_sequence

# What models/export.py writes (here: this module imports no torch). Version 2 binds the graph by
# its digest and carries the record in it; a version-1 export is made again.
EXPORT_NAME = "skeleton-descriptors onnx"
EXPORT_FORMAT = f"{EXPORT_NAME} 2"
RECORD_KEY = "imdar_record"   # the graph's metadata_props entry: the JSON's record, as a JSON string
# The record's fields: what the graph is (inputs, outputs), what it was made from and for.
RECORD_FIELDS = ("model", "inputs", "outputs", "dataset", "protocol", "layout", "mode", "img_size", "num_classes",
                 "class_names", "checkpoint", "epochs_done", "epochs_planned", "arch", "width", "data", "command")


def export_command(ds: Dataset, protocol: str, name: str, ckpt_dir: str | Path = "CKPT_DIR",
                   epoch: str = "best|last|K", out: str | Path = "OUT_DIR") -> str:
    """The export.py command line that (re)makes one network's export."""
    return (f"python export.py -d {ds.name} -p {protocol}{ds.data_flags()} -desc {name} -ckpt "
            f"{shlex.quote(str(ckpt_dir))} --epoch {epoch} --out {shlex.quote(str(out))}")


def read_export(path: Path, fix: str) -> dict:
    """An export's JSON, refused in one line when it is not one of this export.py's."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not readable as export.py's JSON ({error}); {fix}") from None
    if not isinstance(meta, dict) or not str(meta.get("format", "")).startswith(EXPORT_NAME):
        raise ValueError(f"{path}: not a JSON of export.py (format {EXPORT_FORMAT!r}); {fix}")
    if meta["format"] != EXPORT_FORMAT:
        raise ValueError(f"{path}: written by another export.py ({meta['format']!r}, this one reads "
                         f"{EXPORT_FORMAT!r}: the graph is bound to it by digest); {fix}")
    return meta


def find_exports(onnx_dir: str | Path, dataset: str, protocol: str, desc: str) -> tuple[dict[str, tuple[Path, dict]],
                                                                                      dict[str, Path]]:
    """(name -> (.onnx, its JSON) of the exported networks ``desc`` names, name -> missing .onnx)."""
    found, missing = {}, {}
    for name in model_names(desc):
        path = Path(onnx_dir) / f"{checkpoint_prefix(dataset, protocol, name)}.onnx"
        if path.is_file() and path.with_suffix(".json").is_file():
            fix = f"re-export it: {export_command(get_dataset(dataset), protocol, name, out=onnx_dir)}"
            found[name] = (path, read_export(path.with_suffix(".json"), fix))
        else:
            missing[name] = path
    if not found:
        raise FileNotFoundError(f"no exported network in {Path(onnx_dir).absolute()} for {dataset} {protocol} -desc "
                                f"{desc} (looked for {next(iter(missing.values())).name}, ...); export with export.py")
    return found, missing


def open_graph(path: Path, fix: str):
    """An onnxruntime session of the graph; a file onnxruntime cannot read (garbage, truncated) is
    refused in one line."""
    import onnxruntime

    try:
        return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - onnxruntime's own exception types, one per failure
        why = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path}: not an ONNX graph onnxruntime can read (damaged or truncated: {why}); "
                         f"{fix}") from None


def graph_record(session, path: Path, fix: str) -> dict:
    """The record export.py wrote into the graph's metadata."""
    text = session.get_modelmeta().custom_metadata_map.get(RECORD_KEY)
    try:
        record = json.loads(text) if text is not None else None
    except ValueError:
        record = None
    if not isinstance(record, dict):
        raise ValueError(f"{path}: holds no readable record of export.py ({RECORD_KEY!r} in its metadata); {fix}")
    return record


def open_export(path: Path, meta: dict):
    """The session of an export whose graph is the one its JSON describes: the graph's bytes have
    the JSON's digest, and the record in the graph is the JSON's; refused in one line otherwise."""
    command = meta.get("command")
    fix = f"re-export it: {command}" if isinstance(command, str) else "re-export it with export.py"
    session = open_graph(path, fix)
    check(meta, {"onnx_digest": file_digest(path)}, ("onnx_digest",), file=path, unknown_agrees=False,
          fix=f"the graph is not the one {path.with_suffix('.json').name} describes (replaced or changed); {fix}")
    check(graph_record(session, path, fix), meta, RECORD_FIELDS, file=path.with_suffix(".json"), unknown_agrees=False,
          fix=f"the JSON does not describe the graph {path.name} (edited; graph -> JSON); {fix}")
    return session


def agreed_settings(found: dict[str, tuple[Path, dict]], dataset: str, protocol: str, layout) -> tuple[str, int]:
    """The one (mode, image size) of the exports, which must be this dataset's, protocol's and layout's."""
    first = None
    for name, (path, meta) in found.items():
        if (meta["dataset"], meta["protocol"], meta["model"]) != (dataset, protocol, name):
            raise ValueError(f"{path}: exported from {meta['dataset']} {meta['protocol']} {meta['model']}, not "
                             f"{dataset} {protocol} {name}")
        if meta["layout"] != layout_record(layout):
            raise ValueError(f"{path}: trained on skeletons of another layout ({layout_text(meta['layout'])}, "
                             f"data: {layout.name})")
        settings = (meta["mode"], int(meta["img_size"]))
        if first is not None and settings != first[1]:
            raise ValueError(f"{path}: made for {settings[0]} images of {settings[1]} px, {first[0]} for "
                             f"{first[1][0]} of {first[1][1]} px; their predictions cannot be fused")
        first = first or (path, settings)
    return first[1]


def check_classes(found: dict[str, tuple[Path, dict]], ds: Dataset, protocol: str) -> None:
    """Refuse data whose classes differ in name or order from those a model was trained on."""
    for name, (path, meta) in found.items():
        check_class_names(meta["class_names"], ds.class_names, file=path.with_suffix(".json"),
                          fix=f"classify data of the model's classes, or train on these and export again: "
                              f"python train.py -d {ds.name} -p {protocol}{ds.data_flags()} -desc {name}")


def run_graph(session, meta: dict, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The graph's main logits (Fuse5: its main head) for a batch of images by descriptor."""
    single = meta["inputs"] == ["images"]
    feed = {"images": inputs[meta["model"]]} if single else {d: inputs[d] for d in meta["inputs"]}
    return session.run([meta["outputs"][0]], feed)[0]


def export_notes(found: dict[str, tuple[Path, dict]], missing: dict[str, Path]) -> list[str]:
    """What predict.py tells the user: the models missing, and those whose training is unfinished."""
    unfinished = [unfinished_note(n, m.get("epochs_done"), m.get("epochs_planned")) for n, (_, m) in found.items()]
    return model_notes({n: p for n, (p, _) in found.items()}, missing) + [note for note in unfinished if note]


def predict_file_onnx(path: str | Path, onnx_dir: str | Path, dataset: str, protocol: str | None = None,
                      desc: str = FUSION) -> Prediction:
    """predict.py's prediction from exported networks: the same images and the same fusion."""
    if importlib.util.find_spec("onnxruntime") is None:
        raise ValueError("predict.py --onnx needs the onnxruntime package: pip install onnxruntime (or -r "
                         "requirements-extra.txt)")
    ds = get_dataset(dataset)
    protocol = check_protocol(dataset, protocol or ds.protocols[0])
    path = check_file(path)
    found, missing = find_exports(onnx_dir, dataset, protocol, desc)
    sessions = {name: open_export(onnx, meta) for name, (onnx, meta) in found.items()}
    mode, img_size = agreed_settings(found, dataset, protocol, ds.layout)
    check_classes(found, ds, protocol)
    X = load_sequence(path, mode, ds.kind, ds.layout)
    check_included(X, mode, path)
    images = descriptor_images(X, ds.layout, mode, img_size, needed_descriptors(found))
    inputs = {d: network_input(images[d])[None] for d in images}
    logits = [run_graph(sessions[name], meta, inputs) for name, (_, meta) in found.items()]
    return Prediction(mean_softmax(logits)[0], {n: p for n, (p, _) in found.items()}, images, X, mode, ds.layout,
                      export_notes(found, missing))
