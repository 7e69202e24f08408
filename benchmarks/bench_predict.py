"""The predictor's networks, torch against onnxruntime on the CPU (prints figures; not a test;
docs/DEPLOYMENT.md quotes them).

    python benchmarks/bench_predict.py [--repeats 20]

For the six networks predict.py runs (-desc all: five ResNet_c and Fuse5; random weights, which
time the same as trained ones), at full width on 112-px images (the release's) and at the demo's
width 1/16 on 32-px images: one sample's latency (median of --repeats, all six networks) and
samples/s in batches (16 at full width, 64 at the demo's), for torch (eval, no_grad, its default threads) and for the
exported ONNX graphs in onnxruntime (its default threads). Also the numpy descriptor engine's
time for one sample's five images, which both paths spend first.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from descriptors.core import descriptor_images  # noqa: E402
from descriptors.names import DESCRIPTORS, FUSION, FUSION_ORDER  # noqa: E402
from models.export import export_graph, graph_names  # noqa: E402
from models.networks import build_model  # noqa: E402
from skeletons.layouts import NTU  # noqa: E402

# (label, width, image side, batch): a full-width Fuse5 batch of 64 took 18 GB here; 16 is enough to batch.
SETTINGS = (("full width, 112 px", 1.0, 112, 16), ("demo width 1/16, 32 px", 0.0625, 32, 64))
NUM_CLASSES = 60


def timed(call, repeats: int) -> float:
    call()   # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def networks(width: float, img_size: int, folder: Path):
    import onnxruntime
    models, sessions = {}, {}
    for name in (*DESCRIPTORS, FUSION):
        models[name] = build_model(name, NUM_CLASSES, width=width).eval()
        path = folder / f"{name}_{img_size}.onnx"
        export_graph(models[name], name, img_size, path, 17)
        sessions[name] = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return models, sessions


def run_torch(models, batch: dict[str, torch.Tensor]) -> None:
    with torch.inference_mode():
        for name, model in models.items():
            model([batch[d] for d in FUSION_ORDER]) if name == FUSION else model(batch[name])


def run_onnx(sessions, batch: dict[str, np.ndarray]) -> None:
    for name, session in sessions.items():
        inputs, _ = graph_names(name)
        session.run(None, {n: batch[n if name == FUSION else name] for n in inputs})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__} "
          f"({torch.get_num_threads()} threads)")
    rng = np.random.default_rng(0)
    X = np.cumsum(rng.normal(0, 0.01, (80, 50, 3)), axis=0)
    print(f"descriptor images of one 80-frame two-body sample (numpy engine): "
          f"{1000 * timed(lambda: descriptor_images(X, NTU, 'paper', 112), args.repeats):.1f} ms at 112 px, "
          f"{1000 * timed(lambda: descriptor_images(X, NTU, 'paper', 32), args.repeats):.1f} ms at 32 px")
    with tempfile.TemporaryDirectory() as tmp:
        for label, width, size, batch in SETTINGS:
            models, sessions = networks(width, size, Path(tmp))
            for n in (1, batch):
                images = {d: rng.uniform(0, 255, (n, 3, size, size)).astype(np.float32) for d in DESCRIPTORS}
                tensors = {d: torch.from_numpy(a) for d, a in images.items()}
                t_torch = timed(lambda: run_torch(models, tensors), args.repeats if n == 1 else 3)
                t_onnx = timed(lambda: run_onnx(sessions, images), args.repeats if n == 1 else 3)
                what = "one sample, six networks" if n == 1 else f"batches of {n}"
                figures = (f"{1000 * t_torch:.1f} ms vs {1000 * t_onnx:.1f} ms" if n == 1 else
                           f"{n / t_torch:.1f} vs {n / t_onnx:.1f} samples/s")
                print(f"{label}, {what}: torch {figures.replace(' vs ', ', onnxruntime ')} "
                      f"(onnxruntime {t_torch / t_onnx:.2f}x torch)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
