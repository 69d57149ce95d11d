"""MSD and nnU-Net v2 folders -> cohort: values mapped, labelled lists, unmapped labels absent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from pancreas_contracts.clinical import CLINICAL_VARIABLES
from tests.training.importers._cohort import read_csv, read_label, write_nifti_array
from training.dataset import NCCN_UNKNOWN, discover_cases
from training.importers import load_mapping, read_msd, scan_msd, write_cohort

AFFINE = np.diag([0.8, 0.8, 2.0, 1.0])
SHAPE = (32, 32, 16)
MAPPING = Path(__file__).resolve().parents[3] / "training/importers/mappings"


def _source_label(tumor: bool) -> npt.NDArray[np.uint8]:
    """0 background, 1 pancreas, 2 cancer, 3 a structure no mapping knows (say, a cyst)."""
    label = np.zeros(SHAPE, dtype=np.uint8)
    label[8:20, 10:22, 4:10] = 1
    if tumor:
        label[12:15, 12:16, 5:8] = 2
    label[24:28, 2:6, 2:4] = 3
    return label


def _image() -> npt.NDArray[np.int16]:
    return np.random.default_rng(0).integers(-1000, 400, SHAPE).astype(np.int16)


def _msd(root: Path) -> Path:
    cases = {"pancreas_001": True, "pancreas_002": False}
    for case, tumor in cases.items():
        write_nifti_array(root / "imagesTr" / f"{case}.nii.gz", _image(), AFFINE)
        write_nifti_array(root / "labelsTr" / f"{case}.nii.gz", _source_label(tumor), AFFINE)
    dataset = {
        "name": "Pancreas",
        "labels": {"0": "background", "1": "pancreas", "2": "cancer", "3": "cyst"},
        "training": [
            {"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in cases
        ],
    }
    (root / "dataset.json").write_text(json.dumps(dataset), encoding="utf-8")
    return root


def _nnunet_v2(root: Path) -> Path:
    for case, tumor in {"case_00007": True, "case_00009": False}.items():
        write_nifti_array(root / "imagesTr" / f"{case}_0000.nii.gz", _image(), AFFINE)
        write_nifti_array(root / "labelsTr" / f"{case}.nii.gz", _source_label(tumor), AFFINE)
    dataset = {
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, "pancreas": 1, "cancer": 2, "cyst": 3},
        "numTraining": 2,
        "file_ending": ".nii.gz",
    }
    (root / "dataset.json").write_text(json.dumps(dataset), encoding="utf-8")
    return root


@pytest.mark.parametrize(
    ("build", "style", "cases"),
    [
        (_msd, "msd", ("pancreas_001", "pancreas_002")),
        (_nnunet_v2, "nnunet-v2", ("case_00007", "case_00009")),
    ],
)
def test_dataset_json_styles_import(
    tmp_path: Path, build: object, style: str, cases: tuple[str, str]
) -> None:
    source = build(tmp_path / "Dataset007_Pancreas")  # type: ignore[operator]
    assert scan_msd(source).style == style
    mapping = load_mapping(MAPPING / "msd-task07-pancreas.toml")
    out = tmp_path / "cohort"
    summary = write_cohort(
        out,
        read_msd(source, mapping),
        import_source="msd",
        source_name=source.name,
        mapping=mapping,
    )
    assert summary.cases == cases
    assert summary.labelled_counts["pancreas"] == 2 and summary.labelled_counts["sma"] == 0
    truth = read_csv(out / "truth.csv")
    with_tumor, without = (truth[c] for c in cases)
    # "cyst" (3) is mapped by nothing: its voxels are 0 and nothing says it was labelled.
    assert with_tumor["labelled"] == "pancreas;tumor" == without["labelled"]
    assert (with_tumor["has_tumor"], without["has_tumor"]) == ("1", "0")
    assert with_tumor["nccn_label"] == "" and with_tumor["import_source"] == "msd"
    for case, tumor in zip(cases, (True, False), strict=True):
        label, affine = read_label(out, case)
        expected = _source_label(tumor)
        expected[expected == 3] = 0
        np.testing.assert_array_equal(label, expected)
        np.testing.assert_allclose(affine, AFFINE)
    clinical = read_csv(out / "clinical.csv")
    assert list(clinical[cases[0]]) == ["patient_id", *(v.name for v in CLINICAL_VARIABLES)]
    assert all(value == "" for key, value in clinical[cases[0]].items() if key != "patient_id")
    provenance = json.loads((out / "import.json").read_text(encoding="utf-8"))
    assert provenance["format"] == "msd" and provenance["source"] == "Dataset007_Pancreas"
    assert provenance["mapping"]["file"] == "msd-task07-pancreas.toml"
    assert provenance["mapping"]["sha256"] == mapping.sha256
    assert provenance["cases"][0] == {"patient_id": cases[0], "labelled": ["pancreas", "tumor"]}
    assert str(tmp_path) not in (out / "import.json").read_text(encoding="utf-8")
    # The trainer reads the cohort: the labelled set and the unknown NCCN category.
    records = {record.patient_id: record for record in discover_cases(out)}
    assert records[cases[0]].labelled == frozenset({1, 2})
    assert records[cases[0]].nccn_label == NCCN_UNKNOWN


def test_a_mapping_without_the_tumor_leaves_it_unknown(tmp_path: Path) -> None:
    source = _msd(tmp_path / "Task07")
    mapping = load_mapping(MAPPING / "nih-pancreas-ct.toml")
    out = tmp_path / "cohort"
    write_cohort(
        out, read_msd(source, mapping), import_source="msd", source_name="x", mapping=mapping
    )
    row = read_csv(out / "truth.csv")["pancreas_001"]
    assert (row["labelled"], row["has_tumor"]) == ("pancreas", "")
    label, _ = read_label(out, "pancreas_001")
    assert set(np.unique(label)) == {0, 1}
    # The cancer voxels become background: the tumor is "not labelled", so a partial-label
    # loss must not read these zeros as "no tumor" (the labelled column says so).
    assert int((label == 1).sum()) == int((_source_label(True) == 1).sum())


def test_malformed_datasets_are_refused(tmp_path: Path) -> None:
    source = _nnunet_v2(tmp_path / "d")
    data = json.loads((source / "dataset.json").read_text())
    data["labels"]["whole"] = [1, 2]
    (source / "dataset.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="region-based"):
        scan_msd(source)
    (source / "dataset.json").unlink()
    with pytest.raises(ValueError, match=r"no dataset\.json"):
        scan_msd(source)


def test_out_must_be_new_or_empty(tmp_path: Path) -> None:
    source = _msd(tmp_path / "Task07")
    mapping = load_mapping(MAPPING / "msd-task07-pancreas.toml")
    (tmp_path / "cohort").mkdir()
    (tmp_path / "cohort" / "old.txt").write_text("x")
    with pytest.raises(ValueError, match="not an empty folder"):
        write_cohort(
            tmp_path / "cohort",
            read_msd(source, mapping),
            import_source="msd",
            source_name="x",
            mapping=mapping,
        )
