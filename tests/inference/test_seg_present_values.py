"""The values on the SEG frames from a histogram, as ``np.unique`` gave them (issue 27)."""

from __future__ import annotations

import numpy as np
import pytest

from inference.seg_writer import present_values, renumber


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.bool_])
@pytest.mark.parametrize("seed", range(3))
def test_present_values_match_unique(dtype: type[np.generic], seed: int) -> None:
    rng = np.random.default_rng(seed)
    top = 2 if dtype is np.bool_ else 300
    array = np.zeros((40, 30, 1000), dtype=dtype)  # more than one 1 Mi chunk
    array.flat[rng.integers(0, array.size, 20)] = rng.integers(0, top, 20)
    if dtype in (np.int16, np.int32) and seed == 1:
        array.flat[5] = -3  # negative values take np.unique
    expected = sorted(int(v) for v in np.unique(array) if v != 0)
    assert present_values(array) == expected


def test_renumber_is_the_lookup_and_skips_an_identity() -> None:
    frames = np.zeros((3, 4, 5), dtype=np.uint8)
    frames[0, 1, 2], frames[2, 3, 4] = 1, 3
    identity = np.arange(4, dtype=np.uint8)
    assert renumber(frames, identity) is frames
    lookup = np.array([0, 1, 0, 2], dtype=np.uint8)
    np.testing.assert_array_equal(renumber(frames, lookup), lookup[frames])
    wide = frames.astype(np.int32)  # another dtype: the lookup's uint8 result
    assert renumber(wide, identity).dtype == np.uint8


def test_renumber_looks_up_only_the_span_and_keeps_background() -> None:
    frames = np.zeros((5, 4, 5), dtype=np.uint8)
    frames[1, 1, 2], frames[3, 3, 4] = 1, 3
    lookup = np.array([0, 2, 0, 1], dtype=np.uint8)
    np.testing.assert_array_equal(renumber(frames, lookup, slice(1, 4)), lookup[frames])
    with pytest.raises(ValueError, match="background"):
        renumber(frames, np.array([1, 0, 0, 2], dtype=np.uint8))
