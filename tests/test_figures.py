"""Figures that explain themselves (issue 27 item 6), checked on the matplotlib objects drawn with
the Agg backend: the descriptor figure names the action and what each image's rows and columns
are, and draws the images unchanged; predict.py's figure shows the top classes with their
probabilities and the true class; test.py's confusion figure puts each class's accuracy, named,
beside its matrix row and grows with the class count; training curves have whole-epoch ticks."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
from conftest import load_script

matplotlib.use("Agg")

from descriptors.core import descriptor_images  # noqa: E402
from descriptors.figures import (TopClasses, action_of, descriptor_figure, file_dataset,  # noqa: E402
                                 file_figure, sample_title, strip_columns)
from descriptors.names import DESCRIPTORS  # noqa: E402
from models.confusion import confusion_figure  # noqa: E402
from models.curves import curves_figure  # noqa: E402
from models.evaluation import confusion_matrix, write_confusion_png  # noqa: E402
from models.prediction import Prediction  # noqa: E402
from skeletons.datasets import class_names  # noqa: E402
from skeletons.layouts import layout_for_joints  # noqa: E402
from skeletons.reading import load_sequence  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"
HANDSHAKE = "S006C001P016R001A058"   # a two-person demo action


@pytest.fixture(scope="module")
def handshake(demo_raw):
    """(path, sequence, layout, images) of the demo's two-person NTU sample, paper mode."""
    path = Path(demo_raw) / "ntu" / "txt60skel" / f"{HANDSHAKE}.skeleton"
    X = load_sequence(path, "paper")
    layout = layout_for_joints(X.shape[1])[0]
    return path, X, layout, descriptor_images(X, layout, "paper", 32)


def image_axes(figure) -> dict:
    return {ax.get_title(): ax for ax in figure.get_axes() if ax.get_title() in DESCRIPTORS}


def test_the_action_is_named_from_the_sample_name():
    assert action_of(HANDSHAKE, "ntu60") == "A058 handshaking"
    assert action_of("S018C001P008R001A113", "ntu120") == "A113 cheers and drink"
    assert action_of("a01_s01_e00_v01", "ucla") == "pick up with one hand"
    assert action_of(HANDSHAKE, None) is None and action_of("clip_0001", "ntu60") is None
    assert file_dataset("x/S001C001P001R001A001.skeleton") == "ntu120"   # names A061..A120 too
    assert file_dataset("x/S001C001P001R001A001.skeleton.npy") == "ntu120"
    assert file_dataset("x/a01_s01_e00_v01.json") == "ucla"
    assert file_dataset("x/clip.npy") is None
    assert sample_title(HANDSHAKE, layout_for_joints(50)[0], 2, "paper", "A058 handshaking") == \
        f"A058 handshaking: {HANDSHAKE} (ntu layout, 2 bodies, paper mode)"


def test_descriptor_figure_says_what_rows_and_columns_are(handshake):
    _, X, layout, images = handshake
    T = X.shape[0]
    figure = descriptor_figure(X, layout, images, sample_title(HANDSHAKE, layout, 2, "paper", "A058 handshaking"))
    assert figure.get_suptitle().startswith("A058 handshaking: ")
    axes = image_axes(figure)
    assert list(axes) == list(DESCRIPTORS)
    for desc, ax in axes.items():
        assert np.array_equal(ax.images[0].get_array(), images[desc])     # drawn as made, pixel for pixel
        assert ax.get_ylabel().startswith("rows: ") and ax.get_ylabel().endswith("per body")
        assert ax.get_xlabel().startswith("columns: frame")
        assert [t.get_text() for t in ax.get_yticklabels()] == ["body 1", "body 2"]
        ticks = [t.get_text() for t in ax.get_xticklabels()]
        assert ticks == (["1→2", f"{T - 1}→{T}"] if desc == "ADD" else ["1", str(T)])
    assert axes["JDD"].get_ylabel() == f"rows: {len(layout.jdd_pairs)} joint pairs per body"
    assert axes["LAD"].get_ylabel() == f"rows: {len(layout.lad_triplets)} angles per body"
    assert axes["GD"].get_ylabel() == f"rows: {layout.num_joints} joints per body"
    caption = "\n".join(t.get_text() for sub in figure.subfigs for t in sub.texts)
    first_pair = "-".join(layout.joints[j] for j in layout.jdd_pairs[0])
    assert first_pair in caption.replace("\n", " ") and "x y z as red green blue" in caption
    assert "not tracked" not in caption


