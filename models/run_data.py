"""What a run trains on: the descriptor folders (or the skeletons) of its two parts, what their
records say (fingerprint, mode, size, layout), that they agree, and the run's augmentation."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from descriptors import provenance
from descriptors.dataset import descriptor_selection, make_command
from descriptors.skeleton_source import SkeletonSequences
from skeletons.augment import Augment

DATA_FIELDS = ("fingerprint", "sources", "samples", "mode", "img_size", "layout", provenance.CODE_FIELD)
# Fields that records made before them lack: a run that recorded none is not made stale by them.
LATER_DATA_FIELDS = (provenance.CODE_FIELD,)
ORIGIN_FIELDS = provenance.ORIGIN_FIELDS   # kept too where a record has them (one-file datasets)
AGREED_FIELDS = ("mode", "img_size", "layout")   # one value for all the folders a model reads


@dataclass(frozen=True)
class FolderData:
    """One descriptor folder a run reads, as its record says (mode and fingerprint None without one)."""
    part: str
    desc: str
    folder: Path
    facts: dict      # DATA_FIELDS
    remake: str      # the command that makes the folder again


def folder_data(ds) -> list[FolderData]:
    """The folders of a DescriptorImages split: the images trained on, and what the folder's record
    says (fingerprint, mode, img_size, layout); without a record (the release's) fingerprint, mode
    and layout are None and img_size is measured."""
    records = getattr(ds, "provenance", None) or {}
    out = []
    for k, (desc, folder) in enumerate(zip(ds.descs, ds.folders)):
        record = records.get(desc) or {}
        facts = {"fingerprint": record.get("fingerprint"), "sources": record.get("sources"), "samples": len(ds),
                 "mode": record.get("mode"),
                 "img_size": ds.folder_image_size(k), "layout": record.get("layout"),
                 # kept where the record has them: older records have no code digest
                 **{name: record[name] for name in (provenance.CODE_FIELD, *ORIGIN_FIELDS) if name in record}}
        # The folder's own sequence folder; the messages below add the mode and size the fix needs.
        remake = make_command(ds.split, ds.root, {"seq_dir": record.get("seq_dir")})
        out.append(FolderData(ds.part, desc, folder, facts, remake))
    return out


def skeleton_data(data, desc: str, img_size: int) -> list[FolderData]:
    """What a run from skeletons reads, as the descriptor folders of the same split would record it
    (the same fingerprints: the images are bit-equal)."""
    descs, _ = descriptor_selection(desc)
    record = data.record(img_size)   # DATA_FIELDS are the same for every descriptor: one pass over the split
    facts = {k: record[k] for k in (*DATA_FIELDS, *ORIGIN_FIELDS) if k in record}
    remake = f"the sequence files in {data.seq_dir}"
    return [FolderData(data.part, d, data.seq_dir, {**facts, **provenance.descriptor_fields(d)}, remake)
            for d in descs]


def check_image_size_flag(data, img_size: int | None) -> None:
    """--img-size chooses the size of images made from skeletons; with image folders it can only agree."""
    made = data.folder_image_size(0)
    if img_size is not None and img_size != made:
        raise ValueError(f"{data.folders[0]}: holds {made}-px images, --img-size {img_size} given; the size is "
                         f"chosen when the images are made (skels2desc --img-size), or train --source skeletons")


def augmentation(augment: bool, mode: str, from_skeletons: bool) -> Augment | None:
    """The run's skeleton augmentation (--augment), or None. Only on skeletons, and never in paper
    mode: paper mode reproduces the release, which trains without augmentation."""
    if not augment:
        return None
    if not from_skeletons:
        raise ValueError("--augment transforms the skeletons, so it needs --source skeletons")
    if mode == "paper":
        raise ValueError("--augment is not part of the release's training: use it with --mode clean "
                         "(paper mode reproduces the release)")
    return Augment()


def pixel_flags(facts: dict) -> str:
    """'--mode M --img-size S' of what a folder's facts say (the flags a remake command needs)."""
    return " ".join(f"--{k.replace('_', '-')} {facts[k]}" for k in ("mode", "img_size") if facts.get(k) is not None)


def agreed_pixels(folders: list[FolderData], mode_flag: str | None) -> tuple[str, int, dict | None, str | None]:
    """(mode, img_size, layout, notice or None) of the folders one run reads, train folders first.

    ValueError (one line) when two folders differ in mode, img_size or skeleton layout (a model
    tested on images made otherwise gives wrong answers), or when --mode contradicts the records.
    Folders without a record take the recorded folders' mode, else --mode, else "paper", and the
    notice says so; their layout is unknown (None), as is that of the release's folders.
    """
    for name in AGREED_FIELDS:
        first = next((f for f in folders if f.facts[name] is not None), None)
        other = next((f for f in folders if first and provenance.differing(first.facts, f.facts, (name,))), None)
        if other is not None:
            fix = (f"{pixel_flags(first.facts)} --overwrite" if name != "layout" else
                   "--overwrite, with the layout of the other folders")
            values = f"{provenance.shown(first.facts[name])} vs {provenance.shown(other.facts[name])}"
            raise ValueError(f"{first.folder} and {other.folder} differ in {name} ({values}); make them alike: "
                             f"{other.remake} {fix}")
    recorded = next((f for f in folders if f.facts["mode"] is not None), None)
    if recorded is not None and mode_flag and mode_flag != recorded.facts["mode"]:
        raise ValueError(f"{recorded.folder}: images are {recorded.facts['mode']} mode, --mode {mode_flag} given; "
                         f"remake them with: {recorded.remake} {pixel_flags({**recorded.facts, 'mode': mode_flag})} "
                         f"--overwrite, or drop --mode")
    mode = recorded.facts["mode"] if recorded is not None else mode_flag or "paper"
    layout = next((f.facts["layout"] for f in folders if f.facts["layout"] is not None), None)
    bare = [f for f in folders if f.facts["mode"] is None]
    notice = None
    if bare:
        more = f" and {len(bare) - 1} other folder(s)" if len(bare) > 1 else ""
        why = ("like the recorded folders" if recorded is not None else "as --mode says" if mode_flag
               else "the default; pass --mode clean if they were made in clean mode")
        notice = f"notice: {bare[0].folder}{more}: no record of how the images were made; assuming {mode} mode ({why})"
    return mode, folders[0].facts["img_size"], layout, notice


class DataChangedError(ValueError):
    """The data a training reads changed under it (one line naming it)."""


def record_stamps(folders: list[FolderData]) -> dict[Path, tuple[int, int] | None]:
    """(size, mtime_ns) of each descriptor folder's record now (None: it has none); skels2desc
    rewrites the record whenever it changes a folder."""
    stamps = {}
    for f in folders:
        path = provenance.record_path(f.folder)
        stamps[f.folder] = (path.stat().st_size, path.stat().st_mtime_ns) if path.is_file() else None
    return stamps


def changed_data(folders: list[FolderData], stamps: dict, parts: dict) -> str | None:
    """One line naming the first data a run reads that is no longer what it was when the run
    started (``stamps``: ``record_stamps`` then), else None: another machine rewrote it on a shared
    disk (locally the readers' locks keep skels2desc out). ``parts``: {part: the run's
    DescriptorImages or SkeletonSequences}."""
    for part, data in parts.items():
        if isinstance(data, SkeletonSequences):
            was = next(f.facts["sources"] for f in folders if f.part == part)
            if (now := data.sources_digest_now()) != was:
                return f"{data.seq_dir}: its {part} sequence files changed (sources {was} -> {now})"
    now = record_stamps([f for f in folders if not isinstance(parts.get(f.part), SkeletonSequences)])
    changed = next((folder for folder, stamp in now.items() if stamp != stamps.get(folder)), None)
    return f"{changed}: rewritten while this training read it (its record changed)" if changed else None


def data_record(folders: list[FolderData]) -> dict:
    """settings["data"]: {part: {desc: {fingerprint, samples, mode, img_size}}} as the folders say."""
    data: dict = {}
    for f in folders:
        data.setdefault(f.part, {})[f.desc] = dict(f.facts)
    return data
