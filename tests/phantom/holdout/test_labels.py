"""Held-out generator: the label map's anatomy (structures, volumes, contact, connectivity)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from scipy import ndimage

from inference.volume import read_nifti
from pancreas_contracts.labels import LABELS, label_by_name
from phantom.holdout import HoldoutCohort

# Plausible volume (mL) of each structure within the small test field of view.
VOLUME_ML = {
    "pancreas": (15.0, 150.0), "portal_vein": (1.0, 20.0), "splenic_vein": (0.5, 15.0),
    "smv": (1.0, 20.0), "sma": (0.3, 8.0), "celiac_trunk": (0.1, 3.0), "aorta": (20.0, 120.0),
    "ivc": (15.0, 120.0), "cha": (0.1, 4.0), "pha": (0.05, 3.0), "gda": (0.03, 2.0),
    "splenic_artery": (0.1, 6.0), "pancreatic_duct": (0.05, 6.0), "bile_duct": (0.2, 10.0),
}  # fmt: skip
ARTERIES = ("aorta", "celiac_trunk", "cha", "pha", "gda", "splenic_artery", "sma")
VEINS = ("smv", "portal_vein", "splenic_vein")


def _labels(cohort: HoldoutCohort, index: int) -> tuple[npt.NDArray[np.uint8], float]:
    volume = read_nifti(cohort.records[index].label)
    voxel_ml = float(abs(np.linalg.det(volume.affine[:3, :3]))) / 1000.0
    return np.asarray(volume.array, dtype=np.uint8), voxel_ml


def _largest_share(mask: npt.NDArray[np.bool_]) -> float:
    components, count = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    if count == 0:
        return 0.0
    sizes = np.bincount(components.ravel())[1:]
    return float(sizes.max() / sizes.sum())


@pytest.mark.parametrize("index", [0, 1])
def test_every_structure_is_present_with_a_plausible_volume(
    holdout_cohort: HoldoutCohort, index: int
) -> None:
    labels, voxel_ml = _labels(holdout_cohort, index)
    counts = np.bincount(labels.ravel(), minlength=len(LABELS))
    assert counts[label_by_name("tumor").value] > 0
    for name, (lo, hi) in VOLUME_ML.items():
        volume = counts[label_by_name(name).value] * voxel_ml
        assert lo <= volume <= hi, f"{name}: {volume:.2f} mL outside {lo}-{hi}"


@pytest.mark.parametrize("index", [0, 1])
def test_tumor_touches_the_pancreas(holdout_cohort: HoldoutCohort, index: int) -> None:
    labels, _ = _labels(holdout_cohort, index)
    tumor = labels == label_by_name("tumor").value
    near = ndimage.binary_dilation(tumor, structure=np.ones((3, 3, 3)))
    assert np.any(near & (labels == label_by_name("pancreas").value))
    # One lesion: a tumor is not scattered over the abdomen.
    assert _largest_share(tumor) > 0.9


@pytest.mark.parametrize("index", [0, 1, 2])
def test_vessels_are_connected_trees(holdout_cohort: HoldoutCohort, index: int) -> None:
    labels, _ = _labels(holdout_cohort, index)
    for name in (*ARTERIES, *VEINS, "ivc"):
        assert _largest_share(labels == label_by_name(name).value) > 0.97, name
    for tree in (ARTERIES, VEINS):
        mask = np.isin(labels, [label_by_name(n).value for n in tree])
        assert _largest_share(mask) > 0.99, tree


def test_tumor_free_patient_has_no_tumor(holdout_cohort: HoldoutCohort) -> None:
    labels, _ = _labels(holdout_cohort, 2)
    assert not np.any(labels == label_by_name("tumor").value)
    assert np.any(labels == label_by_name("pancreas").value)
