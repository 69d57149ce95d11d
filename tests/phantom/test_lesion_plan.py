"""Lesions of the wide modes, plans only: prevalence, negative kinds, locations, shares."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from phantom import (
    LESION_LOCATIONS,
    NEGATIVE_KINDS,
    SMALL_PDAC_MM,
    LesionMix,
    LesionSpec,
    PatientPlan,
    PhantomOptions,
    TumorLook,
    Variation,
    plan_cohort,
)
from phantom._anatomy import build_anatomy
from phantom._lesion_render import site_center

DETECTION = PhantomOptions(variation="wide", pdac_prevalence=0.3)


def _variation(plan: PatientPlan) -> Variation:
    assert plan.variation is not None
    return plan.variation


def _look(plan: PatientPlan) -> TumorLook:
    look = _variation(plan).tumor
    assert look is not None
    return look


@pytest.fixture(scope="module")
def plans() -> list[PatientPlan]:
    return plan_cohort(600, 17, DETECTION)


def _within(share: float, expected: float, n: int) -> bool:
    """``share`` of ``n`` draws is within 4 standard errors of ``expected``."""
    return abs(share - expected) <= 4.0 * math.sqrt(expected * (1.0 - expected) / n)


def test_pdac_prevalence_is_the_complement_of_the_tumor_free_fraction(
    plans: list[PatientPlan],
) -> None:
    assert sum(p.has_tumor for p in plans) == 180
    same = PhantomOptions(variation="wide", tumor_free_fraction=0.7)
    assert same.tumor_free == DETECTION.tumor_free and same.digest() == DETECTION.digest()
    assert plan_cohort(10, 2, same) == plan_cohort(10, 2, DETECTION)
    assert PhantomOptions(variation="wide").tumor_free == 0.2  # the default is unchanged


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"variation": "wide", "pdac_prevalence": 0.3, "tumor_free_fraction": 0.7}, "not both"),
        ({"variation": "wide", "pdac_prevalence": 1.2}, "prevalence"),
        ({"pdac_prevalence": 0.3}, "wide"),
        ({"lesion_mix": LesionMix()}, "wide"),
    ],
)
def test_prevalence_options_are_checked(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PhantomOptions(**kwargs)  # type: ignore[arg-type]


def test_every_negative_kind_has_its_own_lesions(plans: list[PatientPlan]) -> None:
    free = [_variation(p) for p in plans if not p.has_tumor]
    assert {v.tumor_free_kind for v in free} == set(NEGATIVE_KINDS)
    for variation in free:
        kinds = [lesion.kind for lesion in variation.lesions]
        if variation.tumor_free_kind == "cyst":
            assert 1 <= len(kinds) <= 3 and set(kinds) == {"cyst"}
        elif variation.tumor_free_kind == "pnet":
            assert kinds == ["pnet"] and variation.lesions[0].contrast_hu > 0
        else:
            assert kinds == []
        assert variation.negative_kind == variation.tumor_free_kind
    dilated = [v.duct_dilated for v in free if v.tumor_free_kind == "atrophic"]
    assert any(dilated) and not all(dilated)
    assert not any(v.duct_dilated for v in free if v.tumor_free_kind != "atrophic")
    weights = np.array(LesionMix().negative_p())
    counts = np.array([[v.tumor_free_kind for v in free].count(k) for k in NEGATIVE_KINDS])
    assert all(_within(c / len(free), w, len(free)) for c, w in zip(counts, weights, strict=True))


def test_every_location_occurs_for_pdac_and_other_lesions(plans: list[PatientPlan]) -> None:
    pdac = [_look(p).site for p in plans if p.has_tumor]
    others = [lesion.location for p in plans for lesion in _variation(p).lesions]
    assert set(pdac) == set(LESION_LOCATIONS) and set(others) == set(LESION_LOCATIONS)
    incidental = [_variation(p) for p in plans if p.has_tumor and _variation(p).lesions]
    assert incidental and all(
        [lesion.kind for lesion in v.lesions] == ["cyst"]
        and v.lesions[0].location != _look_of(v).site
        and v.lesions[0].diameter_mm <= 15.0
        for v in incidental
    )


def _look_of(variation: Variation) -> TumorLook:
    assert variation.tumor is not None
    return variation.tumor


@pytest.mark.parametrize(("small", "iso"), [(0.25, 0.1), (0.5, 0.3)])
def test_small_and_iso_pdac_occur_at_the_configured_shares(small: float, iso: float) -> None:
    mix = LesionMix(small_pdac=small, iso_pdac=iso)
    options = PhantomOptions(variation="wide", pdac_prevalence=1.0, lesion_mix=mix)
    cohort = plan_cohort(800, 5, options)
    looks = [_look(p) for p in cohort]
    diameters = np.array([look.diameter_mm for look in looks])
    is_small = np.array([look.small for look in looks])
    assert _within(float(is_small.mean()), small, len(looks))
    assert diameters[is_small].min() >= 10.0 and diameters[is_small].max() <= SMALL_PDAC_MM
    assert diameters[~is_small].min() > SMALL_PDAC_MM
    # Resectable and borderline tumors only, and none with strands reaching past 2 cm.
    assert {p.target_class for p in cohort if _look(p).small} == {0, 1}
    assert all(look.shape != "infiltrating" for look in looks if look.small)
    attenuation = np.array([look.attenuation for look in looks])
    is_iso = np.array([look.iso for look in looks])
    assert _within(float(is_iso.mean()), iso, len(looks))
    assert attenuation[is_iso].min() >= -10.0 and attenuation[~is_iso].max() <= -15.0
    assert all(look.texture == "homogeneous" for look in looks if look.iso)
    # Iso-attenuating tumors at every site, where only the duct may give them away.
    assert {look.site for look in looks if look.iso} == set(LESION_LOCATIONS)


def test_the_mix_is_part_of_the_uids_and_checked() -> None:
    other = PhantomOptions(variation="wide", lesion_mix=LesionMix(small_pdac=0.5))
    assert other.digest() != PhantomOptions(variation="wide").digest()
    with pytest.raises(ValueError, match="small"):
        LesionMix(small_pdac=1.5)
    with pytest.raises(ValueError, match="negative weights"):
        LesionMix(negative_weights=(1.0, 0.0, -1.0, 0.0))
    with pytest.raises(ValueError, match="cyst or a pnet"):
        LesionSpec("pdac", "head", 20.0)
    with pytest.raises(ValueError, match="location"):
        LesionSpec("cyst", "neck", 20.0)


def test_variations_refuse_lesions_that_do_not_fit_the_kind(plans: list[PatientPlan]) -> None:
    normal = next(_variation(p) for p in plans if _variation(p).tumor_free_kind == "normal")
    cyst = LesionSpec("cyst", "body", 12.0)
    with pytest.raises(ValueError, match="cannot have lesions"):
        dataclasses.replace(normal, lesions=(cyst,))
    with pytest.raises(ValueError, match="dilated duct"):
        dataclasses.replace(normal, duct_dilated=True)
    pdac = next(_variation(p) for p in plans if p.has_tumor)
    with pytest.raises(ValueError, match="incidental cysts only"):
        dataclasses.replace(pdac, lesions=(LesionSpec("pnet", "tail", 12.0, 40.0),))


@pytest.mark.parametrize("location", LESION_LOCATIONS)
def test_lesion_centres_lie_in_their_part_of_the_gland(
    plans: list[PatientPlan], location: str
) -> None:
    """In the design frame (+x: patient's left), head < body < tail along the gland."""
    x_range = {"head": (-40, -12), "uncinate": (-20, -2), "body": (-4, 48), "tail": (42, 80)}
    rng = np.random.default_rng(3)
    for plan in plans[:8]:
        body = _variation(plan).body
        anatomy = build_anatomy(rng, np.zeros(3), float(plan.clinical_truth["bmi"]), body)
        placement = anatomy.placement
        for _ in range(5):
            world = site_center(anatomy, location, rng)
            local = placement.rotation.T @ (world - placement.translation) / placement.scale
            lo, hi = x_range[location]
            assert lo <= local[0] <= hi, (location, local)
            if location == "uncinate":
                assert local[2] < -18  # below the head's centre, behind the SMV
