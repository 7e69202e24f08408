"""Training and testing from skeletons, with no image files: a split's sequence files -> the very
batches the descriptor-image DataLoader yields, made on the training device by the torch engine.

- ``SkeletonSequences``: a Dataset over a split's sequence files, listed as extraction lists them
  (``scan_split_folder``: sorted by sample id, index = position), so its order, indices and labels
  are those of the split's descriptor folders; items are ``SequenceItem(sequence, label0, index)``.
- ``collate_sequences``: variable-length sequences -> ``SequenceBatch`` (a list, not padded).
- ``ImageMaker``: a ``SequenceBatch`` -> (images, labels) exactly as ``DescriptorImages(uint8=True)``
  and the default collate give them for the same ``descs``: uint8 (N, 3, S, S) in the release's BGR
  order, gray as three equal channels; several descriptors (``'all'``: FUSION_ORDER) as a list.
  An ``Augment`` (skeletons/augment.py) may be applied first, drawn per sample from (seed, epoch,
  index), so a resumed run, any batch size and any number of workers see the same draws.
- ``skeleton_loader``: a DataLoader of ``SkeletonSequences`` whose batches come out as images.
- ``SkeletonSequences.record``: the source's record, with a folder record's fields and fingerprint.
- ``pack=True``: the split's sequences packed once into one file, memory-mapped (written
  atomically, remade when a file changes), so epochs skip parsing sample files. Lossless but
  compact (skeletons/compact.py): a packed sequence equals ``load_sequence``'s bit for bit.
  Measured (benchmarks/bench_sources.py --pack-only, real samples, 2-core VM): 0.381 of float64
  on NTU (229 bytes per body-frame; NTU-120 estimated at 2.5-3.8 GB, float64 6.6-9.8 GB), 0.386 on
  NW-UCLA; read 13k sequences/s on NTU (2.2x the .skeleton.npy files), 36k/s on NW-UCLA (31x).
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import numpy as np
import torch

from common.atomic import atomic_path, writing_into
from common.locks import PackHold
from skeletons.augment import Augment, augment_sequence
from skeletons.centring import centre
from skeletons.compact import ALIGN, decode, encode_sample   # samples start at ALIGN: aligned views
from skeletons.datasets import Split, get_dataset, label_of, sample_id, scan_split_folder
from skeletons.layouts import Layout, layout_record
from skeletons.reading import check_mode, load_sequence, load_uncentred
from skeletons.unpacked import origin_fields

from . import provenance
from .names import split_stem
from .core import DEFAULT_IMG_SIZE, degenerate_reason, descriptor_image_batch
from .seals import SEAL_SUFFIX, seal_path, usable, write_seal
from .dataset import CACHE_REMEDY, descriptor_selection, files_digest, remove_superseded
from .torch_engine import descriptor_images_torch, has_twin

SOURCE = "skeletons"      # the record's "source": what the images of a run were made from
PACK_DIR = ".cache"       # under the sequence folder, as the image packs live under the descriptor root
PACK_SUFFIX, INDEX_SUFFIX = ".pack", ".index.npy"
OLD_PACK_SUFFIXES = (".f64",)   # format 1 (centred raw float64): removed as stale packs
PACK_FORMAT = 2                 # in the pack's digest: a new format never reads an old pack
INDEX_COLUMNS = ("start", "nbytes", "frames", "joints", "encoding", "rule", "root", "body_joints")


class SequenceItem(NamedTuple):
    sequence: np.ndarray   # (T, B * V, C) float64, as load_sequence gives it in the source's mode
    label: int             # 0-based
    index: int             # position in the split: the descriptor folders' <index>


class SequenceBatch(NamedTuple):
    sequences: list[np.ndarray]
    labels: torch.Tensor   # (N,) int64, 0-based
    indices: torch.Tensor  # (N,) int64
    images: dict[str, np.ndarray] | None = None   # of descriptors without a torch twin, made in the worker


def collate_sequences(batch: Sequence[SequenceItem]) -> SequenceBatch:
    """DataLoader ``collate_fn``: sequences of any lengths stay a list (the engine packs them)."""
    return SequenceBatch([item.sequence for item in batch], torch.tensor([item.label for item in batch]),
                         torch.tensor([item.index for item in batch]))


class CollateWithImages(NamedTuple):
    """``collate_sequences`` that also makes the batch's images of descriptors without a torch twin
    (docs/EXTENDING.md) with the numpy engine: in the loader's workers, beside the reading."""
    descs: tuple[str, ...]
    layout: Layout
    mode: str
    img_size: int

    def __call__(self, batch: Sequence[SequenceItem]) -> SequenceBatch:
        collated = collate_sequences(batch)
        return collated._replace(images=descriptor_image_batch(collated.sequences, self.layout, self.mode,
                                                               self.img_size, self.descs))


