"""Notices that hold for a whole run, said once per process ("running on the CPU", "fewer samples
than the official split", "TensorBoard not installed"), however many models one command trains
or tests (``-desc GD,JDD,...``)."""
from __future__ import annotations

import sys
from collections.abc import Callable

_said: set[str] = set()


def notice_once(line: str, log: Callable[[str], None] | None = None) -> bool:
    """Say ``line`` (with ``log``, default stderr) unless this process said it already; True when said."""
    if line in _said:
        return False
    _said.add(line)
    (log or (lambda text: print(text, file=sys.stderr)))(line)
    return True


def forget_notices() -> None:
    """Say every notice again (tests; a long-lived process starting an unrelated run)."""
    _said.clear()
