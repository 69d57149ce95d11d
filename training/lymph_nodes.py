"""``pancreas-node train --task lymph-nodes``: train, evaluate and bundle the lymph-node model.

Protocol (``docs/lymph_nodes.md``; the paper's nested cross-validation): the cohort's
patients (:func:`training._lymph_node_data.discover_lymph_node_cases`) are split by
:func:`training._splits.nested_splits` stratified by N status; for each of the first
``folds_to_run`` outer folds, on the inner training rows and in the paper's order
(:mod:`training._lymph_node_fit`): the organ & vessel segmenter; the node segmenter with the
distance-guided attention, its ``A^all`` computed from the **truth** organs (the predicted
ones at evaluation: running the organ segmenter inside the training loop costs too much on a
CPU); the same segmenter **without** attention (the ablation; same seed, same epochs); a node
classifier per segmenter, initialised from it; the patient model on the truth PDAC slices
and the largest positive node volume **predicted** by the attention model on the training
rows. The model is written as a bundle (float16 weights by default), loaded back and run end
to end on the validation and outer test rows (:mod:`training._lymph_node_eval`); the patient
thresholds are chosen on the validation rows (best balanced accuracy) and written into the
bundle, which is saved again and loaded once more. The no-attention model is a bundle too
(``OUT/ablation/no-attention``). Fold 0's bundle is ``OUT/bundle.json`` (others under
``OUT/folds/<k>/``); ``OUT/report.md`` and ``OUT/evaluation.json`` hold the metrics.
:func:`evaluate_lymph_nodes` scores a bundle on another cohort.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from inference.tasks.lymph_nodes.bundle import (
    LymphNodeBundle,
    LymphNodeNetworks,
    LymphNodeSettings,
    load_lymph_node_bundle,
    save_lymph_node_bundle,
)
from inference.tasks.lymph_nodes.model import LymphNodeSegNet
from inference.tasks.lymph_nodes.patient import PatientNet
from inference.tasks.lymph_nodes.task import LymphNodeModel
from training._loop import pick_device
from training._lymph_node_data import (
    CaseArrays,
    LymphNodeCase,
    discover_lymph_node_cases,
    load_case_arrays,
    read_case_volumes,
)
from training._lymph_node_eval import (
    CaseOutcome,
    choose_node_threshold,
    choose_thresholds,
    evaluate_cases,
    outcome_rows,
    summarise,
)
from training._lymph_node_fit import (
    PatientInputs,
    PhaseLog,
    fit_classifier,
    fit_organs,
    fit_patient,
    fit_segmenter,
)
from training._lymph_node_mining import false_positive_crops, with_predicted_attention
from training._lymph_node_report import metrics_section, write_report
from training._splits import FoldSplit, nested_splits
from training.lymph_node_config import LymphNodeConfig

__all__ = ["ABLATION_DIR", "MODEL_NAME", "LymphNodeRun", "evaluate_lymph_nodes",
           "train_lymph_nodes"]  # fmt: skip

MODEL_NAME = "lymph-node-metastasis"
#: Where a run writes the no-attention model, under the bundle folder.
ABLATION_DIR = Path("ablation") / "no-attention"
Status = Callable[[str, int, int], None]
_VALIDATION_NOTE = (
    "Thresholds (the full model's N+ probability, the largest positive node's volume) were "
    "chosen on the fold's validation rows (best balanced accuracy) and applied here."
)
#: The node threshold while the patient model's training inputs are made (see _patient_inputs).
_TRAINING_NODE_THRESHOLD = 0.5
_RECORDED_NOTE = "Thresholds: the ones the bundle recorded, chosen on its validation rows."


@dataclass(frozen=True)
class LymphNodeRun:
    """What a lymph-node training run wrote."""

    out: Path
    bundle_json: Path
    report: Path
    summary: dict[str, Any]


@dataclass(frozen=True)
class _Fitted:
    """One fold's networks: the model and the no-attention ablation (or ``None``)."""

    networks: LymphNodeNetworks
    ablation: LymphNodeNetworks | None
    logs: tuple[PhaseLog, ...]


def _data_hash(cases: Sequence[LymphNodeCase], arrays: Sequence[CaseArrays]) -> str:
    digest = hashlib.sha256()
    for case, row in zip(cases, arrays, strict=True):
        digest.update(f"{case.patient_id}:{case.n_status}:{len(case.truth)}\n".encode())
        for array in (row.seg_image, row.seg_nodes, row.organ_labels):
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _in_memory(
    networks: LymphNodeNetworks, config: LymphNodeConfig, node_threshold: float = 0.0
) -> LymphNodeModel:
    meta = {"model": {"name": MODEL_NAME, "version": "training"}}
    settings = config.settings(node_threshold=node_threshold)
    return LymphNodeModel(LymphNodeBundle(Path(), meta, networks, settings))


