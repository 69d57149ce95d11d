"""Per-stage wall-clock timings, as ``result.timings_s`` records them."""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping
from typing import TypeVar

__all__ = ["timed"]

_T = TypeVar("_T")


def timed(timings: MutableMapping[str, float], stage: str, call: Callable[[], _T]) -> _T:
    """Run ``call`` and record its seconds under ``stage`` (also when it raises).

    Parameters
    ----------
    timings
        Receives ``stage``: seconds, rounded to the millisecond.
    stage
        The stage's name (e.g. ``read``, ``inference``, ``write_seg``).
    call
        The work.

    Returns
    -------
    object
        What ``call`` returned.
    """
    start = time.perf_counter()
    try:
        return call()
    finally:
        timings[stage] = round(time.perf_counter() - start, 3)
