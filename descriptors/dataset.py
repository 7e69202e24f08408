"""A lazy dataset over descriptor-image folders (docs/METHOD.md §3 names, §4 input convention).

One descriptor -> (image, label0); several (e.g. the five of Fuse5, in FUSION_ORDER) -> (tuple of
images, label0), aligned by file name. Images follow the release: 3-channel, OpenCV BGR order
(gray -> three equal channels), C x H x W, values 0..255, no normalisation. ``cache=True`` packs
each folder into one uint8 memory-mapped .npy (built once, atomically) so epochs skip PNG decoding.
"""
from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from common import provenance as contract
from common.atomic import atomic_path, writing_into
from common.locks import PackHold, folder_locks, remove_unless_held
from skeletons.datasets import Split, get_dataset
from skeletons.reading import MODES
from skeletons.layouts import layout_record
from skeletons.unpacked import origin_fields
from descriptors.core import DEFAULT_IMG_SIZE, bgr_chw
import descriptors.registry as registry
from descriptors.names import DESCRIPTORS, FUSION_ORDER, check_descriptor, descriptor_dir, fused_inputs, is_fused, split_lock_path

from . import provenance
from .seals import SEAL_SUFFIX, seal_path, usable, write_seal

CACHE_DIR = ".cache"  # under the descriptor root, beside (not inside) the folders it packs
CACHE_SUFFIXES = (".npy", ".npy" + SEAL_SUFFIX)   # a pack and its seal
CACHE_REMEDY = "make it writable with room to spare, or leave out --cache"   # when a pack cannot be written


def files_digest(paths: Iterable[Path], salt: str = "") -> str:
    """Digest (40 hex) of ``salt`` and every file's name, size and mtime_ns (one stat per file): what
    a pack of those files as they are now is made from (its seal records it, its name carries the
    first 16 digits). A file rewritten in place changes it (a folder's mtime does not change when a
    file is overwritten)."""
    digest = hashlib.sha1(salt.encode())
    for path in paths:
        size, mtime_ns = provenance.source_stat(path)
        digest.update(f"{Path(path).name} {size} {mtime_ns}\n".encode())
    return digest.hexdigest()


def remove_superseded(folder: Path, prefix: str, suffixes: Sequence[str], keep: Collection[Path]) -> None:
    """Delete the files ``<prefix>_<hex digest><suffix>`` of ``folder`` other than ``keep``: packs of
    earlier states of the same data, so they do not pile up. A pack that a process still maps (a
    ``PackHold``: a training started before the data changed) is left for a later run to remove."""
    ends = "|".join(re.escape(suffix) for suffix in suffixes)
    stale = re.compile(rf"^{re.escape(prefix)}_[0-9a-f]+({ends})$")
    stale_files = [old for old in folder.iterdir() if old not in keep and stale.match(old.name)]
    for old in sorted(stale_files, key=lambda f: f.name.endswith(SEAL_SUFFIX)):   # seals last:
        if not old.name.endswith(SEAL_SUFFIX):
            remove_unless_held(old)
        elif not old.with_name(old.name.removesuffix(SEAL_SUFFIX)).exists():   # a seal goes with its pack
            old.unlink(missing_ok=True)


@dataclass(frozen=True)
class SampleInfo:
    index: int        # position in the split's sorted sample list
    label: int        # 1-based
    sample: str       # sample id from the folder's manifest, or "" when it has none


def reading_splits(root: str | Path, splits: Iterable[Split], wait: bool = False,
                   on_wait: Callable[[str], None] | None = None) -> AbstractContextManager:
    """Shared locks on the splits' descriptor folders under ``root`` while a run reads them:
    skels2desc cannot rewrite them meanwhile, and names the reader (common/locks.py). Nothing to
    hold when ``root`` does not exist (reading it fails with its own message)."""
    if not Path(root).is_dir():
        return nullcontext()
    return folder_locks([split_lock_path(root, split) for split in splits], wait=wait, on_wait=on_wait, shared=True)


def make_command(split: Split, root: Path, record: Mapping | None = None, explicit: bool = False) -> str:
    """The skels2desc command line that makes the descriptor folders of a split; with a folder's
    record, the one that made it: its sequence folder, mode and image size (so that it finishes
    or remakes the folder as it was, never one that the folder's own check refuses). The mode and
    size are left out where they are the defaults, unless ``explicit``."""
    ds = get_dataset(split.dataset)
    record = record or {}
    where = ds.data_flags() if ds.custom is not None else f" -dspath {shlex.quote(record.get('seq_dir') or ds.seq_dir)}"
    protocol_flag = f" -p {split.protocol}" if len(ds.protocols) > 1 else ""
    made = "".join(f" {flag} {record[key]}" for key, flag, default in (("mode", "--mode", MODES[0]),
                                                                       ("img_size", "--img-size", DEFAULT_IMG_SIZE))
                   if record.get(key) is not None and (explicit or record[key] != default))
    desc = record.get("descriptor")
    chosen = f" --descriptors {desc}" if desc and desc not in DESCRIPTORS else ""   # yours: its folder alone
    return (f"python {ds.extract_script} -d {split.dataset}{protocol_flag}{where} -despth {shlex.quote(str(root))} "
            f"-a {split.part}{made}{chosen}")


