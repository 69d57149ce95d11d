"""resample_to_spacing / resample_to_reference keep world coordinates."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pytest
from scipy.spatial.transform import Rotation

from inference import Volume, resample_to_reference, resample_to_spacing

GRADIENT = np.array([0.7, -1.3, 2.1])
OFFSET = 5.0


def _grid(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    rotation: npt.NDArray[np.float64],
    origin: tuple[float, float, float],
) -> npt.NDArray[np.float64]:
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


def _linear_field(shape: tuple[int, int, int], affine: npt.NDArray[np.float64]) -> Volume:
    """A volume whose value is a linear function of world position: exact under trilinear."""
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    world = idx.reshape(-1, 3) @ affine[:3, :3].T + affine[:3, 3]
    values = (world @ GRADIENT + OFFSET).reshape(shape)
    return Volume(values.astype(np.float64), affine)


def _world_of_all_voxels(volume: Volume) -> npt.NDArray[np.float64]:
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in volume.shape], indexing="ij"), axis=-1)
    return volume.voxel_to_world(idx.reshape(-1, 3))


def _inside(
    volume: Volume, world: npt.NDArray[np.float64], margin: float = 1e-9
) -> npt.NDArray[np.bool_]:
    """Whether world points lie within the volume's outermost voxel centres (plus margin)."""
    index = volume.world_to_voxel(world)
    upper = np.asarray(volume.shape) - 1
    return np.all((index >= -margin) & (index <= upper + margin), axis=1)


OBLIQUE = Rotation.from_euler("xyz", [20, -35, 50], degrees=True).as_matrix()
FLIPPED = np.diag([-1.0, 1.0, -1.0])[:, [1, 0, 2]]


@pytest.mark.parametrize("rotation", [np.eye(3), FLIPPED, OBLIQUE], ids=["ras", "flip", "oblique"])
@pytest.mark.parametrize("new_spacing", [(1.0, 1.0, 1.0), (1.7, 0.6, 2.3), 0.8])
def test_resample_to_spacing_keeps_world_values(
    rotation: npt.NDArray[np.float64], new_spacing: float | tuple[float, float, float]
) -> None:
    volume = _linear_field((11, 9, 7), _grid((11, 9, 7), (0.8, 1.1, 2.5), rotation, (10, -20, 30)))
    out = resample_to_spacing(volume, new_spacing, order=1)
    expected_spacing = np.broadcast_to(np.asarray(new_spacing, dtype=float), (3,))
    assert out.spacing == pytest.approx(tuple(expected_spacing))
    # Same axis directions, same field-of-view centre.
    directions = out.affine[:3, :3] / np.asarray(out.spacing)
    np.testing.assert_allclose(directions, rotation, atol=1e-12)
    centre_in = volume.voxel_to_world((np.asarray(volume.shape) - 1) / 2)
    centre_out = out.voxel_to_world((np.asarray(out.shape) - 1) / 2)
    np.testing.assert_allclose(centre_out, centre_in, atol=1e-9)
    extent_in = np.asarray(volume.shape) * np.asarray(volume.spacing)
    extent_out = np.asarray(out.shape) * np.asarray(out.spacing)
    assert np.all(np.abs(extent_out - extent_in) <= expected_spacing / 2 + 1e-9)
    # Each output voxel inside the input's sampled region holds the value of its world point.
    world = _world_of_all_voxels(out)
    inside = _inside(volume, world)
    assert inside.sum() > 0.3 * inside.size
    np.testing.assert_allclose(
        out.array.reshape(-1)[inside], world[inside] @ GRADIENT + OFFSET, atol=1e-6
    )


def test_point_value_before_and_after() -> None:
    """A blob at a known world point stays at that point after resampling."""
    affine = _grid((40, 30, 20), (0.7, 0.7, 2.0), FLIPPED, (50, -10, 100))
    volume = Volume(np.zeros((40, 30, 20), dtype=np.float32), affine)
    point = volume.voxel_to_world([[17, 12, 9]])[0]
    world = _world_of_all_voxels(volume)
    blob = np.exp(-np.sum((world - point) ** 2, axis=1) / (2 * 3.0**2)).reshape(volume.shape)
    volume.array[...] = blob * 100
    out = resample_to_spacing(volume, 1.0, order=3)
    assert out.array.dtype == np.float32
    weights = np.clip(out.array.reshape(-1), 0, None)
    centroid = (_world_of_all_voxels(out) * weights[:, None]).sum(axis=0) / weights.sum()
    np.testing.assert_allclose(centroid, point, atol=0.05)
    index = np.round(out.world_to_voxel(point)[0]).astype(int)
    nearest = out.voxel_to_world(index)[0]
    expected = 100 * np.exp(-np.sum((nearest - point) ** 2) / (2 * 3.0**2))
    assert float(out.array[tuple(index)]) == pytest.approx(expected, rel=0.02)


