"""Placing and painting the held-out generator's lymph nodes on the painted scan.

A node goes where the painted scan says there is room, before the noise is added:

* its centre is a voxel centre whose Euclidean distance to the nearest voxel of its station's
  structure in the structure map (what a reader of ``organs.nii.gz`` measures) lies within that
  structure's Table II range ``[d_min, d_max]``;
* every voxel centre within :data:`CLEAR_MM` of its surface (more on coarse grids, where a
  voxel's sub-samples reach further) is visceral fat, owned by no other solid and no earlier
  node, and the whole box around it lies inside the field of view.

Candidates are drawn uniformly in a ball around the station's point; the first that fits is
taken, else the next station of the node's list is tried, else the node is left out. The node is
then painted with the renderer's own supersampled partial volume: tissue HU plus its texture,
then the hilum's fat and the necrotic cavity inside it. Its instance voxels are those it fills at
least half, and always its centre voxel (so even a 3.5 mm node on a 3 mm grid has a voxel).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.spatial import cKDTree

from pancreas_contracts.lymph_nodes import NodeTruth, structure_by_name
from phantom.holdout._nodes import NodeDesign
from phantom.holdout._raster import Frame, PaintedScan, ScanGrid, _fraction, _offsets
from phantom.holdout._sdf import FloatArray, Ripple, Superquadric

__all__ = ["CLEAR_MM", "place_nodes"]

#: Fat kept between a node and any other solid or node (mm).
CLEAR_MM = 1.5
_SEARCH_MM = 26.0
_DRAWS = 300
_TRIES = 30
UInt8Array = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class _Both:
    """Intersection of two solids (a hilum or cavity kept inside its node)."""

    a: Superquadric
    b: Superquadric

    def sdf(self, points: FloatArray) -> FloatArray:
        result: FloatArray = np.maximum(self.a.sdf(points), self.b.sdf(points))
        return result

    def bounds(self) -> tuple[FloatArray, FloatArray]:
        return self.a.bounds()


@dataclass(eq=False)
class _Canvas:
    """The painted scan being given nodes, and what has been worked out about it."""

    painted: PaintedScan
    organs: UInt8Array
    frame: Frame
    blocked: npt.NDArray[np.bool_]
    nodes: UInt8Array
    trees: dict[int, cKDTree | None] = field(default_factory=dict)

    @property
    def grid(self) -> ScanGrid:
        return self.painted.grid

    def tree(self, value: int) -> cKDTree | None:
        """KD-tree of the world positions of the structure's surface voxels (``None``: absent).

        The nearest voxel of a solid to a point outside it is always on its surface, so the
        surface voxels give the exact distance to the structure's voxels.
        """
        if value not in self.trees:
            mask = self.organs == value
            if not mask.any():
                self.trees[value] = None
                return None
            box = ndimage.find_objects(mask.astype(np.uint8))[0]
            part = mask[box]
            surface = part & ~ndimage.binary_erosion(part, border_value=0)
            krc = np.argwhere(surface) + np.array([s.start for s in box])
            self.trees[value] = cKDTree(self.world(krc))
        return self.trees[value]

    def world(self, krc: npt.NDArray[np.intp]) -> FloatArray:
        """World (LPS mm) centres of voxels ``[k, r, c]``."""
        origin, spacing = np.asarray(self.grid.origin), np.asarray(self.grid.spacing)
        result: FloatArray = origin + krc[:, ::-1] * spacing
        return result


def _unit(vector: FloatArray) -> FloatArray:
    result: FloatArray = vector / max(float(np.linalg.norm(vector)), 1e-9)
    return result


def _solid(
    canvas: _Canvas, design: NodeDesign, centre: FloatArray, towards: FloatArray,
    rng: np.random.Generator,
) -> Superquadric:  # fmt: skip
    """The node at world ``centre``: short axis along ``towards``, long axis across it."""
    g = _unit(towards)
    other = rng.normal(size=3)
    long = _unit(other - (other @ g) * g)
    world_axes = np.stack([long, np.cross(g, long), g], axis=1)
    rotation = canvas.frame.rotation.T @ world_axes
    body = canvas.frame.to_body(centre[None, :])[0]
    return Superquadric(body, np.asarray(design.semi_axes), rotation, design.power, design.margin)


def _box(
    canvas: _Canvas, centre_krc: npt.NDArray[np.intp], reach_mm: float
) -> tuple[slice, slice, slice] | None:
    """Voxels within ``reach_mm`` (per axis) of the centre; ``None`` if that leaves the grid."""
    half = np.ceil(reach_mm / np.asarray(canvas.grid.spacing)[::-1]).astype(int)
    lo, hi = centre_krc - half, centre_krc + half + 1
    if np.any(lo < 0) or np.any(hi > np.asarray(canvas.grid.shape)):
        return None
    return slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2])


def _box_world(canvas: _Canvas, box: tuple[slice, slice, slice]) -> FloatArray:
    grid = canvas.grid
    zz, yy, xx = np.meshgrid(
        grid.axis(2)[box[0]], grid.axis(1)[box[1]], grid.axis(0)[box[2]], indexing="ij"
    )
    result: FloatArray = np.stack([xx.ravel(), yy.ravel(), zz.ravel()], axis=1)
    return result


def _grow_mm(grid: ScanGrid) -> float:
    """How far outside a node its voxels' centres can lie: the clearance checked around it."""
    reach = float(np.linalg.norm(_offsets(grid.spacing), axis=1).max())
    return max(CLEAR_MM, reach + 0.1)


