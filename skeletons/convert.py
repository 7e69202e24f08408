"""txt2npy: NTU RGB+D ``.skeleton`` files -> official ``<id>.skeleton.npy`` files.

The raw files come from folders or straight from the official zips as downloaded
(``nturgbd_skeletons_s001_to_s017.zip``; NTU-120 adds ``..._s018_to_s032.zip``), several at once;
a zip is read member by member, never unzipped, and gives the same bytes as its unzipped folder.
Planning (which files to convert, skip or leave) happens in the parent process from the listings;
only the conversions go to worker processes, each of which opens a zip itself. A failing file (a
malformed one, a damaged zip member) never stops the others: ``convert_file`` returns its status
instead of raising. Outputs are written atomically, so an interrupted run resumes by simply
running again (finished files are 'already done'; one whose raw file is newer is converted again).
"""
from __future__ import annotations

import ctypes
import os
import posixpath
import struct
import time
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from multiprocessing import Pool
from pathlib import Path

from tqdm import tqdm

from common.errors import cause_text, ignore_interrupts
from common.files import not_a_file, where_they_are

from .datasets import Dataset, get_dataset, official_missing, official_samples, read_name_list
from .ntu import (NPY_SUFFIX, SKELETON_SUFFIX, SkeletonFormatError, check_skeleton_size, parse_skeleton,
                  read_skeleton, save_skeleton_npy)

CONVERTED, ALREADY_DONE, FAILED = "converted", "already done", "failed"
ZIP_SUFFIX = ".zip"
# What Python's zipfile decompresses; an archive made with another method (Deflate64, 9, which
# Windows uses for large files) is refused whole, with the fix (unzip it), not one failure per file.
READABLE_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2",
                    zipfile.ZIP_LZMA: "lzma"}
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, KeyError)   # a damaged member
_EXTENDED_TIMESTAMP = 0x5455   # Info-ZIP's extra field: the member's mtime in UTC, which unzip gives the file
RawSources = str | Path | Iterable[str | Path]
"""-txt: one folder or zip, or several (NTU-120: both official zips, or a zip and a folder)."""


OFFICIAL_ZIPS = {"ntu60": ("nturgbd_skeletons_s001_to_s017.zip",),
                 "ntu120": ("nturgbd_skeletons_s001_to_s017.zip", "nturgbd_skeletons_s018_to_s032.zip")}
NTU_TITLES = {"ntu60": "NTU RGB+D 60", "ntu120": "NTU RGB+D 120"}
DOWNLOAD_PLACES = (".", "data", "data/ntu")   # where a downloaded zip may lie (txt2npy without -d looks)

@dataclass(frozen=True)
class RawFile:
    """One raw ``.skeleton`` file: the file ``name`` in the folder ``source``, or the member ``name``
    of the zip ``source`` (then with its date and size from the archive)."""
    source: str
    name: str
    in_zip: bool = False
    mtime_ns: int = 0
    size: int = 0

    @property
    def where(self) -> str:
        """How messages name it: the path, or ``ZIP/MEMBER`` (a path into the archive)."""
        return os.path.join(self.source, self.name)

    @property
    def sample(self) -> str:
        return posixpath.basename(self.name).removesuffix(SKELETON_SUFFIX)


@dataclass(frozen=True)
class FileResult:
    sample: str
    status: str          # CONVERTED or FAILED
    message: str = ""    # for FAILED: "<file>:<line>: <problem>"


@dataclass
class ConvertSummary:
    converted: list[str] = field(default_factory=list)
    already_done: list[str] = field(default_factory=list)
    skipped_missing: list[str] = field(default_factory=list)
    not_in_dataset: list[str] = field(default_factory=list)
    failed: list[FileResult] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)   # converted before, raw file newer: converted again

    @property
    def ok(self) -> bool:
        return not self.failed

    def report(self) -> str:
        lines = [f"converted: {len(self.converted)}, skipped (missing list): {len(self.skipped_missing)}, "
                 f"already done: {len(self.already_done)}, not in dataset: {len(self.not_in_dataset)}, "
                 f"failed: {len(self.failed)}"]
        if self.changed:
            lines.append(f"  of the converted, {len(self.changed)} had changed since their last conversion "
                         f"(raw file newer than its .skeleton.npy; first: {self.changed[0]})")
        lines += [f"FAILED {result.message}" for result in sorted(self.failed, key=lambda r: r.sample)]
        return "\n".join(lines)


