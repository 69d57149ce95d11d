"""Lymph nodes, written: organs.nii.gz, nodes.nii.gz, lymph_nodes.json and truth.csv columns."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from scipy import ndimage

from inference import read_nifti
from inference.volume import Volume
from pancreas_contracts.lymph_nodes import (
    ATTENTION_STRUCTURES,
    LYMPH_NODES_FILE,
    NODES_FILE,
    ORGANS_FILE,
    NodeTruth,
    structure_by_name,
)
from pancreas_node.cli import main
from phantom import (
    FOLLOW_UP_TRUTH_COLUMNS,
    NODE_COLUMNS,
    STATION_SITES,
    TRUTH_COLUMNS,
    WIDE_TRUTH_COLUMNS,
    PhantomCohort,
    PhantomOptions,
    generate_cohort,
)

# Seed 2 of this cohort: two N+ PDAC patients, one N0 PDAC and one tumor-free patient.
OPTIONS = PhantomOptions(
    variation="wide",
    tumor_free_fraction=0.25,
    fov_mm=(220.0, 200.0, 150.0),
    pixel_spacing=2.0,
    slice_thickness=3.0,
)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> PhantomCohort:
    return generate_cohort(tmp_path_factory.mktemp("nodes"), 4, 2, OPTIONS)


def _truth(out: Path) -> list[dict[str, str]]:
    with (out / "truth.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _nodes(folder: Path) -> list[NodeTruth]:
    document = json.loads((folder / LYMPH_NODES_FILE).read_text(encoding="utf-8"))
    assert isinstance(document, list)
    return [NodeTruth.model_validate(entry) for entry in document]


def _voxel(volume: Volume, centre_lps: tuple[float, float, float]) -> tuple[int, int, int]:
    ras = np.array([-centre_lps[0], -centre_lps[1], centre_lps[2], 1.0])
    index = np.linalg.inv(volume.affine) @ ras
    assert np.allclose(index[:3], np.rint(index[:3]), atol=1e-3)  # centres on voxel centres
    i, j, k = (int(v) for v in np.rint(index[:3]))
    return i, j, k


def _distance(organs: Volume, value: int) -> npt.NDArray[np.float64]:
    field: npt.NDArray[np.float64] = ndimage.distance_transform_edt(
        organs.array != value, sampling=organs.spacing
    )
    return field


def test_files_are_written_on_the_label_grid(cohort: PhantomCohort) -> None:
    for patient in cohort:
        folder = cohort.out / patient.patient_id
        label = read_nifti(folder / "label.nii.gz")
        organs, nodes = read_nifti(folder / ORGANS_FILE), read_nifti(folder / NODES_FILE)
        assert patient.files.organs == folder / ORGANS_FILE
        for volume in (organs, nodes):
            assert volume.shape == label.shape and np.allclose(volume.affine, label.affine)
        assert set(np.unique(organs.array)) <= set(range(11))
        # The structures around the pancreas are always in the field of view.
        for name in ("pancreas", "aorta", "sma", "celiac_splenic", "hepatic_artery"):
            assert structure_by_name(name).value in organs.array
        assert np.count_nonzero(organs.array) > 0


def test_truth_gains_the_node_columns(cohort: PhantomCohort) -> None:
    rows = _truth(cohort.out)
    assert tuple(rows[0]) == (*WIDE_TRUTH_COLUMNS, *NODE_COLUMNS, *FOLLOW_UP_TRUTH_COLUMNS)
    for row, patient in zip(rows, cohort, strict=True):
        nodes = _nodes(cohort.out / patient.patient_id)
        positives = sum(node.metastatic for node in nodes)
        assert row["node_count"] == str(len(nodes)) and row["positive_nodes"] == str(positives)
        assert row["n_status"] == str(int(positives > 0))
        if row["has_tumor"] == "0":
            assert row["n_status"] == "0" and positives == 0
            assert {node.kind for node in nodes} <= {"benign", "inflammatory"}
    assert {row["n_status"] for row in rows} == {"0", "1"}


def test_nodes_lie_in_their_structures_range(cohort: PhantomCohort) -> None:
    checked = 0
    for patient in cohort:
        folder = cohort.out / patient.patient_id
        organs = read_nifti(folder / ORGANS_FILE)
        fields: dict[int, npt.NDArray[np.float64]] = {}
        for node in _nodes(folder):
            structure = structure_by_name(STATION_SITES[node.station].structure)
            if structure.value not in fields:
                fields[structure.value] = _distance(organs, structure.value)
            distance = fields[structure.value][_voxel(organs, node.centre_lps_mm)]
            assert structure.d_min_mm <= distance <= structure.d_max_mm, node
            assert distance > 0.0
            checked += 1
    assert checked >= 10


def test_nodes_overlap_no_structure_and_match_the_json(cohort: PhantomCohort) -> None:
    for patient in cohort:
        folder = cohort.out / patient.patient_id
        label = read_nifti(folder / "label.nii.gz").array
        organs = read_nifti(folder / ORGANS_FILE).array
        mask = read_nifti(folder / NODES_FILE)
        nodes = _nodes(folder)
        assert [node.node_id for node in nodes] == list(range(1, len(nodes) + 1))
        assert set(np.unique(mask.array)) == {0, *(node.node_id for node in nodes)}
        inside = np.asarray(mask.array, dtype=np.int64) > 0
        assert not np.any(organs[inside]) and not np.any(label[inside])
        voxel_ml = float(np.prod(mask.spacing)) / 1000.0
        for node in nodes:
            voxels = int(np.count_nonzero(mask.array == node.node_id))
            assert node.volume_ml == pytest.approx(voxels * voxel_ml, abs=1e-4)
            assert mask.array[_voxel(mask, node.centre_lps_mm)] == node.node_id
        # Each node is one blob, apart from every other one.
        _, count = ndimage.label(inside)
        assert count == len(nodes)


def test_n_positive_patients_have_a_positive_node_near_the_tumor(cohort: PhantomCohort) -> None:
    for row, patient in zip(_truth(cohort.out), cohort, strict=True):
        plan = patient.plan.nodes
        assert plan is not None
        nodes = _nodes(cohort.out / patient.patient_id)
        if plan.n_positive:
            assert row["n_status"] == "1"
            stations = {s for spec in plan.nodes if spec.metastatic for s in spec.stations[:3]}
            assert any(node.station in stations for node in nodes if node.metastatic)


def test_standard_cohorts_have_no_node_files(tmp_path: Path) -> None:
    small = PhantomOptions(fov_mm=(200.0, 200.0, 80.0), pixel_spacing=2.0, slice_thickness=4.0)
    cohort = generate_cohort(tmp_path, 1, 7, small)
    folder = tmp_path / cohort[0].patient_id
    assert tuple(_truth(tmp_path)[0]) == TRUTH_COLUMNS
    assert not any((folder / name).exists() for name in (ORGANS_FILE, NODES_FILE, LYMPH_NODES_FILE))
    assert cohort[0].files.organs is None


def test_cli_switches_nodes_on_and_off(tmp_path: Path) -> None:
    small = ["--fov-mm", "200,180,90", "--pixel-spacing", "2.5", "--slice-thickness", "3"]
    base = ["phantom", "--patients", "1", "--seed", "3", *small]
    assert main([*base, "--out", str(tmp_path / "std"), "--lymph-nodes"]) == 0
    assert tuple(_truth(tmp_path / "std")[0]) == (*TRUTH_COLUMNS, *NODE_COLUMNS)
    assert (tmp_path / "std" / "PHANTOM-0001" / LYMPH_NODES_FILE).is_file()
    wide = [*base, "--out", str(tmp_path / "wide"), "--variation", "wide", "--no-lymph-nodes"]
    assert main(wide) == 0
    assert tuple(_truth(tmp_path / "wide")[0]) == WIDE_TRUTH_COLUMNS
    assert not (tmp_path / "wide" / "PHANTOM-0001" / ORGANS_FILE).exists()


def test_attention_structures_are_the_contract_values() -> None:
    assert [s.value for s in ATTENTION_STRUCTURES] == list(range(1, 11))
    assert {site.structure for site in STATION_SITES.values()} <= {
        s.name for s in ATTENTION_STRUCTURES
    }