def test_label_map_order0() -> None:
    labels = np.zeros((20, 20, 10), dtype=np.uint8)
    labels[5:15, 4:12, 2:8] = 3
    labels[8:10, 8:10, 4:6] = 7
    volume = Volume(labels, _grid(labels.shape, (0.5, 0.5, 2.0), FLIPPED, (0, 0, 0)))
    out = resample_to_spacing(volume, (1.0, 1.0, 1.0), order=0)
    assert out.array.dtype == np.uint8
    assert set(np.unique(out.array)) <= {0, 3, 7}
    for label in (3, 7):
        before = (volume.array == label).sum() * np.prod(volume.spacing)
        after = (out.array == label).sum() * np.prod(out.spacing)
        assert after == pytest.approx(before, rel=0.35)
        c_in = volume.voxel_to_world(np.argwhere(volume.array == label)).mean(axis=0)
        c_out = out.voxel_to_world(np.argwhere(out.array == label)).mean(axis=0)
        np.testing.assert_allclose(c_out, c_in, atol=0.75)  # within one new voxel
    mask = Volume(labels > 0, volume.affine)
    assert resample_to_spacing(mask, 1.0, order=0).array.dtype == np.bool_


def test_same_spacing_is_a_copy() -> None:
    volume = _linear_field((4, 5, 6), _grid((4, 5, 6), (1, 2, 3), OBLIQUE, (1, 2, 3)))
    out = resample_to_spacing(volume, (1, 2, 3))
    assert np.array_equal(out.array, volume.array)
    np.testing.assert_allclose(out.affine, volume.affine)
    assert out.array is not volume.array


@pytest.mark.parametrize("bad", [0.0, -1.0, (1.0, 0.0, 1.0), float("nan")])
def test_bad_spacing(bad: float | tuple[float, float, float]) -> None:
    volume = _linear_field((3, 3, 3), np.eye(4))
    with pytest.raises(ValueError, match="spacing"):
        resample_to_spacing(volume, bad)


@pytest.mark.parametrize("order", [-1, 6, 1.5, True])
def test_bad_order(order: object) -> None:
    volume = _linear_field((3, 3, 3), np.eye(4))
    with pytest.raises(ValueError, match="order"):
        resample_to_spacing(volume, 1.0, order=order)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="order"):
        resample_to_reference(volume, volume, order=order)  # type: ignore[arg-type]


def test_resample_to_reference_oblique_grid() -> None:
    moving = _linear_field((12, 10, 8), _grid((12, 10, 8), (1.0, 1.2, 2.0), np.eye(3), (0, 0, 0)))
    reference = Volume(
        np.zeros((9, 9, 9), dtype=np.int16),
        _grid((9, 9, 9), (1.3, 1.3, 1.3), OBLIQUE, (4, 5, 6)),
    )
    out = resample_to_reference(moving, reference, order=1, fill_value=-1024)
    assert out.shape == reference.shape
    np.testing.assert_allclose(out.affine, reference.affine)
    world = _world_of_all_voxels(reference)
    inside = _inside(moving, world)
    assert 0 < inside.sum() < inside.size
    values = out.array.reshape(-1)
    np.testing.assert_allclose(values[inside], world[inside] @ GRADIENT + OFFSET, atol=1e-6)
    outside = ~_inside(moving, world, margin=1e-3)
    assert outside.any()
    assert np.all(values[outside] == -1024)


def _signed_permutations() -> list[npt.NDArray[np.float64]]:
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((-1.0, 1.0), repeat=3):
            out.append(np.eye(3)[:, list(perm)] * np.asarray(signs))
    return out


@pytest.mark.parametrize("shift", [(0, 0, 0), (2, -3, 1), (-20, 0, 0)])
def test_exact_reorientation_matches_brute_force(shift: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(4)
    moving = Volume(
        rng.integers(1, 100, (5, 6, 7)).astype(np.int16),
        _grid((5, 6, 7), (1.0, 2.0, 3.0), np.eye(3), (0, 0, 0)),
    )
    for rotation in _signed_permutations():
        spacing = np.abs(np.linalg.inv(rotation) @ np.array([1.0, 2.0, 3.0]))
        origin = tuple(np.asarray(shift) * np.array([1.0, 2.0, 3.0]))
        affine = _grid((7, 6, 5), (spacing[0], spacing[1], spacing[2]), rotation, origin)
        reference = Volume(np.zeros((7, 6, 5), dtype=np.float32), affine)
        out = resample_to_reference(moving, reference, order=0, fill_value=-5)
        assert out.array.dtype == np.int16
        index = np.round(moving.world_to_voxel(_world_of_all_voxels(reference))).astype(int)
        valid = np.all((index >= 0) & (index < np.asarray(moving.shape)), axis=1)
        expected = np.full(index.shape[0], -5, dtype=np.int16)
        expected[valid] = moving.array[tuple(index[valid].T)]
        assert np.array_equal(out.array.reshape(-1), expected)
        linear = resample_to_reference(moving, reference, order=1, fill_value=-5)
        assert linear.array.dtype == np.float32
        assert np.array_equal(linear.array.reshape(-1), expected.astype(np.float32))
