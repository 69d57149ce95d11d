"""Lymph nodes of the held-out generator: files, truth, placement rules and the off switch.

One coarse cohort (2 mm pixels, 3 mm slices, 150 x 150 x 54 voxels) of three patients, seed
11 with a third tumor-free: an N+ PDAC patient, a tumor-free one and an N0 PDAC patient.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from scipy import ndimage

from inference.volume import read_nifti
from pancreas_contracts.lymph_nodes import (
    ATTENTION_STRUCTURES,
    JPS_STATIONS,
    LYMPH_NODES_FILE,
    NODES_FILE,
    ORGANS_FILE,
    NodeTruth,
)
from phantom.holdout import (
    DRAINAGE,
    STATION_STRUCTURES,
    HoldoutCohort,
    HoldoutOptions,
    generate_holdout_cohort,
    make_patient,
    n_positive_probability,
    tumor_targets,
)

COARSE = HoldoutOptions(
    matrix=150, pixel_spacing=2.0, slice_thickness=3.0, slices=54, tumor_free_fraction=1 / 3
)
SEED = 11
COUNT = 3


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> HoldoutCohort:
    """Three patients with lymph nodes (see the module docstring)."""
    return generate_holdout_cohort(tmp_path_factory.mktemp("holdout-ln"), COUNT, SEED, COARSE)


def _truth(cohort: HoldoutCohort) -> dict[str, dict[str, str]]:
    with (cohort.out / "truth.csv").open(encoding="utf-8") as handle:
        return {row["patient_id"]: row for row in csv.DictReader(handle)}


def _nodes(folder: Path) -> list[NodeTruth]:
    document = json.loads((folder / LYMPH_NODES_FILE).read_text(encoding="utf-8"))
    return [NodeTruth.model_validate(entry) for entry in document]


def _voxel(affine: npt.NDArray[np.float64], lps: tuple[float, float, float]) -> tuple[int, ...]:
    """The voxel index of an LPS point in a RAS+ volume."""
    ras = np.array([-lps[0], -lps[1], lps[2], 1.0])
    ijk = np.linalg.solve(affine, ras)[:3]
    assert np.allclose(ijk, np.rint(ijk), atol=1e-3), "centres are voxel centres"
    return tuple(int(v) for v in np.rint(ijk))


def test_every_patient_has_the_node_files_and_valid_truth(cohort: HoldoutCohort) -> None:
    truth = _truth(cohort)
    assert len(cohort) == COUNT
    for record in cohort.records:
        folder = cohort.out / record.patient_id
        assert record.node_files == tuple(folder / n for n in (ORGANS_FILE, NODES_FILE,
                                                                LYMPH_NODES_FILE))  # fmt: skip
        nodes = _nodes(folder)
        instances = read_nifti(folder / NODES_FILE)
        label = read_nifti(record.label)
        assert instances.array.dtype == np.uint8 and instances.array.shape == label.array.shape
        np.testing.assert_allclose(instances.affine, label.affine)
        assert [n.node_id for n in nodes] == list(range(1, len(nodes) + 1))
        present = set(np.unique(instances.array).tolist()) - {0}
        assert present == {n.node_id for n in nodes}
        row = truth[record.patient_id]
        positive = sum(n.metastatic for n in nodes)
        assert row["node_count"] == str(len(nodes)) and row["positive_nodes"] == str(positive)
        assert row["n_status"] == str(int(positive > 0))
        assert len(nodes) >= 2


def test_volumes_match_the_instance_map(cohort: HoldoutCohort) -> None:
    for record in cohort.records:
        folder = cohort.out / record.patient_id
        instances = read_nifti(folder / NODES_FILE)
        voxel_ml = abs(float(np.linalg.det(instances.affine[:3, :3]))) / 1000.0
        counts = np.bincount(instances.array.ravel())
        for node in _nodes(folder):
            assert node.volume_ml == pytest.approx(counts[node.node_id] * voxel_ml, abs=1e-6)


def test_centres_lie_within_the_structures_table_ii_range(cohort: HoldoutCohort) -> None:
    assert set(STATION_STRUCTURES) == {s.code for s in JPS_STATIONS}
    by_name = {s.name: s for s in ATTENTION_STRUCTURES}
    checked = 0
    for record in cohort.records:
        folder = cohort.out / record.patient_id
        organs = read_nifti(folder / ORGANS_FILE)
        instances = read_nifti(folder / NODES_FILE)
        spacing = np.abs(np.diag(organs.affine)[:3])
        for node in _nodes(folder):
            structure = by_name[STATION_STRUCTURES[node.station]]
            centre = _voxel(organs.affine, node.centre_lps_mm)
            assert instances.array[centre] == node.node_id
            distance = ndimage.distance_transform_edt(
                organs.array != structure.value, sampling=spacing
            )
            assert structure.d_min_mm <= distance[centre] <= structure.d_max_mm, node
            assert node.short_axis_mm <= node.long_axis_mm
            checked += 1
    assert checked >= 6


def test_no_node_voxel_is_an_organ_vessel_or_label(cohort: HoldoutCohort) -> None:
    seen: set[int] = set()
    for record in cohort.records:
        folder = cohort.out / record.patient_id
        organs = read_nifti(folder / ORGANS_FILE).array
        nodes = read_nifti(folder / NODES_FILE).array > 0
        labels = read_nifti(record.label).array
        assert not np.any(nodes & (organs > 0)) and not np.any(nodes & (labels > 0))
        # 1.5 mm of fat around every node: no structure voxel touches a node voxel.
        grown = ndimage.binary_dilation(nodes, ndimage.generate_binary_structure(3, 1))
        assert not np.any(grown & ((organs > 0) | (labels > 0)))
        seen |= set(np.unique(organs).tolist())
        hu = read_nifti(record.image).array
        assert -40.0 < float(np.median(hu[nodes])) < 110.0  # soft tissue, below the vessels
    assert seen == {0} | {s.value for s in ATTENTION_STRUCTURES}


def test_tumor_free_patients_are_n0_and_positive_nodes_drain_the_tumor(
    cohort: HoldoutCohort,
) -> None:
    truth = _truth(cohort)
    statuses = set()
    for record in cohort.records:
        row = truth[record.patient_id]
        nodes = _nodes(cohort.out / record.patient_id)
        if row["has_tumor"] == "0":
            assert row["n_status"] == "0" and not any(n.metastatic for n in nodes)
        for node in nodes:
            if node.metastatic:
                assert node.station in DRAINAGE[row["tumor_location"]]
        statuses.add((row["has_tumor"], row["n_status"]))
    assert statuses == {("0", "0"), ("1", "0"), ("1", "1")}


def test_same_seed_same_nodes(cohort: HoldoutCohort) -> None:
    target = tumor_targets(SEED, COUNT, COARSE)[0]
    again = make_patient(SEED, 0, target, COARSE)
    assert again.nodes is not None
    written = _nodes(cohort.out / again.patient_id)
    assert [n.model_dump() for n in again.nodes] == [n.model_dump() for n in written]
    assert again.scan.nodes is not None
    flat = np.asarray(read_nifti(cohort.out / again.patient_id / NODES_FILE).array)
    assert int(np.count_nonzero(flat)) == int(np.count_nonzero(again.scan.nodes))


def test_switched_off_no_node_files_and_no_other_draw_changes(
    cohort: HoldoutCohort, tmp_path: Path
) -> None:
    off = HoldoutOptions(**{**COARSE.__dict__, "lymph_nodes": False})
    plain = generate_holdout_cohort(tmp_path / "off", COUNT, SEED, off)
    with (plain.out / "truth.csv").open(encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert "node_count" not in header and "n_status" in header
    clinical = (cohort.out / "clinical.csv").read_bytes()
    assert (plain.out / "clinical.csv").read_bytes() == clinical
    for with_nodes, without in zip(cohort.records, plain.records, strict=True):
        folder = plain.out / without.patient_id
        assert without.node_files == ()
        assert not any((folder / n).exists() for n in (ORGANS_FILE, NODES_FILE, LYMPH_NODES_FILE))
        np.testing.assert_array_equal(
            read_nifti(with_nodes.label).array, read_nifti(without.label).array
        )
        # The CT differs only at the nodes and where the oesophagus and the left gastric
        # artery reach (their partial volume too, also where a later solid owns the voxel).
        root = cohort.out / with_nodes.patient_id
        image = read_nifti(with_nodes.image)
        near = ndimage.binary_dilation(
            read_nifti(root / NODES_FILE).array > 0, np.ones((3, 3, 3), bool), iterations=2
        )
        changed = (image.array != read_nifti(without.image).array) & ~near
        assert np.any(image.array != read_nifti(without.image).array)
        assert _within_extra_structures(with_nodes.patient_id, image.affine, changed, 2.5)
        for column in ("tumor_volume_ml", "nccn_label", "contact_SMA", "tumor_location"):
            assert with_nodes.truth[column] == without.truth[column]


def _within_extra_structures(
    patient_id: str, affine: npt.NDArray[np.float64], voxels: npt.NDArray[np.bool_], mm: float
) -> bool:
    """Whether every voxel lies within ``mm`` of the patient's oesophagus or left gastric artery
    (redrawn from its layout stream)."""
    from phantom.holdout._nodes import draw_extra_structures
    from phantom.holdout._patient import stream

    index = int(patient_id.split("-")[1]) - 1
    patient = make_patient(SEED, index, tumor_targets(SEED, COUNT, COARSE)[index], COARSE)
    extra = draw_extra_structures(patient.anatomy, stream(SEED, index, "node_layout"))
    ras = affine @ np.c_[np.argwhere(voxels), np.ones(int(voxels.sum()))].T
    body = patient.frame.to_body(np.c_[-ras[0], -ras[1], ras[2]])
    distance = np.minimum(extra.esophagus.sdf(body), extra.left_gastric.sdf(body))
    return bool(np.all(distance < mm))


def test_the_lymph_node_task_reads_the_cohort(cohort: HoldoutCohort) -> None:
    from training._lymph_node_data import discover_lymph_node_cases

    cases = discover_lymph_node_cases(cohort.out)
    assert [c.patient_id for c in cases] == [r.patient_id for r in cohort.records]
    truth = _truth(cohort)
    assert [c.n_status for c in cases] == [int(truth[c.patient_id]["n_status"]) for c in cases]


def test_n_plus_rises_with_tumor_size_and_vessel_contact() -> None:
    assert n_positive_probability(20.0, 0) < n_positive_probability(40.0, 0)
    assert n_positive_probability(30.0, 0) < n_positive_probability(30.0, 2)
    assert 0.2 < n_positive_probability(30.0, 0) < 0.35
    assert math.isclose(n_positive_probability(30.0, 2), 1 / (1 + math.exp(0.0)))