def npy_name(sample: str) -> str:
    return sample + NPY_SUFFIX


# ---------------------------------------------------------------------------------- raw sources

def source_list(txt: RawSources) -> list[str]:
    return [os.fspath(txt)] if isinstance(txt, (str, Path)) else [os.fspath(source) for source in txt]


def member_mtime_ns(info: zipfile.ZipInfo) -> int:
    """The mtime ``unzip`` gives the member's file: the extended timestamp (UTC) when the archive
    has one, else the DOS date and time read as local time."""
    extra, k = info.extra, 0
    while k + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, k)
        if tag == _EXTENDED_TIMESTAMP and size >= 5 and k + 9 <= len(extra) and extra[k + 4] & 1:
            return struct.unpack_from("<i", extra, k + 5)[0] * 10**9
        k += 4 + size
    try:
        return int(time.mktime((*info.date_time, 0, 0, -1))) * 10**9
    except (OverflowError, ValueError):
        return 0


def _zip_member(path: str, info: zipfile.ZipInfo) -> RawFile | None:
    """The member as a raw file, None when it is not a ``.skeleton`` file (folders, macOS's
    ``__MACOSX/._*`` copies); a member no reader can open refuses the whole archive."""
    base = posixpath.basename(info.filename)
    if (info.is_dir() or not base.endswith(SKELETON_SUFFIX) or base.startswith(".")
            or info.filename.startswith("__MACOSX/")):
        return None
    if info.flag_bits & 0x1:
        raise ValueError(f"{path}: {info.filename} is encrypted: unzip it (with its password) and pass the folder "
                         f"with -txt")
    if info.compress_type not in READABLE_METHODS:
        method = "Deflate64" if info.compress_type == 9 else f"method {info.compress_type}"
        raise ValueError(f"{path}: {info.filename} is compressed with {method}, which Python's zipfile cannot "
                         f"read: unzip it (unzip or 7z x) and pass the folder with -txt")
    return RawFile(path, info.filename, True, member_mtime_ns(info), info.file_size)


def list_zip(path: str) -> list[tuple[RawFile, str | None]]:
    """The ``.skeleton`` members of a zip, at any depth (the official zips: ``nturgb+d_skeletons/``)."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        if path.lower().endswith(ZIP_SUFFIX) or _starts_like_a_zip(path):
            raise ValueError(f"{path}: not a readable zip file ({cause_text(error)}); an incomplete or damaged "
                             f"download? download it again") from None
        raise ValueError(f"{path}: a file, not a folder of {SKELETON_SUFFIX} files or a zip of them: pass the "
                         f"folder that holds it") from None
    return [(raw, None) for raw in (_zip_member(path, info) for info in infos) if raw is not None]


def _starts_like_a_zip(path: str | Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) in (b"PK\x03\x04", b"PK\x05\x06")
    except OSError:
        return False


def zip_holds(path: str | Path, suffix: str) -> bool:
    """Whether ``path`` is a readable zip with a member named ``*suffix`` (False for any other file)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith(suffix) for name in archive.namelist())
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return False


def list_folder(folder: str) -> list[tuple[RawFile, str | None]]:
    """The folder's ``*.skeleton`` entries (not recursive), each with why it is not read (not a file) or None."""
    # scandir: the file type comes with the listing, no stat per file (10^5 files in NTU-120)
    with os.scandir(folder) as entries:
        return [(RawFile(folder, e.name), not_a_file(e)) for e in entries if e.name.endswith(SKELETON_SUFFIX)]


