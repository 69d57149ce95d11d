"""Contrast-phase check: the phantom in three phases, the decision rules, and real public CTs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from scipy import ndimage

from inference.contrast_phase import (
    ContrastPhase,
    ContrastPhaseEstimate,
    PhaseRules,
    VesselLandmark,
    decide_phase,
    estimate_contrast_phase,
    locate_contrast_landmarks,
)
from inference.volume import Volume, read_nifti
from inference.volume_io import read_dicom_series
from pancreas_contracts.labels import label_by_name
from phantom import (
    Material,
    PhantomOptions,
    PhantomScan,
    plan_cohort,
    render_patient,
    scan_volumes,
)

PHANTOM = PhantomOptions(pixel_spacing=0.9, slice_thickness=3.0)
NIH_CASE = "pancreas-ct-0001"
TS_CASE = "totalsegmentator-example"
#: TotalSegmentator label values in the shared example's predicted segmentation.
TS_AORTA, TS_PORTAL_SPLENIC = 52, 64

#: Late-arterial look: arteries bright, portal system partly enhanced, parenchyma little.
ARTERIAL_HU: Mapping[Material, float] = {
    Material.ARTERY: 300.0,
    Material.PORTAL: 110.0,
    Material.SMV: 105.0,
    Material.IVC: 60.0,
    Material.LIVER: 70.0,
    Material.SPLEEN: 90.0,
    Material.PANCREAS: 110.0,
    Material.KIDNEY: 200.0,
}
#: Unenhanced: blood about 40 HU everywhere, organs at their native attenuation.
NON_CONTRAST_HU: Mapping[Material, float] = {
    Material.ARTERY: 40.0,
    Material.PORTAL: 40.0,
    Material.SMV: 40.0,
    Material.IVC: 40.0,
    Material.LIVER: 58.0,
    Material.SPLEEN: 48.0,
    Material.PANCREAS: 42.0,
    Material.KIDNEY: 32.0,
    Material.TUMOR: 38.0,
}


def _label(name: str) -> int:
    return label_by_name(name).value


@pytest.fixture(scope="module")
def phantom() -> PhantomScan:
    """One small portal-venous phantom patient (portal vein above the aorta by construction)."""
    return render_patient(plan_cohort(1, 3, PHANTOM)[0])


def _rephase(scan: PhantomScan, table: Mapping[Material, float]) -> PhantomScan:
    """Shift each tissue's HU to a new median, keeping its texture, blur and noise."""
    hu = scan.hu.astype(np.float32)
    for material, target in table.items():
        where = scan.materials == material
        if where.any():
            hu[where] += np.float32(target - float(np.median(hu[where])))
    rounded = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    return dataclasses.replace(scan, hu=rounded)


def _label_hu(image: Volume, labels: Volume, names: tuple[str, ...]) -> float:
    """Median HU of the labels' cores (eroded twice: no partial volume)."""
    mask = np.isin(np.asarray(labels.array), [_label(n) for n in names])
    core = ndimage.binary_erosion(mask, iterations=2)
    return float(np.median(np.asarray(image.array)[core]))