# ---------------------------------------------------------------- the dataset

class SkeletonSequences(torch.utils.data.Dataset):
    """The (dataset, protocol, part) split's sequence files in ``seq_dir`` (txt2npy's .skeleton.npy,
    NW-UCLA .json, a custom dataset's .npy), read in ``mode``. Files extraction would skip (bad
    names, two files of one sample) are left out here too and listed in ``problems``. ``pack``:
    read them from a pack made once in ``pack_dir`` (default: ``<seq_dir>/.cache``)."""

    def __init__(self, seq_dir: str | Path, dataset: str, protocol: str | None, part: str, mode: str = "paper",
                 pack: bool = False, pack_dir: str | Path | None = None) -> None:
        check_mode(mode)
        self.seq_dir, self.mode = Path(seq_dir), mode
        self.split = Split.of(dataset, protocol, part)
        self.dataset, self.protocol, self.part = self.split.dataset, self.split.protocol, self.split.part
        ds = get_dataset(dataset)
        self.layout: Layout = ds.layout
        self.kind = ds.kind
        scan = scan_split_folder(seq_dir, self.split)
        if not scan.paths:
            hint = ds.kind.conversion_hint()
            if scan.problems:
                path, reason = scan.problems[0]
                hint = f"; {len(scan.problems)} file(s) skipped, first {path.name}: {reason}"
            raise ValueError(f"{seq_dir}: no {ds.seq_suffix} files of the {self.split} split{hint}")
        self.split_paths = scan.paths      # every file of the split: the pack holds them all
        self.paths = scan.paths            # the samples served (clean mode leaves degenerate ones out)
        self.positions = list(range(len(self.paths)))   # each one's place in the split: its image index
        self.excluded: dict[str, str] = {}
        self.problems = scan.problems
        self.samples = [sample_id(p) for p in self.paths]
        self.labels0 = torch.tensor([label_of(s, dataset) - 1 for s in self.samples])
        self.pack_dir = Path(pack_dir) if pack_dir is not None else self.seq_dir / PACK_DIR
        self._holds: list[PackHold] = []   # the pack and index this object maps, kept from removal
        self.pack_path = self._build_pack() if pack else None
        self._pack = None   # memory maps, opened lazily in each worker (a memmap pickles its data)
        if mode != "paper":
            self._exclude_degenerate()

    def _exclude_degenerate(self) -> None:
        """Leave out what clean-mode extraction leaves out (descriptors.core.check_included), keeping
        the others' places, so rows and fingerprints are those of the descriptor folders. Reads
        every sequence once (from the pack when there is one)."""
        keep = []
        for i, sample in enumerate(self.samples):
            if reason := degenerate_reason(self.load(i), self.mode):
                self.excluded[sample] = reason
            else:
                keep.append(i)
        if self.excluded:
            self.paths = [self.paths[i] for i in keep]
            self.positions = keep
            self.samples = [self.samples[i] for i in keep]
            self.labels0 = self.labels0[keep]

    def __len__(self) -> int:
        return len(self.paths)

    def rows(self) -> list[dict]:
        """(index, sample, label 1-based) of every sample: a manifest's identity columns."""
        return [{"index": i, "sample": s, "label": int(label) + 1}
                for i, s, label in zip(self.positions, self.samples, self.labels0)]

    def load(self, i: int) -> np.ndarray:
        """Sample ``i``'s (T, B * V, C) sequence: from the pack when there is one, else its file."""
        if self.pack_path is None:
            return load_sequence(self.paths[i], self.mode, self.kind, self.layout)
        if self._pack is None:
            self._pack = read_pack(self.pack_path)
        data, index = self._pack
        entry = dict(zip(INDEX_COLUMNS, index[self.positions[i]].tolist()))
        start, frames, joints = entry["start"], entry["frames"], entry["joints"]
        raw = decode(data[start:start + entry["nbytes"]], frames * joints * self.layout.dims, entry["encoding"])
        return centre(raw.reshape(frames, joints, -1), entry["rule"], entry["root"], entry["body_joints"])

    def __getitem__(self, i: int) -> SequenceItem:
        return SequenceItem(self.load(i), int(self.labels0[i]), i)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_pack"], state["_holds"] = None, []   # holds stay with the process that took them
        return state

    def record(self, img_size: int = DEFAULT_IMG_SIZE, descriptor: str | None = None) -> dict:
        """What a descriptor folder of this split made in this mode at ``img_size`` would record
        (same fingerprint), without the PNG level, with where the images came from."""
        return {**self._split_record, "descriptor": descriptor, "img_size": int(img_size)}

    @functools.cached_property
    def _split_record(self) -> dict:
        """``record``'s fields that do not depend on the descriptor or the size, made once (the
        fingerprint reads every row; a run asks for each descriptor of each split)."""
        record = provenance.make_record(dataset=self.dataset, protocol=self.protocol, part=self.part,
                                        descriptor=None, mode=self.mode, img_size=DEFAULT_IMG_SIZE, png_level=0,
                                        rows=self.rows(), complete=True, failed=len(self.problems),
                                        layout=layout_record(self.layout),
                                        **origin_fields(get_dataset(self.dataset), self.protocol, self.part))
        del record["png_level"]
        return {**record, "sources": self.sources_digest, "source": SOURCE, "seq_dir": str(self.seq_dir)}

    @functools.cached_property
    def sources_digest(self) -> str:
        """The sample files' sizes and mtimes when first asked, digested as extraction records them."""
        return self.sources_digest_now()

    def sources_digest_now(self) -> str:
        """``sources_digest`` of the files as they are now (a stat of each)."""
        return provenance.sources_digest({s: provenance.source_stat(p) for s, p in zip(self.samples, self.paths)})

    # ------------------------------------------------------------ the pack
    def pack_record(self) -> dict:
        """What the pack of the split's files as they are now is made from, as its seal records it:
        the split, mode, pack format, layout, file count and the digest of every file's name, size
        and mtime_ns (salted with the format and layout, as the pack's name is)."""
        # The format (an old pack is never misread) and the layout (a custom one reads other shapes).
        digest = files_digest(self.split_paths, f"pack format {PACK_FORMAT}\n{layout_record(self.layout)}\n")
        return {"pack": "skeletons", "split": split_stem(self.split), "mode": self.mode, "format": PACK_FORMAT,
                "layout": layout_record(self.layout), "files": digest, "samples": len(self.split_paths)}

    def pack_file(self, made_from: dict | None = None) -> Path:
        """Where the pack of the split's files as they are now (``made_from``: its ``pack_record``)
        lives: the name carries the mode and the record's digest, so a changed file gets a new pack."""
        digest = (made_from or self.pack_record())["files"]
        return self.pack_dir / f"{self.pack_prefix()}_{digest[:16]}{PACK_SUFFIX}"

    def pack_prefix(self) -> str:
        return f"{split_stem(self.split)}_{self.mode}"

    def _build_pack(self) -> Path:
        """Read every sample once, streaming (a bad file fails here, named), and write the pack,
        each sample in the most compact encoding that gives its sequence back bit for bit; reused
        while no file changed. Packs of earlier states of the split (or formats) are removed."""
        made_from = self.pack_record()
        path = self.pack_file(made_from)
        index_path = pack_index_path(path)
        holds = [hold for f in (path, index_path) if (hold := PackHold.if_there(f))]   # held, then checked
        if len(holds) == 2 and usable([path, index_path], "skeleton pack", made_from):
            self._holds += holds
            self._remove_superseded(path, index_path)
            return path
        for hold in holds:
            hold.close()
        with writing_into(self.pack_dir, "the skeleton pack", CACHE_REMEDY):
            self._write_pack(path, index_path, made_from)
        return path

    def _write_pack(self, path: Path, index_path: Path, made_from: dict) -> None:
        index = np.zeros((len(self.split_paths), len(INDEX_COLUMNS)), np.int64)
        start = 0
        with atomic_path(path, make_parents=True) as tmp:
            with open(tmp, "wb") as out:
                for i, p in enumerate(self.split_paths):
                    uncentred, X = load_uncentred(p, self.mode, self.kind, self.layout)
                    encoding, payload, how = encode_sample(uncentred, X)
                    padding = -len(payload) % ALIGN
                    out.write(payload + bytes(padding))
                    index[i] = start, len(payload), *X.shape[:2], encoding, how.rule, how.root, how.body_joints
                    start += len(payload) + padding
            with atomic_path(index_path) as index_tmp:   # in place before the pack: a pack without its index is rebuilt
                with open(index_tmp, "wb") as f:
                    np.save(f, index)
                write_seal([path, index_path], [tmp, index_tmp], made_from)
        self._holds += [PackHold(path), PackHold(index_path)]
        self._remove_superseded(path, index_path)

    def _remove_superseded(self, path: Path, index_path: Path) -> None:
        """Packs of earlier states of the split (or formats) that no process maps any longer."""
        remove_superseded(path.parent, self.pack_prefix(),
                          (PACK_SUFFIX, PACK_SUFFIX + SEAL_SUFFIX, INDEX_SUFFIX, *OLD_PACK_SUFFIXES),
                          keep=(path, index_path, seal_path(path)))