def list_source(source: str) -> list[tuple[RawFile, str | None]]:
    """A -txt source's raw files: a folder's, or a zip's (the download as it is)."""
    if os.path.isdir(source):
        return list_folder(source)
    if os.path.isfile(source):
        return list_zip(source)
    what = "zip file" if source.lower().endswith(ZIP_SUFFIX) else f"folder of {SKELETON_SUFFIX} files"
    zips = downloaded_zips()
    found = f" (the download is here: pass -txt {' '.join(zips)})" if zips else ""
    raise FileNotFoundError(f"{os.path.abspath(source)}: {what} does not exist{found}")


def raw_files(txt: RawSources, *, require_files: bool = False) -> dict[str, tuple[RawFile, str | None]]:
    """sample -> (its raw file, why it is not read or None), over every source. A sample found twice
    (a zip beside its unzipped folder) is refused; with ``require_files`` so is a source without any."""
    found: dict[str, tuple[RawFile, str | None]] = {}
    twice: list[tuple[RawFile, RawFile]] = []
    for source in source_list(txt):
        listed = list_source(source)
        if require_files and not listed:   # nothing to convert is a mistake (the wrong folder), not a success
            inside = " in the zip" if os.path.isfile(source) else where_they_are(source, SKELETON_SUFFIX)
            raise FileNotFoundError(f"{os.path.abspath(source)}: no {SKELETON_SUFFIX} files{inside}")
        for raw, problem in listed:
            if raw.sample in found:
                twice.append((found[raw.sample][0], raw))
            else:
                found[raw.sample] = (raw, problem)
    if twice:
        first, second = min(twice, key=lambda pair: pair[0].sample)
        more = f" (and {len(twice) - 1:,} more samples found twice)" if len(twice) > 1 else ""
        raise ValueError(f"{first.where} and {second.where}: the same sample{more}: give each folder or zip "
                         f"once, and not a zip beside its unzipped folder")
    return found


def raw_mtime_ns(raw: RawFile) -> int:
    """When the raw file last changed: the file's mtime, or the zip member's date."""
    return raw.mtime_ns if raw.in_zip else os.stat(raw.where).st_mtime_ns


_OPEN_ZIPS: dict[str, zipfile.ZipFile] = {}
"""This process's open archives: a worker opens each zip once, for all its members. Emptied before
workers start (``_run``): a forked worker must not share the parent's file offset."""


def close_zips() -> None:
    while _OPEN_ZIPS:
        _OPEN_ZIPS.popitem()[1].close()


def read_raw(raw: RawFile) -> dict:
    """The official converter's dict of a raw file; a damaged zip member is a one-line
    SkeletonFormatError naming it (a bad CRC, broken compressed data, a member no longer there)."""
    if not raw.in_zip:
        return read_skeleton(raw.where)
    check_skeleton_size(raw.where, raw.size)
    try:
        if raw.source not in _OPEN_ZIPS:
            _OPEN_ZIPS[raw.source] = zipfile.ZipFile(raw.source)
        with _OPEN_ZIPS[raw.source].open(raw.name) as member:
            data = member.read()
    except ZIP_ERRORS as error:
        problem = "no longer in the zip" if isinstance(error, KeyError) else f"damaged zip member ({cause_text(error)})"
        raise SkeletonFormatError(raw.where, None, f"{problem}; download the zip again") from None
    return parse_skeleton(data, raw.where)


def convert_file(txt_path: str | Path | RawFile, npy_path: str | Path) -> FileResult:
    """Convert one file (a path, or a raw file of a folder or zip); expected problems come back as a
    FAILED result, never as an exception."""
    raw = txt_path if isinstance(txt_path, RawFile) else RawFile(*os.path.split(os.fspath(txt_path)))
    try:
        save_skeleton_npy(npy_path, read_raw(raw))
    except (OSError, ValueError) as exc:   # SkeletonFormatError is a ValueError
        message = str(exc) if raw.where in str(exc) else f"{raw.where}: {exc}"
        return FileResult(raw.sample, FAILED, message)
    return FileResult(raw.sample, CONVERTED)


