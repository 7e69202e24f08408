"""What a descriptor folder holds and what made it: the manifest and the record beside each folder.

A descriptor folder holds only its ``<index>_<label>.png`` images, so the release's loader (which
lists a folder and parses a label from every name) reads it too. Beside it live:

- ``<folder>.manifest.csv``: one row per image (index, sample, label, frames, bodies), the folder's
  truth. Extraction rewrites it atomically; a reader refuses a folder whose images disagree with it.
- ``<folder>.json``: the record of what made the folder (dataset, protocol, part, descriptor,
  mode, image size, skeleton layout (name and digest), PNG level, sample count, a fingerprint of
  the manifest's sample list, and whether the run that wrote it finished). Checkpoints copy the
  records of the folders they were trained on, so evaluation and prediction can refuse images made
  another way.

Folders written by earlier versions kept ``manifest.csv`` and ``descriptors.json`` inside; they
are still read, and extraction moves them out on its next run.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from common import provenance as contract
from common.atomic import write_text_atomic
from skeletons.layouts import layout_text
import descriptors.registry as registry
from descriptors.names import parse_image_name

RECORD_VERSION = 1
MANIFEST_SUFFIX = ".manifest.csv"
RECORD_SUFFIX = ".json"
MANIFEST_FIELDS = ("index", "sample", "label", "frames", "bodies")
LEGACY_MANIFEST = "manifest.csv"       # inside the folder, before records moved beside it
LEGACY_SETTINGS = "descriptors.json"
# Fields of a record that decide which pixels a folder holds: a model trained on one value of
# them gives wrong answers on images made with another. The layout is {"name", "digest"}
# (skeletons.layouts.layout_record); records written before it was kept have none.
PIXEL_FIELDS = ("mode", "img_size", "layout")
# Fields that say which data a folder is (checked against the folder's place in the tree).
IDENTITY_FIELDS = ("dataset", "protocol", "part", "descriptor")
# The digest of the descriptor's code (descriptors.registry.code_digest) that made the images:
# changed code makes the folder, and the models trained on it, stale. Older records have none.
CODE_FIELD = "code"


def descriptor_fields(desc: str) -> dict:
    """What a folder's record says of its descriptor: its name and its code's digest."""
    return {"descriptor": desc, CODE_FIELD: registry.code_digest(desc)}


def check_code(record: dict | None, desc: str, file: str | Path, fix: str) -> None:
    """Refuse images (or a model) made by other code of a descriptor than the registry has now."""
    recorded = (record or {}).get(CODE_FIELD)
    if isinstance(recorded, dict):   # a model's record: {descriptor: digest} of each it reads
        recorded = recorded.get(desc)
    contract.check({CODE_FIELD: recorded}, {CODE_FIELD: registry.code_digest(desc)}, (CODE_FIELD,), file=file,
                   fix=fix, what=f"{desc} code")
# Where a one-file dataset's folder came from: {format, sha256, split} (compared), and the file's
# path (told); records of other datasets have neither.
ORIGIN_FIELDS = ("origin", "origin_file")


def manifest_path(folder: str | Path) -> Path:
    folder = Path(folder)
    return folder.with_name(folder.name + MANIFEST_SUFFIX)


def record_path(folder: str | Path) -> Path:
    folder = Path(folder)
    return folder.with_name(folder.name + RECORD_SUFFIX)


# --------------------------------------------------------------------------- manifest

def fingerprint(rows: Iterable[dict]) -> str:
    """Digest of a manifest's (index, sample, label) list: equal exactly when two folders hold the
    same samples under the same names."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(f"{row['index']},{row['sample']},{row['label']}\n".encode())
    return digest.hexdigest()[:20]


