"""``pancreas-node export-cases --reviewed`` and the round trip into ``pancreas-node train``.

Six phantoms pass through the node database as analysed studies with the node's SEG in their
results folder; radiologists agree with, override and correct them and a board decides one.
The export must give each reviewed case its CT and the right label map (the corrected SEG
version where there is one) on the same grid, the board's decision or the reviewer's category
as its NCCN label, no identifiers, and a cohort ``pancreas-node train`` reads and reports on.
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch

from db import (
    CorrectionState,
    NewResult,
    NodeDatabase,
    add_case,
    claim_next_job,
    complete_job,
    create_board,
    enqueue_job,
    mark_correction_written,
    record_decision,
    record_instance,
    record_review,
)
from db._types import utcnow
from inference.seg_writer import write_seg
from inference.volume import Volume, read_nifti
from pancreas_contracts.boards import (
    BoardCategory,
    BoardInput,
    CaseInput,
    DecisionInput,
    ReviewInput,
    ReviewVerdict,
)
from pancreas_contracts.labels import label_by_name
from pancreas_contracts.result import BundleRef
from pancreas_node.cli import main
from phantom import PhantomOptions, PhantomPatient, generate_cohort
from tests.pancreas_node.test_cli_train import _CONFIG as TINY_TRAIN

torch.set_num_threads(1)

_BUNDLE = BundleRef(name="test-bundle", version="0.0.1", sha256="0" * 64)
_TUMOR = label_by_name("tumor").value
# The tiny CPU configuration of the train command's own test, without the localiser.
_TRAIN = TINY_TRAIN.replace("localiser_epochs = 1", "localiser_epochs = 0")
assert _TRAIN != TINY_TRAIN


def _analysed(db: NodeDatabase, data: Path, patient: PhantomPatient, index: int) -> str:
    """Record the phantom's CT as received and analysed; its SEG in the job's results."""
    files = sorted(patient.dicom_dir.glob("*.dcm"))
    for path in files:
        header = pydicom.dcmread(path, stop_before_pixels=True)
        study, series = str(header.StudyInstanceUID), str(header.SeriesInstanceUID)
        record_instance(
            db, study_instance_uid=study, series_instance_uid=series,
            sop_instance_uid=str(header.SOPInstanceUID), sop_class_uid=str(header.SOPClassUID),
            transfer_syntax_uid=str(header.file_meta.TransferSyntaxUID), spool_path=str(path),
            modality="CT", patient_id=f"PAT-SECRET-{index}",
        )  # fmt: skip
    job = enqueue_job(db, series, 1, _BUNDLE.sha256).job
    assert claim_next_job(db, "w", 60) is not None
    write_seg(
        read_nifti(patient.files.label), files, _BUNDLE, data / "results" / job.id / "seg.dcm"
    )
    complete_job(
        db, job.id, "w",
        NewResult(
            result_json_path=str(data / "results" / job.id / "result.json"),
            bundle_name=_BUNDLE.name, bundle_version=_BUNDLE.version,
            bundle_sha256=_BUNDLE.sha256, category=patient.plan.rule_category,
            probabilities=(0.4, 0.3, 0.3), outcome="done",
        ),
    )  # fmt: skip
    return study


def _corrected(label: Volume) -> Volume:
    """The reviewer erases the tumor on its first slice."""
    array = label.array.copy()
    first = int(np.nonzero(np.any(array == _TUMOR, axis=(0, 1)))[0][0])
    plane = array[:, :, first]
    plane[plane == _TUMOR] = label_by_name("pancreas").value
    return replace(label, array=array)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[PhantomPatient]]:
    root = tmp_path_factory.mktemp("node")
    options = PhantomOptions(
        class_counts=(1.0, 1.0, 1.0), label_noise=0.0, pixel_spacing=2.5, slice_thickness=5.0
    )
    patients = list(generate_cohort(root / "phantoms", 6, 4, options, workers=2))
    data = root / "data"
    (root / "node.toml").write_text(
        f'data_dir = "{data}"\ndatabase_url = "sqlite:///{data / "node.db"}"\n', encoding="utf-8"
    )
    data.mkdir()
    db = NodeDatabase(f"sqlite:///{data / 'node.db'}")
    db.upgrade()
    studies = [_analysed(db, data, p, i) for i, p in enumerate(patients)]
    agree = ReviewInput(verdict=ReviewVerdict.AGREE)
    record_review(db, studies[0], agree, actor="orthanc:rad")
    record_review(db, studies[1], agree, actor="orthanc:rad")
    record_review(
        db, studies[2],
        ReviewInput(verdict=ReviewVerdict.OVERRIDE, category=BoardCategory.LOCALLY_ADVANCED,
                    reason="SMA encased"),
        actor="orthanc:rad",
    )  # fmt: skip
    correction = record_review(
        db, studies[3],
        ReviewInput(verdict=ReviewVerdict.CORRECT, reason="tumor ends one slice later"),
        actor="orthanc:rad", correction_path=str(root / "c.json"),
    )  # fmt: skip
    files = sorted(patients[3].dicom_dir.glob("*.dcm"))
    corrected = _corrected(read_nifti(patients[3].files.label))
    assert correction.job_id is not None
    target = data / "results" / correction.job_id / "corrections" / str(correction.id) / "seg.dcm"
    uid = write_seg(corrected, files, _BUNDLE, target)
    mark_correction_written(db, correction.id, corrected_seg_sop_uid=uid, amendment_sr_sop_uid=None)
    record_review(db, studies[4], agree, actor="orthanc:rad")
    board = create_board(
        db, BoardInput(board_date=utcnow().date() + timedelta(days=1), title="HPB"), actor="u"
    )
    for study in studies[:2]:
        add_case(db, board.id, CaseInput(study_instance_uid=study), actor="u")
    record_decision(
        db, board.id, studies[0], DecisionInput(category=BoardCategory.BORDERLINE), actor="u"
    )
    record_decision(
        db, board.id, studies[1], DecisionInput(category=BoardCategory.METASTATIC), actor="u"
    )
    db.dispose()
    return root, patients


def _study_uids(patients: list[PhantomPatient]) -> list[str]:
    return [
        str(
            pydicom.dcmread(
                next(p.dicom_dir.glob("*.dcm")), stop_before_pixels=True
            ).StudyInstanceUID
        )
        for p in patients
    ]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_export_then_train_on_the_reviewed_cases(
    node: tuple[Path, list[PhantomPatient]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, patients = node
    out = tmp_path / "reviewed"
    argv = ["export-cases", "--reviewed", "--out", str(out), "--config", str(root / "node.toml")]
    assert main(argv) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "exported 4 reviewed case(s)" in printed and "board decided metastatic" in printed
    truth = {r["review_verdict"] + ":" + r["label_source"]: r for r in _rows(out / "truth.csv")}
    # Board decision beats the node's category; the override's category is the reviewer's.
    assert truth["agree:board"]["nccn_label"] == "1"
    assert truth["override:review-override"]["nccn_label"] == "2"
    assert truth["agree:review-agree"]["nccn_label"] == str(patients[4].plan.rule_category)
    correction = truth["correct:review-correction"]
    assert correction["segmentation_source"] == "reviewer-corrected"
    assert correction["nccn_label"] == str(patients[3].plan.rule_category)
    # The corrected label map, not the node's, on the CT's grid.
    label = read_nifti(out / correction["patient_id"] / "label.nii.gz")
    image = read_nifti(out / correction["patient_id"] / "image.nii.gz")
    expected = _corrected(read_nifti(patients[3].files.label))
    np.testing.assert_allclose(label.affine, image.affine, atol=1e-4)
    assert np.array_equal(label.array, expected.array)
    assert not np.array_equal(label.array, read_nifti(patients[3].files.label).array)
    # No identifiers anywhere in the cohort's tables.
    tables = "".join(p.read_text(encoding="utf-8") for p in out.glob("*.csv"))
    tables += (out / "export.json").read_text(encoding="utf-8")
    assert "PAT-SECRET" not in tables and "PHANTOM" not in tables
    assert not any(s in tables for s in _study_uids(patients))
    summary = json.loads((out / "export.json").read_text(encoding="utf-8"))
    assert summary["exported"] == 4 and summary["registry"] == "not configured"
    assert len(summary["left_out"]) == 1
    config = tmp_path / "train.toml"
    config.write_text(_TRAIN, encoding="utf-8")
    run = tmp_path / "run"
    argv = ["train", "--data", str(out), "--out", str(run), "--config", str(config)]
    assert main(argv) == 0, capsys.readouterr().err
    report = (run / "report.md").read_text(encoding="utf-8")
    assert "- labels: 4 from radiologist review (board 1, review-agree 1, " in report
    assert "review-correction 1, review-override 1), 0 from the cohort" in report


def test_export_needs_reviewed_and_says_why_nothing_was_exported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "node.toml"
    config.write_text(
        f'data_dir = "{data}"\ndatabase_url = "sqlite:///{data / "node.db"}"\n', encoding="utf-8"
    )
    NodeDatabase(f"sqlite:///{data / 'node.db'}").upgrade()
    out = tmp_path / "out"
    assert main(["export-cases", "--out", str(out), "--config", str(config)]) != 0
    assert "needs --reviewed" in capsys.readouterr().err
    argv = ["export-cases", "--reviewed", "--out", str(out), "--config", str(config)]
    assert main(argv) != 0
    assert "no reviewed case could be exported (none reviewed)" in capsys.readouterr().err
    assert CorrectionState.WRITTEN == "written"
