"""``pancreas-node train --task survival``: the paper's survival models, report and bundle.

The run (METHOD.md section 4; ``seeds/survival_radiomics_densenet_fusion.txt``):

1. the PDAC patients with follow-up of one or more cohorts
   (:func:`training._survival_data.discover_survival_cases`), their radiomic features,
   DenseNet cubes and clinical rows (cached);
2. the paper's 7:3 split, stratified by the event: everything below is fitted on the 70 %;
3. the radiomics model (standardise -> PCA 80 % -> LASSO-Cox -> random survival forest) and
   the dual-input 3D-DenseNet, each **cross-fitted** over ``crossfit_folds`` folds of the
   training split so that every training patient has a prediction from models that did not
   see them; the fusion (a logistic regression per horizon on both models' logits and the
   clinical inputs) is fitted on those out-of-fold predictions; the radiomics model is then
   refitted on the whole training split and the DenseNet fold members are kept as an
   ensemble;
4. the clinical models (the paper's sex, age, T, N, M; and with CA 19-9);
5. the report on the 30 % test split: every model's AUC, time-dependent AUC and accuracy at
   1, 2, 3 years, the C-index, the oracle (the generator's hazard), the fusion's risk groups
   (log-rank), calibration and figures; the bundle (with the Kaplan-Meier curves of the
   training split's risk groups as the node's reference curves).

:func:`evaluate_survival` scores a bundle on another cohort (fresh phantoms, the held-out
generator) with the same tables.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from inference.tasks.survival import (
    CLINICAL_INPUTS,
    FUSION_INPUTS,
    PAPER_CLINICAL_INPUTS,
    HorizonLogistic,
    RiskRule,
    SurvivalParts,
    load_survival_bundle,
    logit,
    save_survival_bundle,
)
from pancreas_contracts.prognosis import HORIZONS_MONTHS
from training._loop import pick_device
from training._splits import stratified_folds
from training._survival_data import (
    CaseFeatures,
    SurvivalCase,
    discover_survival_cases,
    load_features,
)
from training._survival_fit import (
    fit_densenet,
    fit_horizon_logistic,
    fit_radiomics,
    horizon_labels,
    predict_densenet,
)
from training._survival_report import plot_calibration, plot_km, plot_roc_horizons, section
from training.survival_config import SurvivalConfig
from training.survival_metrics import risk_groups, survival_metrics

__all__ = ["SurvivalRun", "evaluate_survival", "train_survival"]

Status = Callable[[str, int, int], None]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SurvivalRun:
    """Where a run wrote its report and bundle, and its summary."""

    report: Path
    bundle_json: Path
    summary: dict[str, Any]


@dataclass(frozen=True, eq=False)
class _Cohort:
    names: tuple[str, ...]
    radiomics: FloatArray
    images: npt.NDArray[np.float32]
    masks: npt.NDArray[np.float32]
    clinical: FloatArray
    time: FloatArray
    event: npt.NDArray[np.bool_]
    oracle: FloatArray | None

    @classmethod
    def of(cls, cases: Sequence[SurvivalCase], features: Sequence[CaseFeatures]) -> _Cohort:
        names = tuple(features[0].radiomics)
        lp = [c.hazard_lp for c in cases]
        return cls(
            names=names,
            radiomics=np.array([[f.radiomics[n] for n in names] for f in features]),
            images=np.stack([f.image for f in features]).astype(np.float32),
            masks=np.stack([f.mask for f in features]).astype(np.float32),
            clinical=np.stack([f.clinical for f in features]),
            time=np.array([c.os_months for c in cases], dtype=np.float64),
            event=np.array([c.os_event for c in cases], dtype=bool),
            oracle=None if any(v is None for v in lp) else np.array(lp, dtype=np.float64),
        )


def _fusion_x(radiomics: FloatArray, densenet: FloatArray, clinical: FloatArray) -> FloatArray:
    """``(horizons, n, inputs)``: both models' logits at the horizon, then the clinical row."""
    return np.stack([np.column_stack([logit(radiomics[:, h]), logit(densenet[:, h]), clinical])
                     for h in range(len(HORIZONS_MONTHS))])  # fmt: skip


