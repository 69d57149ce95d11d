"""A random survival forest as plain arrays: the bundle holds no pickled estimator.

Training (``training/survival``) fits scikit-survival's ``RandomSurvivalForest`` and exports
every tree's split features, thresholds and children, and each node's survival function
evaluated on a month grid. The forest's survival function is the mean of its trees'
(Ishwaran et al., *Ann Appl Stat* 2:841-860, 2008), which is what scikit-survival computes; a
test checks the two agree on the grid. The node therefore needs neither scikit-survival nor
``pickle`` to predict, and a bundle cannot run code when it is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["SurvivalForest"]

_LEAF = -1


@dataclass(frozen=True, eq=False)
class SurvivalForest:
    """The trees of a random survival forest, concatenated.

    Attributes
    ----------
    tree_offset
        ``(n_trees + 1,)``: tree ``t``'s nodes are ``tree_offset[t]:tree_offset[t + 1]``.
    children_left, children_right
        Global node index of each node's children, -1 at a leaf.
    feature, threshold
        The split: go left when ``x[feature] <= threshold`` (``x`` as float32, as scikit-learn).
    survival
        ``(n_nodes, len(months))``: each node's survival function on ``months``.
    months
        The grid, increasing from 0.
    """

    tree_offset: npt.NDArray[np.int64]
    children_left: npt.NDArray[np.int64]
    children_right: npt.NDArray[np.int64]
    feature: npt.NDArray[np.int64]
    threshold: npt.NDArray[np.float64]
    survival: npt.NDArray[np.float32]
    months: npt.NDArray[np.float32]

    def __post_init__(self) -> None:
        nodes = len(self.feature)
        if self.tree_offset[0] != 0 or self.tree_offset[-1] != nodes:
            raise ValueError("tree offsets do not span the nodes")
        for name in ("children_left", "children_right", "threshold"):
            if len(getattr(self, name)) != nodes:
                raise ValueError(f"{name} has {len(getattr(self, name))} nodes, not {nodes}")
        if self.survival.shape != (nodes, len(self.months)):
            raise ValueError("survival must be one row per node on the month grid")

    @property
    def n_features(self) -> int:
        """Features the forest splits on (at least the highest index + 1)."""
        return int(self.feature.max()) + 1 if len(self.feature) else 0

    def _leaves(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
        rows = np.arange(len(x))
        leaves = np.empty((len(self.tree_offset) - 1, len(x)), dtype=np.int64)
        for t, start in enumerate(self.tree_offset[:-1]):
            node = np.full(len(x), start, dtype=np.int64)
            while True:
                inner = self.children_left[node] != _LEAF
                if not inner.any():
                    break
                go_left = x[rows, np.maximum(self.feature[node], 0)] <= self.threshold[node]
                step = np.where(go_left, self.children_left[node], self.children_right[node])
                node = np.where(inner, step, node)
            leaves[t] = node
        return leaves

    def survival_function(self, features: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``(n, len(months))``: the forest's survival function of each row.

        Raises
        ------
        ValueError
            If a row has fewer features than the forest splits on, or a non-finite value.
        """
        x = np.atleast_2d(np.asarray(features, dtype=np.float32))
        if x.shape[1] < self.n_features or not np.all(np.isfinite(x)):
            raise ValueError("the forest needs finite rows of all its features")
        leaves = self._leaves(x)
        result: npt.NDArray[np.float64] = self.survival[leaves].astype(np.float64).mean(axis=0)
        return result

    def death_probability(
        self, features: npt.ArrayLike, months: tuple[float, ...]
    ) -> npt.NDArray[np.float64]:
        """``(n, len(months))``: 1 - S(t) at each of ``months`` (each a point of the grid).

        Raises
        ------
        ValueError
            If a month is not on the grid.
        """
        columns = []
        for month in months:
            hit = np.flatnonzero(np.isclose(self.months, month))
            if hit.size == 0:
                raise ValueError(f"month {month} is not on the forest's grid")
            columns.append(int(hit[0]))
        result: npt.NDArray[np.float64] = 1.0 - self.survival_function(features)[:, columns]
        return result

    def arrays(self) -> dict[str, npt.NDArray[np.generic]]:
        """The arrays by name, for the bundle's safetensors file."""
        return {
            "forest.tree_offset": self.tree_offset,
            "forest.children_left": self.children_left,
            "forest.children_right": self.children_right,
            "forest.feature": self.feature,
            "forest.threshold": self.threshold,
            "forest.survival": self.survival,
            "forest.months": self.months,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, npt.NDArray[np.generic]]) -> SurvivalForest:
        """Back from :meth:`arrays` (float16 survival is widened)."""
        return cls(
            tree_offset=np.asarray(arrays["forest.tree_offset"], dtype=np.int64),
            children_left=np.asarray(arrays["forest.children_left"], dtype=np.int64),
            children_right=np.asarray(arrays["forest.children_right"], dtype=np.int64),
            feature=np.asarray(arrays["forest.feature"], dtype=np.int64),
            threshold=np.asarray(arrays["forest.threshold"], dtype=np.float64),
            survival=np.asarray(arrays["forest.survival"], dtype=np.float32),
            months=np.asarray(arrays["forest.months"], dtype=np.float32),
        )
