"""``inference.volume.nonzero_box`` and ``value_counts`` against plain numpy."""

from __future__ import annotations

import numpy as np
import pytest

from inference.volume import nonzero_box, value_counts


def _reference(array: np.ndarray, margin: tuple[int, int, int]) -> tuple[slice, ...] | None:
    found = np.argwhere(array)
    if len(found) == 0:
        return None
    low = np.maximum(found.min(axis=0) - margin, 0)
    high = np.minimum(found.max(axis=0) + 1 + np.asarray(margin), array.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))


@pytest.mark.parametrize("margin", [(0, 0, 0), (1, 1, 1), (1, 1, 0), (5, 0, 3)])
def test_box_matches_argwhere(margin: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(7)
    for _ in range(30):
        array = np.zeros((17, 13, 11), dtype=np.uint8)
        count = int(rng.integers(1, 5))
        for _ in range(count):
            i, j, k = (int(rng.integers(0, n)) for n in array.shape)
            array[i, j, k] = int(rng.integers(1, 16))
        assert nonzero_box(array, margin) == _reference(array, margin)


def test_box_of_an_empty_array_is_none() -> None:
    assert nonzero_box(np.zeros((4, 5, 6), dtype=bool)) is None


def test_value_counts_match_bincount_and_ignore_values_beyond_length() -> None:
    rng = np.random.default_rng(3)
    values = rng.integers(0, 20, size=(40, 30, 1000), dtype=np.uint8)  # 1.2 Mi: two chunks
    expected = np.bincount(values.ravel(), minlength=20)[:16]
    assert np.array_equal(value_counts(values, 16), expected)
