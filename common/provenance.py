"""The provenance contract: every file the project writes says what made it, and every step that
reads one compares that record with what it is about to use through ``check`` (one wording, one
fix). The records themselves are plain dicts whose fields each writer documents; this module holds
only what all of them share:

- ``file_digest`` / ``bytes_digest``: content digests (SHA-256) of the inputs a record names;
- ``differences``: "field: recorded -> now" for each field two records state differently;
- ``check`` / ``refusal``: the one refusal line, ``<file>: made from other inputs than this step
  uses (<field>: <recorded> -> <now>; ...); <fix>``;
- ``check_class_names``: the ordered class names a model learnt against those of the data (the
  first differing position named);
- ``checked_count`` / ``MAX_*``: a count a file declares, checked against what the file can hold
  and a stated limit before anything is allocated (readers that no small file can push into
  gigabytes).

A field a record does not state agrees with anything (files written before it was recorded, the
authors' released checkpoints, which record nothing), unless the caller says it must be known.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

DIGEST_CHUNK = 1 << 22
# Limits a reader states before it allocates: far above any real dataset (NTU-120 has 114,480
# samples, 120 classes, sequences of at most 300 frames), far below what a crafted file declares.
MAX_SAMPLES = 10_000_000
MAX_CLASSES = 100_000
MAX_FRAMES = 100_000
MAX_ALLOCATION = 256 << 20   # bytes one declared array may take before its data is checked to be there


class ProvenanceError(ValueError):
    """A file made from other inputs than a step uses; str(e) is the one refusal line."""


def file_digest(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(DIGEST_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def bytes_digest(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def shown(value: object, limit: int = 60) -> str:
    """A recorded value as a refusal shows it: short digests, layouts by name and digest."""
    if isinstance(value, Mapping) and "name" in value and "digest" in value:
        return f"{value['name']} (digest {str(value['digest'])[:8]})"
    if isinstance(value, str) and len(value) in (40, 64) and all(c in "0123456789abcdef" for c in value):
        return value[:12]   # a content digest: enough to tell two apart
    text = repr(value) if isinstance(value, str) and not value else str(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def differing(recorded: Mapping, now: Mapping, fields: Iterable[str], unknown_agrees: bool = True) -> list[str]:
    """The fields on which two records disagree; a field one of them does not state agrees with
    anything unless ``unknown_agrees`` is False."""
    return [k for k in fields if recorded.get(k) != now.get(k)
            and (not unknown_agrees or (recorded.get(k) is not None and now.get(k) is not None))]


def differences(recorded: Mapping, now: Mapping, fields: Iterable[str], unknown_agrees: bool = True) -> list[str]:
    """'field: recorded -> now' for each field that differs."""
    return [f"{k}: {shown(recorded.get(k))} -> {shown(now.get(k))}"
            for k in differing(recorded, now, fields, unknown_agrees)]


def refusal(file: str | Path, differ: Sequence[str], fix: str, what: str = "inputs", *, made: str | None = None,
            direction: str = "recorded -> now", error: type[ValueError] = ProvenanceError) -> ValueError:
    """The one refusal wording of the contract: '<file>: <made> (<differences>, <direction>); <fix>'.
    ``made`` defaults to 'made from other <what> than this step uses'; a model's refusals say
    'trained on ...' with 'model -> data'. ``error``: the class raised (a ValueError, one line)."""
    made = made or f"made from other {what} than this step uses"
    return error(f"{file}: {made} ({'; '.join(differ)}, {direction}); {fix}")


def check(recorded: Mapping | None, now: Mapping, fields: Iterable[str], *, file: str | Path, fix: str,
          what: str = "inputs", unknown_agrees: bool = True) -> None:
    """Refuse (ProvenanceError) when ``recorded`` (what made ``file``) and ``now`` (what the step is
    about to use) differ in any of ``fields``. A file without a record (None) is accepted: the
    caller says so where it matters."""
    if recorded is None:
        return
    if differ := differences(recorded, now, fields, unknown_agrees):
        raise refusal(file, differ, fix, what)


def first_difference(recorded: Sequence[str], now: Sequence[str]) -> str | None:
    """Where two ordered name lists first differ ('class 3: "wave" -> "kick"', or their counts)."""
    for k, (a, b) in enumerate(zip(recorded, now)):
        if a != b:
            return f"class {k}: {a!r} -> {b!r}"
    if len(recorded) != len(now):
        return f"{len(recorded)} classes -> {len(now)}"
    return None


def check_class_names(recorded: Sequence[str] | None, now: Sequence[str], *, file: str | Path, fix: str) -> None:
    """Refuse a model (``file``) whose ordered class names differ from the data's, naming the first
    difference; a model that records none (the release's, older ones) is accepted."""
    if recorded is None:
        return
    if differ := first_difference([str(n) for n in recorded], [str(n) for n in now]):
        raise refusal(file, [differ], fix, made="trained on other classes than this data has", direction="model -> data")


def checked_count(value: object, limit: int, *, file: str | Path, what: str) -> int:
    """A count a file declares (samples, classes, frames), as an int within [0, limit]; a
    one-line ValueError naming the file otherwise, before anything of that size is made."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise ValueError(f"{file}: {what} is {type(value).__name__}, not a whole number")
    count = int(value.__index__())
    if not 0 <= count <= limit:
        raise ValueError(f"{file}: {what} {count} is outside 0..{limit:,} (a damaged or crafted file)")
    return count


def checked_allocation(shape: Sequence[int], itemsize: int, available: int | None, *, file: str | Path,
                       what: str, limit: int = MAX_ALLOCATION) -> int:
    """The bytes an array of ``shape`` takes, refused (one-line ValueError naming the file) when it
    needs more than the file holds (``available`` bytes, None: not known) and more than ``limit``."""
    total = itemsize
    for n in shape:
        if n < 0:
            raise ValueError(f"{file}: {what} declares a negative dimension {tuple(shape)}")
        total *= int(n)
    if total > limit and (available is None or total > available):
        raise ValueError(f"{file}: {what} declares {tuple(shape)} ({total / 2**20:,.0f} MiB) but the file holds "
                         f"{'far less' if available is None else f'{available / 2**20:,.1f} MiB'}; a damaged or "
                         f"crafted file")
    return total
