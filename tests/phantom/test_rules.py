"""Phantom ground truth: the NCCN rule, class allocation, angle sampling, biological borderline
and label noise."""

from __future__ import annotations

from collections import Counter
from hashlib import sha256

import pytest

from phantom import (
    ARTERIAL,
    BIOLOGICAL_CA19_9,
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
        anatomy = 0 if plan.biological_borderline else plan.target_class
        assert plan.rule_category == anatomy == nccn_rule_category(plan.angles)
        for angle in plan.angles.values():
            # Non-zero angles stay measurable and clear of the 180-degree threshold.
            assert angle == 0 or (30 <= angle <= 360 and abs(angle - 180) >= 20)
        if plan.tumor_location == "head":
            assert plan.angles["CA"] == 0
    arterial_only = [
        p for p in plans if p.rule_category == 1 and max(p.angles[v] for v in VENOUS) < 180
    ]
    assert arterial_only, "borderline through arterial abutment must occur"
    assert all(0 < max(p.angles[v] for v in ARTERIAL) < 180 for p in arterial_only)
    assert {p.tumor_location for p in plans} == {"head", "body"}


def test_biological_borderline_is_resectable_anatomy_with_ca19_9_above_500() -> None:
    """IAP 2017 "BR-B": the board's label is borderline, the anatomy (the rule) resectable."""
    options = PhantomOptions(label_noise=0.0)
    plans = plan_cohort(600, seed=4, options=options)
    biological = [p for p in plans if p.biological_borderline]
    borderline = [p for p in plans if p.target_class == 1]
    assert 0.15 < len(biological) / len(borderline) < 0.35
    assert all(p.target_class == p.nccn_label == 1 for p in biological)
    assert all(p.rule_category == 0 for p in biological)
    assert all(p.clinical_truth["ca19_9_baseline"] > BIOLOGICAL_CA19_9 for p in biological)
    resectable = [p for p in plans if p.nccn_label == 0]
    assert all(p.clinical_truth["ca19_9_baseline"] <= BIOLOGICAL_CA19_9 for p in resectable)
    anatomical = [p for p in plans if not p.biological_borderline]
    assert all(p.nccn_label == p.rule_category for p in anatomical)
    # The class mix is the allocation's whatever the fraction.
    assert Counter(p.nccn_label for p in plans) == Counter(p.target_class for p in plans)


def test_no_biological_borderline_keeps_the_anatomical_cohort() -> None:
    """Fraction 0 leaves every draw of the patients that are not BR-B, and their UIDs."""
    none = plan_cohort(200, seed=3, options=PhantomOptions(biological_borderline=0.0))
    some = plan_cohort(200, seed=3)
    assert not any(p.biological_borderline for p in none)
    assert all(p.nccn_label == p.rule_category for p in none if not p.label_noise_flipped)
    high = [p for p in none if p.clinical_truth["ca19_9_baseline"] > BIOLOGICAL_CA19_9]
    assert any(p.nccn_label == 0 for p in high), "anatomical labels ignore CA 19-9"
    kept = [(a, b) for a, b in zip(none, some, strict=True) if not b.biological_borderline]
    assert all(a.angles == b.angles for a, b in kept)
    assert all(a.acquired == b.acquired for a, b in kept)
    # The UIDs of a fraction-0 cohort are those of the options before the fraction existed.
    old = repr(((85.0, 47.0, 27.0), 0.05, (300.0, 300.0, 200.0), None, None, "HFS"))
    assert (
        PhantomOptions(biological_borderline=0.0).digest() == sha256(old.encode()).hexdigest()[:16]
    )
    assert PhantomOptions().digest() != PhantomOptions(biological_borderline=0.0).digest()


def test_label_noise_flips_at_the_requested_rate() -> None:
    options = PhantomOptions(label_noise=0.2, biological_borderline=0.0)
    plans = plan_cohort(600, seed=2, options=options)
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
        {"biological_borderline": -0.1},
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
