"""One way to map a function over items, in order, serially or in spawned processes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from multiprocessing import get_context
from typing import Any, TypeVar

__all__ = ["ordered_map"]

_T = TypeVar("_T")


def ordered_map(
    function: Callable[..., _T], items: Iterable[Any], *constants: Any, workers: int = 1
) -> Iterator[_T]:
    """``function(item, *constants)`` for every item, yielded in the items' order.

    With ``workers`` > 1 (and more than one item) the calls run in up to that many spawned
    processes (never forked: CUDA and forked parents do not mix), so ``function``, the items
    and the constants must be picklable; otherwise they run one by one in this process as
    the results are consumed.
    """
    items = list(items)
    extra = [repeat(c) for c in constants]
    if workers < 2 or len(items) < 2:
        yield from map(function, items, *extra)
        return
    context = get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(items)), mp_context=context) as pool:
        yield from pool.map(function, items, *extra)