def read_bgr(path: Path) -> np.ndarray:
    """PNG -> uint8 (C, H, W) as OpenCV's imread would give it, but keeping gray as one channel
    (the caller expands it; a view, so the cache stores gray images at a third of the size)."""
    try:
        with Image.open(path) as im:
            arr = np.array(im.convert("L") if im.mode in ("L", "I;16", "I", "1") else im.convert("RGB"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: unreadable descriptor image ({e})") from None
    return bgr_chw(arr)


def as_three_channels(arr: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.require(arr, requirements=['C', 'W']))  # PIL/memmap arrays are read-only
    return t.expand(3, -1, -1) if t.shape[0] == 1 else t


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


def checked_record(folder: Path, split: Split, desc: str) -> dict | None:
    """The folder's record, refused when its run did not finish or it was made for another place."""
    record = provenance.read_record(folder)
    if record is None:
        return None
    command = make_command(split, folder.parent, record)
    if not record.get("complete"):
        raise ValueError(f"{folder}: incomplete (its extraction was interrupted or is running); finish it with: "
                         f"{command}")
    expected = {"dataset": split.dataset, "protocol": split.protocol, "part": split.part, "descriptor": desc}
    differ = provenance.differences(expected, record, provenance.IDENTITY_FIELDS)
    if differ:
        raise ValueError(f"{folder}: its record says it holds other data ({'; '.join(differ)}, folder name -> "
                         f"record); remake it with: {command} --overwrite")
    ds = get_dataset(split.dataset)
    differ = provenance.differences({"layout": layout_record(ds.layout)}, record, ("layout",))
    if differ:
        raise ValueError(f"{folder}: made from skeletons of another layout ({differ[0]}, this run -> folder); "
                         f"pass the layout the images were made with, or remake them with: {command} --overwrite")
    # A one-file dataset's folders name the file (its SHA-256) they were made from: a file changed
    # since (a sample removed) has been unpacked again, and its images must follow before a run reads them.
    now = origin_fields(ds, split.protocol, split.part).get("origin")
    contract.check(record.get("origin"), now or {}, ("sha256", "format", "split"), file=folder, what="data",
                   fix=f"bring the split's images up to date with: {command}")
    provenance.check_code(record, desc, folder, fix=f"the descriptor's code changed since: remake its images with: "
                                                    f"{command} --overwrite")
    return record


def check_manifests(folders: Sequence[Path], listings: Sequence[dict], records: dict) -> list[dict] | None:
    """The split's manifest rows, after checking each folder's images against its manifest, the
    manifest against the record, and the manifests against each other; None when there are none."""
    first_rows, first = None, None
    for folder, images, record in zip(folders, listings, records.values()):
        rows = provenance.read_manifest(folder)
        if rows is None:
            if record is not None:
                raise ValueError(f"{folder}: has a record but no manifest ({provenance.manifest_path(folder).name}); "
                                 f"rerun skels2desc on this split")
            provenance.check_unique_indices(folder, images)
            continue
        provenance.check_against_manifest(folder, images, rows)
        if record is not None and record.get("fingerprint") != provenance.fingerprint(rows):
            raise ValueError(f"{folder}: its manifest and its record disagree on the sample list; rerun "
                             f"skels2desc on this split")
        if first_rows is None:
            first_rows, first = rows, folder
        elif rows != first_rows:
            raise ValueError(f"{folder}: its manifest lists other samples than that of {first}; rerun skels2desc "
                             f"on this split")
    return first_rows


def check_same_pixels(folders: Sequence[Path], records: dict) -> None:
    """The folders a model reads together must have been made in one mode at one size."""
    known = [(f, r) for f, r in zip(folders, records.values()) if r is not None]
    (first, expected), *others = known or [(None, None)]
    for folder, record in others:
        differ = [f"{k} {provenance.shown(expected.get(k))} in {first.name}, {provenance.shown(record.get(k))} in "
                  f"{folder.name}" for k in provenance.differing(expected, record, provenance.PIXEL_FIELDS,
                                                                  unknown_agrees=False)]
        if differ:
            raise ValueError(f"{folder}: made with other settings than the split's other folders "
                             f"({'; '.join(differ)}); remake them all in one mode and size with skels2desc --overwrite")


def descriptor_selection(descs: str | Sequence[str]) -> tuple[tuple[str, ...], bool]:
    """(descriptor names, single) as ``DescriptorImages`` reads ``descs``: one name -> one image per
    sample; a fusion name ('all', 'all-GD-JDD-JVD') -> its inputs in the order the network takes them
    ('all': the five in FUSION_ORDER); a sequence of names -> those, in that order."""
    single = isinstance(descs, str) and not is_fused(descs)
    names = tuple(fused_inputs(descs) if isinstance(descs, str) and is_fused(descs)
                  else ([descs] if isinstance(descs, str) else descs))
    return tuple(check_descriptor(d) for d in names), single


class DescriptorImages(torch.utils.data.Dataset):
    """Images of one split: ``descs`` is one descriptor name, a sequence of them, or 'all'
    (the five in FUSION_ORDER). Items are float32 by default; ``uint8=True`` keeps bytes so the
    conversion happens on the device (a quarter of the host-to-device traffic). ``cache``: each
    folder read from a sealed uint8 pack made once (descriptors/seals.py: every byte of a pack found
    on disk is checked before it is used)."""

    def __init__(self, root: str | Path, dataset: str, protocol: str | None, part: str,
                 descs: str | Sequence[str], cache: bool = False, uint8: bool = False) -> None:
        self.root = Path(root)
        self.split = Split.of(dataset, protocol, part)
        self.dataset, self.protocol, self.part = self.split.dataset, self.split.protocol, self.split.part
        self.descs, self.single = descriptor_selection(descs)
        self.uint8 = uint8
        self.folders = [descriptor_dir(root, self.split, d) for d in self.descs]
        for folder in self.folders:
            if not folder.is_dir():
                raise FileNotFoundError(f"{folder.absolute()}: descriptor folder not found; make it with: "
                                        f"{make_command(self.split, self.root)}")
        listings = [provenance.list_image_names(f) for f in self.folders]
        if not listings[0]:
            raise ValueError(f"{self.folders[0]}: empty split, no <index>_<label>.png images")
        # What made each folder (None: made by the release or an older version) and its manifest.
        self.provenance = {d: checked_record(f, self.split, d)
                           for d, f in zip(self.descs, self.folders)}
        check_same_pixels(self.folders, self.provenance)
        check_aligned(self.folders, listings)
        rows = check_manifests(self.folders, listings, self.provenance)
        self.names = sorted(listings[0], key=lambda n: listings[0][n][0])
        num_classes = get_dataset(dataset).num_classes
        bad = next((n for n in self.names if not 1 <= listings[0][n][1] <= num_classes), None)
        if bad:
            raise ValueError(f"{self.folders[0] / bad}: label outside 1..{num_classes} for {dataset}")
        ids = {row["index"]: row["sample"] for row in rows or ()}
        self.samples = [SampleInfo(i, lab, ids.get(i, "")) for i, lab in (listings[0][n] for n in self.names)]
        self.labels0 = torch.tensor([s.label - 1 for s in self.samples])
        self._holds: list[PackHold] = []   # the packs this object maps, kept from removal
        self.cache_paths = [self._build_cache(f) for f in self.folders] if cache else None
        self._arrays = None  # memory maps, opened lazily in each worker (a memmap pickles its data)

    def __len__(self) -> int:
        return len(self.names)

    def pack_record(self, folder: Path) -> dict:
        """What the pack of ``folder`` as it is now is made from, as its seal records it: the folder,
        the digest of every image's name, size and mtime_ns (one stat per file), the image count and
        size, and the fingerprint of the folder's record (None: the folder has none)."""
        k = self.folders.index(folder)
        record = self.provenance.get(self.descs[k]) or {}
        return {"pack": "descriptor images", "folder": folder.name,
                "files": files_digest(folder / n for n in self.names), "images": len(self.names),
                "img_size": list(self.expected_size(k)[0]),
                "fingerprint": record.get("fingerprint")}

    def cache_path(self, folder: Path, made_from: Mapping | None = None) -> Path:
        """Where the pack of ``folder`` as it is now (``made_from``: its ``pack_record``) lives. The name
        carries the digest of every image's name, size and mtime_ns, so a PNG rewritten in place gets
        a new pack instead of a stale one (a folder's mtime does not change when a file is overwritten)."""
        files = (made_from or self.pack_record(folder))["files"]
        return self.root / CACHE_DIR / f"{folder.name}_{files[:16]}.npy"

    def _build_cache(self, folder: Path) -> Path:
        """Pack a folder into (N, C, H, W) uint8, reading image by image; reused while no image changed.
        Packs of earlier states of the folder are removed so they do not pile up."""
        k = self.folders.index(folder)
        made_from = self.pack_record(folder)
        path = self.cache_path(folder, made_from)
        hold = PackHold.if_there(path)   # held before it is checked: what is checked is what is used
        if hold and usable([path], "--cache pack", made_from) and \
                np.load(path, mmap_mode="r").shape[-2:] == self.expected_size(k)[0]:
            self._holds.append(hold)
            remove_superseded(path.parent, folder.name, CACHE_SUFFIXES, keep=(path, seal_path(path)))
            return path
        if hold:
            hold.close()
        first = self._checked(k, 0, read_bgr(folder / self.names[0]))
        with writing_into(path.parent, "the --cache pack", CACHE_REMEDY):
            self._write_cache(k, folder, path, first, made_from)
        return path

    def _write_cache(self, k: int, folder: Path, path: Path, first: np.ndarray, made_from: Mapping) -> None:
        """The (N, C, H, W) uint8 .npy, image by image, in plain writes: a full disk is an OSError
        here, where a memory map of the sparse file would die of SIGBUS."""
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
                  "shape": (len(self),) + first.shape}
        with atomic_path(path, make_parents=True) as tmp:
            with open(tmp, "wb") as out:
                np.lib.format.write_array_header_1_0(out, header)
                for i, name in enumerate(self.names):
                    img = self._checked(k, i, read_bgr(folder / name))
                    if img.shape[0] != first.shape[0]:
                        raise ValueError(f"{folder / name}: {img.shape[0]} colour channel(s), {self.names[0]} has "
                                         f"{first.shape[0]}; remake the folder with: {self._remake_command()}")
                    out.write(np.ascontiguousarray(img, dtype=np.uint8).data)
            write_seal([path], [tmp], made_from)
        self._holds.append(PackHold(path))
        remove_superseded(path.parent, folder.name, CACHE_SUFFIXES, keep=(path, seal_path(path)))

    def _remake_command(self) -> str:
        record = next((r for r in self.provenance.values() if r), None)
        return f"{make_command(self.split, self.root, record)} --overwrite"

    def expected_size(self, k: int) -> tuple[tuple[int, int], str]:
        """((H, W), why) every image of folder ``k`` must have: the size its record says it was made
        at, else that of its first image. Without this check the default collate fails later with
        an error that names no file."""
        sizes = self.__dict__.setdefault("_sizes", {})  # per process; filled lazily, pickled with the dataset
        if k not in sizes:
            record = (getattr(self, "provenance", None) or {}).get(self.descs[k]) or {}
            if record.get("img_size"):
                sizes[k] = ((int(record["img_size"]),) * 2, "the folder's record says img_size "
                                                           f"{record['img_size']}")
            else:
                first = read_bgr(self.folders[k] / self.names[0])
                sizes[k] = (tuple(first.shape[1:]), f"the size of {self.names[0]}, the folder's first image")
        return sizes[k]

    def _checked(self, k: int, i: int, arr: np.ndarray) -> np.ndarray:
        """``arr`` (image ``i`` of folder ``k``), or a ValueError naming the file when its size is wrong."""
        (h, w), why = self.expected_size(k)
        if arr.shape[1:] != (h, w):
            raise ValueError(f"{self.folders[k] / self.names[i]}: image is {arr.shape[1]}x{arr.shape[2]} pixels, "
                             f"expected {h}x{w} ({why}); remake the folder with: {self._remake_command()}")
        return arr

    def _image(self, k: int, i: int) -> torch.Tensor:
        if self.cache_paths is None:
            arr = self._checked(k, i, read_bgr(self.folders[k] / self.names[i]))
        else:  # packs are checked when built
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
        state["_arrays"], state["_holds"] = None, []   # holds stay with the process that took them
        return state

    def folder_image_size(self, k: int) -> int:
        """Side of the images of folder ``k``: its record's size, else its first image's."""
        return self.expected_size(k)[0][1]

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
    split = Split.of(dataset, protocol, part)
    for desc in FUSION_ORDER:
        folder = descriptor_dir(root, split, desc)
        folder.mkdir(parents=True, exist_ok=True)
        channels = registry.get(desc).channels
        noise = rng.integers(0, 80, size=(len(labels), size, size, channels))
        lit = (rows // band == (labels - 1)[:, None, None])[..., None]
        images = (noise + 160 * lit).astype(np.uint8)
        for index, (label, img) in enumerate(zip(labels, images)):
            Image.fromarray(img[..., 0] if channels == 1 else img).save(folder / f"{index}_{label}.png")
