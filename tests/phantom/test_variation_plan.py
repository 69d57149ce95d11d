"""Wide variation, plans only: what is drawn per patient, its ranges, rates and truth."""

from __future__ import annotations

import numpy as np
import pytest

from pancreas_contracts.nccn import nccn_rule_category
from phantom import (
    CONTRAST_PHASES,
    KEY_VESSELS,
    REPLACED_RHA,
    TUMOR_FREE_KINDS,
    TUMOR_SHAPES,
    TUMOR_SITES,
    TUMOR_TEXTURES,
    Material,
    PatientPlan,
    PhantomOptions,
    Variation,
    cohort_targets,
    plan_cohort,
)
from phantom._variation import Acquisition, Body, TumorLook
from phantom._variation_image import hu_table_for

WIDE = PhantomOptions(variation="wide")


@pytest.fixture(scope="module")
def plans() -> list[PatientPlan]:
    return plan_cohort(400, 11, WIDE)


def _variation(plan: PatientPlan) -> Variation:
    assert plan.variation is not None
    return plan.variation


def test_acquisition_ranges_cover_what_scanners_vary(plans: list[PatientPlan]) -> None:
    spacing = np.array([p.pixel_spacing for p in plans])
    thickness = np.array([p.slice_thickness for p in plans])
    assert spacing.min() >= 0.6 and spacing.max() <= 1.0 and np.ptp(spacing) > 0.35
    assert thickness.min() >= 0.6 and thickness.max() <= 5.0
    assert {0.625, 5.0} <= set(thickness.tolist())
    matrices = {round(p.fov_mm[0] / p.pixel_spacing) for p in plans}
    assert matrices == {384, 512}
    assert all(p.fov_mm[2] / p.slice_thickness <= 320.5 for p in plans)
    positions = [p.patient_position for p in plans]
    assert set(positions) == {"HFS", "FFS", "HFP", "FFP"}
    prone = np.mean([position.endswith("P") for position in positions])
    assert 0.07 <= prone <= 0.22  # one in seven
    assert all(_variation(p).body.prone == p.patient_position.endswith("P") for p in plans)
    acquisitions = [_variation(p).acquisition for p in plans]
    assert min(a.noise_sd for a in acquisitions) < 10 and max(a.noise_sd for a in acquisitions) > 25
    assert min(a.blur_mm for a in acquisitions) < 0.4 and max(a.blur_mm for a in acquisitions) > 0.9
    assert 0.1 < np.mean([a.streaks for a in acquisitions]) < 0.3


def test_phases_tumor_looks_and_kinds_all_occur(plans: list[PatientPlan]) -> None:
    variations = [_variation(p) for p in plans]
    looks = [v.tumor for v in variations if v.tumor is not None]
    assert {v.contrast_phase for v in variations} == set(CONTRAST_PHASES)
    assert {t.site for t in looks} == set(TUMOR_SITES)
    assert {t.shape for t in looks} == set(TUMOR_SHAPES)
    assert {t.texture for t in looks} == set(TUMOR_TEXTURES)
    assert {v.tumor_free_kind for v in variations if v.tumor is None} == set(TUMOR_FREE_KINDS)
    diameters = np.array([t.diameter_mm for t in looks])
    assert diameters.min() < 15 and diameters.max() > 45
    attenuation = np.array([t.attenuation for t in looks])
    assert attenuation.max() > -5 and attenuation.min() < -80  # iso- to strongly hypo
    assert any(t.stent for t in looks) and all(
        t.site in ("head", "uncinate") for t in looks if t.stent
    )


def test_replaced_hepatic_artery_at_a_realistic_rate(plans: list[PatientPlan]) -> None:
    rate = np.mean([_variation(p).body.variant == REPLACED_RHA for p in plans])
    assert 0.06 <= rate <= 0.17  # 11 % (Hiatt 1994), 400 patients: +- 2.5 standard errors


def test_tumor_free_patients_are_the_requested_fraction(plans: list[PatientPlan]) -> None:
    free = [p for p in plans if not p.has_tumor]
    assert len(free) == 80
    for plan in free:
        assert plan.tumor_location == "none"
        assert all(plan.angles[v] == 0.0 for v in KEY_VESSELS)
        assert "grade" not in plan.clinical_truth
        assert plan.clinical_truth["neoadjuvant"] == 0.0
    median_ca19_9 = np.median([p.clinical_truth["ca19_9_baseline"] for p in free])
    assert median_ca19_9 < 37.0  # the upper normal limit
    targets = cohort_targets(10, 3, PhantomOptions(variation="wide", tumor_free_fraction=0.5))
    assert targets.count(None) == 5
    none = cohort_targets(10, 3, PhantomOptions(variation="wide", tumor_free_fraction=0.0))
    assert None not in none


