"""Stratified nested cross-validation splits (outer 5-fold test, inner train/validation)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["FoldSplit", "nested_splits", "stratified_folds"]

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class FoldSplit:
    """Indices of one outer fold: inner train, inner validation and outer test."""

    fold: int
    train: IntArray
    val: IntArray
    test: IntArray


def stratified_folds(labels: Sequence[int], k: int, seed: int) -> list[IntArray]:
    """Split indices into ``k`` folds with each class spread as evenly as possible.

    Raises
    ------
    ValueError
        If ``k < 2`` or there are fewer cases than folds.
    """
    if k < 2 or len(labels) < k:
        raise ValueError(f"need at least {max(k, 2)} cases and k >= 2 for {k}-fold splits")
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    offset = 0
    arr = np.asarray(labels)
    for c in sorted(set(arr.tolist())):
        members = rng.permutation(np.flatnonzero(arr == c))
        for i, index in enumerate(members):
            folds[(offset + i) % k].append(int(index))
        offset += len(members)  # the next class starts where this one ended: balanced sizes
    return [np.sort(np.asarray(f, dtype=np.int64)) for f in folds]


def nested_splits(labels: Sequence[int], k: int = 5, seed: int = 0) -> list[FoldSplit]:
    """Outer ``k``-fold test sets; the rest split 80/20 stratified into train/validation.

    With ``k = 5`` this is METHOD.md's 20 % test, 64 % train, 16 % validation.
    """
    arr = np.asarray(labels)
    outer = stratified_folds(labels, k, seed)
    splits = []
    for fold, test in enumerate(outer):
        rest = np.setdiff1d(np.arange(len(arr)), test)
        inner = stratified_folds(arr[rest].tolist(), k, seed + 1000 + fold)
        val = np.sort(rest[inner[0]])
        train = np.setdiff1d(rest, val)
        splits.append(FoldSplit(fold, train, val, test))
    return splits
