"""DICOM CT + RTSTRUCT -> cohort: ROI names through aliases, contours filled by rt-utils."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from rt_utils import RTStructBuilder

from tests.training.importers._cohort import dice, read_csv, read_label
from tests.training.importers._dicom_cases import (
    assert_no_identifiers,
    native_lookup,
    write_ct_series,
)
from training.importers import load_mapping, read_rtstruct, write_cohort

SPACING = (0.8, 0.8, 2.0)
ORIGIN = (-12.0, -10.0, 30.0)
ORIENTATION = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0)


def _rtstruct(case: Path, rows: int = 32, columns: int = 32) -> dict[str, npt.NDArray[np.bool_]]:
    hu = np.zeros((16, rows, columns), dtype=np.int16)
    write_ct_series(case / "ct", hu, spacing=SPACING, origin=ORIGIN, orientation=ORIENTATION)
    pancreas = np.zeros((rows, columns, 16), dtype=bool)  # rt-utils: (row, column, slice)
    pancreas[6:20, 4:26, 3:11] = True
    pancreas[8:12, 18:24, 5:8] = False  # a hole: the tumor below
    tumor = np.zeros_like(pancreas)
    tumor[8:12, 18:24, 5:8] = True
    vessel = np.zeros_like(pancreas)
    vessel[24:28, 10:14, :] = True
    structure = RTStructBuilder.create_new(str(case / "ct"))
    structure.add_roi(mask=pancreas, name="Pancreas_whole")
    structure.add_roi(mask=tumor, name="GTVp")
    structure.add_roi(mask=vessel, name="Portal Vein")
    structure.add_roi(mask=vessel, name="External")  # no alias: ignored
    structure.save(str(case / "rs.dcm"))
    return {"pancreas": pancreas, "tumor": tumor, "portal_vein": vessel}


def test_rtstruct_round_trip(tmp_path: Path) -> None:
    case = tmp_path / "MRN-7731"
    masks = _rtstruct(case)
    mapping = load_mapping("rtstruct-aliases-example")
    out = tmp_path / "cohort"
    write_cohort(
        out,
        read_rtstruct(case, mapping),
        import_source="rtstruct",
        source_name=case.name,
        mapping=mapping,
    )
    label, affine = read_label(out, "case-0001")
    for value, name in ((1, "pancreas"), (2, "tumor"), (3, "portal_vein")):
        native = np.ascontiguousarray(masks[name].transpose(2, 0, 1))
        expected = native_lookup(
            affine, label.shape, native, spacing=SPACING, origin=ORIGIN, orientation=ORIENTATION
        )
        assert dice(label == value, expected) > 0.95, name
        # rt-utils rounds the contour points to pixel centres: for boxes this is exact.
        np.testing.assert_array_equal(label == value, expected)
    row = read_csv(out / "truth.csv")["case-0001"]
    assert (row["labelled"], row["has_tumor"]) == ("pancreas;tumor;portal_vein", "1")
    assert_no_identifiers(out)


def test_non_square_series_are_refused(tmp_path: Path) -> None:
    case = tmp_path / "case"
    hu = np.zeros((16, 24, 32), dtype=np.int16)
    write_ct_series(case / "ct", hu, spacing=SPACING, origin=ORIGIN, orientation=ORIENTATION)
    structure = RTStructBuilder.create_new(str(case / "ct"))
    mask = np.zeros((24, 32, 16), dtype=bool)
    mask[4:10, 4:10, 2:4] = True
    structure.add_roi(mask=mask, name="Pancreas")
    structure.save(str(case / "rs.dcm"))
    with pytest.raises(ValueError, match="non-square"):
        list(read_rtstruct(case, load_mapping("nih-pancreas-ct")))
