"""nnU-Net's planning rules for the detection DynUNets."""

from __future__ import annotations

import pytest

from inference.tasks.detection.planning import NetworkPlan, plan_network


def test_isotropic_cube_pools_every_axis_down_to_the_minimum_feature_map() -> None:
    plan = plan_network((64, 64, 64), (2.0, 2.0, 2.0), base_filters=8, max_filters=64)
    assert plan.strides == ((1, 1, 1),) + ((2, 2, 2),) * 4  # 64 -> 4 voxels
    assert set(plan.kernels) == {(3, 3, 3)}
    assert plan.filters == (8, 16, 32, 64, 64)
    assert plan.divisor() == (16, 16, 16)


def test_anisotropic_axis_waits_until_the_others_catch_up() -> None:
    plan = plan_network((128, 128, 32), (0.8, 0.8, 3.0), max_pools=5)
    # z (3 mm) is more than twice as coarse as x/y: not pooled, 1-kernel; after one pooling
    # x/y are at 1.6 mm and z (3.0 < 2 * 1.6) joins
    assert plan.kernels[:2] == ((3, 3, 1), (3, 3, 3))
    assert plan.strides[:3] == ((1, 1, 1), (2, 2, 1), (2, 2, 2))
    assert plan.divisor()[2] < plan.divisor()[0]
    assert plan.filters[:3] == (32, 64, 128) and max(plan.filters) <= 320


def test_round_trip_and_refusals() -> None:
    plan = plan_network((32, 32, 32), (8.0, 8.0, 8.0), base_filters=4, max_filters=16)
    assert NetworkPlan.from_dict(plan.to_dict()) == plan
    with pytest.raises(ValueError, match="too small"):
        plan_network((8, 8, 8), (1.0, 1.0, 1.0))
    with pytest.raises(ValueError):
        plan_network((32, 32), (1.0, 1.0))