def test_two_bodies_are_drawn_large_without_blank_bands(handshake):
    """Two people side by side in one row of 8 frames beside predict.py's bars were a thin band:
    they go to two rows there; at full width one row draws them large enough, and the figure's
    height follows the strip's (no fixed panel left mostly blank)."""
    _, X, layout, images = handshake
    frames = np.linspace(0, X.shape[0] - 1, 8).round().astype(int)
    assert strip_columns(X, layout, frames, 11.8) == 8
    assert strip_columns(X, layout, frames, 7.8) == 4
    figure = descriptor_figure(X, layout, images, "t")
    figure.canvas.draw()
    strip = figure.subfigs[0].get_axes()[0]
    box = strip.get_window_extent()
    upper = figure.subfigs[0].bbox
    assert box.height / figure.dpi > 1.2                       # each skeleton over an inch tall
    assert box.height / upper.height > 0.6 and box.width / upper.width > 0.9   # the panel is filled


def test_a_body_missing_in_some_frames_is_said_in_the_caption(handshake):
    _, X, layout, images = handshake
    X = X.copy()
    X[40:, layout.num_joints:] = 0
    figure = descriptor_figure(X, layout, descriptor_images(X, layout, "paper", 32), "t")
    caption = " ".join(t.get_text() for sub in figure.subfigs for t in sub.texts).replace("\n", " ")
    assert f"Body 2 is not tracked in {X.shape[0] - 40} of the {X.shape[0]} frames" in caption


def test_file_figure_writes_a_png_titled_with_the_action(handshake, tmp_path):
    path = handshake[0]
    out = tmp_path / "fig" / "sample.png"
    file_figure(path, out, "paper", 32)
    assert out.read_bytes()[:8] == PNG and not list(out.parent.glob("*.tmp"))
    assert not list(tmp_path.rglob(".*"))


def fake_prediction(handshake, dataset: str, boost: int | None) -> Prediction:
    _, X, layout, images = handshake
    probabilities = np.linspace(2.0, 1.0, len(class_names(dataset)))   # class 1 the most probable
    if boost is not None:
        probabilities[boost - 1] = 30.0
    probabilities /= probabilities.sum()
    models = {name: Path(f"{name}.tar") for name in ("GD", "JDD", "ADD", "LAD", "FDD", "Fuse5")}
    return Prediction(probabilities, models, images, X, "paper", layout)


def test_predict_figure_shows_the_top_five_and_the_true_class(handshake):
    predict = load_script("predict")
    result = fake_prediction(handshake, "ntu60", boost=58)
    top = predict.figure_classes("ntu60", HANDSHAKE, result, 5)
    assert top.truth == "A058 handshaking" and top.models == "mean softmax of 6 models"
    assert [name for name, _ in top.ranked] == ["A058 handshaking", "A001 drink water", "A002 eat meal/snack",
                                                "A003 brushing teeth", "A004 brushing hair"]
    _, X, layout, images = handshake
    figure = descriptor_figure(X, layout, images, "t", top=top)
    bars = next(ax for ax in figure.get_axes() if ax.get_title().startswith("top 5"))
    patches = bars.patches
    assert [p.get_width() for p in patches] == pytest.approx([p for _, p in top.ranked])
    assert [t.get_text() for t in bars.get_yticklabels()] == [name for name, _ in top.ranked]
    assert patches[0].get_facecolor() != patches[1].get_facecolor()          # the true class stands out
    assert "true class (green): A058 handshaking" in bars.get_title()
    assert f"{top.ranked[0][1]:.1%}" in [t.get_text() for t in bars.texts]
    missed = predict.figure_classes("ntu60", HANDSHAKE, fake_prediction(handshake, "ntu60", boost=None), 5)
    figure = descriptor_figure(X, layout, images, "t", top=missed)
    bars = next(ax for ax in figure.get_axes() if ax.get_title().startswith("top 5"))
    assert "true class A058 handshaking: not in the top 5" in bars.get_title()
    assert len({tuple(p.get_facecolor()) for p in bars.patches}) == 1


