"""The standard mode is frozen: the shipped model's training-data digest depends on its bytes.

The digests were computed on main (da027da) before the wide-variation mode was added; any
change to the standard mode's random streams, voxels, DICOM files or CSV tables fails here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from phantom import PhantomOptions, generate_cohort, plan_cohort, render_patient

SMALL = PhantomOptions(fov_mm=(200.0, 200.0, 80.0), pixel_spacing=2.0, slice_thickness=4.0)
TRUTH_SHA256 = "e40918debf9b0cf3389dde3cc0967d2e235ed674643720b65e1f1e47dc444d27"
CLINICAL_SHA256 = "ddf36293d7039d3d877dddbc4c031809a02350fe2f88a7a1fb16b660368bbcfb"
DICOM_SHA256 = (
    "e44ef50a5fdcd64487692677f43e82e369f7a1ed795922bdc55d374d05a157c8",
    "280116214f33314a0fbc6f2da039b7c9e7dd1adadb05f4ff1d4a294650b35006",
)
VOXEL_SHA256 = (
    (
        "08b8505a52b2f530f797d443c76720de031398c584f0b794bece718dc03b947d",
        "69460578ec7a997ad57230babb156b29357634a226e905a7bebd4d999645dfa2",
    ),
    (
        "e95ee153d66a911fb84e3ed0a2ff74c0979160c539ea94ef6ed682a9a756df91",
        "a1dd8a12fbc1ef0f0900db23314dcf6a215c73211bec719a452d5f91bc92395a",
    ),
)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_standard_mode_is_the_default() -> None:
    assert PhantomOptions().variation == "standard"
    assert PhantomOptions().digest() == PhantomOptions(variation="standard").digest()


def test_standard_cohort_files_are_unchanged(tmp_path: Path) -> None:
    cohort = generate_cohort(tmp_path, 2, 7, SMALL)
    assert _sha((tmp_path / "truth.csv").read_bytes()) == TRUTH_SHA256
    assert _sha((tmp_path / "clinical.csv").read_bytes()) == CLINICAL_SHA256
    for patient, expected in zip(cohort, DICOM_SHA256, strict=True):
        assert _sha(b"".join(path.read_bytes() for path in patient.files.dicom)) == expected


@pytest.mark.parametrize("index", [0, 1])
def test_standard_voxels_are_unchanged(index: int) -> None:
    scan = render_patient(plan_cohort(2, 7, SMALL)[index])
    assert (_sha(scan.hu.tobytes()), _sha(scan.labels.tobytes())) == VOXEL_SHA256[index]
