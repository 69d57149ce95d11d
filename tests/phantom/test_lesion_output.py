"""Lesions of the wide modes, rendered and written: mask, lesions.json and truth.csv agree."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from inference import read_nifti
from inference.volume import LPS_TO_RAS
from pancreas_contracts.labels import label_by_name
from pancreas_node.cli import main
from phantom import (
    LESION_COLUMNS,
    LESIONS_JSON_VERSION,
    Material,
    PatientPlan,
    PhantomCohort,
    PhantomOptions,
    PhantomScan,
    Variation,
    generate_cohort,
    plan_cohort,
    render_patient,
)

SMALL = PhantomOptions(
    variation="wide",
    pdac_prevalence=0.5,
    fov_mm=(220.0, 200.0, 150.0),
    pixel_spacing=1.5,
    slice_thickness=3.0,
)
TUMOR = label_by_name("tumor").value
PANCREAS = label_by_name("pancreas").value


def _variation(plan: PatientPlan) -> Variation:
    assert plan.variation is not None
    return plan.variation


def _first(plans: list[PatientPlan], wanted: Callable[[Variation], bool]) -> PatientPlan:
    return next(p for p in plans if wanted(_variation(p)))


@pytest.fixture(scope="module")
def kinds() -> dict[str, tuple[PatientPlan, PhantomScan]]:
    """One rendered patient of each look: PDAC with an incidental cyst, each negative kind."""
    plans = plan_cohort(80, 4, SMALL)
    wanted: dict[str, Callable[[Variation], bool]] = {
        "pdac+cyst": lambda v: v.tumor is not None and bool(v.lesions),
        "cyst": lambda v: v.tumor_free_kind == "cyst" and len(v.lesions) > 1,
        "pnet": lambda v: v.tumor_free_kind == "pnet",
        "atrophic-duct": lambda v: v.duct_dilated,
        "atrophic": lambda v: v.tumor_free_kind == "atrophic" and not v.duct_dilated,
        "normal": lambda v: v.tumor_free_kind == "normal",
    }
    chosen = {name: _first(plans, test) for name, test in wanted.items()}
    return {name: (plan, render_patient(plan)) for name, plan in chosen.items()}


def test_the_pdac_lesion_is_exactly_the_tumor_label(
    kinds: dict[str, tuple[PatientPlan, PhantomScan]],
) -> None:
    plan, scan = kinds["pdac+cyst"]
    assert scan.lesion_mask is not None
    assert [lesion.kind for lesion in scan.lesions] == ["pdac", "cyst"]
    assert np.array_equal(scan.lesion_mask == 1, scan.labels == TUMOR)
    cyst = scan.lesion_mask == 2
    assert set(np.unique(scan.labels[cyst]).tolist()) == {PANCREAS}
    assert scan.lesions[0].contrast_hu == scan.tumor_attenuation
    assert scan.lesions[0].location == plan.tumor_location


def test_non_pdac_lesions_are_pancreas_in_the_label_map(
    kinds: dict[str, tuple[PatientPlan, PhantomScan]],
) -> None:
    for name in ("cyst", "pnet"):
        plan, scan = kinds[name]
        assert scan.lesion_mask is not None and TUMOR not in np.unique(scan.labels)
        assert [lesion.kind for lesion in scan.lesions] == [name] * len(scan.lesions)
        assert len(scan.lesions) == len(_variation(plan).lesions)
        inside = scan.lesion_mask > 0
        assert set(np.unique(scan.labels[inside]).tolist()) == {PANCREAS}
        gland = (scan.labels == PANCREAS) & ~inside
        contrast = float(np.median(scan.hu[inside])) - float(np.median(scan.hu[gland]))
        if name == "cyst":  # water: far below any enhanced gland, sharp-walled
            assert np.isin(scan.materials[inside], (Material.CYST, Material.CALCIFICATION)).all()
            assert contrast < -50
            assert all((lesion.contrast_hu or 0.0) < -50 for lesion in scan.lesions)
        else:  # hyper-enhancing
            assert contrast > 10 and (scan.lesions[0].contrast_hu or 0.0) > 10


def test_negatives_without_lesions_have_an_empty_mask(
    kinds: dict[str, tuple[PatientPlan, PhantomScan]],
) -> None:
    ducts = []
    duct = label_by_name("pancreatic_duct").value
    for name in ("atrophic-duct", "atrophic", "normal"):
        _, scan = kinds[name]
        assert scan.lesions == () and scan.lesion_mask is not None
        assert not scan.lesion_mask.any() and TUMOR not in np.unique(scan.labels)
        gland = np.count_nonzero(np.isin(scan.labels, (PANCREAS, duct)))
        ducts.append(np.count_nonzero(scan.labels == duct) / gland)
    assert ducts[0] > 1.5 * ducts[1]  # the dilated duct fills more of the thin gland


def test_lesion_truth_is_measured_on_the_mask(
    kinds: dict[str, tuple[PatientPlan, PhantomScan]],
) -> None:
    for _, scan in kinds.values():
        assert scan.lesion_mask is not None
        ids = sorted(set(np.unique(scan.lesion_mask).tolist()) - {0})
        assert ids == [lesion.id for lesion in scan.lesions] == list(range(1, len(ids) + 1))
        for lesion in scan.lesions:
            kji = np.argwhere(scan.lesion_mask == lesion.id)
            xyz = np.asarray(scan.grid.origin) + kji[:, ::-1] * np.asarray(scan.grid.spacing)
            np.testing.assert_allclose(lesion.center_lps, xyz.mean(axis=0), atol=0.01)
            assert lesion.voxels == len(kji)
            assert np.all(np.asarray(lesion.bbox_min_lps) < lesion.center_lps)
            assert np.all(np.asarray(lesion.center_lps) < lesion.bbox_max_lps)
            assert lesion.volume_ml == pytest.approx(len(kji) * scan.grid.voxel_volume_ml, 1e-3)


def _truth(out: Path) -> list[dict[str, str]]:
    with (out / "truth.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> PhantomCohort:
    small = PhantomOptions(
        variation="wide", pdac_prevalence=0.5, fov_mm=(200.0, 180.0, 120.0),
        pixel_spacing=2.0, slice_thickness=3.0,
    )  # fmt: skip
    return generate_cohort(tmp_path_factory.mktemp("lesions"), 6, 4, small)


def _lps_centre(mask: np.ndarray, affine: np.ndarray, lesion_id: int) -> np.ndarray:
    ijk = np.argwhere(mask == lesion_id)
    ras = np.c_[ijk, np.ones(len(ijk))] @ affine.T
    lps = (ras @ np.linalg.inv(LPS_TO_RAS).T)[:, :3]
    return np.asarray(lps.mean(axis=0), dtype=np.float64)


def test_written_mask_json_and_truth_agree(cohort: PhantomCohort) -> None:
    rows = _truth(cohort.out)
    assert {r["lesion_kind"] for r in rows} >= {"pdac"} and len(rows) == 6
    for row, patient in zip(rows, cohort, strict=True):
        files = patient.files
        assert files.lesions is not None and files.lesions_json is not None
        document = json.loads(files.lesions_json.read_text())
        assert document["version"] == LESIONS_JSON_VERSION
        assert document["patient_id"] == row["patient_id"]
        assert document["has_pdac"] == (row["has_tumor"] == "1")
        mask, labels = read_nifti(files.lesions), read_nifti(files.label)
        np.testing.assert_array_equal(mask.affine, labels.affine)
        lesions = document["lesions"]
        ids = sorted(set(np.unique(mask.array).astype(int).tolist()) - {0})
        assert ids == [lesion["id"] for lesion in lesions]
        assert row["lesion_count"] == str(len(lesions))
        for lesion in lesions:
            centre = _lps_centre(mask.array, mask.affine, lesion["id"])
            np.testing.assert_allclose(centre, lesion["center_lps_mm"], atol=0.02)
        if any(lesion["kind"] == "pdac" for lesion in lesions):
            assert lesions[0]["kind"] == "pdac"
            assert np.array_equal(mask.array == 1, labels.array == TUMOR)
        else:
            assert not (labels.array == TUMOR).any()
        _check_row(row, lesions)


def _check_row(row: dict[str, str], lesions: list[dict[str, object]]) -> None:
    if row["has_tumor"] == "1":
        assert row["lesion_kind"] == "pdac" and row["negative_kind"] == ""
        assert row["lesion_location"] == row["tumor_location"]
        assert row["pdac_small"] == str(int(float(row["lesion_diameter_mm"]) <= 20.0))
        assert row["pdac_iso"] in ("0", "1")
    else:
        assert row["pdac_small"] == row["pdac_iso"] == ""
        expected = {"normal": "none", "atrophic": "none"}.get(row["negative_kind"])
        assert row["lesion_kind"] == (expected or row["negative_kind"])
    main = next((les for les in lesions if les["kind"] == row["lesion_kind"]), None)
    if main is None:
        assert row["lesion_center_x_mm"] == ""
        return
    if row["lesion_kind"] != "pdac":
        main = max(lesions, key=lambda les: (les["voxels"], -les["id"]))  # type: ignore[operator]
    centre = [float(row[f"lesion_center_{a}_mm"]) for a in "xyz"]
    assert centre == pytest.approx(main["center_lps_mm"])
    box = main["bbox_lps_mm"]
    assert isinstance(box, dict)
    assert [float(row[f"lesion_bbox_min_{a}_mm"]) for a in "xyz"] == pytest.approx(box["min"])
    assert [float(row[f"lesion_bbox_max_{a}_mm"]) for a in "xyz"] == pytest.approx(box["max"])
    assert row["lesion_location"] == main["location"]


def test_the_standard_mode_writes_no_lesion_files(tmp_path: Path) -> None:
    small = PhantomOptions(fov_mm=(160.0, 150.0, 45.0), pixel_spacing=2.0, slice_thickness=3.0)
    patient = generate_cohort(tmp_path, 1, 2, small)[0]
    assert patient.files.lesions is None and patient.files.lesions_json is None
    assert not (tmp_path / patient.patient_id / "lesions.json").exists()
    assert not set(LESION_COLUMNS) & set(_truth(tmp_path)[0])


def test_the_cli_takes_a_pdac_prevalence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small = ["--fov-mm", "160,150,45", "--pixel-spacing", "2", "--slice-thickness", "3"]
    args = ["phantom", "--out", str(tmp_path / "a"), "--patients", "4", "--seed", "3", *small]
    assert main([*args, "--variation", "wide", "--pdac-prevalence", "0.25"]) == 0
    rows = _truth(tmp_path / "a")
    assert [r["has_tumor"] for r in rows].count("1") == 1
    assert all((tmp_path / "a" / r["patient_id"] / "lesions.json").is_file() for r in rows)
    both = ["--variation", "wide", "--pdac-prevalence", "0.3", "--tumor-free-fraction", "0.7"]
    bad = ["phantom", "--out", str(tmp_path / "b"), *both]
    assert main(bad) == 1
    assert "not both" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
