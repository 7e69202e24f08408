"""The torch engine gives the numpy engine's pixels: real samples, random batches, Pillow's resize."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from descriptors.core import descriptor_images, resize
from skeletons.reading import load_sequence
from descriptors import torch_engine
from descriptors.torch_engine import descriptor_images_torch, pack_batch, resize_images, round_hundredths
from skeletons.layouts import NTU, UCLA, shipped_layout
from descriptors.names import DESCRIPTORS

RAW = {"ntu": "ntu/{}.skeleton", "ucla": "ucla/all_sqe/{}.json"}
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]


def differing(ours: dict[str, torch.Tensor], sequences: list[np.ndarray], mode: str, img_size: int,
              layout=None) -> dict[str, int]:
    """Pixels where the torch images differ from the numpy engine's, per descriptor."""
    counts = dict.fromkeys(DESCRIPTORS, 0)
    for i, X in enumerate(sequences):
        reference = descriptor_images(X, layout, mode, img_size)
        for name in DESCRIPTORS:
            assert ours[name][i].shape == reference[name].shape
            counts[name] += int((ours[name][i].cpu().numpy() != reference[name]).sum())
    return counts


def random_sequences(layout, rng: np.random.Generator, count: int = 14) -> list[np.ndarray]:
    """Smooth random motion, T from 1 to 300 (the edge lengths included), one or two bodies,
    with absent second bodies, empty frames, a constant and an all-zero sequence, and coordinates
    on a 0.01 grid (where LAD's cosine rounding meets ties)."""
    lengths = [1, 2, 3, 31, 32, 33, 111, 112, 113, 300] + list(rng.integers(4, 300, count - 10))
    sequences = []
    for k, T in enumerate(lengths):
        bodies = 1 + k % 2
        joints = bodies * layout.num_joints
        X = np.cumsum(rng.normal(scale=0.03, size=(T, joints, layout.dims)), axis=0)
        X += rng.normal(size=(1, joints, layout.dims))
        if bodies == 2 and k % 3 == 0:
            X[rng.random(T) < 0.4, layout.num_joints:] = 0.0     # second body absent in some frames
        if k % 4 == 1:
            X[rng.random(T) < 0.2] = 0.0                         # empty frames
        if k % 5 == 2:
            X = np.round(X, 2)
        sequences.append(X - X[0, 1])
    constant = np.full((40, layout.num_joints, layout.dims), 0.3)
    return sequences + [constant, np.zeros((12, layout.num_joints, layout.dims))]


@pytest.mark.parametrize("device", DEVICES)
def test_reference_samples_give_the_numpy_engines_and_the_releases_images(device, reference_dir, shared_data):
    index = json.loads((reference_dir / "index.json").read_text())
    for dataset in RAW:
        rows = [row for row in index if row["dataset"] == dataset]
        sequences = [load_sequence(shared_data / RAW[dataset].format(row["sample"])) for row in rows]
        images = descriptor_images_torch(sequences, mode="paper", device=device)   # NTU: 1 and 2 bodies
        released = 0
        for i, row in enumerate(rows):
            for name in DESCRIPTORS:
                png = np.asarray(Image.open(reference_dir / dataset / name / f"{row['sample']}.png"))
                released += int((images[name][i].cpu().numpy() != png).sum())
        assert released == 0, dataset
        assert sum(differing(images, sequences, "paper", 112).values()) == 0, dataset
        small = descriptor_images_torch(sequences, mode="paper", img_size=32, device=device)   # shrinking too
        assert sum(differing(small, sequences, "paper", 32).values()) == 0, dataset


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", [NTU, UCLA, shipped_layout("coco17")], ids=["ntu", "ucla", "coco17-2d"])
@pytest.mark.parametrize("mode", ["paper", "clean"])
@pytest.mark.parametrize("img_size", [112, 32])
def test_random_batches_give_the_numpy_engines_images(device, layout, mode, img_size):
    rng = np.random.default_rng([img_size, len(mode), layout.num_joints])   # 2D layouts: x, y only
    sequences = random_sequences(layout, rng)
    images = descriptor_images_torch(sequences, layout, mode, img_size, device=device, chunk=7)
    assert {name: tuple(images[name].shape) for name in ("GD", "JDD")} == {
        "GD": (len(sequences), img_size, img_size, 3), "JDD": (len(sequences), img_size, img_size)}
    assert all(image.dtype == torch.uint8 and image.device.type == device for image in images.values())
    assert differing(images, sequences, mode, img_size, layout) == dict.fromkeys(DESCRIPTORS, 0)


