"""Reading back what an import wrote, for the importer tests."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, cast

import nibabel as nib
import numpy as np
import numpy.typing as npt

__all__ = ["dice", "read_csv", "read_label", "write_nifti_array"]


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    """Rows of a cohort CSV by ``patient_id``."""
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["patient_id"]: row for row in csv.DictReader(handle)}


def read_label(cohort: Path, case: str) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float64]]:
    """A case's label map and affine; checks its dtype and that it lies on the image's grid."""
    label = cast(Any, nib.load(cohort / case / "label.nii.gz"))
    image = cast(Any, nib.load(cohort / case / "image.nii.gz"))
    assert label.get_data_dtype() == np.uint8
    assert image.get_data_dtype() in (np.int16, np.float32)
    assert label.shape == image.shape
    np.testing.assert_allclose(label.affine, image.affine, atol=1e-4)
    return np.asarray(label.dataobj), np.asarray(label.affine)


def write_nifti_array(
    path: Path, array: npt.NDArray[np.generic], affine: npt.NDArray[np.float64]
) -> Path:
    """Write ``array`` as NIfTI (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return path


def dice(a: npt.NDArray[np.bool_], b: npt.NDArray[np.bool_]) -> float:
    """Dice of two masks (1.0 when both are empty)."""
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total
