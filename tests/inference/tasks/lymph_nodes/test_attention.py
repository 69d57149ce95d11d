"""The attention map: signed distances, the trapezoid (Eq. 1) and A^all (Eq. 2), by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inference.tasks.lymph_nodes.attention import (
    attention_maps,
    combine,
    signed_distance,
    trapezoid,
)
from pancreas_contracts.lymph_nodes import ATTENTION_STRUCTURES, structure_by_name


def test_trapezoid_matches_equation_1_by_hand() -> None:
    # pancreas: [-5, 20] mm with the 3 mm border
    d = [-np.inf, -9.0, -8.0, -6.5, -5.0, 0.0, 20.0, 21.5, 23.0, 30.0, np.inf]
    expected = [0.0, 0.0, 0.0, 0.5, 1.0, 1.0, 1.0, 0.5, 0.0, 0.0, 0.0]
    assert trapezoid(d, -5.0, 20.0) == pytest.approx(expected)
    assert trapezoid([1.0], 0.0, 16.0, border=2.0)[0] == 1.0
    assert trapezoid([-1.0], 0.0, 16.0, border=2.0)[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="d_min"):
        trapezoid([0.0], 5.0, 1.0)


def test_signed_distance_on_an_anisotropic_slab() -> None:
    mask = np.zeros((16, 3, 3), dtype=bool)
    mask[5:10] = True  # a slab across the whole of axes 1 and 2
    d = signed_distance(mask, (2.0, 0.7, 0.7))
    assert d[10, 1, 1] == pytest.approx(2.0) and d[12, 0, 2] == pytest.approx(6.0)
    assert d[4, 1, 1] == pytest.approx(2.0) and d[0, 1, 1] == pytest.approx(10.0)
    assert d[9, 1, 1] == pytest.approx(-2.0) and d[7, 2, 0] == pytest.approx(-6.0)
    with pytest.raises(ValueError, match="spacing"):
        signed_distance(mask, (1.0, 1.0))


def test_signed_distance_of_a_sphere_and_of_empty_and_full_masks() -> None:
    grid = np.indices((21, 21, 21)) - 10
    mask = (grid**2).sum(axis=0) <= 25  # radius 5 voxels
    d = signed_distance(mask, (1.0, 1.0, 1.0))
    assert d[10, 10, 18] == pytest.approx(3.0)  # nearest inside voxel: (10, 10, 15)
    assert d[10, 10, 10] == pytest.approx(-math.sqrt(26.0))  # nearest outside: offset (5, 1, 0)
    assert (d[mask] < 0).all() and (d[~mask] > 0).all()
    assert np.isposinf(signed_distance(np.zeros((4, 4, 4), bool), (1, 1, 1))).all()
    assert np.isneginf(signed_distance(np.ones((4, 4, 4), bool), (1, 1, 1))).all()


def _pancreas_and_spleen() -> np.ndarray:
    # along axis 0: pancreas 0..19, background 20..21, spleen 22..39 (1 mm voxels)
    labels = np.zeros((40, 2, 2), dtype=np.uint8)
    labels[:20] = structure_by_name("pancreas").value
    labels[22:] = structure_by_name("spleen").value
    return labels


def test_a_all_inside_a_structure_is_that_structures_own_map() -> None:
    attention = attention_maps(_pancreas_and_spleen(), (1.0, 1.0, 1.0))
    order = [s.name for s in ATTENTION_STRUCTURES]
    pancreas, spleen = order.index("pancreas"), order.index("spleen")
    assert attention.maps.shape == (10, 40, 2, 2) and attention.combined.shape == (40, 2, 2)
    # deep inside the pancreas (-15 mm): its own map is 0, though the spleen's (17 mm) is 2/3
    assert attention.distances[pancreas][5, 0, 0] == pytest.approx(-15.0)
    assert attention.maps[spleen][5, 0, 0] == pytest.approx(2 / 3)
    assert attention.combined[5, 0, 0] == 0.0
    # 2 mm inside the pancreas: within its [-5, 20] range
    assert attention.combined[18, 0, 0] == 1.0
    # between the two: the maximum
    assert attention.combined[20, 0, 0] == 1.0
    # inside the spleen (range [0, 16]) at -4 mm: 0, though the pancreas's map is 1 there
    assert attention.maps[pancreas][25, 0, 0] == 1.0 and attention.combined[25, 0, 0] == 0.0
    # absent structures contribute nothing
    aorta = order.index("aorta")
    assert np.isposinf(attention.distances[aorta]).all() and not attention.maps[aorta].any()


def test_combine_takes_the_maximum_only_outside_every_structure() -> None:
    maps = np.array([[0.2, 0.9, 0.1], [0.7, 0.3, 0.4]], dtype=np.float32)
    labels = np.array([0, 2, 1])
    assert combine(labels, maps) == pytest.approx([0.7, 0.3, 0.1])
    with pytest.raises(ValueError, match="fit"):
        combine(np.zeros(4, dtype=int), maps)
