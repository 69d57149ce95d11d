"""Clinical preprocessing of METHOD.md section 1: impute, one-hot, z-score (numpy only).

Continuous variables are imputed by the mean of their k = 5 nearest training rows (distance:
NaN-aware Euclidean over the z-scored continuous columns both rows have, scaled up for the
missing ones, as scikit-learn's ``nan_euclidean``); categorical variables by the training mode.
Categoricals are then one-hot encoded over the specification's codes and continuous values are
z-scored with the training statistics. Everything is fitted on the training split only and
serialised to JSON with the reference rows, so the bundle never refits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from pancreas_contracts.clinical import CLINICAL_VARIABLES, ClinicalVariables, VariableKind

__all__ = ["ClinicalPreprocessor", "Prepared", "clinical_matrix"]

FloatArray = npt.NDArray[np.float64]

_CONTINUOUS = tuple(v for v in CLINICAL_VARIABLES if v.kind is VariableKind.CONTINUOUS)
_CATEGORICAL = tuple(v for v in CLINICAL_VARIABLES if v.kind is VariableKind.CATEGORICAL)
_INDEX = {v.name: i for i, v in enumerate(CLINICAL_VARIABLES)}


def clinical_matrix(rows: Sequence[ClinicalVariables | Mapping[str, float | None]]) -> FloatArray:
    """``(N, 17)`` matrix in specification order, NaN for missing values."""
    out = np.full((len(rows), len(CLINICAL_VARIABLES)), np.nan)
    for i, row in enumerate(rows):
        values = row.values if isinstance(row, ClinicalVariables) else row
        for name, value in values.items():
            if name in _INDEX and value is not None:
                out[i, _INDEX[name]] = float(value)
    return out


@dataclass(frozen=True)
class Prepared:
    """Preprocessed clinical inputs.

    Attributes
    ----------
    features
        ``(N, F)`` model inputs (float32).
    imputed
        ``(N, 17)`` bool: which raw values were imputed.
    """

    features: npt.NDArray[np.float32]
    imputed: npt.NDArray[np.bool_]

    def imputed_names(self, row: int) -> tuple[str, ...]:
        """Names of the variables imputed for ``row``."""
        return tuple(
            v.name for v, m in zip(CLINICAL_VARIABLES, self.imputed[row], strict=True) if m
        )


class ClinicalPreprocessor:
    """KNN / mode imputer, one-hot encoder and z-scorer fitted on training rows.

    Parameters
    ----------
    k
        Neighbours for continuous imputation.
    """

    def __init__(self, k: int = 5) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.k = k
        self._reference: FloatArray | None = None  # raw continuous training values (NaN kept)
        self._ref_mean: FloatArray | None = None  # for the KNN distance only
        self._ref_std: FloatArray | None = None
        self._modes: FloatArray | None = None
        self._mean: FloatArray | None = None  # z-score statistics after imputation
        self._std: FloatArray | None = None
        self.n_fitted = 0

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`from_json`) has run."""
        return self._reference is not None

    @property
    def n_features(self) -> int:
        """Length of the output vector (continuous columns + one-hot columns)."""
        return len(_CONTINUOUS) + sum(len(v.categories) for v in _CATEGORICAL)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the output columns."""
        names = [v.name for v in _CONTINUOUS]
        names += [f"{v.name}={c}" for v in _CATEGORICAL for c in v.categories]
        return tuple(names)

    def fit(self, raw: FloatArray) -> ClinicalPreprocessor:
        """Fit on the ``(N, 17)`` training matrix of :func:`clinical_matrix`.

        Raises
        ------
        ValueError
            On a wrongly shaped or empty matrix.
        """
        raw = _check(raw)
        if raw.shape[0] == 0:
            raise ValueError("cannot fit the clinical preprocessor on no rows")
        cont = raw[:, [_INDEX[v.name] for v in _CONTINUOUS]]
        self._reference = cont.copy()
        self._ref_mean = _nan_stat(np.nanmean, cont, 0.0)
        self._ref_std = _nan_stat(np.nanstd, cont, 1.0)
        self._ref_std[self._ref_std <= 0] = 1.0
        self._modes = np.array([_mode(raw[:, _INDEX[v.name]], v.categories) for v in _CATEGORICAL])
        self.n_fitted = int(raw.shape[0])
        self._mean = None
        self._std = None
        filled = self._impute_continuous(cont, exclude_self=True)
        self._mean = filled.mean(axis=0)
        std = filled.std(axis=0)
        std[std <= 0] = 1.0
        self._std = std
        return self

    def transform(self, raw: FloatArray) -> Prepared:
        """Impute, encode and scale an ``(N, 17)`` matrix (never refits).

        Raises
        ------
        ValueError
            If not fitted or on a wrongly shaped matrix.
        """
        raw = _check(raw)
        if self._mean is None or self._std is None or self._modes is None:
            raise ValueError("the clinical preprocessor is not fitted")
        cont = raw[:, [_INDEX[v.name] for v in _CONTINUOUS]]
        filled = self._impute_continuous(cont, exclude_self=False)
        columns = [(filled - self._mean) / self._std]
        for j, variable in enumerate(_CATEGORICAL):
            values = raw[:, _INDEX[variable.name]].copy()
            values[~np.isin(values, variable.categories)] = self._modes[j]
            columns.append(np.stack([values == c for c in variable.categories], axis=1))
        features = np.concatenate(columns, axis=1).astype(np.float32)
        return Prepared(features, np.isnan(raw))

    def _impute_continuous(self, cont: FloatArray, *, exclude_self: bool) -> FloatArray:
        assert self._reference is not None and self._ref_mean is not None
        assert self._ref_std is not None
        ref = (self._reference - self._ref_mean) / self._ref_std
        query = (cont - self._ref_mean) / self._ref_std
        out = cont.copy()
        for i in np.flatnonzero(np.isnan(cont).any(axis=1)):
            dist = _nan_euclidean(query[i], ref)
            if exclude_self:
                dist[i] = np.inf
            for j in np.flatnonzero(np.isnan(cont[i])):
                donors = np.flatnonzero(~np.isnan(self._reference[:, j]) & np.isfinite(dist))
                if donors.size == 0:
                    out[i, j] = self._ref_mean[j]
                    continue
                nearest = donors[np.argsort(dist[donors], kind="stable")[: self.k]]
                out[i, j] = float(self._reference[nearest, j].mean())
        return out

    def to_json(self) -> dict[str, Any]:
        """JSON-ready state: reference rows, modes and scaler statistics.

        Raises
        ------
        ValueError
            If not fitted.
        """
        if self._reference is None or self._mean is None or self._std is None:
            raise ValueError("the clinical preprocessor is not fitted")
        assert self._modes is not None and self._ref_mean is not None and self._ref_std is not None
        return {
            "k": self.k,
            "continuous": [v.name for v in _CONTINUOUS],
            "categorical": {v.name: list(v.categories) for v in _CATEGORICAL},
            "feature_names": list(self.feature_names),
            "imputer_reference": [[_json_float(x) for x in row] for row in self._reference],
            "imputer_distance_mean": self._ref_mean.tolist(),
            "imputer_distance_std": self._ref_std.tolist(),
            "categorical_modes": self._modes.tolist(),
            "scaler_mean": self._mean.tolist(),
            "scaler_std": self._std.tolist(),
            "n_fitted": self.n_fitted,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClinicalPreprocessor:
        """Rebuild from :meth:`to_json` output.

        Raises
        ------
        ValueError
            If the state does not match this code's variable specification.
        """
        try:
            if list(data["continuous"]) != [v.name for v in _CONTINUOUS]:
                raise ValueError("clinical preprocessor: continuous variables differ from spec")
            out = cls(int(data["k"]))
            ref = np.array(
                [
                    [np.nan if x is None else float(x) for x in row]
                    for row in data["imputer_reference"]
                ],
                dtype=np.float64,
            ).reshape(-1, len(_CONTINUOUS))
            out._reference = ref
            out._ref_mean = np.asarray(data["imputer_distance_mean"], dtype=np.float64)
            out._ref_std = np.asarray(data["imputer_distance_std"], dtype=np.float64)
            out._modes = np.asarray(data["categorical_modes"], dtype=np.float64)
            out._mean = np.asarray(data["scaler_mean"], dtype=np.float64)
            out._std = np.asarray(data["scaler_std"], dtype=np.float64)
            out.n_fitted = int(data["n_fitted"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"clinical preprocessor state is incomplete: {exc}") from exc
        return out


def _check(raw: FloatArray) -> FloatArray:
    arr = np.asarray(raw, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(CLINICAL_VARIABLES):
        raise ValueError(f"clinical matrix must be (N, {len(CLINICAL_VARIABLES)})")
    return arr


def _nan_stat(func: Any, cont: FloatArray, default: float) -> FloatArray:
    out = np.full(cont.shape[1], default)
    for j in range(cont.shape[1]):
        column = cont[:, j]
        if np.any(~np.isnan(column)):
            out[j] = float(func(column))
    return out


def _nan_euclidean(row: FloatArray, ref: FloatArray) -> FloatArray:
    both = ~np.isnan(ref) & ~np.isnan(row)[None, :]
    diff = np.where(both, ref - np.nan_to_num(row)[None, :], 0.0)
    counts = both.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.sqrt((diff**2).sum(axis=1) * row.size / counts)
    dist[counts == 0] = np.inf
    out: FloatArray = np.asarray(dist, dtype=np.float64)
    return out


def _mode(column: FloatArray, categories: tuple[int, ...]) -> float:
    counts = [int(np.sum(column == c)) for c in categories]
    return float(categories[int(np.argmax(counts))])


def _json_float(x: float) -> float | None:
    return None if math.isnan(x) else float(x)
