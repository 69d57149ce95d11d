"""The random survival forest as arrays: prediction, the month grid, the round trip."""

from __future__ import annotations

import numpy as np
import pytest

from inference.tasks.survival import SurvivalForest

_MONTHS = np.arange(0.0, 61.0, 1.0, dtype=np.float32)


def _forest() -> SurvivalForest:
    """Two trees: tree 0 splits feature 0 at 1.0; tree 1 splits feature 1 at -0.5, then 0."""
    slow = np.exp(-_MONTHS / 40.0)
    fast = np.exp(-_MONTHS / 10.0)
    mid = np.exp(-_MONTHS / 20.0)
    survival = np.stack([(slow + fast) / 2, slow, fast,  # tree 0: root, left, right
                         mid, slow, mid, mid, fast])  # fmt: skip
    return SurvivalForest(
        tree_offset=np.array([0, 3, 8]),
        children_left=np.array([1, -1, -1, 4, -1, 6, -1, -1]),
        children_right=np.array([2, -1, -1, 5, -1, 7, -1, -1]),
        feature=np.array([0, -1, -1, 1, -1, 0, -1, -1]),
        threshold=np.array([1.0, -2.0, -2.0, -0.5, -2.0, 3.0, -2.0, -2.0]),
        survival=survival.astype(np.float32),
        months=_MONTHS,
    )


def test_each_row_reaches_its_leaves_and_the_forest_averages_them() -> None:
    forest = _forest()
    slow, fast, mid = (np.exp(-_MONTHS / s) for s in (40.0, 10.0, 20.0))
    x = np.array([[0.5, -1.0], [0.5, 0.0], [2.0, 0.0], [4.0, 0.0], [1.0, -0.5]])
    expected = np.stack([(slow + slow) / 2, (slow + mid) / 2, (fast + mid) / 2,
                         (fast + fast) / 2, (slow + slow) / 2])  # fmt: skip
    assert forest.survival_function(x) == pytest.approx(expected, abs=1e-6)
    assert forest.n_features == 2
    death = forest.death_probability(x, (12.0, 24.0, 36.0))
    assert death.shape == (5, 3)
    assert death == pytest.approx(1.0 - expected[:, [12, 24, 36]], abs=1e-6)
    assert np.all(np.diff(death, axis=1) >= 0)
    # the split reads the row as float32, as scikit-learn: 1.00000001 is 1.0, left
    assert forest.survival_function([[1.00000001, -1.0]]) == pytest.approx(expected[[0]])


def test_a_month_off_the_grid_and_short_rows_are_refused() -> None:
    forest = _forest()
    with pytest.raises(ValueError, match="not on the forest's grid"):
        forest.death_probability([[0.0, 0.0]], (12.5,))
    with pytest.raises(ValueError, match="not on the forest's grid"):
        forest.death_probability([[0.0, 0.0]], (72.0,))
    with pytest.raises(ValueError, match="all its features"):
        forest.survival_function([[0.0]])
    with pytest.raises(ValueError, match="finite"):
        forest.survival_function([[np.nan, 0.0]])


def test_the_arrays_round_trip() -> None:
    forest = _forest()
    arrays = forest.arrays()
    names = ("tree_offset", "children_left", "children_right", "feature", "threshold",
             "survival", "months")  # fmt: skip
    assert set(arrays) == {f"forest.{k}" for k in names}
    again = SurvivalForest.from_arrays(arrays)
    x = np.random.default_rng(0).normal(0.0, 2.0, (20, 2))
    assert np.array_equal(again.survival_function(x), forest.survival_function(x))
    half = dict(arrays, **{"forest.survival": arrays["forest.survival"].astype(np.float16)})
    widened = SurvivalForest.from_arrays(half)
    assert widened.survival.dtype == np.float32
    assert widened.survival_function(x) == pytest.approx(forest.survival_function(x), abs=1e-3)


def test_inconsistent_arrays_are_refused() -> None:
    arrays = _forest().arrays()
    for key, value, message in (
        ("forest.tree_offset", np.array([0, 3, 7]), "offsets"),
        ("forest.threshold", np.zeros(7), "threshold"),
        ("forest.survival", np.zeros((8, 10), np.float32), "month grid"),
    ):
        with pytest.raises(ValueError, match=message):
            SurvivalForest.from_arrays(dict(arrays, **{key: value}))