def _partial(
    config: LymphNodeConfig,
    organs: torch.nn.Module,
    segmenter: LymphNodeSegNet | None = None,
) -> LymphNodeNetworks:
    """Networks for running the stages trained so far (the later ones untrained)."""
    seg_config = config.segmenter if segmenter is None else segmenter.config
    fresh = LymphNodeNetworks.build(config.organs, seg_config, config.classifier, config.patient)
    return replace(fresh, organs=organs, segmenter=segmenter or fresh.segmenter)


def _not_nodes(
    config: LymphNodeConfig,
    organs: torch.nn.Module,
    segmenter: LymphNodeSegNet,
    cases: Sequence[LymphNodeCase],
) -> npt.NDArray[np.float32] | None:
    """The segmenter's false positives on its training rows (with a not-node class)."""
    if not config.classifier.not_node_class:
        return None
    model = _in_memory(_partial(config, organs, segmenter), config)
    return false_positive_crops(model, cases, config, config.false_positives_per_case)


def _patient_inputs(
    networks: LymphNodeNetworks,
    cases: Sequence[LymphNodeCase],
    arrays: Sequence[CaseArrays],
    config: LymphNodeConfig,
) -> PatientInputs:
    """Truth tumor slices and the largest positive node volume the model finds (mm^3)."""
    # the node threshold is chosen later, on the validation rows: here the classifier's own
    # decision (a node more likely than not)
    model = _in_memory(networks, config, _TRAINING_NODE_THRESHOLD)
    volumes = [
        model.analyse(read_case_volumes(case).image).largest_suspicious_volume_ml * 1000.0
        for case in cases
    ]
    return PatientInputs(
        [a.slice_images for a in arrays], [a.slice_masks for a in arrays],
        np.asarray(volumes, dtype=np.float32),
        np.asarray([c.n_status for c in cases], dtype=np.int64),
    )  # fmt: skip


def _fit(
    cases: Sequence[LymphNodeCase],
    arrays: Sequence[CaseArrays],
    config: LymphNodeConfig,
    device: torch.device,
    status: Status | None,
) -> _Fitted:
    organs, log_organs = fit_organs(arrays, config, device, status)
    if config.predicted_attention:
        arrays = with_predicted_attention(_in_memory(_partial(config, organs), config), cases,
                                          arrays, config)  # fmt: skip
    segmenter, log_seg = fit_segmenter(arrays, config, config.segmenter, device, status)
    classifier, log_cls = fit_classifier(arrays, segmenter, config, device, status,
                                         _not_nodes(config, organs, segmenter, cases))  # fmt: skip
    placeholder = PatientNet(config.patient).eval()
    networks = LymphNodeNetworks(config.organs, organs, segmenter, classifier, placeholder)
    patient, log_patient = fit_patient(
        _patient_inputs(networks, cases, arrays, config), config, device, status
    )
    networks = LymphNodeNetworks(config.organs, organs, segmenter, classifier, patient)
    logs = [log_organs, log_seg, log_cls, log_patient]
    ablation = None
    if config.ablation:
        plain = replace(config.segmenter, attention=False)
        seg0, log_seg0 = fit_segmenter(arrays, config, plain, device, status)
        cls0, log_cls0 = fit_classifier(arrays, seg0, config, device, status,
                                        _not_nodes(config, organs, seg0, cases))  # fmt: skip
        ablation = LymphNodeNetworks(config.organs, organs, seg0, cls0, patient)
        logs += [log_seg0, log_cls0]
    return _Fitted(networks, ablation, tuple(logs))


def _save(
    target: Path,
    networks: LymphNodeNetworks,
    settings: LymphNodeSettings,
    config: LymphNodeConfig,
    provenance: tuple[str, dict[str, Any], dict[str, Any]],
) -> LymphNodeBundle:
    """Save, then load back: what is shipped (float16 included) is what is scored."""
    data_hash, metrics, training = provenance
    save_lymph_node_bundle(
        target, networks, settings, name=MODEL_NAME, version=f"0.1.0+{config.sha256()[:8]}",
        config_sha256=config.sha256(), data_hash=data_hash, metrics=metrics, training=training,
        weights_dtype=config.weights_dtype,
    )  # fmt: skip
    return load_lymph_node_bundle(target)


