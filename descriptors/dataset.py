"""A lazy dataset over descriptor-image folders (SPEC §3 names, §4 input convention).

One descriptor -> (image, label0); several (e.g. the five of Fuse5, in FUSION_ORDER) -> (tuple of
images, label0), aligned by file name. Images follow the release: 3-channel, OpenCV BGR order
(gray -> three equal channels), C x H x W, values 0..255, no normalisation. ``cache=True`` packs
each folder into one uint8 memory-mapped .npy (built once, atomically) so epochs skip PNG decoding.
"""
from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from skeletons.atomic import atomic_path
from skeletons.datasets import check_protocol, get_dataset
from skeletons.paths import FUSION, FUSION_ORDER, descriptor_dir, parse_image_name

CACHE_DIR = ".cache"  # under the descriptor root, beside (not inside) the folders it packs
MANIFEST = "manifest.csv"


@dataclass(frozen=True)
class SampleInfo:
    index: int        # position in the split's sorted sample list
    label: int        # 1-based
    sample: str       # sample id from manifest.csv, or "" when the folder has none


def make_command(dataset: str, protocol: str, part: str, root: Path) -> str:
    """The skels2desc command line that creates the descriptor folders of a split."""
    ds = get_dataset(dataset)
    if ds.name == "ucla":
        return f"python skels2desc_ucla.py -d ucla -dspath {ds.seq_dir} -despth {root} -a {part}"
    return f"python skels2desc_ntu.py -d {dataset} -p {protocol} -dspath {ds.seq_dir} -despth {root} -a {part}"


def read_bgr(path: Path) -> np.ndarray:
    """PNG -> uint8 (C, H, W) as OpenCV's imread would give it, but keeping gray as one channel
    (the caller expands it; a view, so the cache stores gray images at a third of the size)."""
    try:
        with Image.open(path) as im:
            arr = np.array(im.convert("L") if im.mode in ("L", "I;16", "I", "1") else im.convert("RGB"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: unreadable descriptor image ({e})") from None
    return bgr_chw(arr)


def bgr_chw(image: np.ndarray) -> np.ndarray:
    """A descriptor image as computed (H x W gray or H x W x 3 RGB) -> uint8 (C, H, W) in the
    release's channel order, as read_bgr gives it from the PNG file."""
    if image.ndim == 2:
        return image[None]
    return np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1))  # RGB -> BGR, HWC -> CHW


def as_three_channels(arr: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.require(arr, requirements=['C', 'W']))  # PIL/memmap arrays are read-only
    return t.expand(3, -1, -1) if t.shape[0] == 1 else t


def list_images(folder: Path) -> dict[str, tuple[int, int]]:
    """{file name: (index, label)} of the <index>_<label>.png images in a folder."""
    return {p.name: parse_image_name(p.name) for p in os.scandir(folder) if p.name.endswith(".png")}


def read_manifest(folder: Path) -> dict[int, str]:
    path = folder / MANIFEST
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        return {int(row["index"]): row["sample"] for row in csv.DictReader(f)}


def check_aligned(folders: Sequence[Path], listings: Sequence[dict]) -> None:
    """Error naming the first file present in one folder and missing in another."""
    first, names = folders[0], set(listings[0])
    for folder, listing in zip(folders[1:], listings[1:]):
        if set(listing) != names:
            missing = sorted(names - set(listing), key=lambda n: listings[0][n])
            extra = sorted(set(listing) - names, key=lambda n: listing[n])
            if missing:
                raise ValueError(f"{folder}: {missing[0]} is missing (present in {first}); "
                                 f"the descriptor folders of a split must hold the same images")
            raise ValueError(f"{folder}: {extra[0]} is not in {first}; "
                             f"the descriptor folders of a split must hold the same images")


