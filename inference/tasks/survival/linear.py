"""The linear stages of the survival model, as arrays.

- :class:`RadiomicsProjection`: standardise the 1,037 features (training-fold mean and
  scale), project onto the principal components that explain 80 % of their variance, keep
  the components the LASSO retained (the paper's PCA -> LASSO); the forest reads those.
- :class:`HorizonLogistic`: one logistic regression per horizon (1, 2, 3 years), with
  training-fold medians for missing inputs and training-fold standardisation; the clinical
  model and the paper's logistic-regression fusion are both of this kind.

Death by a later horizon cannot be less probable than by an earlier one, but three separate
regressions can disagree; the answer is made non-decreasing by a running maximum (stated in
``docs/survival.md``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["HorizonLogistic", "RadiomicsProjection", "logit"]

_EPS = 1e-3


def logit(p: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``log(p / (1 - p))`` with ``p`` clipped to [0.001, 0.999]."""
    q = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0 - _EPS)
    result: npt.NDArray[np.float64] = np.log(q / (1.0 - q))
    return result


def _scale(scale: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    # A constant training column (M is always M0 in the phantoms) must not divide by zero.
    return np.where(scale > 1e-12, scale, 1.0)


@dataclass(frozen=True, eq=False)
class RadiomicsProjection:
    """Standardise, project on the kept principal components, select the LASSO's.

    Attributes
    ----------
    feature_names
        The radiomic features in column order.
    mean, scale
        Standardisation (training fold).
    pca_mean, components
        The PCA of the standardised features: ``(k, d)`` components.
    selected
        Indices of the components the LASSO kept (what the forest reads).
    """

    feature_names: tuple[str, ...]
    mean: npt.NDArray[np.float64]
    scale: npt.NDArray[np.float64]
    pca_mean: npt.NDArray[np.float64]
    components: npt.NDArray[np.float64]
    selected: npt.NDArray[np.int64]

    def __post_init__(self) -> None:
        d = len(self.feature_names)
        if self.mean.shape != (d,) or self.scale.shape != (d,) or self.pca_mean.shape != (d,):
            raise ValueError("standardisation and PCA mean need one value per feature")
        if self.components.ndim != 2 or self.components.shape[1] != d:
            raise ValueError("components must be (k, features)")
        if len(self.selected) == 0 or self.selected.max() >= len(self.components):
            raise ValueError("the selection must name at least one existing component")

    def matrix(self, rows: Sequence[Mapping[str, float]]) -> npt.NDArray[np.float64]:
        """The features of ``rows`` in column order.

        Raises
        ------
        ValueError
            If a row lacks a feature.
        """
        try:
            return np.array([[row[n] for n in self.feature_names] for row in rows], float)
        except KeyError as exc:
            raise ValueError(f"radiomic feature {exc} is missing") from exc

    def transform(self, features: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``(n, len(selected))``: the selected component scores of feature rows."""
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        z = (x - self.mean) / _scale(self.scale)
        scores = (z - self.pca_mean) @ self.components.T
        result: npt.NDArray[np.float64] = scores[:, self.selected]
        return result

    def arrays(self) -> dict[str, npt.NDArray[np.generic]]:
        """By name, for the bundle's safetensors file (names go in ``bundle.json``)."""
        return {
            "radiomics.mean": self.mean,
            "radiomics.scale": self.scale,
            "radiomics.pca_mean": self.pca_mean,
            "radiomics.components": self.components,
            "radiomics.selected": self.selected,
        }

    @classmethod
    def from_arrays(
        cls, names: Sequence[str], arrays: Mapping[str, npt.NDArray[np.generic]]
    ) -> RadiomicsProjection:
        """Back from :meth:`arrays` and the feature names."""
        return cls(
            feature_names=tuple(names),
            mean=np.asarray(arrays["radiomics.mean"], dtype=np.float64),
            scale=np.asarray(arrays["radiomics.scale"], dtype=np.float64),
            pca_mean=np.asarray(arrays["radiomics.pca_mean"], dtype=np.float64),
            components=np.asarray(arrays["radiomics.components"], dtype=np.float64),
            selected=np.asarray(arrays["radiomics.selected"], dtype=np.int64),
        )


@dataclass(frozen=True, eq=False)
class HorizonLogistic:
    """One logistic regression per horizon on named inputs.

    Attributes
    ----------
    inputs
        Input names in column order.
    impute
        Value used for a missing (NaN) input: the training fold's median.
    mean, scale
        Standardisation after imputation (training fold).
    coef, intercept
        ``(horizons, inputs)`` and ``(horizons,)``.
    """

    inputs: tuple[str, ...]
    impute: npt.NDArray[np.float64]
    mean: npt.NDArray[np.float64]
    scale: npt.NDArray[np.float64]
    coef: npt.NDArray[np.float64]
    intercept: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        p = len(self.inputs)
        for name in ("impute", "mean", "scale"):
            if getattr(self, name).shape != (p,):
                raise ValueError(f"{name} needs one value per input")
        if (
            self.coef.ndim != 2
            or self.coef.shape[1] != p
            or self.intercept.shape != (self.coef.shape[0],)
        ):
            raise ValueError("coef must be (horizons, inputs) with one intercept per horizon")
        if not (np.all(np.isfinite(self.impute)) and np.all(np.isfinite(self.coef))):
            raise ValueError("imputation values and coefficients must be finite")

    def predict(self, x: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``(n, horizons)`` non-decreasing probabilities.

        ``x`` is ``(n, inputs)`` (the same inputs at every horizon) or ``(horizons, n,
        inputs)`` (horizon-specific inputs, e.g. the unimodal models' probabilities); NaN
        marks a missing input.
        """
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim == 2:
            arr = np.broadcast_to(arr, (len(self.intercept), *arr.shape))
        filled = np.where(np.isnan(arr), self.impute, arr)
        z = (filled - self.mean) / _scale(self.scale)
        eta = np.einsum("hnp,hp->nh", z, self.coef) + self.intercept
        p = 1.0 / (1.0 + np.exp(-eta))
        result: npt.NDArray[np.float64] = np.maximum.accumulate(p, axis=1)
        return result

    def arrays(self, prefix: str) -> dict[str, npt.NDArray[np.generic]]:
        """By name under ``prefix``, for the bundle's safetensors file."""
        return {
            f"{prefix}.impute": self.impute,
            f"{prefix}.mean": self.mean,
            f"{prefix}.scale": self.scale,
            f"{prefix}.coef": self.coef,
            f"{prefix}.intercept": self.intercept,
        }

    @classmethod
    def from_arrays(
        cls, prefix: str, inputs: Sequence[str], arrays: Mapping[str, npt.NDArray[np.generic]]
    ) -> HorizonLogistic:
        """Back from :meth:`arrays`."""
        return cls(
            inputs=tuple(inputs),
            **{
                key: np.asarray(arrays[f"{prefix}.{key}"], dtype=np.float64)
                for key in ("impute", "mean", "scale", "coef", "intercept")
            },
        )
