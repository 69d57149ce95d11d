"""Segmentation-geometry baseline: tumor-vessel contact from masks -> a small classifier.

For each key vessel (SMA, celiac trunk, CHA, SMV, portal vein) the contact is the largest,
over axial slices, share of the vessel's in-slice outline that touches the (one-voxel dilated)
tumor, as degrees of its circumference. A multinomial logistic regression (numpy, L2) maps the
five angles (in units of 180 degrees) to the three NCCN classes.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

__all__ = ["GEOMETRY_VESSELS", "GeometryClassifier", "contact_features"]

GEOMETRY_VESSELS: dict[str, int] = {
    "sma": 6,
    "celiac_trunk": 7,
    "cha": 10,
    "smv": 5,
    "portal_vein": 3,
}
TUMOR = 2


def contact_features(labels: npt.NDArray[np.generic]) -> npt.NDArray[np.float64]:
    """Contact angles in degrees (order of :data:`GEOMETRY_VESSELS`) of one label cube."""
    tumor = ndimage.binary_dilation(labels == TUMOR, iterations=1)
    out = np.zeros(len(GEOMETRY_VESSELS))
    for j, value in enumerate(GEOMETRY_VESSELS.values()):
        vessel = labels == value
        best = 0.0
        for k in np.flatnonzero(vessel.any(axis=(0, 1))):
            sl = vessel[:, :, k]
            outline = sl & ~ndimage.binary_erosion(sl)
            n = int(outline.sum())
            if n:
                best = max(best, 360.0 * float((outline & tumor[:, :, k]).sum()) / n)
        out[j] = best
    return out


class GeometryClassifier:
    """Multinomial logistic regression on contact angles (full-batch gradient descent)."""

    def __init__(self, l2: float = 1e-2, steps: int = 2000, lr: float = 0.5) -> None:
        self.l2, self.steps, self.lr = l2, steps, lr
        self.weights = np.zeros((len(GEOMETRY_VESSELS) + 1, 3))

    @staticmethod
    def _design(angles: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.concatenate([angles / 180.0, np.ones((len(angles), 1))], axis=1)

    def fit(
        self, angles: npt.NDArray[np.float64], targets: npt.NDArray[np.int64]
    ) -> GeometryClassifier:
        """Fit on ``(N, 5)`` angles and class indices (class-balanced)."""
        x = self._design(angles)
        y = np.eye(3)[targets]
        counts = np.maximum(1, y.sum(axis=0))
        sample_w = (y / counts).sum(axis=1) * len(targets) / 3.0
        for _ in range(self.steps):
            p = self._softmax(x @ self.weights)
            grad = x.T @ ((p - y) * sample_w[:, None]) / len(x) + self.l2 * self.weights
            self.weights -= self.lr * grad
        return self

    def predict_proba(self, angles: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """``(N, 3)`` class probabilities."""
        return self._softmax(self._design(angles) @ self.weights)

    @staticmethod
    def _softmax(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        e = np.exp(z - z.max(axis=1, keepdims=True))
        out: npt.NDArray[np.float64] = e / e.sum(axis=1, keepdims=True)
        return out
