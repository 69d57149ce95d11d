"""``pancreas-node phantom``: outputs, determinism and one-line errors on bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from inference.volume import read_nifti
from pancreas_node.cli import main
from phantom import CLINICAL_COLUMNS, TRUTH_COLUMNS

SMALL = ["--fov-mm", "120,110,30", "--pixel-spacing", "1.5", "--slice-thickness", "3"]


def _run(out: Path, *extra: str) -> int:
    return main(["phantom", "--out", str(out), "--patients", "3", *SMALL, *extra])


def test_writes_a_cohort(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cohort"
    # Anatomical labels (no BR-B), so the rule categories are the allocation's.
    assert _run(out, "--seed", "4", "--classes", "1,1,1", "--biological-borderline", "0") == 0
    assert "wrote 3 phantom patients" in capsys.readouterr().out
    with (out / "truth.csv").open() as handle:
        truth = list(csv.DictReader(handle))
    with (out / "clinical.csv").open() as handle:
        clinical = list(csv.DictReader(handle))
    assert tuple(truth[0]) == TRUTH_COLUMNS and tuple(clinical[0]) == CLINICAL_COLUMNS
    assert [r["patient_id"] for r in truth] == ["PHANTOM-0001", "PHANTOM-0002", "PHANTOM-0003"]
    assert sorted(r["rule_category"] for r in truth) == ["0", "1", "2"]
    for row in truth:
        folder = out / row["patient_id"]
        assert len(list((folder / "dicom").glob("*.dcm"))) == 10
        assert (folder / "image.nii.gz").is_file() and (folder / "label.nii.gz").is_file()
        assert float(row["tumor_volume_ml"]) >= 0  # the tumor may lie outside a 30 mm FOV


def test_same_seed_same_files_other_seed_other_files(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert (
        _run(a, "--seed", "7") == 0 and _run(b, "--seed", "7") == 0 and _run(c, "--seed", "8") == 0
    )
    for name in ("clinical.csv", "truth.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
        assert (a / name).read_bytes() != (c / name).read_bytes()
    for left, right in zip(sorted(a.rglob("*.dcm")), sorted(b.rglob("*.dcm")), strict=True):
        assert left.read_bytes() == right.read_bytes()
    for name in ("image.nii.gz", "label.nii.gz"):
        first = read_nifti(a / "PHANTOM-0001" / name).array
        again = read_nifti(b / "PHANTOM-0001" / name).array
        other = read_nifti(c / "PHANTOM-0001" / name).array
        assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_rerun_replaces_an_earlier_cohort(tmp_path: Path) -> None:
    assert _run(tmp_path, "--seed", "1") == 0
    assert main(["phantom", "--out", str(tmp_path), "--patients", "1", *SMALL[:4],
                 "--slice-thickness", "5"]) == 0  # fmt: skip
    assert len(list((tmp_path / "PHANTOM-0001" / "dicom").glob("*.dcm"))) == 6


@pytest.mark.parametrize(
    "args",
    [
        ["--patients", "0"],
        ["--classes", "1,2"],
        ["--classes", "a,b,c"],
        ["--classes", "0,0,0"],
        ["--classes", "5,-1,3"],
        ["--label-noise", "1.5"],
        ["--fov-mm", "300,300"],
        ["--position", "HFP"],
        ["--transfer-syntax", "jpeg-baseline"],
        ["--pixel-spacing", "0"],
    ],
)
def test_bad_input_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    assert main(["phantom", "--out", str(tmp_path / "out"), *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pancreas-node: error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_unwritable_or_foreign_output_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["phantom", "--out", str(blocker / "out")]) == 1
    assert main(["phantom", "--out", str(blocker)]) == 1
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert main(["phantom", "--out", str(foreign)]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 3 and all(e.startswith("pancreas-node: error: ") for e in errors)
    assert "not writable" in errors[0] and "not empty" in errors[2]
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_unknown_option_is_a_usage_error(tmp_path: Path) -> None:
    assert main(["phantom", "--out", str(tmp_path), "--colour", "red"]) == 2
