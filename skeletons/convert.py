"""txt2npy: NTU RGB+D ``.skeleton`` folders -> official ``<id>.skeleton.npy`` files.

Planning (which files to convert, skip or leave) happens in the parent process from two folder
listings; only the conversions go to worker processes. A failing file never stops the others:
``convert_file`` returns its status instead of raising. Outputs are written atomically, so an
interrupted run resumes by simply running again (finished files are 'already done').
"""
from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from multiprocessing import Pool
from pathlib import Path

from tqdm import tqdm

from common.errors import ignore_interrupts
from common.files import not_a_file, where_they_are

from .datasets import get_dataset, official_missing, official_samples, read_name_list, sample_id
from .ntu import NPY_SUFFIX, SKELETON_SUFFIX, read_skeleton, save_skeleton_npy

CONVERTED, ALREADY_DONE, FAILED = "converted", "already done", "failed"


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

    @property
    def ok(self) -> bool:
        return not self.failed

    def report(self) -> str:
        lines = [f"converted: {len(self.converted)}, skipped (missing list): {len(self.skipped_missing)}, "
                 f"already done: {len(self.already_done)}, not in dataset: {len(self.not_in_dataset)}, "
                 f"failed: {len(self.failed)}"]
        lines += [f"FAILED {result.message}" for result in sorted(self.failed, key=lambda r: r.sample)]
        return "\n".join(lines)


def npy_name(sample: str) -> str:
    return sample + NPY_SUFFIX


def convert_file(txt_path: str | Path, npy_path: str | Path) -> FileResult:
    """Convert one file; expected problems come back as a FAILED result, never as an exception."""
    sample = sample_id(txt_path)
    try:
        save_skeleton_npy(npy_path, read_skeleton(txt_path))
    except (OSError, ValueError) as exc:   # SkeletonFormatError is a ValueError
        message = str(exc) if str(txt_path) in str(exc) else f"{txt_path}: {exc}"
        return FileResult(sample, FAILED, message)
    return FileResult(sample, CONVERTED)


def _convert_task(paths: tuple[str, str]) -> FileResult:
    return convert_file(*paths)


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


def plan_conversion(txt_dir: str | Path, npy_dir: str | Path, dataset: str, *,
                    missing: str | Path | Iterable[str] | None = None, overwrite: bool = False,
                    include_missing: bool = False) -> tuple[ConvertSummary, list[tuple[str, str]]]:
    """What convert_folder would do, without doing it: a summary of the files it leaves alone
    (other dataset, missing list, already done, bad names) and the (txt, npy) paths to convert."""
    txt_dir, npy_dir = Path(txt_dir), Path(npy_dir)
    txt_str, npy_str = os.fspath(txt_dir), os.fspath(npy_dir)
    if not txt_dir.is_dir():
        raise FileNotFoundError(f"{os.path.abspath(txt_dir)}: folder of .skeleton files does not exist")
    ds = get_dataset(dataset)
    skip = frozenset() if include_missing else load_missing(missing, dataset)
    done = {name for name in os.listdir(npy_dir) if name.endswith(NPY_SUFFIX)} if npy_dir.is_dir() else set()

    summary, tasks = ConvertSummary(), []
    # scandir: the file type comes with the listing, no stat per file (10^5 files in NTU-120)
    with os.scandir(txt_dir) as entries:
        found = {e.name: not_a_file(e) for e in entries if e.name.endswith(SKELETON_SUFFIX)}
    if not found:   # nothing to convert is a mistake (the wrong folder), not a success
        raise FileNotFoundError(f"{os.path.abspath(txt_dir)}: no {SKELETON_SUFFIX} files"
                                f"{where_they_are(txt_dir, SKELETON_SUFFIX)}")
    for name in sorted(found):
        if found[name]:
            sample = name.removesuffix(SKELETON_SUFFIX)
            summary.failed.append(FileResult(sample, FAILED, f"{txt_dir / name}: {found[name]}"))
            continue
        sample = name.removesuffix(SKELETON_SUFFIX)
        try:
            in_dataset = ds.contains(ds.parse_name(sample))
        except ValueError as exc:
            summary.failed.append(FileResult(sample, FAILED, f"{txt_dir / name}: {str(exc).split(': ', 1)[-1]}"))
            continue
        if not in_dataset:
            summary.not_in_dataset.append(sample)
        elif sample in skip:
            summary.skipped_missing.append(sample)
        elif npy_name(sample) in done and not overwrite:
            summary.already_done.append(sample)
        else:
            tasks.append((os.path.join(txt_str, name), os.path.join(npy_str, npy_name(sample))))
    return summary, tasks


def stale_conversions(txt_dir: str | Path, npy_dir: str | Path) -> tuple[list[Path], list[Path]]:
    """(converted files whose raw file is gone, converted files older than their raw file): what
    a converted folder holds that its raw folder no longer says (pipeline.py makes it follow)."""
    txt_dir, npy_dir = Path(txt_dir), Path(npy_dir)
    if not npy_dir.is_dir():
        return [], []
    raw = {e.name.removesuffix(SKELETON_SUFFIX): e.stat().st_mtime_ns
           for e in os.scandir(txt_dir) if e.name.endswith(SKELETON_SUFFIX) and not not_a_file(e)}
    orphans, outdated = [], []
    for entry in sorted(os.scandir(npy_dir), key=lambda e: e.name):
        if not entry.name.endswith(NPY_SUFFIX) or entry.name.startswith("."):
            continue
        sample = entry.name.removesuffix(NPY_SUFFIX)
        if sample not in raw:
            orphans.append(Path(entry.path))
        elif raw[sample] > entry.stat().st_mtime_ns:
            outdated.append(Path(entry.path))
    return orphans, outdated


def convert_folder(txt_dir: str | Path, npy_dir: str | Path, dataset: str, *,
                   missing: str | Path | Iterable[str] | None = None, workers: int | None = None,
                   overwrite: bool = False, include_missing: bool = False,
                   progress: bool = True) -> ConvertSummary:
    """Convert every ``*.skeleton`` in ``txt_dir`` (not recursive) that belongs to ``dataset``.

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


def _run(tasks: list[tuple[str, str]], workers: int, progress: bool) -> Iterable[FileResult]:
    bar = tqdm(total=len(tasks), unit="file", desc="txt2npy", disable=not progress or not tasks)
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
        bar.close()


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
    if not npy_dir.is_dir():
        raise FileNotFoundError(f"{os.path.abspath(npy_dir)}: .skeleton.npy folder does not exist")
    expected = official_samples(dataset) - load_missing(missing, dataset)
    present = {name.removesuffix(NPY_SUFFIX) for name in os.listdir(npy_dir) if name.endswith(NPY_SUFFIX)}
    return Completeness(len(expected), len(present & expected), sorted(expected - present),
                        sorted(present - expected))
