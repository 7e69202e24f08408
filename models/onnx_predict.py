"""Classify one raw sample with exported networks (predict.py --onnx DIR), importing no torch: the
numpy descriptor engine makes the five images, onnxruntime runs the graphs that export.py wrote
(models/export.py), and the probabilities are fused as the torch path fuses them (the mean of
the models' softmax). A deployed predictor needs numpy, Pillow and onnxruntime only."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

from descriptors.core import check_included, descriptor_images, network_input
from descriptors.names import FUSION, FUSION_ORDER
from models.evaluation import mean_softmax
from models.names import checkpoint_prefix, model_names
from models.prediction import Prediction, model_notes
from skeletons.datasets import check_protocol, get_dataset
from skeletons.layouts import layout_record, layout_text
from skeletons.reading import check_file, load_sequence

EXPORT_FORMAT = "skeleton-descriptors onnx 1"   # what models/export.py writes (here: this module imports no torch)


def read_export(path: Path) -> dict:
    """An export's JSON, refused in one line when it is not one of export.py's."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not readable as export.py's JSON ({error})") from None
    if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
        raise ValueError(f"{path}: not a JSON of export.py (format {EXPORT_FORMAT!r})")
    return meta


def find_exports(onnx_dir: str | Path, dataset: str, protocol: str, desc: str) -> tuple[dict[str, tuple[Path, dict]],
                                                                                      dict[str, Path]]:
    """(name -> (.onnx, its JSON) of the exported networks ``desc`` names, name -> missing .onnx)."""
    found, missing = {}, {}
    for name in model_names(desc):
        path = Path(onnx_dir) / f"{checkpoint_prefix(dataset, protocol, name)}.onnx"
        if path.is_file() and path.with_suffix(".json").is_file():
            found[name] = (path, read_export(path.with_suffix(".json")))
        else:
            missing[name] = path
    if not found:
        raise FileNotFoundError(f"no exported network in {Path(onnx_dir).absolute()} for {dataset} {protocol} -desc "
                                f"{desc} (looked for {next(iter(missing.values())).name}, ...); export with export.py")
    return found, missing


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


def run_graph(path: Path, meta: dict, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The graph's main logits (Fuse5: its main head) for a batch of images by descriptor."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    single = meta["inputs"] == ["images"]
    feed = {"images": inputs[meta["model"]]} if single else {d: inputs[d] for d in meta["inputs"]}
    return session.run([meta["outputs"][0]], feed)[0]


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
    mode, img_size = agreed_settings(found, dataset, protocol, ds.layout)
    X = load_sequence(path, mode, ds.kind, ds.layout)
    check_included(X, mode, path)
    images = descriptor_images(X, ds.layout, mode, img_size)
    inputs = {d: network_input(images[d])[None] for d in FUSION_ORDER}
    logits = [run_graph(onnx, meta, inputs) for onnx, meta in found.values()]
    return Prediction(mean_softmax(logits)[0], {n: p for n, (p, _) in found.items()}, images, X, mode, ds.layout,
                      model_notes({n: p for n, (p, _) in found.items()}, missing))
