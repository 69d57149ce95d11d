"""Wide variation, rendered: labels, tumor-free patients, variant, artefacts, contact angles."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from pancreas_contracts.labels import label_by_name
from pancreas_contracts.lymph_nodes import structure_by_name
from phantom import (
    KEY_VESSELS,
    REPLACED_RHA,
    Grid,
    Material,
    PatientPlan,
    PhantomOptions,
    PhantomScan,
    TumorLook,
    Variation,
    plan_cohort,
    render_patient,
)
from phantom._variation_image import correlated_noise, streaks
from tests.phantom.test_image import measured_contact

SMALL = PhantomOptions(
    variation="wide", fov_mm=(220.0, 200.0, 150.0), pixel_spacing=1.5, slice_thickness=3.0
)
TUMOR = label_by_name("tumor").value


def _variation(plan: PatientPlan) -> Variation:
    assert plan.variation is not None
    return plan.variation


def _look(plan: PatientPlan) -> TumorLook:
    look = _variation(plan).tumor
    assert look is not None
    return look


def _first(plans: list[PatientPlan], wanted: Callable[[PatientPlan], bool]) -> PatientPlan:
    """The first plan for which ``wanted(plan)`` holds."""
    for plan in plans:
        if wanted(plan):
            return plan
    raise AssertionError("no such plan in the cohort")


@pytest.fixture(scope="module")
def plans() -> list[PatientPlan]:
    return plan_cohort(60, 23, SMALL)


@pytest.fixture(scope="module")
def tumor_free(plans: list[PatientPlan]) -> list[tuple[PatientPlan, PhantomScan]]:
    free = [p for p in plans if not p.has_tumor][:4]
    return [(p, render_patient(p)) for p in free]


def test_tumor_free_patients_have_no_tumor_label(
    tumor_free: list[tuple[PatientPlan, PhantomScan]],
) -> None:
    kinds = set()
    for plan, scan in tumor_free:
        kinds.add(_variation(plan).tumor_free_kind)
        assert TUMOR not in np.unique(scan.labels)
        assert scan.tumor is None and scan.tumor_volume_ml == 0.0
        assert scan.tumor_attenuation is None
        assert np.count_nonzero(scan.labels == label_by_name("pancreas").value) > 0
    assert len(kinds) >= 2


def test_a_cyst_is_fluid_labelled_pancreas(plans: list[PatientPlan]) -> None:
    plan = _first(plans, lambda p: _variation(p).tumor_free_kind == "cyst")
    scan = render_patient(plan)
    cyst = scan.materials == Material.CYST
    assert cyst.any()
    assert set(np.unique(scan.labels[cyst]).tolist()) <= {label_by_name("pancreas").value}
    assert np.median(scan.hu[cyst]) < 60  # water-like, darker than any enhanced gland


def test_an_atrophic_pancreas_is_smaller(plans: list[PatientPlan]) -> None:
    atrophic = _first(plans, lambda p: _variation(p).tumor_free_kind == "atrophic")
    normal = _first(plans, lambda p: _variation(p).tumor_free_kind == "normal")
    pancreas = label_by_name("pancreas").value
    volumes = [
        np.count_nonzero(render_patient(p).labels == pancreas) / _variation(p).body.scale ** 3
        for p in (atrophic, normal)
    ]
    assert volumes[0] < 0.75 * volumes[1]


def test_tumor_attenuation_is_measured_on_the_image(plans: list[PatientPlan]) -> None:
    plan = _first(
        plans,
        lambda p: p.has_tumor and _look(p).texture == "homogeneous",
    )
    scan = render_patient(plan)
    look = _variation(plan).tumor
    assert look is not None and scan.tumor_attenuation is not None
    assert scan.tumor_volume_ml > 0
    # The gland's own texture and partial volume move the measured value a little.
    assert scan.tumor_attenuation == pytest.approx(look.attenuation, abs=6.0)


def test_replaced_hepatic_artery_is_an_unlabelled_artery(plans: list[PatientPlan]) -> None:
    plan = _first(plans, lambda p: _variation(p).body.variant == REPLACED_RHA)
    scan = render_patient(plan)
    assert "replaced_rha" in scan.vessels
    assert np.count_nonzero(_unlabelled_artery(scan)) > 50
    plain = render_patient(_first(plans, lambda p: _variation(p).body.variant == ""))
    assert "replaced_rha" not in plain.vessels
    assert np.count_nonzero(_unlabelled_artery(plain)) == 0


def _unlabelled_artery(scan: PhantomScan) -> npt.NDArray[np.bool_]:
    """Artery without a label, apart from the left gastric artery (lymph nodes' structure)."""
    artery = np.asarray((scan.materials == Material.ARTERY) & (scan.labels == 0), dtype=bool)
    if scan.organs is not None:
        artery &= scan.organs != structure_by_name("left_gastric").value
    return artery


def test_stent_and_calcifications_change_the_image_not_the_labels() -> None:
    plans = plan_cohort(120, 4, SMALL)
    stented = _first(plans, lambda p: p.has_tumor and _look(p).stent)
    scan = render_patient(stented)
    stent = scan.materials == Material.STENT
    assert stent.any()
    assert set(np.unique(scan.labels[stent]).tolist()) == {label_by_name("bile_duct").value}
    calcified = render_patient(_first(plans, lambda p: _variation(p).calcifications > 0))
    dots = calcified.materials == Material.CALCIFICATION
    assert dots.any()
    allowed = {label_by_name(n).value for n in ("pancreas", "tumor", "aorta")}
    assert set(np.unique(calcified.labels[dots]).tolist()) <= allowed
    assert np.median(calcified.hu[dots]) > 150


def test_rendering_is_deterministic(plans: list[PatientPlan]) -> None:
    first, again = render_patient(plans[0]), render_patient(plans[0])
    assert np.array_equal(first.hu, again.hu) and np.array_equal(first.labels, again.labels)


def _shaped_plans() -> list[PatientPlan]:
    """A lobulated, an infiltrating and a small tumor with vessel contact, at 0.7 mm voxels."""
    options = PhantomOptions(
        variation="wide", fov_mm=(220.0, 220.0, 180.0), pixel_spacing=0.7, slice_thickness=1.0
    )
    plans = plan_cohort(80, 31, options)

    def shaped(shape: str) -> Callable[[PatientPlan], bool]:
        def wanted(plan: PatientPlan) -> bool:
            contacts = sum(a > 0 for a in plan.angles.values())
            return plan.has_tumor and _look(plan).shape == shape and contacts >= 2

        return wanted

    shaped_plans = [_first(plans, shaped(shape)) for shape in ("lobulated", "infiltrating")]
    small = _first(
        plans,
        lambda p: p.has_tumor and _look(p).small and sum(a > 0 for a in p.angles.values()) > 1,
    )
    return [*shaped_plans, small]


@pytest.mark.parametrize("plan", _shaped_plans(), ids=lambda p: p.patient_id)
def test_contact_angles_stay_exact_for_every_shape(plan: PatientPlan) -> None:
    scan = render_patient(plan)
    for key in KEY_VESSELS:
        measured = measured_contact(scan, key)
        if plan.angles[key] == 0:
            assert measured == 0.0, key
        else:
            assert measured == pytest.approx(plan.angles[key], abs=10.0), key


def test_streaks_radiate_from_the_stent_in_a_band_of_slices() -> None:
    grid = Grid((40, 64, 64), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    materials = np.zeros(grid.shape, dtype=np.uint8)
    materials[20, 30:33, 30:33] = Material.STENT
    hu = np.zeros(grid.shape, dtype=np.float32)
    streaks(grid, hu, materials, np.random.default_rng(3))
    touched = np.nonzero(np.abs(hu).max(axis=(1, 2)) > 1.0)[0]
    assert 20 in touched and len(touched) < grid.shape[0]
    assert touched.max() - touched.min() == len(touched) - 1  # one contiguous band
    near = np.abs(hu[20, 26:37, 26:37]).mean()
    far = np.abs(hu[20, :8, :8]).mean()
    assert near > 20.0 and near > 3 * far  # strongest next to the source


def test_noise_has_the_drawn_level_and_grain() -> None:
    grid = Grid((16, 96, 96), (0.7, 0.7, 2.0), (0.0, 0.0, 0.0))
    fine = np.zeros(grid.shape, dtype=np.float32)
    coarse = np.zeros(grid.shape, dtype=np.float32)
    correlated_noise(grid, fine, 20.0, 0.3, np.random.default_rng(1))
    correlated_noise(grid, coarse, 20.0, 1.2, np.random.default_rng(1))
    assert fine.std() == pytest.approx(20.0, rel=0.02)
    assert coarse.std() == pytest.approx(20.0, rel=0.02)

    def neighbour_correlation(noise: np.ndarray) -> float:
        return float(np.corrcoef(noise[:, :, :-1].ravel(), noise[:, :, 1:].ravel())[0, 1])

    assert neighbour_correlation(coarse) > neighbour_correlation(fine) + 0.3