@pytest.mark.parametrize("device", DEVICES)
def test_batching_does_not_change_an_image(device):
    sequences = random_sequences(NTU, np.random.default_rng(5), count=10)
    whole = descriptor_images_torch(sequences, device=device, chunk=len(sequences))
    one_body = [X[:, :NTU.num_joints] for X in sequences]
    for chunk in (1, 4):
        parts = descriptor_images_torch(sequences, device=device, chunk=chunk)
        assert all(torch.equal(whole[name], parts[name]) for name in DESCRIPTORS)
    alone = descriptor_images_torch(one_body, device=device)   # a batch of one-body samples only
    mixed = descriptor_images_torch(one_body[:1] + sequences[1:2], device=device)
    assert all(torch.equal(alone[name][0], mixed[name][0]) for name in DESCRIPTORS)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("img_size", [112, 32, 17])
def test_resize_images_is_pillows_bicubic_resize(device, img_size):
    rng = np.random.default_rng(img_size)
    heights, widths = (1, 14, 20, 32, 33, 50, 64, 100, 112, 120), (0, 1, 2, 3, 31, 32, 33, 111, 112, 113, 300)
    shapes = [(r, t) for r in heights for t in widths]
    for channels in ((), (3,)):   # L and RGB
        images = [rng.integers(0, 256, shape + channels, dtype=np.uint8) for shape in shapes]
        ours = resize_images(images, img_size, device).cpu().numpy()
        assert ours.shape == (len(images), img_size, img_size) + channels
        wrong = [image.shape for image, out in zip(images, ours) if not np.array_equal(out, resize(image, img_size))]
        assert wrong == []


@pytest.mark.parametrize("device", DEVICES)
def test_resizes_too_wide_for_float32_sums_fall_back_and_still_match(device):
    """Thousands of frames into a small image: more taps than the float32 sums stay exact for."""
    widths, img_size = (2500, 6000), 17
    assert not torch_engine._coefficients(torch.tensor(widths), max(widths), img_size).float32_exact
    assert torch_engine._coefficients(torch.tensor([300]), 300, 32).float32_exact   # NTU's longest at 32 px
    rng = np.random.default_rng(3)
    for channels in ((), (3,)):
        images = [rng.integers(0, 256, (rows, width) + channels, dtype=np.uint8) for rows in (5, 40) for width in widths]
        ours = resize_images(images, img_size, device).cpu().numpy()
        assert all(np.array_equal(out, resize(image, img_size)) for image, out in zip(images, ours))


@pytest.mark.parametrize("device", DEVICES)
def test_round_hundredths_is_pythons_round(device):
    rng = np.random.default_rng(0)
    midpoints = (np.arange(-100, 100) + 0.5) / 100
    x = np.concatenate([rng.uniform(-1, 1, 3000), midpoints, np.nextafter(midpoints, 2),
                        np.nextafter(midpoints, -2), [0.0, -0.0, 1.0, -1.0, 0.125, 2.675, 1.005]])
    ours = (round_hundredths(torch.from_numpy(x).to(device)) / 100).cpu().numpy()
    np.testing.assert_array_equal(ours, [round(float(v), 2) for v in x])


def test_bad_input_is_refused_in_one_line():
    for sequences, message in (([], "no sequences"), ([np.zeros((5, 24, 3))], "no skeleton layout"),
                               ([np.zeros((5, 25, 3)), np.zeros((5, 20, 3))], "sequence 1 of shape (5, 20, 3)"),
                               ([np.zeros((0, 25, 3))], "sequence 0 of shape (0, 25, 3)")):
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
            pack_batch(sequences)
        assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="unknown descriptor mode"):
        descriptor_images_torch([np.zeros((5, 25, 3))], mode="fast")
    # batched by body count, the bad sequence still named by its place in the caller's list
    with pytest.raises(ValueError, match=r"^sequence 1 of shape \(5, 20, 3\) does not fit the ntu layout"):
        descriptor_images_torch([np.zeros((5, 50, 3)), np.zeros((5, 20, 3))])