def _radiomics_probs(fit: Any, x: FloatArray) -> FloatArray:
    scores = fit.projection.transform(x)
    result: FloatArray = fit.forest.death_probability(scores, HORIZONS_MONTHS)
    return result


def _crossfit(
    data: _Cohort, train: npt.NDArray[np.int64], config: SurvivalConfig, device: torch.device,
    status: Status,
) -> tuple[FloatArray, FloatArray, list[Any]]:  # fmt: skip
    """Out-of-fold radiomics and DenseNet probabilities of the training rows; the members."""
    folds = stratified_folds(data.event[train].astype(int).tolist(), config.crossfit_folds,
                             config.seed)  # fmt: skip
    oof_rad = np.zeros((len(train), len(HORIZONS_MONTHS)))
    oof_dn = np.zeros_like(oof_rad)
    members = []
    for k, held in enumerate(folds):
        fit_rows = train[np.setdiff1d(np.arange(len(train)), held)]
        rows = train[held]
        status(f"cross-fit fold {k + 1}: radiomics", k, len(folds))
        rad = fit_radiomics(data.radiomics[fit_rows], data.names, data.time[fit_rows],
                            data.event[fit_rows], config)  # fmt: skip
        oof_rad[held] = _radiomics_probs(rad, data.radiomics[rows])
        status(f"cross-fit fold {k + 1}: DenseNet", k, len(folds))
        net = fit_densenet(data.images[fit_rows], data.masks[fit_rows], data.time[fit_rows],
                           data.event[fit_rows], config, device, config.seed + k)  # fmt: skip
        oof_dn[held] = predict_densenet([net], data.images[rows], data.masks[rows], device)
        members.append(net.cpu())
    return oof_rad, oof_dn, members


def _all_models(
    parts: SurvivalParts, paper: HorizonLogistic, data: _Cohort, device: torch.device
) -> dict[str, FloatArray]:
    rad = _radiomics_probs(parts, data.radiomics)
    dn = predict_densenet(parts.densenets, data.images, data.masks, device)
    probs = {
        "radiomics": rad,
        "densenet": dn,
        "clinical_paper": paper.predict(data.clinical[:, : len(PAPER_CLINICAL_INPUTS)]),
        "clinical": parts.clinical.predict(data.clinical),
        "fusion": parts.fusion.predict(_fusion_x(rad, dn, data.clinical)),
        "fusion_no_n": parts.fusion.predict(_fusion_x(rad, dn, _without_n(data.clinical))),
    }
    return probs


def _without_n(clinical: FloatArray) -> FloatArray:
    """The clinical rows with N missing, as the node has them without a lymph-node model."""
    rows = clinical.copy()
    rows[:, CLINICAL_INPUTS.index("N")] = np.nan
    return rows


def _evaluate(
    probs: dict[str, FloatArray], data: _Cohort, rule: RiskRule, out: Path, tag: str, title: str,
    notes: Sequence[str] = (),
) -> tuple[str, dict[str, Any]]:  # fmt: skip
    metrics = {key: survival_metrics(p, data.time, data.event, horizon_years=rule.horizon_years,
                                     cutoff=rule.cutoff) for key, p in probs.items()}  # fmt: skip
    if data.oracle is not None:
        score = np.repeat(data.oracle[:, None], len(HORIZONS_MONTHS), axis=1)
        # The hazard is no probability: no cut-off applies (no risk groups for the oracle).
        metrics["oracle"] = survival_metrics(
            score, data.time, data.event, horizon_years=rule.horizon_years, cutoff=np.inf
        )
    labels = [horizon_labels(data.time, data.event, h) for h in HORIZONS_MONTHS]
    figures = {"Kaplan-Meier by risk group": f"km-{tag}.png", "ROC": f"roc-{tag}.png",
               "calibration": f"calibration-{tag}.png"}  # fmt: skip
    plot_km(out / figures["Kaplan-Meier by risk group"], metrics["fusion"]["risk"]["curves"],
            f"{title}: fusion risk groups")  # fmt: skip
    plot_roc_horizons(out / figures["ROC"], probs, [d.astype(bool) for _, d in labels],
                      [k for k, _ in labels], title)  # fmt: skip
    plot_calibration(out / figures["calibration"], metrics["fusion"]["calibration"]["bins"],
                     f"{title}: fusion, 36 months")  # fmt: skip
    text = section(title, metrics, figures, notes)
    return text, _jsonable(metrics)