_Spot = tuple[Superquadric, tuple[slice, slice, slice], npt.NDArray[np.intp], FloatArray]
_FACES = ndimage.generate_binary_structure(3, 1)


def _fits(
    canvas: _Canvas, solid: Superquadric, box: tuple[slice, slice, slice],
    centre_krc: npt.NDArray[np.intp], grow: float,
) -> FloatArray | None:  # fmt: skip
    """The node's fraction of each voxel of ``box`` if it fits there, else ``None``.

    It fits when every voxel centre within ``grow`` of its surface is free and, on coarse
    grids where that is less than a voxel, no free voxel's face-neighbour is taken either: a
    node's voxels never touch another solid's in the written maps.
    """
    blocked = canvas.blocked[box]
    world = _box_world(canvas, box)
    near = (solid.sdf(canvas.frame.to_body(world)) < grow).reshape(blocked.shape)
    if np.any(blocked & near):
        return None
    frac = _fraction(solid, world, canvas.frame, canvas.grid, _offsets(canvas.grid.spacing))
    frac = frac.reshape(blocked.shape)
    mine = _own(frac, centre_krc, box)
    if np.any(blocked & ndimage.binary_dilation(mine, _FACES)):
        return None
    result: FloatArray = frac.astype(np.float64)
    return result


def _own(
    frac: FloatArray | npt.NDArray[np.float32],
    centre_krc: npt.NDArray[np.intp],
    box: tuple[slice, slice, slice],
) -> npt.NDArray[np.bool_]:
    """The node's voxels: those it fills at least half, and its centre voxel."""
    mine = frac >= 0.5
    local = centre_krc - np.array([s.start for s in box])
    mine[local[0], local[1], local[2]] = True
    return np.asarray(mine)