def _labels_at(labels: Volume, points_ras: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    index = np.rint(labels.world_to_voxel(points_ras)).astype(int)
    index = np.clip(index, 0, np.array(labels.shape) - 1)
    return np.asarray(np.asarray(labels.array)[tuple(index.T)], dtype=np.int64)


def _check_estimate(estimate: ContrastPhaseEstimate) -> None:
    assert 0.0 <= estimate.confidence <= 1.0
    assert estimate.reason and "\n" not in estimate.reason


# --- phantom ------------------------------------------------------------------------------------


def test_portal_venous_phantom_reads_portal_venous(phantom: PhantomScan) -> None:
    image, labels = scan_volumes(phantom)
    estimate = estimate_contrast_phase(image)
    _check_estimate(estimate)
    assert estimate.phase is ContrastPhase.PORTAL_VENOUS, estimate.reason
    assert estimate.aorta_hu is not None and estimate.portal_vein_hu is not None
    aorta = _label_hu(image, labels, ("aorta",))
    portal = _label_hu(image, labels, ("portal_vein", "smv"))
    assert estimate.portal_vein_hu > estimate.aorta_hu
    assert abs(estimate.aorta_hu - aorta) <= 5.0
    assert abs(estimate.portal_vein_hu - portal) <= 10.0
    assert estimate.confidence >= 0.6


def test_phantom_landmarks_lie_in_their_labels(phantom: PhantomScan) -> None:
    image, labels = scan_volumes(phantom)
    marks = locate_contrast_landmarks(image)
    assert marks.aorta is not None and marks.portal_vein is not None
    assert marks.spine_found_fraction > 0.5
    on_aorta = _labels_at(labels, marks.aorta.centreline_ras) == _label("aorta")
    assert on_aorta.mean() >= 0.95
    assert marks.aorta.length_mm >= 150.0
    portal_system = [_label(n) for n in ("portal_vein", "smv", "splenic_vein")]
    on_portal = np.isin(_labels_at(labels, marks.portal_vein.centreline_ras), portal_system)
    assert on_portal.mean() >= 0.9
    if marks.ivc is not None:
        assert (_labels_at(labels, marks.ivc.centreline_ras) == _label("ivc")).mean() >= 0.9


def test_arterial_phantom_reads_arterial(phantom: PhantomScan) -> None:
    image, _ = scan_volumes(_rephase(phantom, ARTERIAL_HU))
    estimate = estimate_contrast_phase(image)
    _check_estimate(estimate)
    assert estimate.phase is ContrastPhase.ARTERIAL, estimate.reason
    assert estimate.aorta_hu is not None and abs(estimate.aorta_hu - 300.0) <= 10.0
    assert estimate.portal_vein_hu is not None and abs(estimate.portal_vein_hu - 110.0) <= 15.0


def test_non_contrast_phantom_reads_non_contrast(phantom: PhantomScan) -> None:
    image, _ = scan_volumes(_rephase(phantom, NON_CONTRAST_HU))
    estimate = estimate_contrast_phase(image)
    _check_estimate(estimate)
    assert estimate.phase is ContrastPhase.NON_CONTRAST, estimate.reason
    assert estimate.aorta_hu is not None and abs(estimate.aorta_hu - 40.0) <= 10.0
    assert estimate.confidence >= 0.6


def test_orientation_of_the_input_does_not_matter(phantom: PhantomScan) -> None:
    image, _ = scan_volumes(phantom)
    reference = estimate_contrast_phase(image)
    # Native DICOM-like order: i towards the patient's left, j posterior, slices head to feet.
    flip = np.diag([-1.0, -1.0, -1.0, 1.0])
    flip[:3, 3] = np.array(image.shape) - 1
    turned = Volume(np.ascontiguousarray(image.array[::-1, ::-1, ::-1]), image.affine @ flip)
    estimate = estimate_contrast_phase(turned)
    assert estimate.phase is reference.phase
    assert estimate.aorta_hu is not None and reference.aorta_hu is not None
    assert estimate.portal_vein_hu is not None and reference.portal_vein_hu is not None
    assert abs(estimate.aorta_hu - reference.aorta_hu) <= 5.0
    assert abs(estimate.portal_vein_hu - reference.portal_vein_hu) <= 10.0


def test_volumes_without_anatomy_are_unknown() -> None:
    air = Volume(np.full((64, 64, 40), -1000.0, dtype=np.float32), np.diag([2.0, 2.0, 3.0, 1.0]))
    estimate = estimate_contrast_phase(air)
    assert estimate.phase is ContrastPhase.UNKNOWN
    assert estimate.confidence == 0.0
    assert "vertebral column" in estimate.reason
    thin = Volume(np.zeros((64, 64, 2), dtype=np.int16), np.diag([2.0, 2.0, 1.0, 1.0]))
    short = estimate_contrast_phase(thin)
    assert short.phase is ContrastPhase.UNKNOWN
    assert "slice" in short.reason


# --- decision rules -----------------------------------------------------------------------------


def _vessel(hu: float, quality: float = 1.0) -> VesselLandmark:
    return VesselLandmark(np.zeros((5, 3)), np.full(5, 20.0), hu, 60.0, quality)


@pytest.mark.parametrize(
    ("aorta", "portal", "phase"),
    [
        (160.0, 200.0, ContrastPhase.PORTAL_VENOUS),  # portal vein above the aorta
        (160.0, 152.0, ContrastPhase.PORTAL_VENOUS),  # within the 10 HU margin
        (234.0, 176.0, ContrastPhase.PORTAL_VENOUS),  # real PV phase: ratio 0.70
        (120.0, 121.0, ContrastPhase.PORTAL_VENOUS),  # equilibrium reads portal-venous
        (300.0, 110.0, ContrastPhase.ARTERIAL),
        (350.0, 60.0, ContrastPhase.ARTERIAL),
        (260.0, 160.0, ContrastPhase.UNKNOWN),  # ratio 0.55: between the phases
        (42.0, 45.0, ContrastPhase.NON_CONTRAST),
        (42.0, None, ContrastPhase.NON_CONTRAST),
        (320.0, None, ContrastPhase.ARTERIAL),  # portal vein not enhanced enough to be found
        (200.0, None, ContrastPhase.UNKNOWN),
        (None, 180.0, ContrastPhase.UNKNOWN),
    ],
)
def test_decision_rules(aorta: float | None, portal: float | None, phase: ContrastPhase) -> None:
    estimate = decide_phase(
        None if aorta is None else _vessel(aorta), None if portal is None else _vessel(portal)
    )
    _check_estimate(estimate)
    assert estimate.phase is phase, estimate.reason
    assert estimate.aorta_hu == aorta
    assert estimate.portal_vein_hu == portal
    if phase is ContrastPhase.UNKNOWN:
        assert estimate.confidence == 0.0
    else:
        assert estimate.confidence > 0.0


def test_confidence_grows_with_the_margin_and_the_detection() -> None:
    clear = decide_phase(_vessel(160.0), _vessel(200.0))
    close = decide_phase(_vessel(234.0), _vessel(176.0))
    faint = decide_phase(_vessel(160.0, quality=0.25), _vessel(200.0, quality=0.25))
    assert clear.confidence > close.confidence
    assert clear.confidence > faint.confidence


def test_rules_are_configurable_and_checked() -> None:
    strict = PhaseRules(portal_min_ratio=0.8)
    assert decide_phase(_vessel(234.0), _vessel(176.0), strict).phase is ContrastPhase.UNKNOWN
    wide = PhaseRules(portal_margin_hu=30.0, portal_min_ratio=0.95)
    assert decide_phase(_vessel(180.0), _vessel(155.0), wide).phase is ContrastPhase.PORTAL_VENOUS
    with pytest.raises(ValueError, match="ratio"):
        PhaseRules(arterial_max_ratio=0.7, portal_min_ratio=0.6)
    with pytest.raises(ValueError, match="margin"):
        PhaseRules(portal_margin_hu=-1.0)
    assert ContrastPhase("portal-venous") is ContrastPhase.PORTAL_VENOUS


# --- real public CTs ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nih(shared_data: Path) -> Volume:
    return read_dicom_series(shared_data / NIH_CASE / "dicom").volume


def test_nih_case_reads_portal_venous(nih: Volume) -> None:
    estimate = estimate_contrast_phase(nih)
    _check_estimate(estimate)
    assert estimate.phase is ContrastPhase.PORTAL_VENOUS, estimate.reason
    # Measured: aorta ~234 HU, portal vein (with SMV) ~176 HU: a real portal-venous scan where
    # the aorta is still well above the portal vein (the ratio rule, not the margin rule).
    assert estimate.aorta_hu is not None and 200.0 <= estimate.aorta_hu <= 270.0
    assert estimate.portal_vein_hu is not None and 150.0 <= estimate.portal_vein_hu <= 210.0
    assert estimate.confidence >= 0.3
    assert "PANCREAS_0001" not in estimate.reason


def test_nih_landmarks_are_anatomical(nih: Volume, shared_data: Path) -> None:
    marks = locate_contrast_landmarks(nih)
    assert marks.aorta is not None and marks.portal_vein is not None
    assert marks.spine_anterior_ras is not None
    aorta = marks.aorta.centreline_ras
    front = marks.spine_anterior_ras
    nearest = np.array([np.argmin(np.abs(front[:, 2] - z)) for z in aorta[:, 2]])
    ahead = aorta[:, 1] - front[nearest, 1]  # RAS +y is anterior
    assert ahead.min() > 0.0 and float(np.median(ahead)) > 5.0
    assert float(np.median(aorta[:, 0] - front[nearest, 0])) < 0.0  # left of the midline
    assert marks.aorta.length_mm > 150.0
    # The portal vein / SMV runs behind the pancreatic neck: it must touch the manual mask.
    pancreas = read_nifti(shared_data / NIH_CASE / "pancreas_label.nii.gz")
    gland = pancreas.voxel_to_world(np.argwhere(np.asarray(pancreas.array) > 0))
    portal = marks.portal_vein.centreline_ras
    gaps = np.linalg.norm(portal[:, None, :] - gland[None, ::4, :], axis=2)
    assert gaps.min() <= 10.0
    at = np.array([np.argmin(np.abs(aorta[:, 2] - z)) for z in portal[:, 2]])
    assert np.all(portal[:, 0] > aorta[at, 0])  # right of the aorta
    assert np.all(portal[:, 1] > aorta[at, 1])  # in front of it


def _distance_at(
    distance: npt.NDArray[np.float64], grid: Volume, points_ras: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    index = np.clip(
        np.rint(grid.world_to_voxel(points_ras)).astype(int), 0, np.array(grid.shape) - 1
    )
    return np.asarray(distance[tuple(index.T)], dtype=np.float64)


def test_totalsegmentator_case_matches_its_segmentation(shared_data: Path) -> None:
    case = shared_data / TS_CASE
    image = read_dicom_series(case / "dicom").volume
    seg = read_nifti(case / "segmentation_predicted.nii.gz")
    marks = locate_contrast_landmarks(image)
    assert marks.aorta is not None and marks.portal_vein is not None
    estimate = decide_phase(marks.aorta, marks.portal_vein)
    assert estimate.phase is ContrastPhase.PORTAL_VENOUS, estimate.reason
    labels = np.asarray(seg.array)
    for landmark, value, inside in (
        (marks.aorta, TS_AORTA, 0.9),
        (marks.portal_vein, TS_PORTAL_SPLENIC, 0.7),
    ):
        distance = ndimage.distance_transform_edt(labels != value, sampling=seg.spacing)
        gap = _distance_at(distance, seg, landmark.centreline_ras)
        assert (gap == 0.0).mean() >= inside
        assert gap.max() <= 5.0
        reference = _ts_label_hu(image, seg, value)
        assert abs(landmark.hu - reference) <= 10.0


def _ts_label_hu(image: Volume, seg: Volume, value: int) -> float:
    """Median HU of a predicted label's core, sampled on the image grid by world position."""
    mask = np.asarray(seg.array) == value
    core = ndimage.binary_erosion(mask, iterations=2)
    points = seg.voxel_to_world(np.argwhere(core))
    index = np.rint(image.world_to_voxel(points)).astype(int)
    return float(np.median(np.asarray(image.array)[tuple(index.T)]))


# --- non-contrast and cone-beam CT must not read arterial ---------------------------------------

#: A cone-beam CT without contrast, as reported (aorta 319 HU, called arterial): the HU scale
#: is off (fat read at about +20 HU instead of -100, organs at about +90 instead of +50), the
#: aorta reads 319 HU and the portal system and IVC read as the organs around them. Before the
#: HU-scale check this read arterial (aorta 322 HU, portal vein 103 HU, ratio 0.22).
CBCT_HU: Mapping[Material, float] = {
    Material.FAT_SUBCUTANEOUS: 20.0,
    Material.FAT_VISCERAL: 25.0,
    Material.ARTERY: 319.0,
    Material.PORTAL: 95.0,
    Material.SMV: 95.0,
    Material.IVC: 95.0,
    Material.LIVER: 95.0,
    Material.SPLEEN: 90.0,
    Material.PANCREAS: 85.0,
    Material.KIDNEY: 85.0,
    Material.MUSCLE: 90.0,
    Material.TUMOR: 85.0,
}


def _cbct(scan: PhantomScan, noise_hu: float = 25.0) -> PhantomScan:
    """``scan`` with the CBCT scale above and extra noise (CBCT is noisier)."""
    shifted = _rephase(scan, CBCT_HU)
    rng = np.random.default_rng(5)
    hu = shifted.hu.astype(np.float32) + rng.normal(0.0, noise_hu, shifted.hu.shape)
    return dataclasses.replace(shifted, hu=np.clip(np.rint(hu), -1024, 3071).astype(np.int16))


def test_cbct_like_scan_with_a_319_hu_aorta_is_unknown_not_arterial(phantom: PhantomScan) -> None:
    image, _ = scan_volumes(_cbct(phantom))
    marks = locate_contrast_landmarks(image)
    assert marks.aorta is not None and abs(marks.aorta.hu - 319.0) <= 15.0
    assert marks.calibration is not None and not marks.calibration.plausible
    assert marks.calibration.fat_hu is not None and marks.calibration.fat_hu > -40.0
    estimate = estimate_contrast_phase(image)
    _check_estimate(estimate)
    assert estimate.phase is ContrastPhase.UNKNOWN, estimate.reason
    assert estimate.confidence == 0.0
    assert "HU scale implausible" in estimate.reason and "fat" in estimate.reason


@pytest.mark.parametrize(
    "table", [None, ARTERIAL_HU, NON_CONTRAST_HU], ids=["portal", "arterial", "non-contrast"]
)
def test_calibrated_phantoms_pass_the_hu_scale_check(
    phantom: PhantomScan, table: Mapping[Material, float] | None
) -> None:
    image, _ = scan_volumes(phantom if table is None else _rephase(phantom, table))
    calibration = locate_contrast_landmarks(image).calibration
    assert calibration is not None and calibration.plausible, calibration
    assert calibration.fat_hu is not None and -130.0 <= calibration.fat_hu <= -70.0


def test_nih_case_passes_the_hu_scale_check(nih: Volume) -> None:
    calibration = locate_contrast_landmarks(nih).calibration
    assert calibration is not None and calibration.plausible, calibration


def test_nih_series_with_an_empty_contrast_agent_still_reads_portal_venous(
    shared_data: Path,
) -> None:
    """ContrastBolusAgent is empty in the NIH case: weak evidence, the image decides."""
    from inference.contrast_phase import estimate_series_phase

    phase, reason = estimate_series_phase(sorted((shared_data / NIH_CASE / "dicom").iterdir()))
    assert phase == "portal-venous", reason


@pytest.mark.parametrize(
    ("fat", "soft", "fraction", "plausible", "why"),
    [
        (-100.0, 50.0, 0.3, True, "plausible"),
        (20.0, 90.0, 0.3, False, "fat not within -100 +/- 60 HU"),
        (180.0, 330.0, 0.3, False, "fat not within"),  # a uniform +280 HU offset
        (-100.0, -40.0, 0.3, False, "soft tissue not 100-250 HU above fat"),
    ],
)
def test_hu_scale_check_on_synthetic_tissue(
    fat: float, soft: float, fraction: float, plausible: bool, why: str
) -> None:
    from inference._contrast_calibration import check_calibration

    rng = np.random.default_rng(0)
    n = 20000
    n_fat = int(n * fraction)
    values = np.concatenate(
        [rng.normal(fat, 12.0, n_fat), rng.normal(soft, 12.0, n - n_fat)]
    ).astype(np.float32)
    result = check_calibration(values.reshape(100, 200, 1), np.ones((100, 200, 1), dtype=bool))
    assert result.plausible is plausible, result.reason
    assert why in result.reason


def test_aorta_alone_is_not_arterial_when_the_ivc_is_as_bright() -> None:
    # The old rule: an aorta of 300 HU or more with no portal vein found read arterial.
    assert decide_phase(_vessel(319.0), None).phase is ContrastPhase.ARTERIAL
    same = decide_phase(_vessel(319.0), None, ivc=_vessel(305.0))
    assert same.phase is ContrastPhase.UNKNOWN, same.reason
    assert "IVC 305 HU alike" in same.reason
    gradient = decide_phase(_vessel(319.0), None, ivc=_vessel(70.0))
    assert gradient.phase is ContrastPhase.ARTERIAL, gradient.reason


def test_empty_contrast_agent_keeps_the_aorta_alone_from_reading_arterial() -> None:
    from inference.contrast_phase import PhaseHeader

    none = PhaseHeader(contrast_agent_recorded=False)
    estimate = decide_phase(_vessel(319.0), None, header=none)
    assert estimate.phase is ContrastPhase.UNKNOWN
    assert "ContrastBolusAgent empty" in estimate.reason
    recorded = PhaseHeader(contrast_agent_recorded=True)
    assert decide_phase(_vessel(319.0), None, header=recorded).phase is ContrastPhase.ARTERIAL
    # Weak evidence only: an image with an arterial gradient or a portal vein still decides.
    assert decide_phase(_vessel(300.0), _vessel(110.0), header=none).phase is (
        ContrastPhase.ARTERIAL
    )
    assert decide_phase(_vessel(234.0), _vessel(176.0), header=none).phase is (
        ContrastPhase.PORTAL_VENOUS
    )


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("SeriesDescription", "Abdomen CBCT 5s"),
        ("SeriesDescription", "CONE BEAM abdomen"),
        ("ProtocolName", "syngo DynaCT body"),
        ("ImageType", ["ORIGINAL", "PRIMARY", "AXIAL", "CBCT"]),
        ("AcquisitionDeviceProcessingDescription", "XperCT"),
    ],
)
def test_cone_beam_headers_read_unknown(
    attribute: str, value: object, tmp_path: Path, phantom_files: list[Path]
) -> None:
    from pydicom import dcmread

    from inference.contrast_phase import estimate_series_phase

    files = []
    for src in phantom_files:
        ds = dcmread(src)
        setattr(ds, attribute, value)
        ds.save_as(tmp_path / src.name)
        files.append(tmp_path / src.name)
    phase, reason = estimate_series_phase(files)
    assert phase == "unknown"
    assert f"cone-beam CT ({attribute} says so)" in reason


def test_phantom_series_without_cbct_words_still_reads_portal_venous(
    phantom_files: list[Path],
) -> None:
    from inference.contrast_phase import estimate_series_phase

    phase, reason = estimate_series_phase(phantom_files)
    assert phase == "portal-venous", reason


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A small portal-venous phantom written as DICOM (as the node receives it)."""
    from tests.dicom_node.conftest import make_series

    return list(make_series(tmp_path_factory.mktemp("phantom-dicom"), seed=11).files)