def _jsonable(metrics: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, m in metrics.items():
        risk = {k: v for k, v in m["risk"].items() if k != "curves"}
        out[key] = {**m, "risk": risk}
    return out


def _split(event: npt.NDArray[np.bool_], fraction: float, seed: int) -> tuple[Any, Any]:
    rng = np.random.default_rng(seed)
    test: list[int] = []
    for value in (False, True):
        rows = rng.permutation(np.flatnonzero(event == value))
        test.extend(rows[: round(len(rows) * fraction)].tolist())
    test_rows = np.sort(np.asarray(test, dtype=np.int64))
    return np.setdiff1d(np.arange(len(event)), test_rows), test_rows


def _subset(data: _Cohort, rows: npt.NDArray[np.int64]) -> _Cohort:
    return _Cohort(data.names, data.radiomics[rows], data.images[rows], data.masks[rows],
                   data.clinical[rows], data.time[rows], data.event[rows],
                   None if data.oracle is None else data.oracle[rows])  # fmt: skip


def _data_hash(cases: Sequence[SurvivalCase]) -> str:
    text = json.dumps([[c.patient_id, c.os_months, c.os_event] for c in cases])
    return hashlib.sha256(text.encode()).hexdigest()


def _load(data_dirs: Sequence[Path], out: Path, config: SurvivalConfig,
          ) -> tuple[list[SurvivalCase], _Cohort]:  # fmt: skip
    cases = [c for d in data_dirs for c in discover_survival_cases(d)]
    features = load_features(cases, out / "cache", config.roi, config.radiomics,
                             workers=config.workers)  # fmt: skip
    return cases, _Cohort.of(cases, features)


def train_survival(
    data_dirs: Sequence[Path], out: Path, config: SurvivalConfig, *, status: Status | None = None
) -> SurvivalRun:
    """Train, write ``report.md`` with figures and the bundle under ``out/bundle``.

    Raises
    ------
    ValueError
        If a cohort has no follow-up or too few deaths and survivors to fit.
    """
    report = status or (lambda *_: None)
    started = time.perf_counter()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    device = pick_device(config.device)
    out.mkdir(parents=True, exist_ok=True)
    report("features", 0, 1)
    cases, data = _load(data_dirs, out, config)
    train, test = _split(data.event, config.test_fraction, config.seed)
    tr = _subset(data, train)
    oof_rad, oof_dn, members = _crossfit(data, train, config, device, report)
    report("final radiomics model", 0, 1)
    rad = fit_radiomics(tr.radiomics, tr.names, tr.time, tr.event, config)
    clinical = fit_horizon_logistic(tr.clinical, CLINICAL_INPUTS, tr.time, tr.event)
    paper = fit_horizon_logistic(tr.clinical[:, : len(PAPER_CLINICAL_INPUTS)],
                                 PAPER_CLINICAL_INPUTS, tr.time, tr.event)  # fmt: skip
    fusion = fit_horizon_logistic(_fusion_x(oof_rad, oof_dn, tr.clinical), FUSION_INPUTS,
                                  tr.time, tr.event)  # fmt: skip
    rule = RiskRule(config.risk_horizon_years, config.risk_cutoff)
    train_fusion = fusion.predict(_fusion_x(oof_rad, oof_dn, tr.clinical))
    reference = risk_groups(train_fusion, tr.time, tr.event, rule.horizon_years, rule.cutoff)
    parts = SurvivalParts(
        roi=config.roi, radiomics=config.radiomics, projection=rad.projection,
        forest=rad.forest, densenet_config=config.densenet, densenets=tuple(members),
        clinical=clinical, fusion=fusion, risk=rule,
        reference_curves=tuple(reference["curves"]),
    )  # fmt: skip
    report("test split", 0, 1)
    te = _subset(data, test)
    text, test_metrics = _evaluate(_all_models(parts, paper, te, device), te, rule, out, "test",
                                   "Test split (30 %)")  # fmt: skip
    summary = {
        "patients": len(cases), "train": len(train), "test_patients": len(test),
        "radiomics": {"pca_components": rad.components, "lasso_selected": rad.selected,
                      "lasso_alpha": rad.lasso_alpha, "rsf_leaf_size": rad.leaf_size,
                      "rsf_oob_concordance": rad.oob_concordance},
        "test": test_metrics,
    }  # fmt: skip
    summary["train_seconds"] = round(time.perf_counter() - started, 1)
    bundle_json = save_survival_bundle(
        out / "bundle", parts, name="pancreas-ai-survival", version="0.1.0",
        config_sha256=config.sha256(), data_hash=_data_hash(cases),
        metrics={"test": {k: {"auc": [h["auc"] for h in v["horizons"]],
                              "td_auc": [h["td_auc"] for h in v["horizons"]],
                              "c_index": v["c_index"]} for k, v in test_metrics.items()}},
        training={"config": config.to_dict(), **{k: v for k, v in summary.items() if k != "test"}},
        weights_dtype=config.weights_dtype,
    )  # fmt: skip
    path = out / "report.md"
    path.write_text(_header(summary, data_dirs) + text, encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=float), "utf-8")
    return SurvivalRun(path, bundle_json, summary)


