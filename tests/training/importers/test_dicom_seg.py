"""DICOM CT + DICOM SEG -> cohort: segments mapped by name, frames on the CT grid, exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from tests.training.importers._cohort import read_csv, read_label
from tests.training.importers._dicom_cases import (
    assert_no_identifiers,
    native_lookup,
    write_ct_series,
    write_seg,
)
from training.importers import load_mapping, read_dicom_seg, write_cohort

SHAPE = (16, 32, 32)  # slices, rows, columns
ORIENTATIONS = {
    "axial": (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    # The NIH case's quirk: rows run anterior, so the canonical grid flips them.
    "rows-anterior": (1.0, 0.0, 0.0, 0.0, -1.0, 0.0),
}
SPACING = (0.8, 0.7, 2.0)
ORIGIN = (-12.0, -10.0, 30.0)


def _masks() -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    pancreas = np.zeros(SHAPE, dtype=bool)
    pancreas[3:11, 6:20, 4:26] = True
    tumor = np.zeros(SHAPE, dtype=bool)
    tumor[5:8, 8:12, 10:15] = True  # inside the pancreas: tumor wins the overlap
    liver = np.zeros(SHAPE, dtype=bool)
    liver[1:14, 22:30, 2:12] = True  # no mapping names it: not imported
    return pancreas, tumor, liver


@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
@pytest.mark.parametrize("fractional", [False, True])
def test_seg_round_trip(tmp_path: Path, orientation: str, fractional: bool) -> None:
    case = tmp_path / "Doe_Jane_MRN-7731"  # a site's folder named after the patient
    hu = np.random.default_rng(1).integers(-200, 300, SHAPE).astype(np.int16)
    ct = write_ct_series(
        case / "ct", hu, orientation=ORIENTATIONS[orientation], spacing=SPACING, origin=ORIGIN
    )
    pancreas, tumor, liver = _masks()
    write_seg(
        case / "seg.dcm",
        ct,
        {"Pancreas": pancreas, "GTV": tumor, "Liver": liver},
        fractional=fractional,
    )
    mapping = load_mapping("rtstruct-aliases-example")
    out = tmp_path / "cohort"
    summary = write_cohort(
        out,
        read_dicom_seg(case, mapping, "pdac-01"),
        import_source="dicom-seg",
        source_name=case.name,
        mapping=mapping,
    )
    assert summary.cases == ("pdac-01",)
    label, affine = read_label(out, "pdac-01")
    expected = np.zeros(label.shape, dtype=np.uint8)
    for value, mask in ((1, pancreas), (2, tumor)):
        on_grid = native_lookup(
            affine,
            label.shape,
            mask,
            spacing=SPACING,
            origin=ORIGIN,
            orientation=ORIENTATIONS[orientation],
        )
        expected[on_grid] = value
    np.testing.assert_array_equal(label, expected)
    row = read_csv(out / "truth.csv")["pdac-01"]
    assert (row["labelled"], row["has_tumor"], row["import_source"]) == (
        "pancreas;tumor",
        "1",
        "dicom-seg",
    )
    provenance = json.loads((out / "import.json").read_text(encoding="utf-8"))
    assert provenance["source"].startswith("(redacted")
    assert_no_identifiers(out)


def test_seg_without_source_references_goes_by_plane_position(tmp_path: Path) -> None:
    case = tmp_path / "case"
    hu = np.zeros(SHAPE, dtype=np.int16)
    ct = write_ct_series(
        case / "ct", hu, orientation=ORIENTATIONS["axial"], spacing=SPACING, origin=ORIGIN
    )
    pancreas, _, _ = _masks()
    write_seg(case / "seg.dcm", ct, {"pancreas": pancreas})
    import pydicom

    seg = pydicom.dcmread(case / "seg.dcm")
    del seg.ReferencedSeriesSequence
    for frame in seg.PerFrameFunctionalGroupsSequence:
        del frame.DerivationImageSequence
    seg.save_as(case / "seg.dcm")
    mapping = load_mapping("nih-pancreas-ct")
    out = tmp_path / "cohort"
    write_cohort(
        out,
        read_dicom_seg(case, mapping),
        import_source="dicom-seg",
        source_name="case",
        mapping=mapping,
    )
    label, affine = read_label(out, "case-0001")
    expected = native_lookup(
        affine,
        label.shape,
        pancreas,
        spacing=SPACING,
        origin=ORIGIN,
        orientation=ORIENTATIONS["axial"],
    ).astype(np.uint8)
    np.testing.assert_array_equal(label, expected)
    assert read_csv(out / "truth.csv")["case-0001"]["labelled"] == "pancreas"


def test_several_cases_get_sequential_ids(tmp_path: Path) -> None:
    pancreas, _, _ = _masks()
    for name in ("b", "a"):
        ct = write_ct_series(
            tmp_path / "src" / name / "ct",
            np.zeros(SHAPE, np.int16),
            spacing=SPACING,
            origin=ORIGIN,
        )
        write_seg(tmp_path / "src" / name / "seg.dcm", ct, {"Pancreas": pancreas})
    mapping = load_mapping("nih-pancreas-ct")
    cases = list(read_dicom_seg(tmp_path / "src", mapping))
    assert [c.case_id for c in cases] == ["case-0001", "case-0002"]
    # A case whose segments the mapping all leaves out labels nothing: left out, not written
    # with an empty labelled cell (which the trainer reads as "everything labelled").
    ct = write_ct_series(
        tmp_path / "src" / "c" / "ct", np.zeros(SHAPE, np.int16), spacing=SPACING, origin=ORIGIN
    )
    write_seg(tmp_path / "src" / "c" / "seg.dcm", ct, {"Liver": pancreas})
    out = tmp_path / "cohort"
    summary = write_cohort(
        out,
        read_dicom_seg(tmp_path / "src", mapping),
        import_source="dicom-seg",
        source_name="src",
        mapping=mapping,
    )
    assert (summary.cases, summary.skipped) == (("case-0001", "case-0002"), ("case-0003",))
    assert not (out / "case-0003").exists()
    assert json.loads((out / "import.json").read_text())["skipped_nothing_mapped"] == ["case-0003"]
    with pytest.raises(ValueError, match="names one case"):
        list(read_dicom_seg(tmp_path / "src", mapping, "x"))
