"""``evaluate_cohort``: cube metrics equal a direct computation; the pipeline is robust per case.

Tiny untrained bundles (training.structure_bundle) on three small phantoms: structure
and bookkeeping, never accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.bundle import BundleMember, load_bundle, save_bundle
from inference.clinical_preprocessing import ClinicalPreprocessor, clinical_matrix
from inference.tasks.resectability.model import ModelConfig, ModelMode, ResectabilityNet
from pancreas_contracts.result import CATEGORY_LABELS
from phantom import PhantomOptions, generate_cohort, plan_cohort
from training._metrics import (
    DICE_GROUPS,
    classification_metrics,
    dice_counts,
    expected_calibration_error,
)
from training.dataset import PreprocessConfig, discover_cases, preprocess_case
from training.evaluation import Evaluation, evaluate_cohort
from training.structure_bundle import build_test_bundle

torch.set_num_threads(2)

# The test bundle labels its whole 160 mm cube pancreas: the scan must hold the whole cube.
OPTIONS = PhantomOptions(fov_mm=(320.0, 320.0, 240.0), pixel_spacing=2.0, slice_thickness=4.0)
BROKEN = "PHANTOM-0003"


def _tabular_bundle(out: Path) -> Path:
    raw = clinical_matrix([p.clinical for p in plan_cohort(12, seed=4)])
    torch.manual_seed(0)
    pre = ClinicalPreprocessor().fit(raw)
    net = ResectabilityNet(
        ModelConfig(pre.n_features, feature_size=12, mode=ModelMode.TABULAR_ONLY.value)
    )
    net.store_clinical_mean(torch.from_numpy(pre.transform(raw).features))
    save_bundle(
        out, [BundleMember(net, pre)], preprocess=PreprocessConfig(64),
        name="pancreas-ai-test-tabular_only", version="0.0.1", data_hash="0" * 64,
        metrics={}, training={"variant": "tabular_only"},
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cohort")
    generate_cohort(out, 3, 5, OPTIONS)
    # One unreadable DICOM series: the pipeline must record it and go on (the cube view reads
    # image.nii.gz and is unaffected).
    for file in (out / BROKEN / "dicom").iterdir():
        file.unlink()
    (out / BROKEN / "dicom" / "IM00001.dcm").write_bytes(b"not dicom")
    return out


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("bundles")
    return [build_test_bundle(root / "main"), _tabular_bundle(root / "tabular")]


@pytest.fixture(scope="module")
def evaluation(
    cohort: Path, bundles: list[Path], tmp_path_factory: pytest.TempPathFactory
) -> Evaluation:
    return evaluate_cohort(cohort, bundles, tmp_path_factory.mktemp("eval"), device="cpu")


def test_report_fields(evaluation: Evaluation, cohort: Path) -> None:
    report = json.loads(evaluation.json.read_text())
    assert report == evaluation.report
    assert report["notice"] == "investigational, not for clinical use"
    truth = [c.nccn_label for c in discover_cases(cohort)]
    assert report["cohort"] == {
        "path": str(cohort), "patients": 3, "classes": np.bincount(truth, minlength=3).tolist(),
        "tumor_free": 0, "nccn_unknown": 0, "partially_labelled": 0, "generator": "phantom",
    }  # fmt: skip
    assert report["calibration"] == {"metric": "expected calibration error", "bins": 10}
    assert "real_ct" not in report
    names = [b["name"] for b in report["bundles"]]
    assert names == ["pancreas-ai-test", "pancreas-ai-test-tabular_only"]
    assert all(len(b["sha256"]) == 64 for b in report["bundles"])
    assert [r["kind"] for r in report["rows"]] == ["cube", "knockout", "cube", "pipeline"]
    assert [r["bundle"] for r in report["rows"]] == [0, 0, 1, 0]
    text = evaluation.markdown.read_text()
    assert text.startswith("# Resectability evaluation: generator `phantom`")
    assert "not that the model works" in text
    assert "investigational, not for clinical use" in text.lower()
    assert "| model | n | macro AUC | macro-F1 | accuracy |" in text
    assert all(r["label"] in text for r in report["rows"])
    assert str(cohort) in text and report["bundles"][0]["sha256"] in text


def test_cube_metrics_equal_a_direct_computation(
    evaluation: Evaluation, cohort: Path, bundles: list[Path]
) -> None:
    cases = discover_cases(cohort)
    truth = [c.nccn_label for c in cases]
    main, tabular = load_bundle(bundles[0]), load_bundle(bundles[1])
    cubes = [preprocess_case(c, main.preprocess) for c in cases]
    raw = clinical_matrix([c.clinical for c in cases])
    images = np.stack([p.image for p in cubes])
    expected = {
        "cube": np.concatenate([main.predict(images[i : i + 1], raw[i : i + 1]) for i in range(3)]),
        "knockout": main.predict(images, None),
        "tabular": tabular.predict(None, raw),
    }
    rows = evaluation.report["rows"]
    for row, key in zip(rows[:3], ("cube", "knockout", "tabular"), strict=True):
        assert row["n"] == 3 and not row["failed"]
        assert [c["patient_id"] for c in row["cases"]] == [c.patient_id for c in cases]
        got = np.array([c["probabilities"] for c in row["cases"]])
        np.testing.assert_allclose(got, expected[key], atol=1e-5)
        direct = classification_metrics(truth, expected[key])
        assert row["confusion"] == direct["confusion"]
        for name in ("auc", "macro_f1", "accuracy"):
            want = direct[name]
            assert row[name] == (None if want != want else pytest.approx(want))
        assert row["ece"] == pytest.approx(expected_calibration_error(truth, expected[key]))
    # The test bundle labels every voxel pancreas: Dice is that of a full cube.
    counts = np.sum(
        [dice_counts(np.ones_like(p.label), p.label) for p in cubes if p.label is not None], axis=0
    )
    dice = rows[0]["dice"]
    for g, name in enumerate(DICE_GROUPS):
        assert dice[name] == pytest.approx(counts[g, 0] / counts[g, 1])
    assert dice["pancreas"] > 0 and dice["tumor"] == 0.0
    assert rows[1]["dice"] is None and rows[2]["dice"] is None


def test_cubes_made_in_parallel_give_the_same_rows(
    evaluation: Evaluation, cohort: Path, bundles: list[Path], tmp_path: Path
) -> None:
    parallel = evaluate_cohort(cohort, bundles, tmp_path, pipeline=False, device="cpu", workers=2)
    rows = parallel.report["rows"]
    assert len(rows) == 3  # no pipeline row
    for got, want in zip(rows, evaluation.report["rows"][:3], strict=True):
        assert got["label"] == want["label"]
        np.testing.assert_allclose(
            [c["probabilities"] for c in got["cases"]],
            [c["probabilities"] for c in want["cases"]],
            atol=1e-6,
        )
        assert got["dice"] == want["dice"]


def test_pipeline_records_categories_refusals_and_localisation(
    evaluation: Evaluation, cohort: Path
) -> None:
    row = evaluation.report["rows"][3]
    cases = {c["patient_id"]: c for c in row["cases"]}
    assert row["cases_total"] == 3 and set(cases) == {c.patient_id for c in discover_cases(cohort)}
    broken = cases.pop(BROKEN)
    assert broken["category"] is None and broken["reason"] == "unreadable-series"
    assert row["refused"] == {"unreadable-series": 1}
    main = load_bundle(Path(evaluation.report["bundles"][0]["path"]))
    categorised = [c for c in cases.values() if c["category"] is not None]
    assert row["n"] == len(categorised)
    # The test bundle segments pancreas only: no tumor, so no category (outcome no-tumor),
    # counted apart and left out of the classification metrics.
    no_tumor = [c for c in cases.values() if c["outcome"] == "no-tumor"]
    assert no_tumor and all(c["category"] is None for c in no_tumor)
    assert row["no_tumor"] == len(no_tumor) == len(cases) - len(categorised)
    for case in cases.values():
        assert case["input"] == "dicom"
        loc = case["localisation"]
        record = next(c for c in discover_cases(cohort) if c.patient_id == case["patient_id"])
        true_centre = preprocess_case(record, main.preprocess).centre_mm
        np.testing.assert_allclose(loc["true_centre_mm"], true_centre)
        assert loc["distance_mm"] == pytest.approx(
            float(np.linalg.norm(np.subtract(loc["centre_mm"], true_centre)))
        )
        assert (Path(evaluation.json.parent) / "pipeline" / case["patient_id"]).is_dir()
    if categorised:
        direct = classification_metrics(
            [c["truth"] for c in categorised], np.array([c["probabilities"] for c in categorised])
        )
        assert row["confusion"] == direct["confusion"]
    else:
        assert row["confusion"] is None
    assert row["localisation_distance_mm"]["n"] == len(cases)
    rated = [c for c in cases.values() if c["rule_category"] is not None]
    agree = sum(CATEGORY_LABELS.index(c["rule_category"]) == c["truth"] for c in rated)
    assert broken["rule_category"] is None
    assert row["rule_agreement"] == {
        "n": len(rated), "agree": agree, "fraction": agree / len(rated) if rated else None,
    }  # fmt: skip
    assert "Rule category" in evaluation.markdown.read_text(encoding="utf-8")


def test_pipeline_scores_each_case_against_its_label_map(evaluation: Evaluation) -> None:
    row = evaluation.report["rows"][3]
    cases = {c["patient_id"]: c for c in row["cases"]}
    assert cases[BROKEN]["scores"] is None  # refused: nothing to score
    scored = [c for c in cases.values() if c["scores"] is not None]
    assert len(scored) == 2
    for case in scored:
        dice = case["scores"]["dice"]
        # The test bundle segments pancreas only: some pancreas overlap, no tumor, no vessels.
        assert 0.0 < dice["pancreas"] < 1.0
        assert dice["tumor"] == 0.0 and dice["aorta"] == 0.0
        tumor = case["scores"]["tumor"]
        assert tumor["pred_ml"] == 0.0 and tumor["true_ml"] > 0.5 and not tumor["overlap"]
        assert case["has_tumor"] and case["category"] is None and case["outcome"] == "no-tumor"
        assert case["contact_true"] and all(v is None for v in case["contact_deg"].values())
    mean = np.mean([c["scores"]["dice"]["pancreas"] for c in scored])
    assert row["structures_dice"]["pancreas"] == {"mean": pytest.approx(mean), "n": 2}
    assert row["tumor_present"]["found"] == {"count": 0, "n": 3, "rate": 0.0}
    assert row["tumor_free"]["n"] == 0 and row["tumor_free"]["false_tumor"]["rate"] is None
    assert row["withheld"] == {
        "count": 3, "n": 3, "rate": 1.0, "reasons": {"no-tumor": 2, "unreadable-series": 1},
    }  # fmt: skip
    assert all(v["n_measured"] == 0 for v in row["contact_mae"].values())
    text = evaluation.markdown.read_text(encoding="utf-8")
    assert "Tumor found when present" in text and "0 of 3 (0 %)" in text
    assert "| pancreas | " in text and "| SMA | n/a | 0 / " in text
