"""``evaluate_cohort`` on a cohort with the new truth columns: a tumor-free patient, a generator.

Three small phantoms whose ``truth.csv`` gets ``has_tumor`` and ``generator`` (``holdout``); the
third is made tumor-free (empty ``nccn_label``/``rule_category``/``contact_*``, its label map's
tumor relabelled pancreas). A tiny untrained bundle that labels its whole cube tumor: every
analysed CT has a tumor, so the tumor-free patient gets a false tumor and a category, which the
report must count; the NCCN metrics must leave that patient out.
"""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from phantom import PhantomOptions, generate_cohort
from training.evaluation import Evaluation, evaluate_cohort
from training.structure_bundle import build_test_bundle

torch.set_num_threads(2)

OPTIONS = PhantomOptions(fov_mm=(320.0, 320.0, 240.0), pixel_spacing=2.0, slice_thickness=4.0)
FREE = "PHANTOM-0003"
EMPTIED = ("nccn_label", "rule_category", "contact_SMA", "contact_CA", "contact_CHA",
           "contact_SMV", "contact_PV")  # fmt: skip


def _make_tumor_free(cohort: Path) -> None:
    path = cohort / "truth.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row.update(has_tumor="1", generator="holdout")
        if row["patient_id"] == FREE:
            row.update(dict.fromkeys(EMPTIED, ""), has_tumor="0", tumor_location="none")
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    label_path = cohort / FREE / "label.nii.gz"
    image = nib.load(label_path)
    assert isinstance(image, nib.Nifti1Image)
    labels = np.asarray(image.dataobj).copy()
    labels[labels == 2] = 1
    nib.save(nib.Nifti1Image(labels, image.affine, image.header), label_path)


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory: pytest.TempPathFactory) -> Evaluation:
    cohort = tmp_path_factory.mktemp("cohort")
    generate_cohort(cohort, 3, 5, OPTIONS)
    _make_tumor_free(cohort)
    bundle = build_test_bundle(tmp_path_factory.mktemp("b") / "b", fill_label="tumor", members=1)
    return evaluate_cohort(cohort, [bundle], tmp_path_factory.mktemp("eval"), device="cpu")


def test_generator_and_tumor_free_in_the_cohort(evaluation: Evaluation) -> None:
    cohort = evaluation.report["cohort"]
    assert cohort["generator"] == "holdout" and cohort["tumor_free"] == 1
    assert sum(cohort["classes"]) == 2
    text = evaluation.markdown.read_text(encoding="utf-8")
    assert text.startswith("# Resectability evaluation: generator `holdout`")
    assert "## End to end on generator `holdout`" in text
    assert "not that the model works" not in text  # the caveat of the training generators


def test_tumor_free_patient_is_left_out_of_the_nccn_metrics(evaluation: Evaluation) -> None:
    cube = evaluation.report["rows"][0]
    assert cube["kind"] == "cube" and cube["n"] == 2
    assert next(c for c in cube["cases"] if c["patient_id"] == FREE)["truth"] is None
    assert np.sum(cube["confusion"]) == 2
    pipeline = evaluation.report["rows"][-1]
    assert pipeline["kind"] == "pipeline"
    assert pipeline["n"] == sum(
        c["category"] is not None for c in pipeline["cases"] if c["patient_id"] != FREE
    )


def test_false_tumor_and_category_given_to_the_tumor_free_patient(
    evaluation: Evaluation,
) -> None:
    row = evaluation.report["rows"][-1]
    free = next(c for c in row["cases"] if c["patient_id"] == FREE)
    assert not free["has_tumor"] and free["contact_true"] == {}
    # The bundle paints its cube tumor: the tumor-free patient gets a tumor and a category.
    assert free["scores"]["tumor"]["pred_ml"] > 1.0 and free["scores"]["tumor"]["true_ml"] == 0
    assert free["category"] is not None
    assert row["tumor_free"]["false_tumor"] == {"count": 1, "n": 1, "rate": 1.0}
    assert row["tumor_free"]["category_given"] == {"count": 1, "n": 1, "rate": 1.0}
    bearing = [c for c in row["cases"] if c["has_tumor"]]
    assert all(c["scores"]["tumor"]["overlap"] for c in bearing)
    assert row["tumor_present"]["found"] == {"count": 2, "n": 2, "rate": 1.0}
    text = evaluation.markdown.read_text(encoding="utf-8")
    assert "category given to a tumor-free patient: 1 of 1 (100 %)" in text


def test_contact_angle_mae_per_vessel(evaluation: Evaluation) -> None:
    row = evaluation.report["rows"][-1]
    bearing = [c for c in row["cases"] if c["has_tumor"]]
    for vessel, got in row["contact_mae"].items():
        pairs = [
            (c["contact_true"][vessel], c["contact_deg"][vessel])
            for c in bearing
            if vessel in c["contact_true"] and c["contact_deg"].get(vessel) is not None
        ]
        assert got["n_truth"] == 2 and got["n_measured"] == len(pairs)
        want = np.mean([abs(t - m) for t, m in pairs]) if pairs else None
        assert got["mae_deg"] == (None if want is None else pytest.approx(want))
    # The bundle segments no vessel: no angle can be measured, and none is scored as 0 deg.
    assert all(v["n_measured"] == 0 and v["mae_deg"] is None for v in row["contact_mae"].values())
    text = evaluation.markdown.read_text(encoding="utf-8")
    assert "| SMA | n/a | 0 / 2 |" in text
