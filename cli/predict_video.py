"""predict.py VIDEO: the video route's printing and figure (models/video_predict.py does the work)."""
from __future__ import annotations

import argparse
import sys

from descriptors.figures import TopClasses, class_label
from descriptors.video_figures import Span, save_video_figure, shown_frames
from models.inference import inference_device
from models.video_predict import VideoPrediction, Window, predict_video
from cli import options as cli
from skeletons.datasets import class_names, get_dataset, sample_id
from skeletons.video import POSE_MODEL, frames_at


def segments(windows: list[Window]) -> list[tuple[int, int, int | None, float]]:
    """Consecutive windows with the same class merged: (first frame, last frame, label, top probability)."""
    merged: list[list] = []
    for w in windows:
        if merged and merged[-1][2] == w.label:
            merged[-1][1], merged[-1][3] = w.end, max(merged[-1][3], w.probability)
        else:
            merged.append([w.start, w.end, w.label, w.probability])
    return [tuple(m) for m in merged]


def class_text(dataset: str, label: int | None) -> str:
    if label is None:
        return "no class (fewer than half its frames with a person)"
    numbered = get_dataset(dataset).kind.numbered_classes
    return f"A{label:03d} {class_names(dataset)[label - 1]}" if numbered else class_names(dataset)[label - 1]


def draw(result: VideoPrediction, args: argparse.Namespace, name: str) -> None:
    ranked = [(class_label(args.dataset, label), p) for _, label, p in result.whole.top(class_names(args.dataset), args.k)]
    models = list(result.whole.models)
    top = TopClasses(ranked, None, f"mean softmax of {len(models)} models" if len(models) > 1 else models[0])
    spans = [Span(w.start, w.end, None if w.label is None else class_label(args.dataset, w.label), w.probability)
             for w in result.windows]
    present = result.track.present
    frames = frames_at(args.file, shown_frames(present))
    title = (f"{name}: {result.track.frames} frames, {int(present.sum())} with a person; pose {POSE_MODEL} -> "
             f"{result.whole.layout.name} layout; {args.dataset} models")
    save_video_figure(args.figure, frames, result.joints_2d, present, result.whole.layout, spans, top, title,
                      result.track.fps)


def main(args: argparse.Namespace) -> int:
    """Classify the video ``args.file``: the whole video's top -k, then the timeline."""
    try:
        cli.setup_dataset(args)
        if args.onnx:
            raise ValueError(f"{args.file}: a video is classified with the checkpoints (torch); --onnx reads skeleton "
                             f"files only")
        result = predict_video(args.file, args.ckpt, args.dataset, args.protocol, args.desc, args.epoch,
                               inference_device(args.gpu), args.window, args.stride)
        name = sample_id(args.file)
        for note in result.notes:
            print(note, file=sys.stderr)
        if args.figure:
            draw(result, args, name)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    track = result.track
    print(f"{name}: {', '.join(result.whole.models)} ({args.dataset}); {track.frames} frames, "
          f"{int(track.present.sum())} with a person; pose: {POSE_MODEL}")
    for rank, (_, label, prob) in enumerate(result.whole.top(class_names(args.dataset), args.k), 1):
        print(f"  {rank}. {prob:6.1%}  {class_text(args.dataset, label)}")
    print(f"timeline (windows of {result.window} frames every {result.stride}):")
    for first, last, label, prob in segments(result.windows):
        print(f"  frames {first}-{last}: {class_text(args.dataset, label)}" + (f" ({prob:.0%})" if label else ""))
    return 0
