"""Lymph nodes, rendered: HU by kind, determinism, and no change to anything else."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from pancreas_contracts.labels import label_by_name
from phantom import (
    Material,
    PatientPlan,
    PhantomOptions,
    PhantomScan,
    plan_cohort,
    render_patient,
)

FINE = PhantomOptions(
    variation="wide",
    fov_mm=(200.0, 180.0, 120.0),
    pixel_spacing=1.0,
    slice_thickness=2.0,
)


def _with(predicate: str, options: PhantomOptions = FINE) -> PatientPlan:
    """The first planned patient (seeds 0, 1, ...) with a node of the kind asked for."""
    for seed in range(50):
        for plan in plan_cohort(4, seed, options):
            assert plan.nodes is not None
            if any(_matches(spec.kind, spec.necrotic, predicate) for spec in plan.nodes.nodes):
                return plan
    raise AssertionError(f"no patient with a {predicate} node")


def _matches(kind: str, necrotic: bool, predicate: str) -> bool:
    if predicate == "necrotic":
        return kind == "metastatic" and necrotic
    return kind == predicate


@pytest.fixture(scope="module")
def necrotic() -> tuple[PatientPlan, PhantomScan]:
    plan = _with("necrotic")
    return plan, render_patient(plan)


def _mean(scan: PhantomScan, where: np.ndarray) -> float:
    assert where.any()
    return float(scan.hu[where].mean())


def test_node_hu_is_soft_tissue_below_the_vessels(
    necrotic: tuple[PatientPlan, PhantomScan],
) -> None:
    _, scan = necrotic
    assert scan.node_mask is not None and scan.nodes
    tissue = scan.materials == Material.LYMPH_NODE
    # Blur and noise spread the values; the node's core tissue keeps its range.
    core = ndimage.binary_erosion(tissue, iterations=1)
    assert 10.0 < _mean(scan, core) < 90.0
    aorta = scan.labels == label_by_name("aorta").value
    assert _mean(scan, core) < _mean(scan, ndimage.binary_erosion(aorta, iterations=2)) - 50.0


def test_necrotic_centre_and_fatty_hilum_are_darker(
    necrotic: tuple[PatientPlan, PhantomScan],
) -> None:
    _, scan = necrotic
    tissue = scan.materials == Material.LYMPH_NODE
    necrosis = scan.materials == Material.NODE_NECROSIS
    assert _mean(scan, necrosis) < _mean(scan, tissue) - 10.0
    hilum = scan.materials == Material.NODE_HILUM
    assert _mean(scan, hilum) < _mean(scan, tissue) - 30.0


def test_node_voxels_match_the_truth(necrotic: tuple[PatientPlan, PhantomScan]) -> None:
    plan, scan = necrotic
    assert scan.node_mask is not None
    node_tissue = np.isin(
        scan.materials, [Material.LYMPH_NODE, Material.NODE_HILUM, Material.NODE_NECROSIS]
    )
    assert np.array_equal(node_tissue, scan.node_mask > 0)
    for node in scan.nodes:
        voxels = int(np.count_nonzero(scan.node_mask == node.node_id))
        assert node.volume_ml == pytest.approx(voxels * scan.grid.voxel_volume_ml, abs=1e-4)
        kinds = {s.kind for s in plan.nodes.nodes} if plan.nodes is not None else set()
        assert node.kind in kinds


def test_same_seed_same_nodes(necrotic: tuple[PatientPlan, PhantomScan]) -> None:
    plan, scan = necrotic
    again = render_patient(plan)
    assert again.nodes == scan.nodes
    assert scan.node_mask is not None and again.node_mask is not None
    assert np.array_equal(again.node_mask, scan.node_mask)
    assert np.array_equal(again.hu, scan.hu)


def test_nodes_change_no_other_draw(necrotic: tuple[PatientPlan, PhantomScan]) -> None:
    plan, scan = necrotic
    off = render_patient(dataclasses.replace(plan, nodes=None))
    assert off.organs is None and off.node_mask is None and off.nodes == ()
    assert np.array_equal(off.labels, scan.labels)
    assert off.lesion_mask is not None and scan.lesion_mask is not None
    assert np.array_equal(off.lesion_mask, scan.lesion_mask)
    assert off.lesions == scan.lesions and off.tumor_volume_ml == scan.tumor_volume_ml
    changed = off.materials != scan.materials
    assert changed.any()
    # Away from the new voxels (beyond the blur's reach) the image is the same to the HU.
    near = ndimage.binary_dilation(changed, iterations=6)
    assert np.array_equal(off.hu[~near], scan.hu[~near])


def test_synth_nodes_keep_the_hilum_darker() -> None:
    plan = _with("benign", dataclasses.replace(FINE, variation="synth"))
    scan = render_patient(plan)
    tissue = scan.materials == Material.LYMPH_NODE
    hilum = scan.materials == Material.NODE_HILUM
    assert _mean(scan, hilum) < _mean(scan, tissue)
