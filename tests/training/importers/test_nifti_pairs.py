"""NIfTI pairs -> cohort: matched by the globs' '*', mapped by value, put on the CT grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.training.importers._cohort import read_csv, read_label, write_nifti_array
from training.importers import (
    load_mapping,
    pair_files,
    read_clinical_csv,
    read_nifti_pairs,
    write_cohort,
)

AFFINE = np.array([[-0.8, 0, 0, 10], [0, -0.8, 0, 20], [0, 0, 2.0, -30], [0, 0, 0, 1]])


def test_pairs_import_with_totalsegmentator_values(tmp_path: Path) -> None:
    source = tmp_path / "ts"
    truth = {}
    for n, case in enumerate(("s0011", "s0012")):
        image = np.full((32, 32, 16), -100 + n, dtype=np.int16)
        label = np.zeros((32, 32, 16), dtype=np.uint8)
        label[4:12, 4:12, 2:6] = 7  # pancreas
        label[20:24, 20:24, :] = 52  # aorta
        label[14:16, 2:30, 8:9] = 64  # portal and splenic vein: one class for two, unmapped
        label[0:2, 0:2, 0:2] = 5  # liver: background here
        write_nifti_array(source / "ct" / f"{case}_ct.nii.gz", image, AFFINE)
        write_nifti_array(source / "seg" / f"{case}.nii.gz", label, AFFINE)
        expected = np.zeros_like(label)
        expected[label == 7] = 1
        expected[label == 52] = 8
        truth[case] = expected
    write_nifti_array(source / "ct" / "s0099_ct.nii.gz", image, AFFINE)  # no label: skipped
    pairs = pair_files(source, "ct/*_ct.nii.gz", "seg/*.nii.gz")
    assert [case for case, _, _ in pairs] == ["s0011", "s0012"]
    clinical = tmp_path / "clinical.csv"
    clinical.write_text("patient_id,age,ca19_9_baseline,nccn_label,other\ns0012,67,1234.5,1,x\n")
    rows = read_clinical_csv(clinical)
    mapping = load_mapping("totalsegmentator-v2")
    out = tmp_path / "cohort"
    write_cohort(
        out,
        read_nifti_pairs(source, mapping, "ct/*_ct.nii.gz", "seg/*.nii.gz"),
        import_source="nifti",
        source_name=source.name,
        mapping=mapping,
        clinical=lambda case: rows.get(case.case_id, {}),
    )
    for case, expected in truth.items():
        label, _ = read_label(out, case)
        np.testing.assert_array_equal(label, expected)
    rows_out = read_csv(out / "truth.csv")
    assert rows_out["s0011"]["labelled"] == "pancreas;aorta;ivc"
    assert rows_out["s0011"]["has_tumor"] == ""  # TotalSegmentator has no tumor class
    assert rows_out["s0012"]["nccn_label"] == "1" and rows_out["s0011"]["nccn_label"] == ""
    clinical_out = read_csv(out / "clinical.csv")
    assert (clinical_out["s0012"]["age"], clinical_out["s0012"]["ca19_9_baseline"]) == (
        "67",
        "1234.5",
    )
    assert clinical_out["s0011"]["age"] == "" and "other" not in clinical_out["s0012"]


def test_a_label_on_another_grid_is_resampled_to_the_ct(tmp_path: Path) -> None:
    source = tmp_path / "src"
    image = np.zeros((32, 32, 16), dtype=np.float32)
    label = np.zeros((32, 32, 16), dtype=np.uint8)
    label[4:10, 6:12, 3:7] = 1
    write_nifti_array(source / "images" / "a.nii.gz", image, AFFINE)
    # The same voxels stored flipped along i: another affine, the same world positions.
    flipped = AFFINE @ np.array([[-1, 0, 0, 31], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    write_nifti_array(source / "labels" / "a.nii.gz", label[::-1].copy(), flipped)
    mapping = load_mapping("nih-pancreas-ct")
    out = tmp_path / "cohort"
    write_cohort(
        out,
        read_nifti_pairs(source, mapping),
        import_source="nifti",
        source_name="s",
        mapping=mapping,
    )
    result, affine = read_label(out, "a")
    np.testing.assert_allclose(affine, AFFINE)
    np.testing.assert_array_equal(result, label)


def test_bad_globs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        pair_files(tmp_path, "images/*/*.nii.gz", "labels/*.nii.gz")
    with pytest.raises(ValueError, match="no image/label pair"):
        pair_files(tmp_path)