def sources_digest(sources: dict[str, list[int]]) -> str:
    """Digest of the sample files' (size, mtime_ns) behind a folder's images: it changes when a
    sample file is replaced in place, which the sample list's fingerprint does not see."""
    digest = hashlib.sha256()
    for sample in sorted(sources):
        size, mtime_ns = sources[sample]
        digest.update(f"{sample},{size},{mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def source_stat(path: str | Path) -> list[int]:
    """[size, mtime_ns] of a sample file, as extraction records it."""
    st = Path(path).stat()
    return [st.st_size, st.st_mtime_ns]


def manifest_text(rows: Iterable[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MANIFEST_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_manifests(folders: Iterable[str | Path], rows: list[dict]) -> None:
    """The same manifest beside each of ``folders`` (a split's five), its text made once."""
    text = manifest_text(rows)
    for folder in folders:
        write_text_atomic(manifest_path(folder), text, newline="")


def write_manifest(folder: str | Path, rows: list[dict]) -> None:
    write_manifests([folder], rows)


def read_manifest(folder: str | Path) -> list[dict] | None:
    """Rows of the folder's manifest (beside it, else the legacy one inside), ints converted;
    None when the folder has none; ValueError naming the file when it is malformed."""
    folder = Path(folder)
    path = next((p for p in (manifest_path(folder), folder / LEGACY_MANIFEST) if p.is_file()), None)
    if path is None:
        return None
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if not set(MANIFEST_FIELDS) <= set(reader.fieldnames or ()):
                raise ValueError(f"columns {reader.fieldnames}, expected {', '.join(MANIFEST_FIELDS)}")
            return [{k: row[k] if k == "sample" else int(row[k]) for k in MANIFEST_FIELDS} for row in reader]
    except (ValueError, TypeError, csv.Error) as e:
        raise ValueError(f"{path}: malformed descriptor manifest ({e}); remake the folder with skels2desc "
                         f"--overwrite") from None


# --------------------------------------------------------------------------- record

def make_record(*, dataset: str, protocol: str, part: str, descriptor: str | None, mode: str, img_size: int,
                png_level: int, rows: list[dict], complete: bool, failed: int = 0, layout: dict | None = None,
                origin: dict | None = None, origin_file: str | None = None, seq_dir: str | None = None) -> dict:
    """The record; the optional fields only where given: ``origin`` ({format, sha256, split}) and
    ``origin_file`` for a dataset unpacked from one file (skeletons/unpacked.py), whose records then
    say which file made them; ``seq_dir``, the sequence folder read (a fix command names it)."""
    optional = {"origin": origin, "origin_file": origin_file, "seq_dir": seq_dir}
    return {"version": RECORD_VERSION, "dataset": dataset, "protocol": protocol, "part": part,
            "descriptor": descriptor, "mode": mode, "img_size": int(img_size), "layout": layout,
            "png_level": int(png_level), "samples": len(rows), "failed": int(failed), "fingerprint": fingerprint(rows),
            "complete": complete, **{k: v for k, v in optional.items() if v is not None}}


def write_record(folder: str | Path, record: dict) -> None:
    write_text_atomic(record_path(folder), json.dumps(record, indent=1) + "\n")


def read_record(folder: str | Path) -> dict | None:
    """The folder's record; None for folders without one (the release's, or older versions')."""
    path = record_path(folder)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: unreadable descriptor record ({e}); remake the folder with skels2desc "
                         f"--overwrite") from None
    if not isinstance(record, dict) or "version" not in record:
        raise ValueError(f"{path}: not a descriptor folder record")
    return record


def read_legacy_settings(folder: str | Path) -> dict | None:
    """{"mode", "img_size"} that older versions kept in ``descriptors.json`` inside the folder."""
    path = Path(folder) / LEGACY_SETTINGS
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except ValueError:
        return None


def shown(value: object) -> str:
    """A record value as one-line errors show it (a layout as 'coco17 (digest 1a2b3c4d)')."""
    return layout_text(value) if isinstance(value, dict) and "digest" in value else str(value)


def differing(first: Mapping, second: Mapping, fields: Iterable[str], unknown_agrees: bool = True) -> list[str]:
    """The fields on which two records of how images were made disagree: the contract's rule
    (common.provenance.differing) for extraction (folder against run), a split's folders, a run's
    folders, and models against each other and against what they read."""
    return contract.differing(first, second, fields, unknown_agrees)


def differences(expected: Mapping, found: Mapping, fields: Iterable[str]) -> list[str]:
    """'field: expected -> found' for each field both know and that differs."""
    return [f"{k}: {shown(expected[k])} -> {shown(found[k])}" for k in differing(expected, found, fields)]


# --------------------------------------------------------------------------- images vs manifest

def list_image_names(folder: str | Path) -> dict[str, tuple[int, int]]:
    """{name: (index, label)} of the ``<index>_<label>.png`` files in a folder."""
    parsed = ((entry.name, parse_image_name(entry.name)) for entry in Path(folder).iterdir())
    return {name: index_label for name, index_label in parsed if index_label is not None}


def check_against_manifest(folder: Path, images: dict[str, tuple[int, int]], rows: list[dict]) -> None:
    """ValueError naming the folder when its images and its manifest disagree: a duplicate index,
    an image the manifest does not list, or a listed image that is absent."""
    seen: dict[int, str] = {}
    for row in rows:
        if row["index"] in seen:
            raise ValueError(f"{folder}: manifest lists index {row['index']} twice ({seen[row['index']]} and "
                             f"{row['sample']}); remake the folder with skels2desc")
        seen[row["index"]] = row["sample"]
    listed = {f"{row['index']}_{row['label']}.png" for row in rows}
    extra = sorted(set(images) - listed, key=lambda n: images[n])
    missing = sorted(listed - set(images), key=lambda n: int(n.split("_")[0]))
    if extra or missing:
        what = (f"{len(extra)} image(s) not in its manifest (first {extra[0]})" if extra else
                f"{len(missing)} image(s) of its manifest missing (first {missing[0]})")
        raise ValueError(f"{folder}: {what}; rerun skels2desc on this split to bring it in line")


def check_unique_indices(folder: Path, images: dict[str, tuple[int, int]]) -> None:
    """ValueError naming the folder when two images share an index (``3_1.png`` and ``3_7.png``)."""
    owner: dict[int, str] = {}
    for name, (index, _) in images.items():
        if index in owner:
            raise ValueError(f"{folder}: {owner[index]} and {name} share index {index}; remake the folder "
                             f"with skels2desc")
        owner[index] = name
