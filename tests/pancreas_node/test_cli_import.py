"""``pancreas-node import``: an MSD folder to a cohort, end to end through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pancreas_node.cli import app, main
from tests.db.registry_helpers import write_clinical_csv
from tests.training.importers._cohort import read_csv, read_label, write_nifti_array

RUNNER = CliRunner()
EXAMPLE_REGISTRY = Path(__file__).resolve().parents[2] / "deploy/registry/example-registry.toml"


def _msd(root: Path, cases: tuple[str, ...]) -> Path:
    affine = np.diag([0.8, 0.8, 2.0, 1.0])
    for case in cases:
        label = np.zeros((32, 32, 16), dtype=np.uint8)
        label[4:20, 4:20, 2:10] = 1
        label[8:10, 8:10, 4:6] = 2
        write_nifti_array(
            root / "imagesTr" / f"{case}.nii.gz", np.zeros_like(label, np.int16), affine
        )
        write_nifti_array(root / "labelsTr" / f"{case}.nii.gz", label, affine)
    dataset = {
        "labels": {"0": "background", "1": "pancreas", "2": "cancer"},
        "training": [
            {"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in cases
        ],
    }
    (root / "dataset.json").write_text(json.dumps(dataset), encoding="utf-8")
    return root


def test_import_msd_end_to_end(tmp_path: Path) -> None:
    source = _msd(tmp_path / "Task07_Pancreas", ("pancreas_001", "pancreas_004"))
    out = tmp_path / "cohort"
    result = RUNNER.invoke(
        app,
        [
            "import",
            "--format",
            "msd",
            "--source",
            str(source),
            "--mapping",
            "msd-task07-pancreas",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "wrote 2 cases" in result.output
    assert "2 / 2" in result.output  # pancreas and tumor, labelled in both
    truth = read_csv(out / "truth.csv")
    assert truth["pancreas_004"]["labelled"] == "pancreas;tumor"
    assert truth["pancreas_004"]["has_tumor"] == "1"
    label, _ = read_label(out, "pancreas_001")
    assert set(np.unique(label)) == {0, 1, 2}


def test_import_fills_clinical_cells_from_csv_and_registry(tmp_path: Path) -> None:
    # MSD case ids that are the registry's patient keys (the demo registry's phantoms).
    source = _msd(tmp_path / "src", ("PHANTOM-0001", "PHANTOM-0002"))
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    seeded = RUNNER.invoke(
        app,
        [
            "registry",
            "seed",
            "--clinical",
            str(write_clinical_csv(tmp_path / "reg.csv")),
            "--url",
            url,
        ],
    )
    assert seeded.exit_code == 0, seeded.output
    config = tmp_path / "registry.toml"
    config.write_text(
        EXAMPLE_REGISTRY.read_text(encoding="utf-8")
        .replace('url = "sqlite:///data/registry.db"', f'url = "{url}"')
        .replace('url_env = "PANCREAS_REGISTRY_URL"\n', ""),
        encoding="utf-8",
    )
    clinical = tmp_path / "clinical.csv"
    clinical.write_text("patient_id,age,nccn_label\nPHANTOM-0002,71,2\n", encoding="utf-8")
    out = tmp_path / "cohort"
    result = RUNNER.invoke(
        app,
        [
            "import",
            "--format",
            "msd",
            "--source",
            str(source),
            "--mapping",
            "msd-task07-pancreas",
            "--out",
            str(out),
            "--clinical",
            str(clinical),
            "--registry-config",
            str(config),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "clinical CSV rows matched: 1 / 2" in result.output
    rows = read_csv(out / "clinical.csv")
    assert rows["PHANTOM-0002"]["age"] == "71"  # the CSV wins over the registry
    assert read_csv(out / "truth.csv")["PHANTOM-0002"]["nccn_label"] == "2"
    filled = sum(v != "" for k, v in rows["PHANTOM-0001"].items() if k != "patient_id")
    assert filled > 0, (result.output, rows)


def test_import_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = _msd(tmp_path / "src", ("a1",))
    status = main(
        ["import", "--format", "zip", "--source", str(source), "--mapping", "x", "--out", "o"]
    )
    assert status == 1
    assert "--format must be one of msd, dicom-seg, rtstruct, nifti" in capsys.readouterr().err
    status = main(
        [
            "import",
            "--format",
            "msd",
            "--source",
            str(source),
            "--mapping",
            str(tmp_path / "missing.toml"),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert status == 1
    assert "missing.toml not found" in capsys.readouterr().err