def _score(
    bundle: LymphNodeBundle, cases: Sequence[LymphNodeCase], split: FoldSplit
) -> tuple[list[CaseOutcome], list[CaseOutcome]]:
    return (
        evaluate_cases(bundle, [cases[i] for i in split.val]),
        evaluate_cases(bundle, [cases[i] for i in split.test]),
    )


def _operating_point(
    target: Path,
    networks: LymphNodeNetworks,
    config: LymphNodeConfig,
    provenance: tuple[str, dict[str, Any], dict[str, Any]],
    validation: Sequence[LymphNodeCase],
) -> tuple[LymphNodeBundle, float]:
    """Save the model, choose its node threshold on the validation rows, save it with it."""
    bundle = _save(target, networks, config.settings(), config, provenance)
    if not config.classifier.not_node_class:
        return bundle, 0.0
    chosen = choose_node_threshold(evaluate_cases(bundle, validation), config.target_fp_per_patient)
    return _save(target, networks, config.settings(node_threshold=chosen), config,
                 provenance), chosen  # fmt: skip


def _fold(
    cases: Sequence[LymphNodeCase],
    arrays: Sequence[CaseArrays],
    split: FoldSplit,
    config: LymphNodeConfig,
    target: Path,
    status: Status | None,
) -> tuple[Path, dict[str, Any], tuple[PhaseLog, ...]]:
    started = time.monotonic()
    rows = [int(i) for i in split.train]
    fitted = _fit([cases[i] for i in rows], [arrays[i] for i in rows], config,
                  pick_device(config.device), status)  # fmt: skip
    training = {
        "config": config.to_dict(), "fold": split.fold, "patients": len(cases),
        "rows": {"train": len(split.train), "val": len(split.val), "test": len(split.test)},
        "train_seconds": round(time.monotonic() - started, 1),
        "losses": {log.phase: [round(v, 5) for v in log.losses] for log in fitted.logs},
        "attention_at_training": "predicted organs" if config.predicted_attention
                                 else "truth organs",
        "attention_at_evaluation": "predicted organs",
    }  # fmt: skip
    provenance: tuple[str, dict[str, Any], dict[str, Any]] = (
        _data_hash(cases, arrays),
        {},
        training,
    )
    validation = [cases[i] for i in split.val]
    bundle, node = _operating_point(target, fitted.networks, config, provenance, validation)
    val, test = _score(bundle, cases, split)
    thresholds = {**choose_thresholds(val), "node": node}
    ablation = None
    if fitted.ablation is not None:
        plain, node0 = _operating_point(target / ABLATION_DIR, fitted.ablation, config,
                                        provenance, validation)  # fmt: skip
        val0, test0 = _score(plain, cases, split)
        ablation = (val0, test0, {**choose_thresholds(val0), "node": node0})
        _save(target / ABLATION_DIR, fitted.ablation, config.settings(node_threshold=node0),
              config, (provenance[0], {"thresholds": ablation[2]}, training))  # fmt: skip
    metrics = {
        "thresholds": thresholds,
        "validation": summarise(val, thresholds,
                                None if ablation is None else (ablation[0], ablation[2])),
        "test": summarise(test, thresholds,
                          None if ablation is None else (ablation[1], ablation[2])),
        "patients": {"validation": outcome_rows(val), "test": outcome_rows(test)},
    }  # fmt: skip
    patient_threshold = thresholds["patient"]
    settings = config.settings(
        patient_threshold if patient_threshold == patient_threshold else 0.5, node
    )
    shipped = _save(target, fitted.networks, settings, config, (provenance[0], metrics, training))
    assert shipped.settings == settings
    return target / "bundle.json", metrics, fitted.logs


