"""Lesion candidates from the lesion probability map, and what is reported of each.

Extraction follows the lesion-candidate step the paper cites (Bosma et al., Radiology: AI
2023, "report-guided annotation", dynamic thresholding): repeatedly, the most probable voxel
left is a candidate's peak; the candidate is the connected component (26-connectivity) of the
voxels at or above ``max(threshold, extent_fraction * peak)`` that holds the peak; its voxels
are removed and the search goes on, until the peak is below ``threshold`` or ``max_lesions``
candidates are found. With ``extent_fraction`` 0 this is plain connected components above
``threshold``, each with its maximum. A candidate's probability is its peak; the *detection
map* is every candidate's voxels set to its probability, 0 elsewhere, so its maximum is the
most probable candidate's.

Each lesion carries its centre (centre of mass) as a voxel index of the analysed CT and in
DICOM patient coordinates (LPS mm), its largest diameter (the largest distance between two of
its voxel centres plus one voxel, in mm) and its volume (voxel count times voxel volume, mL).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import pdist

from inference.volume import Volume

__all__ = ["Candidates", "ExtractionSettings", "Lesion", "describe", "extract_candidates"]

_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)
_HULL_MIN_POINTS = 5


@dataclass(frozen=True)
class ExtractionSettings:
    """How candidates are cut out of the probability map.

    Attributes
    ----------
    threshold
        Smallest peak (and floor of every candidate's extent threshold).
    extent_fraction
        A candidate's voxels reach down to this fraction of its peak (0: down to
        ``threshold``).
    max_lesions
        Most candidates per patient.
    min_voxels
        Smaller candidates are dropped (noise).
    """

    threshold: float = 0.1
    extent_fraction: float = 0.4
    max_lesions: int = 5
    min_voxels: int = 2

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0 or not 0.0 <= self.extent_fraction < 1.0:
            raise ValueError("threshold must lie in (0, 1) and extent_fraction in [0, 1)")
        if self.max_lesions < 1 or self.min_voxels < 1:
            raise ValueError("max_lesions and min_voxels must be at least 1")


@dataclass(frozen=True, eq=False)
class Candidates:
    """Lesion candidates on one grid.

    Attributes
    ----------
    components
        ``int32`` map: 0 background, ``n`` the ``n``-th candidate (most probable first).
    probabilities
        Each candidate's peak probability, in component order.
    """

    components: npt.NDArray[np.int32]
    probabilities: tuple[float, ...]

    def detection_map(self) -> npt.NDArray[np.float32]:
        """Every candidate's voxels at its probability, 0 elsewhere."""
        values = np.r_[0.0, np.asarray(self.probabilities, dtype=np.float64)]
        out: npt.NDArray[np.float32] = values[self.components].astype(np.float32)
        return out

    @property
    def max_probability(self) -> float:
        """The detection map's maximum (0 without candidates)."""
        return max(self.probabilities, default=0.0)


def extract_candidates(
    probability: npt.NDArray[np.floating], settings: ExtractionSettings | None = None
) -> Candidates:
    """Cut lesion candidates out of a lesion probability map (see the module docstring).

    Raises
    ------
    ValueError
        If the map is not 3D or holds values outside [0, 1].
    """
    rules = settings or ExtractionSettings()
    remaining = np.array(probability, dtype=np.float64)
    if remaining.ndim != 3 or not np.all((remaining >= 0.0) & (remaining <= 1.0)):
        raise ValueError("the probability map must be 3D with values in [0, 1]")
    components = np.zeros(remaining.shape, dtype=np.int32)
    peaks: list[float] = []
    while len(peaks) < rules.max_lesions:
        index = np.unravel_index(int(np.argmax(remaining)), remaining.shape)
        peak = float(remaining[index])
        if peak < rules.threshold:
            break
        level = max(rules.threshold, rules.extent_fraction * peak)
        labelled, _ = ndimage.label(remaining >= level, structure=_CONNECTIVITY)
        mask = labelled == labelled[index]
        remaining[mask] = 0.0
        if int(mask.sum()) >= rules.min_voxels:
            peaks.append(peak)
            components[mask] = len(peaks)
    return Candidates(components, tuple(peaks))


@dataclass(frozen=True)
class Lesion:
    """One detected lesion.

    Attributes
    ----------
    centre_voxel
        Centre of mass as a (fractional) voxel index ``(i, j, k)`` of the analysed CT.
    centre_lps_mm
        The same point in DICOM patient coordinates (LPS, mm).
    diameter_mm
        Largest diameter.
    volume_ml
        Volume.
    probability
        The candidate's peak lesion probability.
    """

    centre_voxel: tuple[float, float, float]
    centre_lps_mm: tuple[float, float, float]
    diameter_mm: float
    volume_ml: float
    probability: float


def _diameter(points: npt.NDArray[np.float64]) -> float:
    """Largest distance between two points (on the convex hull when it has one)."""
    if len(points) < 2:
        return 0.0
    if len(points) >= _HULL_MIN_POINTS:
        # flat or collinear: every point is on the "hull"
        with contextlib.suppress(QhullError):
            points = points[ConvexHull(points).vertices]
    return float(pdist(points).max())


def _triple(values: npt.NDArray[np.float64]) -> tuple[float, float, float]:
    return (round(float(values[0]), 2), round(float(values[1]), 2), round(float(values[2]), 2))


def describe(candidates: Candidates, grid: Volume, ct: Volume) -> tuple[Lesion, ...]:
    """The lesions of ``candidates`` on ``grid`` (its affine; values unused), located on ``ct``.

    Parameters
    ----------
    candidates
        Candidates on the grid of ``grid``.
    grid
        The volume whose affine maps the candidates' voxels to RAS+ mm.
    ct
        The analysed CT: centres are given as its voxel indices.
    """
    voxel_ml = float(np.prod(grid.spacing)) / 1000.0
    step = float(np.mean(grid.spacing))
    lesions = []
    for number, probability in enumerate(candidates.probabilities, start=1):
        coords = np.argwhere(candidates.components == number).astype(np.float64)
        if len(coords) == 0:
            continue
        world = grid.voxel_to_world(coords)
        centre_ras = world.mean(axis=0)
        lps = centre_ras * np.array([-1.0, -1.0, 1.0])
        lesions.append(
            Lesion(
                centre_voxel=_triple(ct.world_to_voxel(centre_ras[None, :])[0]),
                centre_lps_mm=_triple(lps),
                diameter_mm=round(_diameter(world) + step, 2),
                volume_ml=round(len(coords) * voxel_ml, 4),
                probability=round(float(probability), 6),
            )
        )
    return tuple(lesions)