class DescriptorImages(torch.utils.data.Dataset):
    """Images of one split: ``descs`` is one descriptor name, a sequence of them, or 'all'
    (the five in FUSION_ORDER). Items are float32 by default; ``uint8=True`` keeps bytes so the
    conversion happens on the device (a quarter of the host-to-device traffic)."""

    def __init__(self, root: str | Path, dataset: str, protocol: str | None, part: str,
                 descs: str | Sequence[str], cache: bool = False, uint8: bool = False) -> None:
        self.root = Path(root)
        self.dataset = dataset
        self.protocol = check_protocol(dataset, protocol)
        self.part = part
        self.single = isinstance(descs, str) and descs != FUSION
        self.descs = tuple(FUSION_ORDER if descs == FUSION else ([descs] if isinstance(descs, str) else descs))
        self.uint8 = uint8
        self.folders = [descriptor_dir(root, dataset, d, part, self.protocol) for d in self.descs]
        for folder in self.folders:
            if not folder.is_dir():
                raise FileNotFoundError(f"{folder}: descriptor folder not found; make it with: "
                                        f"{make_command(dataset, self.protocol, part, self.root)}")
        listings = [list_images(f) for f in self.folders]
        if not listings[0]:
            raise ValueError(f"{self.folders[0]}: empty split, no <index>_<label>.png images")
        check_aligned(self.folders, listings)
        self.names = sorted(listings[0], key=lambda n: listings[0][n][0])
        num_classes = get_dataset(dataset).num_classes
        bad = next((n for n in self.names if not 1 <= listings[0][n][1] <= num_classes), None)
        if bad:
            raise ValueError(f"{self.folders[0] / bad}: label outside 1..{num_classes} for {dataset}")
        ids = read_manifest(self.folders[0])
        self.samples = [SampleInfo(i, lab, ids.get(i, "")) for i, lab in (listings[0][n] for n in self.names)]
        self.labels0 = torch.tensor([s.label - 1 for s in self.samples])
        self.cache_paths = [self._build_cache(f) for f in self.folders] if cache else None
        self._arrays = None  # memory maps, opened lazily in each worker (a memmap pickles its data)

    def __len__(self) -> int:
        return len(self.names)

    def cache_path(self, folder: Path) -> Path:
        digest = hashlib.sha1("\n".join(self.names).encode()).hexdigest()[:12]
        return self.root / CACHE_DIR / f"{folder.name}_{digest}.npy"

    def _build_cache(self, folder: Path) -> Path:
        """Pack a folder into (N, C, H, W) uint8, reading image by image; reused while newer than the folder."""
        path = self.cache_path(folder)
        if path.is_file() and path.stat().st_mtime >= folder.stat().st_mtime:
            return path
        first = read_bgr(folder / self.names[0])
        with atomic_path(path, make_parents=True) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(self),) + first.shape)
            for i, name in enumerate(self.names):
                img = read_bgr(folder / name)
                if img.shape != first.shape:
                    raise ValueError(f"{folder / name}: image shape {img.shape} differs from {first.shape} "
                                     f"of {self.names[0]}")
                out[i] = img
            out.flush()
            del out
        return path

    def _image(self, k: int, i: int) -> torch.Tensor:
        if self.cache_paths is None:
            arr = read_bgr(self.folders[k] / self.names[i])
        else:
            if self._arrays is None:
                self._arrays = [np.load(p, mmap_mode="r") for p in self.cache_paths]
            arr = np.array(self._arrays[k][i])  # copy out of the read-only map
        img = as_three_channels(arr)
        return img if self.uint8 else img.float()

    def __getitem__(self, i: int):
        images = tuple(self._image(k, i) for k in range(len(self.descs)))
        return (images[0] if self.single else images), int(self.labels0[i])

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_arrays"] = None
        return state

    @property
    def image_size(self) -> int:
        return int(self._image(0, 0).shape[-1])


def write_synthetic_split(root: str | Path, dataset: str, protocol: str | None, part: str, per_class: int,
                          num_classes: int, size: int = 112, seed: int = 0) -> None:
    """Class-dependent random images in the real folder layout, for tests and benchmarks when no
    extracted descriptors are at hand: class c brightens horizontal band c of every image."""
    rng = np.random.default_rng(seed + (part == "test"))
    labels = np.repeat(np.arange(1, num_classes + 1), per_class)
    rng.shuffle(labels)
    band = max(1, size // num_classes)
    rows = np.arange(size)[None, :, None]
    for desc in FUSION_ORDER:
        folder = descriptor_dir(root, dataset, desc, part, protocol)
        folder.mkdir(parents=True, exist_ok=True)
        channels = 3 if desc in ("GD", "FDD") else 1
        noise = rng.integers(0, 80, size=(len(labels), size, size, channels))
        lit = (rows // band == (labels - 1)[:, None, None])[..., None]
        images = (noise + 160 * lit).astype(np.uint8)
        for index, (label, img) in enumerate(zip(labels, images)):
            Image.fromarray(img[..., 0] if channels == 1 else img).save(folder / f"{index}_{label}.png")
