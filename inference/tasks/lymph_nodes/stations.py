"""JPS station of a node from the attention structures around it.

The paper does not assign stations (its Supplementary Table 1 only ties the 17 stations to the
ten structures). The rule here: the node's *nearest structure* is the one with the smallest
signed distance at the node's centre (negative inside, so a node inside a structure's mask
belongs to it); that structure gives the station, split by the node's position relative to
the structures' centroids where one structure serves several stations (RAS+ mm: +x patient's
left is -x, +y anterior, +z superior):

==================  =========================================================================
nearest structure   station
==================  =========================================================================
spleen              10
esophagus           7 (the paracardial stations 1-2 are not regional stations of the pancreas;
                    the left gastric artery runs to the cardia)
left gastric a.     7
stomach             5 at or above the pancreas's centroid, else 6
CHA & PHA           8a anterior of the artery's centroid, else 8p
celiac & splenic a. by the node's left-right position from the aorta (0) to the spleen (1):
                    9 below 1/3, 11p below 2/3, else 11d (9 without aorta or spleen)
aorta               16a2 above the top of the SMA (its origin, about the left renal vein), else
                    16b1 (16a2 without an SMA)
SMA                 14p at or above the SMA's centroid, else 14d
pancreas            18 left of the SMA's centroid (body and tail); else as duodenum
duodenum            the head's stations: 13 posterior of the pancreatic head's centroid, 17
                    anterior; ``a`` at or above it, ``b`` below (the papilla is not segmented)
==================  =========================================================================

Stations 8a/8p and 12a/12b/12p (hepatoduodenal ligament: bile duct and portal vein are not
segmented) are therefore never 12x. A coarse, documented default; the phantom's truth and the
evaluation report whether it holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from inference.volume import Volume
from pancreas_contracts.lymph_nodes import ATTENTION_STRUCTURES

__all__ = ["StationAnatomy", "anatomy_of", "assign_station"]

Point = tuple[float, float, float]


@dataclass(frozen=True)
class StationAnatomy:
    """Where the structures lie (RAS+ mm), for the station rules.

    Attributes
    ----------
    centroids
        Centre of mass per structure name (absent structures left out).
    tops
        Highest ``z`` of a voxel centre per structure name.
    head_centroid
        Centre of mass of the pancreatic head (the pancreas right of the SMA's centroid; the
        whole pancreas without an SMA), or ``None`` without a pancreas.
    """

    centroids: Mapping[str, Point]
    tops: Mapping[str, float]
    head_centroid: Point | None


def _point(values: npt.NDArray[np.float64]) -> Point:
    return (float(values[0]), float(values[1]), float(values[2]))


def anatomy_of(labels: Volume) -> StationAnatomy:
    """Centroids and tops of the structures in an organ label map (``organs.nii.gz`` values)."""
    values = np.asarray(labels.array)
    centroids: dict[str, Point] = {}
    tops: dict[str, float] = {}
    worlds: dict[str, npt.NDArray[np.float64]] = {}
    for structure in ATTENTION_STRUCTURES:
        index = np.argwhere(values == structure.value)
        if len(index):
            world = labels.voxel_to_world(index)
            worlds[structure.name] = world
            centroids[structure.name] = _point(world.mean(axis=0))
            tops[structure.name] = float(world[:, 2].max())
    head = None
    if "pancreas" in worlds:
        pancreas = worlds["pancreas"]
        if "sma" in centroids:
            right = pancreas[pancreas[:, 0] > centroids["sma"][0]]
            pancreas = right if len(right) else pancreas
        head = _point(pancreas.mean(axis=0))
    return StationAnatomy(centroids, tops, head)


def _head_station(centre: Point, anatomy: StationAnatomy) -> str:
    reference = anatomy.head_centroid or anatomy.centroids.get("duodenum")
    if reference is None:
        return "13a"
    side = "13" if centre[1] < reference[1] else "17"
    return side + ("a" if centre[2] >= reference[2] else "b")


def _celiac_station(centre: Point, anatomy: StationAnatomy) -> str:
    aorta, spleen = anatomy.centroids.get("aorta"), anatomy.centroids.get("spleen")
    if aorta is None or spleen is None or spleen[0] == aorta[0]:
        return "9"
    fraction = (centre[0] - aorta[0]) / (spleen[0] - aorta[0])
    return "9" if fraction < 1 / 3 else "11p" if fraction < 2 / 3 else "11d"


def _split(centre: Point, anatomy: StationAnatomy, structure: str) -> str:
    c = anatomy.centroids
    if structure in ("esophagus", "left_gastric"):
        return "7"
    if structure == "spleen":
        return "10"
    if structure == "stomach":
        return "5" if "pancreas" not in c or centre[2] >= c["pancreas"][2] else "6"
    if structure == "hepatic_artery":
        return "8a" if centre[1] >= c[structure][1] else "8p"
    if structure == "celiac_splenic":
        return _celiac_station(centre, anatomy)
    if structure == "aorta":
        return "16a2" if "sma" not in anatomy.tops or centre[2] > anatomy.tops["sma"] else "16b1"
    if structure == "sma":
        return "14p" if centre[2] >= c["sma"][2] else "14d"
    if structure == "pancreas" and "sma" in c and centre[0] < c["sma"][0]:
        return "18"
    return _head_station(centre, anatomy)


def assign_station(
    centre_ras: Point, distances_mm: Mapping[str, float], anatomy: StationAnatomy
) -> tuple[str, str] | None:
    """The station and nearest structure of a node (see the module docstring).

    Parameters
    ----------
    centre_ras
        The node's centre (RAS+ mm).
    distances_mm
        Signed distance (mm) from each structure at the node's centre.
    anatomy
        The structures' centroids and tops (:func:`anatomy_of`).

    Returns
    -------
    tuple of str or None
        ``(station code, structure name)``, or ``None`` when no structure is present (every
        distance infinite).
    """
    finite = {n: d for n, d in distances_mm.items() if np.isfinite(d) and n in anatomy.centroids}
    if not finite:
        return None
    nearest = min(finite, key=lambda name: finite[name])
    return _split(centre_ras, anatomy, nearest), nearest