def pack_index_path(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(PACK_SUFFIX) + INDEX_SUFFIX)


def read_pack(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(flat uint8 memory map, (N, 8) index: INDEX_COLUMNS, start and nbytes in bytes) of a pack. The map is
    viewed as a plain array (it stays open through the view): slicing a np.memmap costs more."""
    return np.memmap(path, dtype=np.uint8, mode="r").view(np.ndarray), np.load(pack_index_path(path))


# ---------------------------------------------------------------- sequences -> images

def bgr_batch(images: torch.Tensor) -> torch.Tensor:
    """The engine's (N, S, S) gray or (N, S, S, 3) RGB uint8 images -> (N, 3, S, S) in the release's
    BGR order, gray as three equal channels: ``as_three_channels(bgr_chw(image))`` of each image
    (descriptors/dataset.py), as one tensor on the images' device."""
    if images.ndim == 3:
        return images[:, None].expand(-1, 3, -1, -1).contiguous()
    return images.flip(-1).permute(0, 3, 1, 2).contiguous()


def item_generator(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The augmentation draws of sample ``index`` in ``epoch``: one stream per (seed, epoch, index)."""
    return np.random.default_rng([seed, epoch, index])


MEMO_BUDGET = 2 ** 30   # bytes of images an ImageMaker keeps between epochs (no augmentation)


class ImageMaker:
    """A ``SequenceBatch`` -> (images, labels): the batch ``DescriptorImages(descs, uint8=True)``
    gives through the default collate, made by the torch engine on ``device`` in ``mode`` at
    ``img_size`` (labels stay on the CPU, as a DataLoader gives them)."""

    def __init__(self, descs: str | Sequence[str], layout: Layout, mode: str = "paper",
                 img_size: int = DEFAULT_IMG_SIZE, device: str | torch.device = "cpu",
                 augment: Augment | None = None, seed: int = 0, memo_budget: int = MEMO_BUDGET) -> None:
        check_mode(mode)
        self.descs, self.single = descriptor_selection(descs)
        self.untwinned = tuple(d for d in self.descs if not has_twin(d))   # made by the numpy engine
        self.layout, self.mode, self.img_size = layout, mode, int(img_size)
        self.device = torch.device(device)
        self.augment = augment if augment is not None and augment.enabled else None
        self.seed = seed
        self.memo: dict[int, list[torch.Tensor]] = {}
        self.memo_used, self.memo_budget = 0, memo_budget

    def sequences(self, batch: SequenceBatch, epoch: int = 0) -> list[np.ndarray]:
        """The batch's sequences as the engine gets them: augmented when augmentation is on."""
        if self.augment is None:
            return batch.sequences
        return [augment_sequence(X, self.layout, self.augment, item_generator(self.seed, epoch, int(i)))
                for X, i in zip(batch.sequences, batch.indices)]

    def collate_fn(self):
        """The loader's collate: with descriptors that have no torch twin and no augmentation (whose
        draws this process makes), their images are made in the loader's workers."""
        if self.untwinned and self.augment is None:
            return CollateWithImages(self.untwinned, self.layout, self.mode, self.img_size)
        return collate_sequences

    def make(self, sequences: list[np.ndarray], premade: dict[str, np.ndarray] | None = None) -> list[torch.Tensor]:
        """The images of ``sequences`` for ``descs``, in the loader's layout: those the workers made
        (``premade``), the others by the engine (which makes a descriptor without a twin by numpy)."""
        premade = premade or {}
        wanted = [d for d in self.descs if d not in premade]
        made = descriptor_images_torch(sequences, self.layout, self.mode, self.img_size, self.device,
                                       descs=wanted) if wanted else {}
        made.update({d: torch.from_numpy(images).to(self.device) for d, images in premade.items()})
        return [bgr_batch(made[d]) for d in self.descs]

    def __call__(self, batch: SequenceBatch, epoch: int = 0) -> tuple[torch.Tensor | list[torch.Tensor], torch.Tensor]:
        if self.augment is not None or self.memo_budget <= 0:
            images = self.make(self.sequences(batch, epoch), batch.images if self.augment is None else None)
        else:
            images = self.remembered(batch)
        return (images[0] if self.single else images), batch.labels

    def remembered(self, batch: SequenceBatch) -> list[torch.Tensor]:
        """Without augmentation a sample's images are the same every epoch: make each once and keep
        it on the device while the kept images stay within ``memo_budget`` bytes."""
        indices = [int(i) for i in batch.indices]
        todo = [k for k, i in enumerate(indices) if i not in self.memo]
        if todo:
            premade = None if batch.images is None else {d: v[todo] for d, v in batch.images.items()}
            made = self.make([batch.sequences[k] for k in todo], premade)
            for j, k in enumerate(todo):
                per_sample = [images[j] for images in made]
                size = sum(t.numel() for t in per_sample)
                if self.memo_used + size > self.memo_budget:
                    return self.make(batch.sequences, batch.images)   # over budget: make the batch as it comes
                self.memo[indices[k]] = [t.clone() for t in per_sample]
                self.memo_used += size
        return [torch.stack([self.memo[i][d] for i in indices]) for d in range(len(self.descs))]


class ImageBatches:
    """A DataLoader of ``SequenceBatch`` whose batches come out as ``maker`` makes them, in the main
    process (on the training device). The epoch of the augmentation draws is the sampler's
    (``DistributedSampler.set_epoch``), 0 for samplers without one."""

    def __init__(self, loader: torch.utils.data.DataLoader, maker: ImageMaker) -> None:
        self.loader, self.maker = loader, maker
        self.dataset, self.sampler = loader.dataset, loader.sampler

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple]:
        epoch = int(getattr(self.sampler, "epoch", 0))
        for batch in self.loader:
            yield self.maker(batch, epoch)


def skeleton_loader(data: torch.utils.data.Dataset, maker: ImageMaker, **loader_kw) -> ImageBatches:
    """``DataLoader(data, collate_fn=collate_sequences, **loader_kw)`` yielding (images, labels)
    batches: ``data`` is a ``SkeletonSequences`` or a Subset of one."""
    return ImageBatches(torch.utils.data.DataLoader(data, collate_fn=maker.collate_fn(), **loader_kw), maker)
