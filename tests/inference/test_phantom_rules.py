"""Phantom ground truth: the NCCN rule, class allocation, angle sampling and label noise."""

from __future__ import annotations

from collections import Counter

import pytest

from inference.phantom import (
    ARTERIAL,
    KEY_VESSELS,
    VENOUS,
    PhantomOptions,
    allocate_classes,
    nccn_rule_category,
    plan_cohort,
)


@pytest.mark.parametrize(
    ("angles", "expected"),
    [
        ({}, 0),
        ({"SMV": 90, "PV": 179}, 0),
        ({"SMV": 179.9}, 0),
        ({"SMA": 1}, 1),
        ({"CA": 120}, 1),
        ({"CHA": 179}, 1),
        ({"SMV": 180}, 1),
        ({"PV": 360}, 1),
        ({"SMV": 200, "PV": 200, "SMA": 90}, 1),
        ({"SMA": 180}, 2),
        ({"CA": 270, "SMV": 0}, 2),
        ({"CHA": 360, "PV": 10}, 2),
        ({"SMA": 90, "CA": 200}, 2),
    ],
)
def test_nccn_rule_table(angles: dict[str, float], expected: int) -> None:
    assert nccn_rule_category(angles) == expected


@pytest.mark.parametrize("angles", [{"SMA": -1}, {"PV": 361}, {"aorta": 10}])
def test_nccn_rule_rejects_bad_input(angles: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        nccn_rule_category(angles)


def test_allocation_reproduces_the_reference_cohort() -> None:
    classes = allocate_classes(159, (85, 47, 27), seed=3)
    assert Counter(classes) == {0: 85, 1: 47, 2: 27}
    assert classes == allocate_classes(159, (85, 47, 27), seed=3)
    assert classes != allocate_classes(159, (85, 47, 27), seed=4)


@pytest.mark.parametrize(
    ("n", "counts", "expected"),
    [
        (1, (85, 47, 27), {0: 1}),
        (10, (85, 47, 27), {0: 5, 1: 3, 2: 2}),
        (3, (1, 1, 1), {0: 1, 1: 1, 2: 1}),
        (4, (0, 0, 5), {2: 4}),
        (7, (0.5, 0.25, 0.25), {0: 3, 1: 2, 2: 2}),
    ],
)
def test_allocation_is_proportional(
    n: int, counts: tuple[float, float, float], expected: dict[int, int]
) -> None:
    assert Counter(allocate_classes(n, counts, seed=0)) == expected


@pytest.mark.parametrize(
    ("n", "counts"), [(0, (85, 47, 27)), (5, (0, 0, 0)), (5, (1, -1, 1)), (5, (1, 2))]
)
def test_allocation_rejects_bad_input(n: int, counts: tuple[float, ...]) -> None:
    with pytest.raises(ValueError):
        allocate_classes(n, counts, seed=0)  # type: ignore[arg-type]


def test_plans_follow_the_rule_and_the_allocation() -> None:
    plans = plan_cohort(159, seed=8)
    assert Counter(p.target_class for p in plans) == {0: 85, 1: 47, 2: 27}
    for plan in plans:
        assert set(plan.angles) == set(KEY_VESSELS)
        assert plan.rule_category == plan.target_class == nccn_rule_category(plan.angles)
        for angle in plan.angles.values():
            # Non-zero angles stay measurable and clear of the 180-degree threshold.
            assert angle == 0 or (30 <= angle <= 360 and abs(angle - 180) >= 20)
        if plan.tumor_location == "head":
            assert plan.angles["CA"] == 0
    arterial_only = [
        p for p in plans if p.target_class == 1 and max(p.angles[v] for v in VENOUS) < 180
    ]
    assert arterial_only, "borderline through arterial abutment must occur"
    assert all(0 < max(p.angles[v] for v in ARTERIAL) < 180 for p in arterial_only)
    assert {p.tumor_location for p in plans} == {"head", "body"}


def test_label_noise_flips_at_the_requested_rate() -> None:
    plans = plan_cohort(600, seed=2, options=PhantomOptions(label_noise=0.2))
    flipped = [p for p in plans if p.label_noise_flipped]
    assert 0.15 < len(flipped) / len(plans) < 0.25
    assert all(p.nccn_label != p.rule_category for p in flipped)
    assert all(p.nccn_label == p.rule_category for p in plans if not p.label_noise_flipped)
    assert not any(p.label_noise_flipped for p in plan_cohort(50, 2, PhantomOptions(label_noise=0)))
    assert all(p.label_noise_flipped for p in plan_cohort(50, 2, PhantomOptions(label_noise=1)))


def test_plans_are_deterministic_per_seed() -> None:
    first, again, other = plan_cohort(20, 5), plan_cohort(20, 5), plan_cohort(20, 6)
    assert first == again
    assert [p.angles for p in first] != [p.angles for p in other]
    assert first[0].series_uid == again[0].series_uid != other[0].series_uid
    assert len({p.series_uid for p in first}) == 20


@pytest.mark.parametrize(
    "kwargs",
    [
        {"label_noise": 1.5},
        {"fov_mm": (300.0, 300.0, 0.0)},
        {"pixel_spacing": 0.0},
        {"slice_thickness": 20.0},
        {"position": "HFP"},
        {"transfer_syntax": "jpeg-baseline"},
        {"class_counts": (0.0, 0.0, 0.0)},
    ],
)
def test_options_reject_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        PhantomOptions(**kwargs)  # type: ignore[arg-type]
