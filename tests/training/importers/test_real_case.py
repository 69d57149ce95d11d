"""The shared NIH Pancreas-CT case, imported two ways, reads back to the same pancreas.

(a) a one-case MSD folder (the CT written from the DICOM series, the label the shared
``pancreas_label.nii.gz``) and (b) the DICOM series with a DICOM SEG written from the mask
with highdicom. Both must equal the mask resampled to the CT grid (Dice 1.0), and each
other, with ``labelled`` = ``pancreas`` only. Skips where the shared data is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from inference.volume import read_nifti, write_nifti
from inference.volume_io import read_dicom_series, resample_to_reference
from tests.conftest import require_shared_data
from tests.training.importers._cohort import dice, read_csv, read_label
from tests.training.importers._dicom_cases import write_seg
from training.importers import load_mapping, read_dicom_seg, read_msd, write_cohort

NIH_CASE = "pancreas-ct-0001"

pytestmark = pytest.mark.slow


def test_msd_and_seg_imports_of_the_nih_case_agree(tmp_path: Path) -> None:
    shared = require_shared_data(NIH_CASE)
    mapping = load_mapping("nih-pancreas-ct")
    ct = read_dicom_series(shared / "dicom")
    source_label = read_nifti(shared / "pancreas_label.nii.gz")
    on_ct = np.asarray(resample_to_reference(source_label, ct.volume, order=0).array) == 1
    assert on_ct.sum() > 10_000

    # (a) a one-case MSD folder.
    msd = tmp_path / "Task-NIH"
    write_nifti(ct.volume, msd / "imagesTr" / "pancreas_0001.nii.gz")
    (msd / "labelsTr").mkdir()
    (msd / "labelsTr" / "pancreas_0001.nii.gz").write_bytes(
        (shared / "pancreas_label.nii.gz").read_bytes()
    )
    (msd / "dataset.json").write_text(
        json.dumps(
            {
                "labels": {"0": "background", "1": "pancreas"},
                "training": [
                    {
                        "image": "./imagesTr/pancreas_0001.nii.gz",
                        "label": "./labelsTr/pancreas_0001.nii.gz",
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    write_cohort(
        tmp_path / "a",
        read_msd(msd, mapping),
        import_source="msd",
        source_name=msd.name,
        mapping=mapping,
    )

    # (b) the DICOM series (linked, the share is read-only) and a SEG from the mask. The
    # mask's index is (column, row, slice cranial -> caudal) per the data's README.
    case = tmp_path / "dicom-case"
    (case / "ct").mkdir(parents=True)
    for file in sorted((shared / "dicom").iterdir()):
        (case / "ct" / file.name).symlink_to(file)
    series = [pydicom.dcmread(f) for f in sorted((shared / "dicom").iterdir())]
    series.sort(key=lambda ds: -float(ds.ImagePositionPatient[2]))  # cranial first
    for ds in series:  # absent on purpose in the share; highdicom's SEG writer needs it
        ds.SliceThickness = 1.0
    mask = np.asarray(source_label.array).transpose(2, 1, 0) == 1  # (slice, row, column)
    write_seg(case / "seg.dcm", series, {"Pancreas": mask})
    identifiers = {str(series[0].PatientID), str(series[0].PatientName)} - {""}
    del series
    write_cohort(
        tmp_path / "b",
        read_dicom_seg(case, mapping, "nih-0001"),
        import_source="dicom-seg",
        source_name=case.name,
        mapping=mapping,
    )

    label_a, affine_a = read_label(tmp_path / "a", "pancreas_0001")
    label_b, affine_b = read_label(tmp_path / "b", "nih-0001")
    np.testing.assert_allclose(affine_a, ct.volume.affine, atol=1e-4)
    np.testing.assert_allclose(affine_b, ct.volume.affine, atol=1e-4)
    assert dice(label_a == 1, on_ct) == 1.0
    assert dice(label_b == 1, on_ct) == 1.0
    assert dice(label_a == 1, label_b == 1) == 1.0
    assert set(np.unique(label_a)) == set(np.unique(label_b)) == {0, 1}
    for cohort, case_id in ((tmp_path / "a", "pancreas_0001"), (tmp_path / "b", "nih-0001")):
        row = read_csv(cohort / "truth.csv")[case_id]
        assert (row["labelled"], row["has_tumor"], row["nccn_label"]) == ("pancreas", "", "")
    for name in ("truth.csv", "clinical.csv", "import.json"):
        text = (tmp_path / "b" / name).read_text(encoding="utf-8")
        assert not any(identifier in text for identifier in identifiers), name