def _find(
    canvas: _Canvas, design: NodeDesign, site: tuple[str, FloatArray], rng: np.random.Generator
) -> _Spot | None:
    """A place for the node near ``site`` (structure name, body point), or ``None``."""
    structure = structure_by_name(site[0])
    tree = canvas.tree(structure.value)
    if tree is None:
        return None
    grid = canvas.grid
    spacing, origin = np.asarray(grid.spacing), np.asarray(grid.origin)
    directions = rng.normal(size=(_DRAWS, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    radii = _SEARCH_MM * rng.random(_DRAWS) ** (1.0 / 3.0)
    ref = canvas.frame.to_world(site[1][None, :])[0]
    xyz = np.rint((ref + directions * radii[:, None] - origin) / spacing).astype(np.intp)
    krc = xyz[:, ::-1]
    inside = np.all((krc >= 0) & (krc < np.asarray(grid.shape)), axis=1)
    krc = krc[inside]
    krc = krc[~canvas.blocked[krc[:, 0], krc[:, 1], krc[:, 2]]]
    if len(krc) == 0:
        return None
    centres = canvas.world(krc)
    distance, nearest = tree.query(centres)
    a_long, _, a_short = design.semi_axes
    grow = _grow_mm(grid)
    low = max(structure.d_min_mm, a_short + grow)
    # A hair inside the range, so a reader's float arithmetic agrees with this one.
    ok = (distance >= low) & (distance <= structure.d_max_mm - 0.01)
    bound = 0.0 if design.margin is None else design.margin.bound
    reach = a_long * (1.3 if design.power > 2.0 else 1.0) + bound + grow + float(spacing.max())
    for index in np.flatnonzero(ok)[:_TRIES]:
        box = _box(canvas, krc[index], reach)
        if box is None:
            continue
        towards = centres[index] - tree.data[nearest[index]]
        solid = _solid(canvas, design, centres[index], towards, rng)
        frac = _fits(canvas, solid, box, krc[index], grow)
        if frac is not None:
            return solid, box, krc[index], frac
    return None


def _paint(
    canvas: _Canvas, design: NodeDesign, spot: _Spot, node_id: int, rng: np.random.Generator
) -> int:
    """Paint one node into the HU and the instance map; returns its voxel count."""
    solid, box, centre_krc, frac = spot
    grid, frame = canvas.grid, canvas.frame
    world = _box_world(canvas, box)
    body = frame.to_body(world)
    offsets = _offsets(grid.spacing)
    shape = canvas.blocked[box].shape
    texture = np.sum([t.at(body) for t in design.textures], axis=0).reshape(shape)
    view = canvas.painted.hu[box]
    view += (frac * (design.hu + texture - view)).astype(np.float32)
    axes = np.asarray(design.semi_axes)
    if design.hilum is not None:
        size, hu = design.hilum
        # A fatty cleft entering from one side of the node (along its middle axis).
        centre = solid.centre + solid.rotation[:, 1] * axes[1] * 0.95
        cleft = Superquadric(centre, axes * np.array([0.45, size, 0.5]), solid.rotation)
        part = _fraction(_Both(solid, cleft), world, frame, grid, offsets).reshape(shape)
        view += part * (np.float32(hu) - view)
    if design.necrosis is not None:
        size, hu = design.necrosis
        shift = solid.rotation @ (rng.uniform(-0.2, 0.2, 3) * axes)
        cavity = Superquadric(
            solid.centre + shift, axes * size, solid.rotation, 2.0, Ripple.draw(rng, 0.6, (4, 9))
        )
        part = _fraction(_Both(solid, cavity), world, frame, grid, offsets).reshape(shape)
        view += part * (np.float32(hu) + 0.3 * texture - view)
    mine = _own(frac, centre_krc, box)
    canvas.nodes[box][mine] = node_id
    canvas.blocked[box] |= mine
    return int(np.count_nonzero(mine))


def place_nodes(
    painted: PaintedScan,
    organs: UInt8Array,
    frame: Frame,
    designs: Sequence[NodeDesign],
    sites: Mapping[str, tuple[str, FloatArray]],
    fat_owner: int,
    rng: np.random.Generator,
) -> tuple[UInt8Array, tuple[NodeTruth, ...]]:
    """Place and paint ``designs`` on ``painted`` (its HU is changed in place).

    Parameters
    ----------
    painted
        The scan before noise.
    organs
        The ten attention structures on the same grid.
    frame
        Body frame in the scanner.
    designs
        The planned nodes, in the order they are placed.
    sites
        Station -> (structure name, body-frame point), :func:`~._nodes.station_sites`.
    fat_owner
        The owner value of visceral fat, the only place a node may lie.
    rng
        The patient's ``node_layout`` stream.

    Returns
    -------
    tuple
        The instance map (0 background, k the k-th placed node) and the nodes' truth.
    """
    canvas = _Canvas(
        painted,
        organs,
        frame,
        blocked=painted.owner != fat_owner,
        nodes=np.zeros(painted.grid.shape, dtype=np.uint8),
    )
    voxel_ml = math.prod(painted.grid.spacing) / 1000.0
    truths: list[NodeTruth] = []
    for design in designs:
        for station in design.stations:
            found = _find(canvas, design, sites[station], rng)
            if found is None:
                continue
            node_id = len(truths) + 1
            count = _paint(canvas, design, found, node_id, rng)
            centre = canvas.world(found[2][None, :])[0]
            truths.append(
                NodeTruth(
                    node_id=node_id,
                    station=station,
                    kind=design.kind,
                    metastatic=design.metastatic,
                    centre_lps_mm=(float(centre[0]), float(centre[1]), float(centre[2])),
                    short_axis_mm=round(2.0 * design.semi_axes[2], 2),
                    long_axis_mm=round(2.0 * design.semi_axes[0], 2),
                    volume_ml=round(count * voxel_ml, 6),
                )
            )
            break
    return canvas.nodes, tuple(truths)
