"""Node instances from the node probability map, their measurements, and instance matching.

Instances (III-A-2: "we crop patches centered at the connected components of the
segmentation mask") are the connected components (26-connectivity) of the voxels at or above
``threshold``, with at least ``min_voxels`` voxels, numbered largest first.

Measurements, as a radiologist takes them on axial images (RECIST 1.1 for nodes): on each
axial slice of the node (the grid axis closest to the patient's z), the *long axis* is the
largest distance between two of its voxel centres in that slice, the *short axis* the node's
extent perpendicular to that line in the same slice, each plus one in-plane voxel (a voxel's
centre-to-centre span misses half a voxel at each end). The slice reported is the one with the
largest short axis (RECIST's measure for nodes; ties: the longer long axis), so short <= long.
The volume is the voxel count times the voxel volume; the centre is the centre of mass.

Matching (IV, "Quantitative Evaluation"): a predicted instance *hits* a truth node when their
voxel IoU is at least 0.3; pairs are taken one-to-one, largest IoU first.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import pdist, squareform

from inference.volume import Volume

__all__ = [
    "HIT_IOU",
    "Axes",
    "Matching",
    "NodeGeometry",
    "axial_axes",
    "extract_instances",
    "match_instances",
    "measure",
]

#: The paper's detection rule: IoU >= 30 %.
HIT_IOU = 0.3
_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)
_HULL_MIN_POINTS = 4


def extract_instances(
    probability: npt.NDArray[np.floating], threshold: float = 0.5, min_voxels: int = 3
) -> npt.NDArray[np.int32]:
    """Connected components of ``probability >= threshold`` (largest first, small ones dropped).

    Returns
    -------
    numpy.ndarray
        ``int32`` map: 0 background, ``n`` the ``n``-th largest instance.

    Raises
    ------
    ValueError
        If the map is not 3D, ``threshold`` is outside (0, 1] or ``min_voxels`` < 1.
    """
    values = np.asarray(probability)
    if values.ndim != 3 or not 0.0 < threshold <= 1.0 or min_voxels < 1:
        raise ValueError("need a 3D map, a threshold in (0, 1] and min_voxels >= 1")
    labelled, count = ndimage.label(values >= threshold, structure=_CONNECTIVITY)
    sizes = np.bincount(labelled.ravel(), minlength=count + 1)
    order = [c for c in np.argsort(-sizes[1:], kind="stable") + 1 if sizes[c] >= min_voxels]
    lookup = np.zeros(count + 1, dtype=np.int32)
    lookup[order] = np.arange(1, len(order) + 1, dtype=np.int32)
    out: npt.NDArray[np.int32] = lookup[labelled]
    return out


@dataclass(frozen=True)
class Axes:
    """A node's axial measurements.

    Attributes
    ----------
    short_mm, long_mm
        Short and long axis (short <= long).
    slice_index
        The axial slice (index along the grid's most superior-inferior axis) measured.
    """

    short_mm: float
    long_mm: float
    slice_index: int


def _diameter(points: npt.NDArray[np.float64]) -> tuple[float, npt.NDArray[np.float64]]:
    """Largest distance between two 2D points and its unit direction."""
    if len(points) < 2:
        return 0.0, np.array([1.0, 0.0])
    if len(points) >= _HULL_MIN_POINTS:
        with contextlib.suppress(QhullError):  # collinear: keep every point
            points = points[ConvexHull(points).vertices]
    distances = squareform(pdist(points))
    a, b = np.unravel_index(int(np.argmax(distances)), distances.shape)
    length = float(distances[a, b])
    return length, (points[a] - points[b]) / length


def _slice_axes(points: npt.NDArray[np.float64], step: float) -> tuple[float, float]:
    length, direction = _diameter(points)
    across = points @ np.array([-direction[1], direction[0]])
    width = float(across.max() - across.min()) if len(points) else 0.0
    return width + step, length + step


def axial_axes(index: npt.NDArray[np.integer], grid: Volume) -> Axes:
    """Short and long axis of one node's voxels (see the module docstring).

    Parameters
    ----------
    index
        ``(N, 3)`` voxel indices of the node on ``grid`` (N >= 1).
    grid
        The volume whose affine places the voxels (values unused).
    """
    axis = int(np.argmax(np.abs(grid.affine[2, :3]) / np.linalg.norm(grid.affine[:3, :3], axis=0)))
    in_plane = [a for a in range(3) if a != axis]
    step = float(np.mean([grid.spacing[a] for a in in_plane]))
    world = grid.voxel_to_world(index)
    best = Axes(0.0, 0.0, -1)
    for level in np.unique(index[:, axis]):
        short, long = _slice_axes(world[index[:, axis] == level][:, :2], step)
        if (short, long) > (best.short_mm, best.long_mm):
            best = Axes(round(short, 2), round(long, 2), int(level))
    return best


@dataclass(frozen=True)
class NodeGeometry:
    """Where a node is and how big.

    Attributes
    ----------
    instance
        Its number in the instance map.
    centre_voxel
        Centre of mass as a (fractional) voxel index of the analysed CT.
    centre_lps_mm
        The same point in DICOM patient coordinates (LPS mm).
    centre_ras_mm
        The same point in RAS+ mm (the node's frame for distances and crops).
    axes
        Short and long axis (:func:`axial_axes`).
    volume_ml
        Voxel count times voxel volume.
    voxels
        Voxel count.
    """

    instance: int
    centre_voxel: tuple[float, float, float]
    centre_lps_mm: tuple[float, float, float]
    centre_ras_mm: tuple[float, float, float]
    axes: Axes
    volume_ml: float
    voxels: int


def _triple(values: npt.NDArray[np.float64]) -> tuple[float, float, float]:
    return (round(float(values[0]), 2), round(float(values[1]), 2), round(float(values[2]), 2))


def measure(
    instances: npt.NDArray[np.integer], grid: Volume, ct: Volume
) -> tuple[NodeGeometry, ...]:
    """The geometry of every instance of ``instances`` (on ``grid``), located on ``ct``."""
    voxel_ml = float(np.prod(grid.spacing)) / 1000.0
    out = []
    for number in range(1, int(np.max(instances, initial=0)) + 1):
        index = np.argwhere(instances == number)
        if len(index) == 0:
            continue
        centre = grid.voxel_to_world(index.astype(np.float64)).mean(axis=0)
        out.append(
            NodeGeometry(
                instance=number,
                centre_voxel=_triple(ct.world_to_voxel(centre[None, :])[0]),
                centre_lps_mm=_triple(centre * np.array([-1.0, -1.0, 1.0])),
                centre_ras_mm=_triple(centre),
                axes=axial_axes(index, grid),
                volume_ml=round(len(index) * voxel_ml, 4),
                voxels=len(index),
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class Matching:
    """Predicted instances matched to truth nodes.

    Attributes
    ----------
    hits
        ``(predicted, truth, IoU)`` for every matched pair, largest IoU first.
    false_positives
        Predicted instances without a truth node.
    missed
        Truth nodes without a predicted instance.
    """

    hits: tuple[tuple[int, int, float], ...]
    false_positives: tuple[int, ...]
    missed: tuple[int, ...]


def _ious(
    predicted: npt.NDArray[np.integer], truth: npt.NDArray[np.integer]
) -> list[tuple[float, int, int]]:
    p, t = np.asarray(predicted).ravel(), np.asarray(truth).ravel()
    both = (p > 0) & (t > 0)
    pairs, inter = np.unique(np.stack([p[both], t[both]]), axis=1, return_counts=True)
    size_p, size_t = np.bincount(p), np.bincount(t)
    return [
        (float(n / (size_p[a] + size_t[b] - n)), int(a), int(b))
        for (a, b), n in zip(pairs.T, inter, strict=True)
    ]


def match_instances(
    predicted: npt.NDArray[np.integer], truth: npt.NDArray[np.integer], min_iou: float = HIT_IOU
) -> Matching:
    """Match two instance maps on the same grid (0 background; see the module docstring).

    Raises
    ------
    ValueError
        If the maps differ in shape or hold negative labels.
    """
    if np.shape(predicted) != np.shape(truth) or min(np.min(predicted), np.min(truth)) < 0:
        raise ValueError("the instance maps must share a shape and hold labels >= 0")
    hits: list[tuple[int, int, float]] = []
    used_p: set[int] = set()
    used_t: set[int] = set()
    for iou, a, b in sorted(_ious(predicted, truth), reverse=True):
        if iou >= min_iou and a not in used_p and b not in used_t:
            hits.append((a, b, round(iou, 4)))
            used_p.add(a)
            used_t.add(b)
    labels_p = {int(v) for v in np.unique(predicted) if v > 0}
    labels_t = {int(v) for v in np.unique(truth) if v > 0}
    return Matching(tuple(hits), tuple(sorted(labels_p - used_p)), tuple(sorted(labels_t - used_t)))