def test_tumor_patients_follow_the_nccn_rule(plans: list[PatientPlan]) -> None:
    tumors = [p for p in plans if p.has_tumor]
    for plan in tumors:
        assert plan.rule_category == nccn_rule_category(plan.angles)
        assert plan.tumor_location == _variation(plan).tumor.site  # type: ignore[union-attr]
    assert {p.rule_category for p in tumors} == {0, 1, 2}
    tails = [p for p in tumors if p.tumor_location == "tail" and p.target_class == 0]
    assert tails and all(not any(p.angles.values()) for p in tails)
    # Each site touches only the vessels within its reach.
    reach = {"uncinate": {"SMA", "SMV"}, "tail": {"CA", "PV"}}
    for plan in tumors:
        touched = {v for v, angle in plan.angles.items() if angle > 0}
        assert touched <= reach.get(plan.tumor_location, set(KEY_VESSELS)), plan.patient_id
    uncinate = [p for p in tumors if p.tumor_location == "uncinate"]
    assert any(p.angles["SMA"] > 0 for p in uncinate)


def test_plans_are_deterministic_and_not_the_standard_ones() -> None:
    first, again = plan_cohort(12, 5, WIDE), plan_cohort(12, 5, WIDE)
    assert first == again
    standard = plan_cohort(12, 5)
    assert {p.series_uid for p in first}.isdisjoint(p.series_uid for p in standard)
    assert all(p.variation is None for p in standard)
    synth = plan_cohort(12, 5, PhantomOptions(variation="synth"))
    assert first[0].series_uid != synth[0].series_uid


def test_fixed_values_are_kept_in_wide_mode() -> None:
    options = PhantomOptions(
        variation="wide", fov_mm=(200.0, 200.0, 90.0), pixel_spacing=1.5, slice_thickness=3.0
    )
    plans = plan_cohort(6, 2, options)
    assert {(p.pixel_spacing, p.slice_thickness, p.fov_mm) for p in plans} == {
        (1.5, 3.0, (200.0, 200.0, 90.0))
    }
    feet = plan_cohort(6, 2, PhantomOptions(variation="wide", position="FFS"))
    assert {p.patient_position for p in feet} == {"FFS"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"variation": "wild"},
        {"variation": "wide", "tumor_free_fraction": 1.5},
        {"tumor_free_fraction": 0.2},
    ],
)
def test_options_reject_bad_variation(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        PhantomOptions(**kwargs)  # type: ignore[arg-type]


def test_value_objects_reject_bad_values() -> None:
    with pytest.raises(ValueError, match="tumor diameter"):
        TumorLook("head", 70.0, "round", "homogeneous", -30.0, False)
    with pytest.raises(ValueError, match="site"):
        TumorLook("neck", 20.0, "round", "homogeneous", -30.0, False)
    with pytest.raises(ValueError, match="position"):
        Acquisition(0.8, 2.0, (300.0, 300.0, 200.0), "HFDR", 0.5, 10.0, 0.5, False)
    with pytest.raises(ValueError, match="variant"):
        Body(1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, "double-ivc")


def _tables(phase: str, mode: str = "wide") -> np.ndarray:
    plans = [p for p in plan_cohort(60, 8, PhantomOptions(variation=mode)) if p.has_tumor]
    tables = []
    rng = np.random.default_rng(0)
    for plan in plans:
        variation = _variation(plan)
        if variation.contrast_phase == phase or mode == "synth":
            tables.append(hu_table_for(variation, rng))
    assert tables
    return np.array(tables)


def test_contrast_phases_order_the_vessels_as_timing_does() -> None:
    arterial, venous = _tables("late-arterial"), _tables("portal-venous")
    assert np.all(arterial[:, Material.ARTERY] > arterial[:, Material.PORTAL] + 80)
    assert np.all(arterial[:, Material.LIVER] < 90)
    assert np.all(venous[:, Material.PORTAL] > venous[:, Material.ARTERY])
    assert np.all(venous[:, Material.LIVER] >= 100)
    pancreatic = _tables("pancreatic")
    assert np.all(pancreatic[:, Material.PANCREAS] >= 110)


def test_synth_mode_draws_each_tissue_at_random() -> None:
    synth = _tables("", mode="synth")
    assert synth[:, Material.PANCREAS].std() > 50
    assert (synth[:, Material.TUMOR] > synth[:, Material.PANCREAS]).any()  # any contrast at all
    assert np.all(synth[:, Material.BONE_CORTICAL] >= 600)  # bone, air and gas stay CT-like
    assert np.all(synth[:, Material.AIR] == -1000)