def train_lymph_nodes(
    data: Path, out: Path, config: LymphNodeConfig, status: Status | None = None
) -> LymphNodeRun:
    """Train and evaluate the lymph-node model on the cohort in ``data``; write to ``out``.

    Raises
    ------
    ValueError
        On an unreadable cohort, one without lymph-node truth, or too few patients.
    """
    if config.num_threads > 0:
        torch.set_num_threads(config.num_threads)
    cases = discover_lymph_node_cases(data)
    labels = [c.n_status for c in cases]
    splits = nested_splits(labels, config.outer_folds, config.seed)
    arrays = load_case_arrays(cases, config, out / "cache")
    folds: list[dict[str, Any]] = []
    sections: list[list[str]] = []
    for split in splits[: config.folds_to_run]:
        target = out if split.fold == 0 else out / "folds" / str(split.fold)
        _, metrics, logs = _fold(cases, arrays, split, config, target, status)
        folds.append({"fold": split.fold, **metrics})
        sections.append(metrics_section(f"Fold {split.fold}: outer test rows", metrics["test"],
                                        _VALIDATION_NOTE))  # fmt: skip
        sections.append(metrics_section(f"Fold {split.fold}: validation rows",
                                        metrics["validation"], _VALIDATION_NOTE))  # fmt: skip
        sections.append(_loss_lines(split.fold, logs))
    summary = {"folds": folds, "config_sha256": config.sha256()}
    (out / "evaluation.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    report = write_report(out / "report.md", "Lymph-node metastasis: training report",
                          _facts(data, cases, config), sections)  # fmt: skip
    return LymphNodeRun(out, out / "bundle.json", report, summary)


def _facts(data: Path, cases: Sequence[LymphNodeCase], config: LymphNodeConfig) -> list[str]:
    positive = sum(c.n_status for c in cases)
    nodes = sum(len(c.truth) for c in cases)
    metastatic = sum(n.metastatic for c in cases for n in c.truth)
    return [
        f"cohort `{data.name}`: {len(cases)} patients, {positive} N+, {len(cases) - positive} "
        f"N0; {nodes} truth nodes, {metastatic} metastatic",
        f"model {MODEL_NAME}, config sha256 `{config.sha256()[:16]}`, weights "
        f"{config.weights_dtype}",
        f"{config.outer_folds}-fold nested CV stratified by N status, {config.folds_to_run} run",
        f"node segmenter trained on attention from the "
        f"{'predicted' if config.predicted_attention else 'truth'} organs; evaluated end to end "
        "with the attention of the predicted organs; the patient model sees the truth PDAC mask",
        "false-positive reduction: "
        + (f"a not-node class trained on up to {config.false_positives_per_case} of the "
           f"segmenter's false positives per training row; node threshold for <= "
           f"{config.target_fp_per_patient:g} false positives per patient on the validation rows"
           if config.classifier.not_node_class else "none (every candidate is a node)"),
    ]  # fmt: skip


def _loss_lines(fold: int, logs: Sequence[PhaseLog]) -> list[str]:
    lines = [f"## Fold {fold}: training losses", "", "| phase | epochs | first | last |",
             "| --- | --- | --- | --- |"]  # fmt: skip
    for log in logs:
        lines.append(
            f"| {log.phase} | {len(log.losses)} | {log.losses[0]:.4f} | {log.losses[-1]:.4f} |"
        )
    return [*lines, ""]


def _recorded_thresholds(bundle: LymphNodeBundle) -> dict[str, float]:
    recorded = bundle.meta.get("metrics", {}).get("thresholds", {})
    return {
        "patient": bundle.settings.patient_threshold,
        "nodes_only": float(recorded.get("nodes_only", float("nan"))),
    }


def evaluate_lymph_nodes(
    bundle: Path,
    data: Path,
    report: Path | None = None,
    title: str = "evaluation",
) -> dict[str, Any]:
    """Score the bundle in ``bundle`` on every patient of the cohort in ``data``.

    The thresholds are the bundle's (chosen on its validation rows); its no-attention model
    (``ABLATION_DIR`` under the bundle folder), when present, gives the ablation. Writes a
    markdown report to ``report`` when given; never trains.

    Raises
    ------
    inference.bundle.BundleError
        If a bundle cannot be loaded.
    ValueError
        On an unreadable cohort or one without lymph-node truth.
    """
    loaded = load_lymph_node_bundle(bundle)
    cases = discover_lymph_node_cases(data)
    started = time.monotonic()
    outcomes = evaluate_cases(loaded, cases)
    ablation = None
    if (loaded.path / ABLATION_DIR / "bundle.json").is_file():
        plain = load_lymph_node_bundle(loaded.path / ABLATION_DIR)
        ablation = (evaluate_cases(plain, cases), _recorded_thresholds(plain))
    summary = summarise(outcomes, _recorded_thresholds(loaded), ablation)
    seconds = time.monotonic() - started
    if report is not None:
        facts = [f"bundle `{bundle.name}` ({loaded.version}), cohort `{data.name}`",
                 f"{seconds:.0f} s on CPU for {len(cases)} patients"]  # fmt: skip
        write_report(report, f"Lymph-node metastasis: {title}", facts,
                     [metrics_section(title, summary, _RECORDED_NOTE)])  # fmt: skip
    return summary
