"""The survival training: a tiny end-to-end run on a hand-made cohort, its report and bundle.

30 patients whose survival falls steeply with the tumor's size (``_survival_cohort``), two
epochs of a tiny DenseNet, 20 trees: the run finishes, the report has the paper's table and
its figures, the bundle loads and answers for a new CT, and the radiomics model ranks the
training cohort better than chance (the cohort's signal is strong: a check that can fail).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from sksurv.metrics import concordance_index_censored

from inference.bundle import BundleError
from inference.tasks.resectability.measurements import max_diameter_mm
from inference.tasks.survival import (
    SurvivalBundle,
    SurvivalModel,
    load_survival_bundle,
    n_stage,
    t_stage,
)
from inference.volume import Volume, read_nifti
from pancreas_contracts.prognosis import HORIZONS_MONTHS, StageInput, SurvivalPrognosis
from tests.training._survival_cohort import (
    TINY_TOML,
    TUMOR,
    sphere_case,
    tiny_config,
    write_cohort,
)
from training._survival_data import discover_survival_cases, load_features
from training._survival_fit import predict_densenet
from training._survival_report import MODEL_TITLES
from training.survival import SurvivalRun, _fusion_x, evaluate_survival, train_survival
from training.survival_config import SurvivalConfig, load_survival_config

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cohort(tmp_path_factory.mktemp("survival") / "cohort-a", 30)


@pytest.fixture(scope="module")
def run(cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> SurvivalRun:
    steps: list[str] = []
    result = train_survival([cohort], tmp_path_factory.mktemp("run"), tiny_config(),
                            status=lambda name, done, total: steps.append(name))  # fmt: skip
    assert steps[0] == "features" and "cross-fit fold 2: DenseNet" in steps
    return result


@pytest.fixture(scope="module")
def bundle(run: SurvivalRun) -> SurvivalBundle:
    return load_survival_bundle(run.bundle_json)


def test_the_config_file_and_its_refusals(tmp_path: Path) -> None:
    path = tmp_path / "survival.toml"
    path.write_text(TINY_TOML, encoding="utf-8")
    config = load_survival_config(path)
    assert config == tiny_config() and config.sha256() == tiny_config().sha256()
    assert config.densenet.block_config == (2, 2, 2, 2) and config.rsf_leaf_sizes == (3,)
    assert load_survival_config(path, workers=2, device=None).workers == 2
    assert config.sha256() != SurvivalConfig().sha256()
    for text, match in (
        ("epochs = 0\n", "epochs"),
        ("trees = 3\n", "unknown"),
        ("[densenet]\ndepth = 3\n", "unknown densenet"),
        ("risk_cutoff = 1.0\n", "cut-off"),
        ("crossfit_folds = 1\n", "folds"),
    ):
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=match):
            load_survival_config(path)


def test_the_cohort_reads_follow_up_and_staging(cohort: Path, tmp_path: Path) -> None:
    cases = discover_survival_cases(cohort)
    assert len(cases) == 30 and cases[0].patient_id == "SURV-0001"
    assert all(c.staging["M"] == StageInput(value="M0", source="registry") for c in cases)
    assert {c.staging["N"].value for c in cases} == {"N0", "N+"}
    assert cases[0].record.clinical["ca19_9_baseline"] is None
    assert sum(c.os_event for c in cases) < 30 and all(c.hazard_lp is not None for c in cases)
    # a cohort without follow-up is refused, with how to make one
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(cohort / "clinical.csv", bare / "clinical.csv")
    rows = (cohort / "truth.csv").read_text(encoding="utf-8").splitlines()
    header = rows[0].split(",")
    keep = [i for i, name in enumerate(header) if name not in ("os_months", "os_event")]
    (bare / "truth.csv").write_text(
        "\n".join(",".join(r.split(",")[i] for i in keep) for r in rows) + "\n", encoding="utf-8"
    )
    with pytest.raises(ValueError, match="follow-up"):
        discover_survival_cases(bare)
    # tumor-free patients and patients without follow-up are left out
    cells = [r.split(",") for r in rows[:5]]
    cells[1][header.index("has_tumor")] = "0"
    cells[1][header.index("nccn_label")] = ""
    cells[2][header.index("os_months")] = ""
    cells[3][header.index("os_event")] = "unknown"
    (bare / "truth.csv").write_text("\n".join(",".join(c) for c in cells) + "\n", "utf-8")
    for pid in ("SURV-0001", "SURV-0002", "SURV-0003", "SURV-0004"):
        shutil.copytree(cohort / pid, bare / pid)
    assert [c.patient_id for c in discover_survival_cases(bare)] == ["SURV-0004"]


def test_the_report_has_the_paper_s_table_and_figures(run: SurvivalRun) -> None:
    text = run.report.read_text(encoding="utf-8")
    assert text.startswith("# Survival model: training report")
    assert "30 PDAC patients with follow-up, 21 training and 9 test" in text
    for title in MODEL_TITLES.values():
        assert f"| {title} |" in text, title
    assert "**Risk groups**" in text and "**Calibration**" in text
    for figure in ("km-test.png", "roc-test.png", "calibration-test.png"):
        assert f"]({figure})" in text
        assert (run.report.parent / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((run.report.parent / "summary.json").read_text(encoding="utf-8"))
    assert summary["patients"] == 30 and summary["test_patients"] == 9
    assert set(summary["test"]) == set(MODEL_TITLES)
    assert summary["radiomics"]["rsf_leaf_size"] == 3


def test_the_bundle_holds_what_the_node_needs(run: SurvivalRun, bundle: SurvivalBundle) -> None:
    meta = bundle.meta
    assert meta["task"] == "survival" and "not for clinical use" in meta["notice"].lower()
    assert bundle.name_version == "pancreas-ai-survival 0.1.0"
    assert meta["config_sha256"] == tiny_config().sha256()
    assert meta["horizons_months"] == list(HORIZONS_MONTHS)
    assert meta["risk"] == {"horizon_years": 3, "cutoff": 0.8}
    assert len(meta["radiomics"]["features"]) == 1037
    assert set(meta["metrics"]["test"]) == set(MODEL_TITLES)
    parts = bundle.parts
    assert len(parts.densenets) == 2 and parts.densenet_config.block_config == (2, 2, 2, 2)
    assert len(parts.forest.tree_offset) == 21  # 20 trees
    assert 1 <= len(parts.projection.selected) <= len(parts.projection.components)
    assert parts.reference_curves and all(c.label.endswith("risk") for c in parts.reference_curves)


def test_the_bundle_answers_for_a_new_ct(bundle: SurvivalBundle) -> None:
    model = SurvivalModel(bundle, torch.device("cpu"))
    ct, label = sphere_case(11.0, seed=99)
    tumor = Volume((np.asarray(label.array) == TUMOR).astype(np.uint8), label.affine)
    staging = {"T": t_stage(22.0, {"SMA": 10.0}), "N": n_stage("N0"),
               "M": StageInput(source="missing")}  # fmt: skip
    answer = model.predict(ct, tumor, {"sex": 1.0, "age": 64.0}, staging)
    prognosis = answer.prognosis
    assert isinstance(prognosis, SurvivalPrognosis)
    SurvivalPrognosis.model_validate(prognosis.model_dump())  # a valid contract, again
    assert prognosis.model_version == "pancreas-ai-survival 0.1.0"
    assert set(prognosis.components) == {"radiomics", "densenet", "clinical"}
    assert prognosis.inputs_missing == ("M", "ca19_9_baseline")
    assert prognosis.inputs_used == ("ct", "tumor_mask", "sex", "age", "T", "N")
    assert prognosis.warnings == tuple(f"{n} missing: imputed with the training folds' median"
                                       for n in ("M", "ca19_9_baseline"))  # fmt: skip
    assert prognosis.staging["T"].value == "T2" and prognosis.staging["N"].value == "N0"
    assert prognosis.risk_group == ("high" if prognosis.death_probability[2] >= 0.8 else "low")
    assert prognosis.reference_curves == bundle.parts.reference_curves
    assert set(answer.timings_s) == {"survival_radiomics", "survival_densenet"}
    # the same CT with the tumor mask elsewhere than the CT's grid is refused
    moved = label.affine.copy()
    moved[2, 3] += 4.0
    with pytest.raises(ValueError, match="grid"):
        model.predict(ct, Volume(tumor.array, moved), {}, staging)


def test_the_node_computes_what_the_training_computed(
    cohort: Path, run: SurvivalRun, bundle: SurvivalBundle
) -> None:
    """No training/serving skew: the node's answer for a training patient is the training's."""
    parts = bundle.parts
    case = discover_survival_cases(cohort)[0]  # without CA 19-9
    features = load_features([case], run.report.parent / "cache", parts.roi, parts.radiomics)
    x = parts.projection.matrix([features[0].radiomics])
    radiomics = parts.forest.death_probability(parts.projection.transform(x), HORIZONS_MONTHS)
    densenet = predict_densenet(parts.densenets, features[0].image[None],
                                features[0].mask[None], torch.device("cpu"))  # fmt: skip
    fusion = parts.fusion.predict(_fusion_x(radiomics, densenet, features[0].clinical[None]))
    assert case.record.image is not None and case.record.label is not None
    ct, label = read_nifti(case.record.image), read_nifti(case.record.label)
    tumor = Volume((np.asarray(label.array) == TUMOR).astype(np.uint8), label.affine)
    diameter = max_diameter_mm(np.asarray(tumor.array) > 0, tumor.affine)
    staging = {**case.staging, "T": t_stage(diameter, case.arterial_contact)}
    answer = (
        SurvivalModel(bundle, torch.device("cpu"))
        .predict(ct, tumor, case.record.clinical, staging)
        .prognosis
    )
    assert answer.components["radiomics"].death_probability == pytest.approx(radiomics[0])
    assert answer.components["densenet"].death_probability == pytest.approx(densenet[0], abs=1e-6)
    assert answer.death_probability == pytest.approx(fusion[0], abs=1e-6)
    assert answer.inputs_missing == ("ca19_9_baseline",)


def test_the_radiomics_model_ranks_the_cohort_better_than_chance(
    cohort: Path, run: SurvivalRun, bundle: SurvivalBundle
) -> None:
    parts = bundle.parts
    cases = discover_survival_cases(cohort)
    cache = run.report.parent / "cache"
    assert len(list(cache.glob("*.npz"))) == 30  # computed once, cached
    features = load_features(cases, cache, parts.roi, parts.radiomics)
    time = np.array([c.os_months for c in cases])
    event = np.array([c.os_event for c in cases])
    x = parts.projection.matrix([f.radiomics for f in features])
    radiomics = parts.forest.death_probability(parts.projection.transform(x), HORIZONS_MONTHS)
    c_radiomics = concordance_index_censored(event, time, radiomics[:, 2])[0]
    assert c_radiomics > 0.6
    images = np.stack([f.image for f in features])
    masks = np.stack([f.mask for f in features])
    densenet = predict_densenet(parts.densenets, images, masks, torch.device("cpu"))
    assert densenet.shape == (30, 3) and np.all(np.diff(densenet, axis=1) >= 0)


def test_a_tampered_bundle_is_refused(run: SurvivalRun, tmp_path: Path) -> None:
    for name in ("arrays.safetensors", "densenet-1.safetensors"):
        copy = tmp_path / name
        shutil.copytree(run.bundle_json.parent, copy)
        data = bytearray((copy / name).read_bytes())
        data[-1] ^= 0xFF
        (copy / name).write_bytes(bytes(data))
        with pytest.raises(BundleError):
            load_survival_bundle(copy)
    missing = tmp_path / "missing"
    shutil.copytree(run.bundle_json.parent, missing)
    (missing / "arrays.safetensors").unlink()
    with pytest.raises(BundleError):
        load_survival_bundle(missing / "bundle.json")


def test_evaluate_writes_the_tables_for_another_cohort(run: SurvivalRun, tmp_path: Path) -> None:
    other = write_cohort(tmp_path / "cohort-b", 12, seed=1)
    metrics = evaluate_survival(run.bundle_json.parent, other, tmp_path / "eval",
                                title="Cohort B", device="cpu")  # fmt: skip
    assert set(metrics) == {"radiomics", "densenet", "clinical", "fusion", "fusion_no_n", "oracle"}
    assert all(m["n"] == 12 for m in metrics.values())
    text = (tmp_path / "eval" / "eval-cohort-b.md").read_text(encoding="utf-8")
    assert text.startswith("# Survival bundle pancreas-ai-survival 0.1.0 on cohort-b")
    assert "## Cohort B" in text and f"| {MODEL_TITLES['fusion']} |" in text
    assert (tmp_path / "eval" / "km-cohort-b.png").is_file()
