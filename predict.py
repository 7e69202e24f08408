"""Classify one raw sample with trained checkpoints and print the top-5 classes.

    python predict.py data/ntu/txt60skel/S001C001P001R001A023.skeleton -d ntu60 -p csub
    python predict.py data/ucla/a01_s01_e00_v01.json -d ucla --images out/ --figure out/sample.png
    python predict.py clip.npy -d custom --data ROOT --layout coco17     # your own skeletons
    python predict.py test_3 -d ctrgcn --data NTU60_CS.npz                # a sample of a data file, by name
    python predict.py FILE -d ntu60 -p csub --onnx exported/              # export.py's graphs, no torch needed
    python predict.py clip.mp4 -d ntu60 -p csub --figure clip.png         # a video: BlazePose, then a timeline
    (FILE: NTU .skeleton or .skeleton.npy, an NW-UCLA .json, or a custom dataset's .npy; -desc all =
    the five single models and Fuse5 fused by the mean of their softmax, the honest score fusion of
    test.py)
"""
from __future__ import annotations

import argparse
import os
import sys

from cli import options as cli
from skeletons.datasets import class_names, get_dataset, label_of, sample_id
from skeletons.unpacked import sample_file
from skeletons.video import DEFAULT_STRIDE, DEFAULT_WINDOW, is_video


def get_args_parser() -> argparse.ArgumentParser:
    p = cli.parser(__doc__)
    p.add_argument("file", help="one sample: .skeleton, .skeleton.npy, NW-UCLA .json, (-d custom) .npy, or "
                                "(-d pyskl/ctrgcn) a sample's name in the data file")
    cli.add_dataset(p, required=True)
    cli.add(p, "protocol")
    cli.add(p, "desc")
    cli.add(p, "descriptors")
    cli.add(p, "gpu")
    cli.add(p, "ckpt")
    cli.add(p, "epoch")
    p.add_argument("-k", type=int, default=5, help="classes printed")
    p.add_argument("--images", metavar="DIR", help="save the five descriptor images as DIR/<sample>_<DESC>.png")
    p.add_argument("--figure", metavar="PNG", help="save the sample's frames, the top -k classes with their probabilities "
                                                   "(the true one in green when the file name gives it) and the five images")
    p.add_argument("--explain", action="store_true", help="say what the prediction looked at: the features, joints and "
                   "frames with the largest integrated gradients of its class (models/explain.py); with --figure, draw "
                   "them (the skeleton at the key frames, joints coloured by importance, the images' heatmaps) instead")
    p.add_argument("--onnx", metavar="DIR", help="classify with the networks export.py wrote to DIR, with numpy and "
                                                 "onnxruntime only (no torch; -ckpt, --epoch and -gpu are not used)")
    p.add_argument("--window", type=int, default=DEFAULT_WINDOW, help="a video (.mp4/.avi/.mov/.mkv/.webm or a folder "
                   "of frames, docs/VIDEO.md): frames per sliding window of its timeline (default %(default)s)")
    p.add_argument("--stride", type=int, default=DEFAULT_STRIDE, help="a video: frames between the windows' starts "
                                                                        "(default %(default)s)")
    return p


def numbered_classes(dataset: str) -> bool:
    return get_dataset(dataset).kind.numbered_classes


def true_label(dataset: str, name: str) -> int | None:
    """The 1-based class the sample's name (or a custom dataset's labels.csv) gives, if any."""
    try:
        return label_of(name, dataset)
    except (ValueError, KeyError, AttributeError):
        return None


def predict(args: argparse.Namespace):
    """The prediction by the path asked for: exported graphs (no torch), or the checkpoints."""
    if args.onnx:
        from models.onnx_predict import predict_file_onnx
        return predict_file_onnx(args.file, args.onnx, args.dataset, args.protocol, args.desc)
    from models.inference import inference_device, predict_file
    return predict_file(args.file, args.ckpt, args.dataset, args.protocol, args.desc, args.epoch,
                        device=inference_device(args.gpu))


def figure_classes(dataset: str, name: str, result, k: int):
    """The figure's bars: the k most probable classes, the true one when the name gives it, and
    what made the probabilities."""
    from descriptors.figures import TopClasses, class_label
    ranked = [(class_label(dataset, label), prob) for _, label, prob in result.top(class_names(dataset), k)]
    truth = true_label(dataset, name)
    models = list(result.models)
    made_by = f"mean softmax of {len(models)} models" if len(models) > 1 else ", ".join(models)
    return TopClasses(ranked, None if truth is None else class_label(dataset, truth), made_by)


def explanation(args: argparse.Namespace, result, name: str) -> list[str]:
    """--explain: the lines saying what the prediction looked at; with --figure, drawn there."""
    from descriptors.figures import class_label
    from models.explain import explain_prediction, explanation_lines, save_explanation
    _, label, prob = result.top(class_names(args.dataset), 1)[0]
    explained = explain_prediction(result, result.networks)   # the networks that made the prediction
    lines = explanation_lines(explained, class_label(args.dataset, label), len(result.models))
    if args.figure:
        save_explanation(explained, result, args.figure, f"{name}: predicted {class_label(args.dataset, label)} "
                         f"({prob:.0%}); what the prediction looked at", lines)
    return lines


def main(args: argparse.Namespace) -> int:
    from descriptors.figures import save_images, save_sample_figure

    if args.explain and (args.onnx or is_video(args.file)):
        print("error: --explain explains one skeleton sample with the torch checkpoints: drop --onnx "
              "(and give a skeleton file, not a video)", file=sys.stderr)
        return 2
    try:
        args.desc = cli.model_name(args.desc, args.descriptors)   # 'all' with --descriptors: that set's fusion
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if is_video(args.file):
        from cli.predict_video import main as predict_video
        return predict_video(args)
    try:
        cli.setup_dataset(args)
        if not os.path.lexists(args.file) and (unpacked := sample_file(get_dataset(args.dataset), args.file)):
            args.file = str(unpacked)
        result = predict(args)
        name = sample_id(args.file)
        for note in result.notes:
            print(note, file=sys.stderr)
        if args.images:
            save_images(result.images, args.images, name)
        explained = explanation(args, result, name) if args.explain else []
        if args.figure and not args.explain:
            save_sample_figure(result.sequence, result.images, name, args.figure, result.mode, layout=result.layout,
                               dataset=args.dataset, top=figure_classes(args.dataset, name, result, args.k))
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{name}: {', '.join(result.models)} ({args.dataset})")
    if (truth := true_label(args.dataset, name)) is not None:   # NTU and NW-UCLA names carry it
        print(f"  true class: {'A%03d ' % truth if numbered_classes(args.dataset) else ''}"
              f"{class_names(args.dataset)[truth - 1]}")
    numbered = numbered_classes(args.dataset)   # NTU names classes A001..A120
    for rank, (cls, label, prob) in enumerate(result.top(class_names(args.dataset), args.k), 1):
        print(f"  {rank}. {prob:6.1%}  A{label:03d} {cls}" if numbered else f"  {rank}. {prob:6.1%}  {cls}")
    if explained:
        print("\n".join(explained))
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
