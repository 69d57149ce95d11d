"""Round trip: a phantom written as DICOM reads back equal to its canonical image.nii.gz."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from inference import read_dicom_series, read_nifti
from phantom import PhantomOptions, generate_cohort


@pytest.mark.parametrize(
    ("position", "syntax"),
    [
        ("HFS", "explicit"),
        ("FFS", "explicit"),
        ("FFS", "jpeg2000"),
        ("HFS", "jpegls"),
        ("FFS", "rle"),
        ("HFS", "jpeg-lossless"),
        ("FFS", "implicit"),
        ("HFS", "deflated"),
    ],
)
def test_phantom_dicom_matches_its_nifti(tmp_path: Path, position: str, syntax: str) -> None:
    options = PhantomOptions(
        fov_mm=(120.0, 100.0, 40.0),
        pixel_spacing=1.6,
        slice_thickness=2.5,
        position=position,
        shuffle=True,
        transfer_syntax=syntax,
    )
    (plan,) = generate_cohort(tmp_path, n=1, seed=5, options=options)
    root = tmp_path / plan.patient_id
    files = sorted((root / "dicom").glob("*.dcm"))
    random.Random(9).shuffle(files)
    dicom = read_dicom_series(files)
    image = read_nifti(root / "image.nii.gz")
    label = read_nifti(root / "label.nii.gz")
    assert dicom.volume.shape == image.shape
    assert np.array_equal(dicom.volume.array, image.array.astype(np.float32))
    # NIfTI stores the affine in float32: compare to that precision.
    np.testing.assert_allclose(dicom.volume.affine, image.affine, atol=1e-4)
    np.testing.assert_allclose(label.affine, image.affine, atol=1e-6)
    assert dicom.series_instance_uid == plan.series_uid
    assert dicom.slice_step_mm == pytest.approx(2.5)
    assert len(dicom.transfer_syntaxes) == 1
    assert dicom.warnings == ()