def confusion(n: int, per: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n), per)
    pred = np.where(rng.random(labels.size) < 0.7, labels, rng.integers(0, n, labels.size))
    return confusion_matrix(pred, labels, n), labels


def test_confusion_figure_puts_named_class_accuracies_beside_the_matrix():
    names = class_names("ntu120")
    sizes = {}
    for n in (10, 60, 120):
        cm, _ = confusion(n)
        figure = confusion_figure(cm, np.arange(n), names, "ntu120 csub: Fuse5")
        matrix, _, bars = figure.get_axes()
        sizes[n] = tuple(figure.get_size_inches())
        assert [t.get_text() for t in matrix.get_yticklabels()] == [str(i + 1) for i in range(n)]
        assert [t.get_text() for t in matrix.get_xticklabels()] == [str(i + 1) for i in range(n)]
        assert [t.get_text() for t in bars.get_yticklabels()] == [f"{i + 1} {names[i]}" for i in range(n)]
        assert [p.get_width() for p in bars.patches] == pytest.approx(np.diag(cm) / cm.sum(axis=1))
        assert bars.get_ylim() == matrix.get_ylim()                            # row for row
        assert min(t.get_fontsize() for t in bars.get_yticklabels()) >= 6.5   # readable at 120 classes
        assert "ntu120 csub: Fuse5" in figure.get_suptitle() and "3 a class" in figure.get_suptitle()
        # a row is at least 0.13 inch: a 6.5 pt name fits its row
        assert matrix.get_position().height * sizes[n][1] / n >= 0.13
    assert sizes[10] < sizes[60] < sizes[120] and sizes[10][1] < sizes[60][1] < sizes[120][1]


def test_confusion_png_of_a_split_with_few_classes(tmp_path):
    """A 3-class split of a 10-class model: the classes shown are those that occur; unequal counts
    are written per class, and a class only predicted says it has no test sample."""
    labels = np.array([0, 0, 0, 4, 4, 8])
    pred = np.array([0, 0, 4, 4, 2, 8])
    png = tmp_path / "cm.png"
    write_confusion_png(png, pred, labels, class_names("ucla"), "ucla cview: GD")
    assert png.read_bytes()[:8] == PNG and not list(tmp_path.glob("*.tmp"))
    cm = confusion_matrix(pred, labels, 10)
    shown = np.flatnonzero(cm.sum(0) + cm.sum(1))
    figure = confusion_figure(cm[np.ix_(shown, shown)], shown, class_names("ucla"), "t")
    bars = figure.get_axes()[2]
    names = class_names("ucla")
    assert [t.get_text() for t in bars.get_yticklabels()] == [
        f"1 {names[0]}  (n=3)", f"3 {names[2]}  (n=0)", f"5 {names[4]}  (n=2)", f"9 {names[8]}  (n=1)"]
    assert "no test sample" in [t.get_text() for t in bars.texts]


def curves_rows(epochs: int) -> list[dict]:
    return [dict(epoch=str(e), train_loss=str(2 / e), test_loss=str(2.2 / e), train_acc=str(0.1 * e),
                 val_acc="", test_acc=str(0.08 * e), lr=str(0.1 * 0.9 ** e), images_per_s="350")
            for e in range(1, epochs + 1)]


@pytest.mark.parametrize("epochs", [1, 2, 40])
def test_training_curves_have_whole_epoch_ticks(epochs):
    figure = curves_figure(curves_rows(epochs), "ucla_GD")
    figure.canvas.draw()
    for axes in (ax for ax in figure.get_axes() if ax.get_visible()):
        low, high = axes.get_xlim()
        ticks = [t for t in axes.get_xticks() if low <= t <= high]
        assert ticks and all(float(t).is_integer() for t in ticks), (axes.get_title(), ticks)
        assert axes.get_xlabel() == "epoch" and axes.get_ylabel()
        if epochs <= 2:
            assert ticks == list(range(1, epochs + 1))
    accuracy = next(ax for ax in figure.get_axes() if ax.get_title() == "accuracy")
    assert all(t.get_text().endswith("%") for t in accuracy.get_yticklabels() if t.get_text())