def _header(summary: dict[str, Any], data_dirs: Sequence[Path]) -> str:
    r = summary["radiomics"]
    return (
        "# Survival model: training report (investigational, not for clinical use)\n\n"
        f"Cohorts: {', '.join(d.name for d in data_dirs)}; {summary['patients']} PDAC patients "
        f"with follow-up, {summary['train']} training and {summary['test_patients']} test (7:3, "
        "stratified by the event). Radiomics: 1,037 PyRadiomics features -> "
        f"{r['pca_components']} principal components (80 % of the variance) -> "
        f"{r['lasso_selected']} kept by the LASSO (alpha {r['lasso_alpha']:.4f}) -> random "
        f"survival forest (leaf size {r['rsf_leaf_size']}, OOB C-index "
        f"{r['rsf_oob_concordance']:.3f}). The fusion was fitted on out-of-fold predictions.\n\n"
    )


def evaluate_survival(bundle: Path, data_dir: Path, out: Path, *, title: str,
                      workers: int = 1, device: str = "auto") -> dict[str, Any]:  # fmt: skip
    """Score a survival bundle on another cohort; writes ``eval-<cohort>.md`` and figures.

    Raises
    ------
    BundleError
        If the bundle cannot be loaded.
    ValueError
        If the cohort has no follow-up.
    """
    loaded = load_survival_bundle(bundle)
    parts = loaded.parts
    out.mkdir(parents=True, exist_ok=True)
    cases = discover_survival_cases(data_dir)
    features = load_features(cases, out / "cache", parts.roi, parts.radiomics, workers=workers)
    data = _Cohort.of(cases, features)
    device_ = pick_device(device)
    rad = _radiomics_probs(parts, data.radiomics)
    dn = predict_densenet(parts.densenets, data.images, data.masks, device_)
    no_n = _fusion_x(rad, dn, _without_n(data.clinical))
    probs = {"radiomics": rad, "densenet": dn, "clinical": parts.clinical.predict(data.clinical),
             "fusion": parts.fusion.predict(_fusion_x(rad, dn, data.clinical)),
             "fusion_no_n": parts.fusion.predict(no_n)}  # fmt: skip
    tag = data_dir.name
    text, metrics = _evaluate(probs, data, parts.risk, out, tag, title)
    (out / f"eval-{tag}.md").write_text(
        f"# Survival bundle {loaded.name_version} on {tag}\n\n" + text, encoding="utf-8"
    )
    return metrics
