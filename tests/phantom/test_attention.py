"""The ten attention structures in the phantom: where the new ones lie, what each map holds."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from scipy import ndimage

from pancreas_contracts.labels import label_by_name
from pancreas_contracts.lymph_nodes import ATTENTION_STRUCTURES, structure_by_name
from phantom import Material, PhantomOptions, PhantomScan, plan_cohort, render_patient

# A tall field of view, so that the oesophagus above the hiatus is in it.
TALL = PhantomOptions(
    variation="wide", fov_mm=(280.0, 260.0, 260.0), pixel_spacing=2.0, slice_thickness=3.0
)


@pytest.fixture(scope="module")
def scan() -> PhantomScan:
    return render_patient(plan_cohort(2, 4, TALL)[1])


def _organ(scan: PhantomScan, name: str) -> npt.NDArray[np.bool_]:
    assert scan.organs is not None
    return np.asarray(scan.organs == structure_by_name(name).value)


def _centroid(scan: PhantomScan, where: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    """World LPS centroid of a mask (mm)."""
    assert where.any()
    kji = np.argwhere(where).mean(axis=0)
    spacing, origin = np.asarray(scan.grid.spacing), np.asarray(scan.grid.origin)
    centre: npt.NDArray[np.float64] = origin + kji[::-1] * spacing
    return centre


def test_every_structure_is_drawn(scan: PhantomScan) -> None:
    for structure in ATTENTION_STRUCTURES:
        assert np.count_nonzero(_organ(scan, structure.name)) > 5, structure.name


def test_the_oesophagus_passes_in_front_of_the_aorta_above_the_celiac_trunk(
    scan: PhantomScan,
) -> None:
    esophagus, aorta = _organ(scan, "esophagus"), _organ(scan, "aorta")
    celiac = scan.vessels["celiac_trunk"].points[0]
    top = _centroid(scan, esophagus)
    assert top[2] > celiac[2] + 30.0
    # Anterior (smaller y in LPS) to the aorta, on the same slices.
    same = np.zeros_like(aorta)
    slices = np.unique(np.argwhere(esophagus)[:, 0])
    same[slices] = aorta[slices]
    assert top[1] < _centroid(scan, same)[1] - 10.0
    assert np.all(np.isin(scan.materials[esophagus], [Material.BOWEL_WALL]))
    assert not np.any(scan.labels[esophagus])


def test_the_left_gastric_artery_arises_from_the_celiac_trunk(scan: PhantomScan) -> None:
    lga = _organ(scan, "left_gastric")
    trunk = scan.labels == label_by_name("celiac_trunk").value
    assert np.any(ndimage.binary_dilation(lga, iterations=2) & trunk)
    assert _centroid(scan, lga)[2] > _centroid(scan, trunk)[2]
    assert np.all(scan.materials[lga] == Material.ARTERY) and not np.any(scan.labels[lga])


def test_spleen_stomach_and_duodenum_sit_where_they_belong(scan: PhantomScan) -> None:
    aorta = _centroid(scan, _organ(scan, "aorta"))
    spleen = _centroid(scan, _organ(scan, "spleen"))
    assert spleen[0] > aorta[0] + 50.0 and spleen[1] > aorta[1] - 20.0  # left, posterior
    assert _centroid(scan, _organ(scan, "stomach"))[1] < aorta[1] - 30.0  # anterior
    duodenum = _centroid(scan, _organ(scan, "duodenum"))
    assert duodenum[0] < aorta[0]  # on the right, around the pancreatic head
    assert np.all(scan.materials[_organ(scan, "spleen")] == Material.SPLEEN)


def test_labelled_structures_are_their_labels(scan: PhantomScan) -> None:
    pancreas = np.isin(scan.labels, [label_by_name(n).value for n in ("pancreas", "tumor")])
    assert np.array_equal(_organ(scan, "pancreas")[pancreas], np.ones(pancreas.sum(), bool))
    assert np.array_equal(_organ(scan, "sma"), scan.labels == label_by_name("sma").value)
    hepatic = np.isin(scan.labels, [label_by_name("cha").value, label_by_name("pha").value])
    assert np.array_equal(_organ(scan, "hepatic_artery"), hepatic)
