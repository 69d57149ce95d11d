"""The landmark localiser on real anatomy: NIH Pancreas-CT case 0001 against its manual mask.

The CT is read with the node's DICOM reader; the mask (``pancreas_label.nii.gz``) is in the same
world coordinates (see ``../shared/data/README.md``), so the estimate is compared in mm. The
measured numbers are recorded as test properties (``--junitxml``) and in the failure messages.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import torch

from inference.analysis import LandmarkLocaliser, LocalisationEstimate
from inference.volume import read_nifti
from inference.volume_io import read_dicom_series

torch.set_num_threads(1)

#: The analysis cube's half size (the bundle's 160 mm cube).
_HALF_CUBE_MM = 80.0


def _inside(
    points: npt.NDArray[np.float64], lo: npt.NDArray[np.float64], hi: npt.NDArray[np.float64]
) -> float:
    """Fraction of ``points`` (N x 3, mm) inside the box ``lo``-``hi``."""
    return float(((points >= lo) & (points <= hi)).all(axis=1).mean())


@pytest.fixture(scope="module")
def nih_case(shared_data: Path) -> tuple[LocalisationEstimate, npt.NDArray[np.float64]]:
    """The localiser's estimate on the NIH CT and the world positions (mm) of the mask voxels."""
    case = shared_data / "pancreas-ct-0001"
    series = read_dicom_series(case / "dicom")
    label = read_nifti(case / "pancreas_label.nii.gz")
    voxels = np.argwhere(np.asarray(label.array) == 1).astype(np.float64)
    assert len(voxels) > 1000
    return LandmarkLocaliser()(series.volume), label.voxel_to_world(voxels)


def test_localisation_on_the_nih_case_holds_the_manual_pancreas(
    nih_case: tuple[LocalisationEstimate, npt.NDArray[np.float64]],
    record_property: Callable[[str, object], None],
) -> None:
    estimate, mask_mm = nih_case
    centroid = mask_mm.mean(axis=0)
    centre = np.asarray(estimate.centre_mm, dtype=np.float64)
    box = np.asarray(estimate.box_mm, dtype=np.float64)
    distance = float(np.linalg.norm(centre - centroid))
    in_box = _inside(mask_mm, box[:3], box[3:])
    in_cube = _inside(mask_mm, centre - _HALF_CUBE_MM, centre + _HALF_CUBE_MM)
    record_property("centre_to_mask_centroid_mm", round(distance, 1))
    record_property("mask_fraction_in_box", round(in_box, 3))
    record_property("mask_fraction_in_160mm_cube", round(in_cube, 3))
    numbers = (
        f"centre {np.round(centre, 1)} vs mask centroid {np.round(centroid, 1)}: {distance:.1f} mm;"
        f" {in_box:.0%} of the mask in the box, {in_cube:.0%} in the 160 mm cube;"
        f" confidence {estimate.confidence:.2f} ({estimate.method})"
    )
    assert estimate.found, numbers
    assert _inside(centroid[None, :], box[:3], box[3:]) == 1.0, numbers
    # Measured 17.2 mm, 86 % in the box, 100 % in the cube (the mask's tail runs posterior-left
    # of the box); the bounds leave room for reader changes, not for a miss.
    assert distance <= 30.0, numbers
    assert in_box >= 0.75, numbers
    assert in_cube >= 0.98, numbers
