"""The linear stages: radiomics projection (PCA -> LASSO selection) and per-horizon logistics."""

from __future__ import annotations

import numpy as np
import pytest

from inference.tasks.survival import HorizonLogistic, RadiomicsProjection, logit


def _logistic(coef: list[list[float]], intercept: list[float]) -> HorizonLogistic:
    return HorizonLogistic(
        inputs=("a", "b"), impute=np.array([2.0, -1.0]), mean=np.array([1.0, 0.0]),
        scale=np.array([2.0, 0.0]), coef=np.asarray(coef), intercept=np.asarray(intercept),
    )  # fmt: skip


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + float(np.exp(-x)))


def test_logit_is_clipped() -> None:
    assert logit([0.5])[0] == 0.0
    assert logit([0.0])[0] == pytest.approx(np.log(0.001 / 0.999))
    assert logit([1.0])[0] == pytest.approx(-logit([0.0])[0])


def test_predict_is_the_hand_computation_and_never_decreases() -> None:
    # horizon 2 alone would be less probable than horizon 1: the running maximum holds
    model = _logistic([[1.0, 0.5], [0.2, 0.0], [2.0, 0.0]], [0.0, -1.0, 0.5])
    x = np.array([[3.0, 4.0], [-1.0, 0.0]])
    p = model.predict(x)
    # scale 0 (a constant column) divides by 1
    raw = [[_sigmoid(c[0] * (r[0] - 1.0) / 2.0 + c[1] * r[1] + b)
            for c, b in zip([[1.0, 0.5], [0.2, 0.0], [2.0, 0.0]], [0.0, -1.0, 0.5], strict=True)]
           for r in x]  # fmt: skip
    assert p == pytest.approx(np.maximum.accumulate(np.asarray(raw), axis=1))
    assert p[0, 1] == pytest.approx(p[0, 0]) and p[0, 1] > raw[0][1]
    assert np.all(np.diff(p, axis=1) >= 0) and p.shape == (2, 3)


def test_missing_inputs_take_the_imputation_value() -> None:
    model = _logistic([[1.0, 0.5]] * 3, [0.0, 0.1, 0.2])
    missing = model.predict(np.array([[np.nan, 3.0], [5.0, np.nan]]))
    assert missing == pytest.approx(model.predict(np.array([[2.0, 3.0], [5.0, -1.0]])))
    assert not np.isnan(missing).any()


def test_horizon_specific_inputs() -> None:
    model = _logistic([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], [0.0, 0.0, 0.0])
    same = np.array([[3.0, 0.0]])
    per_horizon = np.stack([same, same + np.array([2.0, 0.0]), same + np.array([4.0, 0.0])])
    assert per_horizon.shape == (3, 1, 2)
    p = model.predict(per_horizon)
    assert p.shape == (1, 3)
    assert p[0] == pytest.approx([_sigmoid(1.0), _sigmoid(2.0), _sigmoid(3.0)])
    assert model.predict(same) == pytest.approx(np.full((1, 3), _sigmoid(1.0)))


def test_the_logistic_round_trips_and_refuses_bad_shapes() -> None:
    model = _logistic([[1.0, 0.5], [0.2, 0.0], [2.0, 0.0]], [0.0, -1.0, 0.5])
    arrays = model.arrays("fusion")
    assert set(arrays) == {f"fusion.{k}" for k in ("impute", "mean", "scale", "coef",
                                                  "intercept")}  # fmt: skip
    again = HorizonLogistic.from_arrays("fusion", ("a", "b"), arrays)
    x = np.array([[0.3, np.nan], [1.0, 2.0]])
    assert np.array_equal(again.predict(x), model.predict(x))
    with pytest.raises(ValueError, match="one value per input"):
        HorizonLogistic.from_arrays("fusion", ("a", "b", "c"), arrays)
    with pytest.raises(ValueError, match="coef"):
        _logistic([[1.0, 0.5]], [0.0, 0.1])
    with pytest.raises(ValueError, match="finite"):
        _logistic([[np.nan, 0.5]], [0.0])


def _projection() -> RadiomicsProjection:
    rng = np.random.default_rng(3)
    return RadiomicsProjection(
        feature_names=("f0", "f1", "f2", "f3"), mean=rng.normal(size=4),
        scale=np.array([1.5, 0.0, 2.0, 0.5]), pca_mean=rng.normal(size=4),
        components=rng.normal(size=(3, 4)), selected=np.array([2, 0]),
    )  # fmt: skip


def test_the_projection_is_the_hand_computation() -> None:
    projection = _projection()
    x = np.random.default_rng(4).normal(size=(5, 4))
    expected = np.empty((5, 2))
    for n, row in enumerate(x):
        z = [(row[d] - projection.mean[d]) / (projection.scale[d] or 1.0) for d in range(4)]
        centred = [z[d] - projection.pca_mean[d] for d in range(4)]
        for out, k in enumerate((2, 0)):
            expected[n, out] = sum(projection.components[k, d] * centred[d] for d in range(4))
    assert projection.transform(x) == pytest.approx(expected)
    assert projection.transform(x[0]) == pytest.approx(expected[:1])


def test_the_projection_reads_rows_by_name_and_round_trips() -> None:
    projection = _projection()
    rows = [{"f3": 4.0, "f0": 1.0, "f2": 3.0, "f1": 2.0, "extra": 9.0}]
    assert projection.matrix(rows).tolist() == [[1.0, 2.0, 3.0, 4.0]]
    with pytest.raises(ValueError, match="f2"):
        projection.matrix([{"f0": 1.0, "f1": 2.0, "f3": 4.0}])
    again = RadiomicsProjection.from_arrays(projection.feature_names, projection.arrays())
    x = np.ones((2, 4))
    assert np.array_equal(again.transform(x), projection.transform(x))
    with pytest.raises(ValueError, match="one value per feature"):
        RadiomicsProjection.from_arrays(("f0", "f1"), projection.arrays())
    arrays = dict(projection.arrays(), **{"radiomics.selected": np.array([3])})
    with pytest.raises(ValueError, match="existing component"):
        RadiomicsProjection.from_arrays(projection.feature_names, arrays)
