"""Our PNG writer (descriptors.core.png_bytes): Pillow decodes its files to the input pixels, and
the images extract_split writes with it are still the released code's conformance images."""
from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from PIL import Image

from descriptors.core import descriptor_images, png_bytes
from descriptors import provenance
from descriptors.extract import extract_split
from skeletons.reading import load_sequence
from descriptors.names import DESCRIPTORS, descriptor_dir, image_name
from skeletons.datasets import Split

# ntu60 csub train: one body, a spurious second body, two people (all P001, so one split).
NTU_TRAIN = ("S001C001P001R001A001", "S001C001P001R001A024", "S001C001P001R001A050")
UCLA_TRAIN = ("a01_s01_e00_v01", "a02_s07_e00_v02")
EXACT_LAD = np.finfo(np.longdouble).nmant >= 63   # as in test_conformance


def decode(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == "PNG"
    return np.asarray(image)


@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (112, 112), (1, 9, 3), (5, 3, 3), (112, 112, 3)])
@pytest.mark.parametrize("level", [0, 1, 9])
def test_png_bytes_decode_to_the_input(shape, level):
    rng = np.random.default_rng(sum(shape) + level)
    noise = rng.integers(0, 256, shape, dtype=np.uint8)
    ramp = (np.arange(np.prod(shape)) % 256).astype(np.uint8).reshape(shape)   # long runs, wrap-around
    for image in (noise, ramp, np.zeros(shape, np.uint8), np.full(shape, 255, np.uint8)):
        decoded = decode(png_bytes(image, level))
        assert decoded.dtype == np.uint8 and decoded.shape == image.shape
        np.testing.assert_array_equal(decoded, image)


def test_png_bytes_of_descriptor_images_and_level(reference_dir):
    X = load_sequence(reference_dir / "npy" / f"{NTU_TRAIN[2]}.skeleton.npy")
    for desc, image in descriptor_images(X).items():
        fast, small = png_bytes(image, 1), png_bytes(image, 9)
        np.testing.assert_array_equal(decode(fast), image, err_msg=desc)
        np.testing.assert_array_equal(decode(small), image, err_msg=desc)
        assert len(small) <= len(fast) < image.nbytes, desc   # the level is zlib's: higher packs tighter


def test_png_bytes_rejects_what_png_cannot_hold():
    for bad in (np.zeros((4, 4), np.float32), np.zeros((4, 4, 4), np.uint8), np.zeros((0, 4), np.uint8),
                np.zeros(4, np.uint8)):
        with pytest.raises(ValueError, match="png_bytes"):
            png_bytes(bad)


@pytest.mark.parametrize("dataset", ["ntu60", "ucla"])
def test_extracted_files_are_the_conformance_images(dataset, tmp_path, reference_dir, ucla_dir):
    seq = tmp_path / "seq"
    seq.mkdir()
    if dataset == "ntu60":
        samples, protocol, ref = NTU_TRAIN, "csub", reference_dir / "ntu"
        for name in samples:
            shutil.copy(reference_dir / "npy" / f"{name}.skeleton.npy", seq)
    else:
        samples, protocol, ref = UCLA_TRAIN, None, reference_dir / "ucla"
        for name in samples:
            shutil.copy(ucla_dir / f"{name}.json", seq)
    summary = extract_split(dataset, protocol, "train", seq, tmp_path / "desc", workers=1, progress=False)
    assert summary.ok and summary.written == len(samples)
    folders = {desc: descriptor_dir(tmp_path / "desc", Split.of(dataset, protocol, "train"), desc) for desc in DESCRIPTORS}
    rows = provenance.read_manifest(folders["GD"])
    assert sorted(row["sample"] for row in rows) == sorted(samples)
    for row in rows:
        name = image_name(int(row["index"]), int(row["label"]))
        for desc, folder in folders.items():
            written = np.asarray(Image.open(folder / name))
            reference = np.asarray(Image.open(ref / desc / f"{row['sample']}.png"))
            if EXACT_LAD:
                np.testing.assert_array_equal(written, reference, err_msg=f"{row['sample']} {desc}")
            else:   # docs/METHOD.md §3 criterion where LAD's rounding cannot be exact (no 64-bit long double)
                diff = np.abs(written.astype(int) - reference.astype(int))
                assert diff.max() <= 1 and (diff > 0).mean() <= 0.01, (row["sample"], desc)
