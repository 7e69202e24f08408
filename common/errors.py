"""One-line errors, the project's one rule: an expected error is printed as one line that names
the file (or folder) and the problem, never as a traceback."""
from __future__ import annotations

import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path


def naming(error: BaseException, path: str | Path) -> str:
    """The error's message, naming ``path`` once."""
    reason = str(error) or type(error).__name__
    return reason if str(path) in reason else f"{path}: {reason}"


def cause_text(e: BaseException, limit: int = 200) -> str:
    """An exception's message as one short line, for one-line errors that quote a cause: its last
    non-empty line (where a multi-line message, such as a quoted traceback, states the problem)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    text = lines[-1] if lines else type(e).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def error_line(e: BaseException) -> str:
    """An expected error as one line. A DataLoader worker's error comes back re-raised as
    "Caught ValueError in DataLoader worker process 0. Original Traceback ...": keep the
    worker's own message (the last unindented "Type: message" line of the traceback)."""
    lines = str(e).splitlines()
    if any(line.startswith("Original Traceback") for line in lines):
        for i in range(len(lines) - 1, -1, -1):
            match = re.match(r"^[A-Za-z_][\w.]*: (.*)$", lines[i])
            if match:
                lines = [match.group(1), *lines[i + 1:]]
                break
    return " ".join(line.strip() for line in lines if line.strip())


INTERRUPTED_STATUS = 130   # what a shell reports for a process stopped by Ctrl-C (128 + SIGINT)


def interrupted_line(kept: str) -> str:
    """The one line a front end prints on Ctrl-C instead of a traceback; ``kept`` says what stays."""
    return f"interrupted; {kept}; rerun the same command to continue"


FAILED_STATUS = 2   # an expected failure, told in one line


def one_line_run(body: Callable[[], int], expected: tuple[type[BaseException], ...], kept: str, *,
                 describe: Callable[[BaseException], str] = str, prefix: str = "error: ") -> int:
    """A front end's run: ``body``'s exit status; an ``expected`` error printed as one line on
    stderr (FAILED_STATUS), Ctrl-C as ``interrupted_line(kept)`` (INTERRUPTED_STATUS); never a
    traceback."""
    try:
        return body()
    except expected as error:
        print(f"{prefix}{describe(error)}", file=sys.stderr)
        return FAILED_STATUS
    except KeyboardInterrupt:
        print(interrupted_line(kept), file=sys.stderr)
        return INTERRUPTED_STATUS


def ignore_interrupts() -> None:
    """Pool initializer: Ctrl-C goes to every process of the terminal's group; the workers leave it
    to the parent, which stops them, so no worker prints a traceback of its own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