def _convert_task(task: tuple[RawFile, str]) -> FileResult:
    return convert_file(*task)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3      # mallopt parameters, glibc <malloc.h>


def _worker_start() -> None:
    keep_freed_memory()
    ignore_interrupts()


def keep_freed_memory(limit: int = 256 << 20) -> None:
    """Let glibc keep up to ``limit`` bytes of freed memory in this process (no-op elsewhere).

    Why: parsing one file makes a few MB of numpy temporaries. With glibc's defaults those are
    handed back to the OS after every file (munmap, heap trim) and page-faulted in again for
    the next one, which costs about as much CPU as the parsing itself. Affects the whole
    process: txt2npy's workers, and the caller's process when it converts with one worker.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt      # symbols of the running process: libc
    except (OSError, AttributeError):            # not glibc (macOS, Windows): nothing to tune
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt(_M_MMAP_THRESHOLD, 16 << 20)         # buffers up to 16 MB from the heap, not mmap
    mallopt(_M_TRIM_THRESHOLD, limit)            # trim the heap only above `limit` free bytes


def load_missing(missing: str | Path | Iterable[str] | None, dataset: str) -> frozenset[str]:
    """The missing-skeleton set: the shipped official list (None), a list file, or ids."""
    if missing is None:
        return official_missing(dataset)
    if isinstance(missing, (str, Path)):
        names = read_name_list(missing)
        if not names:
            raise ValueError(f"{missing}: no NTU sample names found in the missing-skeleton list")
        return frozenset(names)
    return frozenset(missing)


def check_npy_folder(npy_dir: str | Path, dataset: Dataset) -> None:
    """The converted files go to a folder: refuse a zip (or any file) given as one."""
    npy_dir = Path(npy_dir)
    if npy_dir.is_file() or npy_dir.suffix.lower() == ZIP_SUFFIX:
        what = "a file" if npy_dir.is_file() else "named as a zip"
        raise ValueError(f"{npy_dir}: {what}, not a folder: -npy is the folder the {NPY_SUFFIX} files are written "
                         f"to (e.g. {dataset.seq_dir}); a downloaded zip is read with -txt")


def _name_problem(ds: Dataset, sample: str) -> tuple[str, bool]:
    """(why the sample's name is refused or '', whether the dataset holds it)."""
    try:
        return "", ds.contains(ds.parse_name(sample))
    except ValueError as exc:
        return str(exc).split(": ", 1)[-1], False


def _outdated(raw: RawFile, npy_path: str) -> bool:
    """Converted before its raw file last changed (as pipeline.py's stale_conversions judges)."""
    try:
        return raw_mtime_ns(raw) > os.stat(npy_path).st_mtime_ns
    except OSError:
        return True   # let the conversion say what is wrong


def plan_conversion(txt_dir: RawSources, npy_dir: str | Path, dataset: str, *,
                    missing: str | Path | Iterable[str] | None = None, overwrite: bool = False,
                    include_missing: bool = False) -> tuple[ConvertSummary, list[tuple[RawFile, str]]]:
    """What convert_folder would do, without doing it: a summary of the files it leaves alone
    (other dataset, missing list, already done, bad names) and the (raw file, npy path) to convert.
    ``txt_dir``: a folder or zip, or several."""
    npy_dir, ds = Path(npy_dir), get_dataset(dataset)
    check_npy_folder(npy_dir, ds)
    skip = frozenset() if include_missing else load_missing(missing, dataset)
    found = raw_files(txt_dir, require_files=True)
    done = {name for name in os.listdir(npy_dir) if name.endswith(NPY_SUFFIX)} if npy_dir.is_dir() else set()
    summary, tasks, npy_str = ConvertSummary(), [], os.fspath(npy_dir)
    for sample in sorted(found):
        raw, problem = found[sample]
        in_dataset = False
        if not problem:
            problem, in_dataset = _name_problem(ds, sample)
        if problem:
            summary.failed.append(FileResult(sample, FAILED, f"{raw.where}: {problem}"))
        elif not in_dataset:
            summary.not_in_dataset.append(sample)
        elif sample in skip:
            summary.skipped_missing.append(sample)
        else:
            npy_path = os.path.join(npy_str, npy_name(sample))
            if npy_name(sample) in done and not overwrite:
                if not _outdated(raw, npy_path):
                    summary.already_done.append(sample)
                    continue
                summary.changed.append(sample)
            tasks.append((raw, npy_path))
    return summary, tasks


def stale_conversions(txt_dir: RawSources, npy_dir: str | Path) -> tuple[list[Path], list[Path]]:
    """(converted files whose raw file is gone, converted files older than their raw file): what
    a converted folder holds that its raw folders or zips no longer say (pipeline.py makes it follow)."""
    npy_dir = Path(npy_dir)
    if not npy_dir.is_dir():
        return [], []
    raw = {sample: entry for sample, (entry, problem) in raw_files(txt_dir).items() if not problem}
    orphans, outdated = [], []
    for entry in sorted(os.scandir(npy_dir), key=lambda e: e.name):
        if not entry.name.endswith(NPY_SUFFIX) or entry.name.startswith("."):
            continue
        sample = entry.name.removesuffix(NPY_SUFFIX)
        if sample not in raw:
            orphans.append(Path(entry.path))
        elif raw_mtime_ns(raw[sample]) > entry.stat().st_mtime_ns:
            outdated.append(Path(entry.path))
    return orphans, outdated


def convert_folder(txt_dir: RawSources, npy_dir: str | Path, dataset: str, *,
                   missing: str | Path | Iterable[str] | None = None, workers: int | None = None,
                   overwrite: bool = False, include_missing: bool = False,
                   progress: bool = True) -> ConvertSummary:
    """Convert every ``*.skeleton`` of ``txt_dir`` that belongs to ``dataset``: a folder's (not
    recursive), a zip's (as downloaded, any depth), or those of several folders and zips.

    missing: the samples to skip (default: the official list shipped with the package);
    include_missing converts them anyway. workers: processes (default: all cores).
    """
    summary, tasks = plan_conversion(txt_dir, npy_dir, dataset, missing=missing, overwrite=overwrite,
                                     include_missing=include_missing)
    Path(npy_dir).mkdir(parents=True, exist_ok=True)
    for result in _run(tasks, workers or os.cpu_count() or 1, progress):
        if result.status == CONVERTED:
            summary.converted.append(result.sample)
        else:
            summary.failed.append(result)
    summary.converted.sort()
    return summary


def _run(tasks: list[tuple[RawFile, str]], workers: int, progress: bool) -> Iterable[FileResult]:
    bar = tqdm(total=len(tasks), unit="file", desc="txt2npy", disable=not progress or not tasks)
    close_zips()   # workers open their own: a forked copy of an open zip would share its file offset
    try:
        if workers <= 1 or len(tasks) <= 1:
            keep_freed_memory()
            for task in tasks:
                yield _convert_task(task)
                bar.update()
            return
        # Small chunks keep the bar moving and the cores balanced; large ones cut IPC overhead.
        chunksize = max(1, min(32, len(tasks) // (workers * 8)))
        with Pool(min(workers, len(tasks)), initializer=_worker_start) as pool:
            for result in pool.imap_unordered(_convert_task, tasks, chunksize=chunksize):
                yield result
                bar.update()
    finally:
        close_zips()
        bar.close()


def downloaded_zips() -> list[str]:
    """The official zips lying in DOWNLOAD_PLACES (relative to the current folder), first of each name."""
    found = {}
    for place in DOWNLOAD_PLACES:
        for name in OFFICIAL_ZIPS["ntu120"]:
            path = os.path.normpath(os.path.join(place, name))
            if name not in found and os.path.isfile(path):
                found[name] = path
    return list(found.values())


def default_dataset(txt: list[str] | None, npy: str | None = None, check_only: bool = False) -> tuple[str, str]:
    """(dataset, the line saying so) for a txt2npy run without -d, as the authors' txt2npy.py ran
    without arguments: NTU-120 for its sources (its second zip, the README's txt120skel folder) or,
    given none, when the README layout has NTU-120's folder only; else NTU-60. A run given no source
    that finds no README folder gets a ValueError saying what to pass."""
    ntu60, ntu120 = get_dataset("ntu60"), get_dataset("ntu120")
    folder = "seq_dir" if check_only else "raw_dir"
    if txt:
        named = {os.path.basename(os.path.normpath(source)) for source in txt}
        chosen = "ntu120" if named & {OFFICIAL_ZIPS["ntu120"][-1], os.path.basename(ntu120.raw_dir)} else "ntu60"
    elif check_only and npy or os.path.isdir(getattr(ntu60, folder)):
        chosen = "ntu60"
    elif os.path.isdir(getattr(ntu120, folder)):
        chosen = "ntu120"
    else:
        raise ValueError(_what_to_pass(ntu60, ntu120, folder))
    ds, other = get_dataset(chosen), "ntu60" if chosen == "ntu120" else "ntu120"
    what = (f"checking {NTU_TITLES[chosen]} in {npy or ds.seq_dir}" if check_only else
            f"converting {NTU_TITLES[chosen]}, {' '.join(txt or [ds.raw_dir])} -> {npy or ds.seq_dir}")
    return chosen, f"no -d given: {what} (pass -d {other} for {NTU_TITLES[other]})"


def _what_to_pass(ntu60: Dataset, ntu120: Dataset, folder: str) -> str:
    """The one line for a run without -d, -txt and README folders: the command that would work."""
    layout = f"no -d given and no README layout folder ({getattr(ntu60, folder)} or {getattr(ntu120, folder)})"
    if folder == "seq_dir":
        return f"{layout}: pass -d ntu60 or -d ntu120, and -npy with the folder of .skeleton.npy files"
    zips = downloaded_zips()
    dataset = "ntu120" if len(zips) > 1 else "ntu60"
    if zips:
        return f"{layout}; the download is here: python txt2npy.py -d {dataset} -txt {' '.join(zips)}"
    return (f"{layout}: pass -d and -txt, e.g. python txt2npy.py -d ntu60 -txt {OFFICIAL_ZIPS['ntu60'][0]} "
            f"(the download, or its unzipped folder; NTU-120: -d ntu120 and both zips)")


@dataclass(frozen=True)
class Completeness:
    expected: int
    present: int
    absent: list[str]       # expected ids without a .skeleton.npy, sorted
    unexpected: list[str]   # .skeleton.npy ids that are not expected (e.g. missing-list samples)

    def report(self, folder: str | Path, show: int = 20) -> str:
        lines = [f"{folder}: {self.present:,} of {self.expected:,} expected samples present, "
                 f"{len(self.absent):,} absent, {len(self.unexpected):,} unexpected"]
        for label, names in (("absent", self.absent), ("unexpected", self.unexpected)):
            if names:
                more = f" ... and {len(names) - show:,} more" if len(names) > show else ""
                lines.append(f"{label}: {' '.join(names[:show])}{more}")
        return "\n".join(lines)


def check_complete(npy_dir: str | Path, dataset: str, *,
                   missing: str | Path | Iterable[str] | None = None) -> Completeness:
    """Compare a txt2npy output folder with the official sample list minus the missing ones."""
    npy_dir = Path(npy_dir)
    check_npy_folder(npy_dir, get_dataset(dataset))
    if not npy_dir.is_dir():
        raise FileNotFoundError(f"{os.path.abspath(npy_dir)}: .skeleton.npy folder does not exist")
    expected = official_samples(dataset) - load_missing(missing, dataset)
    present = {name.removesuffix(NPY_SUFFIX) for name in os.listdir(npy_dir) if name.endswith(NPY_SUFFIX)}
    return Completeness(len(expected), len(present & expected), sorted(expected - present),
                        sorted(present - expected))
