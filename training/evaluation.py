"""Evaluation of model bundles on a labelled cohort (``pancreas-node evaluate``).

Two views of the same cases (a cohort folder as in training, see :mod:`training.dataset`,
typically a fresh phantom cohort made with another seed):

**Cube** (every bundle, ablation bundles included). Each case is preprocessed exactly as in
training (:func:`training.dataset.preprocess_case`: the cube centred on the label map's
pancreas centroid, with the bundle's own preprocessing); every ensemble member runs on it with
its own clinical preprocessor (nothing is refitted on the evaluation cohort) and the members'
softmax probabilities are averaged, per class and, for models with a segmentation head, per
voxel (argmax = the predicted label cube). Multimodal bundles are also run with the clinical
pathway knocked out (``clinical=None``: the training-mean embedding). Metrics:
:func:`training._metrics.classification_metrics` (macro AUC one-vs-rest, macro-F1,
accuracy, recall per class, confusion) over the cases with a known NCCN category, and Dice
pooled over cases for :data:`training._metrics.DICE_GROUPS`, each group over the cases that
label it (truth.csv's ``labelled``, :func:`training._metrics.group_labelled`; ``dice_n``).

**End to end** (the first bundle). The real :class:`inference.analysis.Analyzer` on each case's
full CT (its DICOM series when there is one, the node's real input, else ``image.nii.gz``) with
its clinical row: the category or the refusal reason, and the distance from the localisation
centre to the true pancreas centroid (the label map's, in mm). Macro AUC etc. are over the cases
that got a category. A failing case is recorded, never fatal. The analysis outputs are kept
under ``OUT/pipeline/<patient>/``.

Investigational, not for clinical use.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from inference.analysis import resolve_device
from inference.bundle import NOTICE, LoadedBundle, load_bundle, sha256_file
from inference.clinical_preprocessing import clinical_matrix
from inference.parallel import ordered_map
from inference.tasks.resectability.model import ModelMode
from pancreas_contracts.labels import NUM_CLASSES
from pancreas_contracts.result import CATEGORY_LABELS
from training._evaluation_pipeline import PipelineProbe, pipeline_case
from training._evaluation_real_ct import evaluate_real_ct
from training._evaluation_report import clean_json, row_title, write_outputs
from training._evaluation_scores import summarise_pipeline
from training._evaluation_truth import PatientTruth, cohort_generator, read_truth
from training._metrics import (
    DICE_GROUPS,
    classification_metrics,
    dice_counts,
    expected_calibration_error,
    group_labelled,
)
from training.dataset import (
    CaseRecord,
    PreprocessConfig,
    Preprocessed,
    discover_cases,
    preprocess_case,
)

__all__ = ["Evaluation", "cube_predict", "evaluate_cohort"]

Status = Callable[[str, int, int], None]
"""Progress callback: ``(task description, done, total)``."""

FloatArray = npt.NDArray[np.float64]
#: Equal-width bins of the expected calibration error.
ECE_BINS = 10


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate_cohort` wrote.

    Attributes
    ----------
    report
        The content of ``evaluation.json`` (NaN as ``None``).
    markdown
        Path of ``evaluation.md``.
    json
        Path of ``evaluation.json``.
    """

    report: dict[str, Any]
    markdown: Path
    json: Path


@dataclass
class _Row:
    """One table row being accumulated over cases."""

    label: str
    bundle: int
    kind: str  # "cube", "knockout" or "pipeline"
    segments: bool
    cases: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    counts: FloatArray = field(default_factory=lambda: np.zeros((len(DICE_GROUPS), 2)))
    counted: npt.NDArray[np.int64] = field(
        default_factory=lambda: np.zeros(len(DICE_GROUPS), dtype=np.int64)
    )

    def add(self, pid: str, truth: int | None, probs: FloatArray, extra: dict[str, Any]) -> None:
        self.cases.append({"patient_id": pid, "truth": truth, "probabilities": probs.tolist()})
        self.cases[-1].update(extra)

    def summary(self) -> dict[str, Any]:
        # Tumor-free patients and unknown categories (no NCCN label) are left out of the
        # NCCN metrics.
        done = [c for c in self.cases if c.get("probabilities") is not None]
        done = [c for c in done if c["truth"] is not None]
        metrics: dict[str, Any] = {"auc": None, "macro_f1": None, "accuracy": None}
        metrics.update(recall=[None] * 3, confusion=None, ece=None)
        if done:
            probs = np.asarray([c["probabilities"] for c in done], dtype=np.float64)
            truth = [int(c["truth"]) for c in done]
            metrics = classification_metrics(truth, probs)
            metrics["ece"] = expected_calibration_error(truth, probs, ECE_BINS)
        dice = None
        extra: dict[str, Any] = {}
        if self.segments and self.counts[:, 1].any():
            dice = {name: float(self.counts[g, 0] / self.counts[g, 1]) if self.counts[g, 1]
                    else float("nan") for g, name in enumerate(DICE_GROUPS)}  # fmt: skip
            extra["dice_n"] = {name: int(self.counted[g]) for g, name in enumerate(DICE_GROUPS)}
        if self.kind == "pipeline":
            reasons = [str(c["reason"]) for c in self.cases if c.get("reason")]
            extra["refused"] = {r: reasons.count(r) for r in sorted(set(reasons))}
            # Analysed without a tumor: no category, so not in the classification metrics.
            extra["no_tumor"] = sum(c.get("outcome") == "no-tumor" for c in self.cases)
            located = [c["localisation"] for c in self.cases if c.get("localisation")]
            distances = [d["distance_mm"] for d in located if d["distance_mm"] is not None]
            extra["rule_agreement"] = _rule_agreement(self.cases)
            extra.update(summarise_pipeline(self.cases))
            extra["localisation_distance_mm"] = {
                "n": len(distances),
                "median": float(np.median(distances)) if distances else None,
                "max": float(np.max(distances)) if distances else None,
            }
        return {
            "label": self.label, "bundle": self.bundle, "kind": self.kind, "n": len(done),
            "cases_total": len(self.cases) + len(self.failed), **metrics, "dice": dice,
            **extra, "failed": self.failed, "cases": self.cases,
        }  # fmt: skip


@dataclass(frozen=True)
class _Model:
    path: Path
    bundle: LoadedBundle
    mode: ModelMode
    variant: str

    def describe(self) -> dict[str, Any]:
        model = self.bundle.meta.get("model", {})
        return {
            "path": str(self.path),
            "name": str(model.get("name", "")) or "unnamed",
            "version": str(model.get("version", "")) or "0",
            "sha256": sha256_file(self.bundle.path / "bundle.json"),
            "mode": self.mode.value,
            "variant": self.variant,
            "members": len(self.bundle.members),
            "training_data_sha256": self.bundle.meta.get("training_data_sha256"),
            "preprocessing": self.bundle.preprocess.to_dict(),
        }


def _load(path: Path) -> _Model:
    bundle = load_bundle(path)
    modes = {m.model.config.model_mode for m in bundle.members}
    mode = modes.pop() if len(modes) == 1 else ModelMode.MULTIMODAL
    variant = str(bundle.meta.get("training", {}).get("variant", mode.value))
    return _Model(path, bundle, mode, variant)


def cube_predict(
    bundle: LoadedBundle,
    cube: npt.NDArray[np.float32],
    clinical: FloatArray | None,
    device: torch.device,
    *,
    segment: bool = True,
) -> tuple[FloatArray, npt.NDArray[np.uint8] | None]:
    """Ensemble class probabilities (and label cube) of one preprocessed cube.

    Parameters
    ----------
    bundle
        The loaded bundle (its members on ``device``).
    cube
        ``(S, S, S)`` input from :func:`training.dataset.preprocess_case`.
    clinical
        ``(1, 17)`` raw clinical values (NaN missing), or ``None`` for the knock-out.
    device
        Where the members run.
    segment
        Also return the argmax of the mean per-voxel probabilities (``None`` without a
        segmentation head).

    Returns
    -------
    tuple
        ``(3,)`` mean probabilities and the ``(S, S, S)`` label cube or ``None``.
    """
    probs: list[FloatArray] = []
    seg_sum: torch.Tensor | None = None
    with torch.inference_mode():
        for member in bundle.members:
            model = member.model.eval()
            image = None
            if model.swin is not None:
                image = torch.from_numpy(np.ascontiguousarray(cube)[None, None]).to(device)
            features = None
            if clinical is not None and model.clinical_mlp is not None:
                features = torch.from_numpy(member.preprocessor.transform(clinical).features)
                features = features.to(device)
            out = model(image, features)
            probs.append(torch.softmax(out.class_logits.float(), dim=1)[0].cpu().numpy())
            if segment and out.seg_logits is not None:
                seg = torch.softmax(out.seg_logits.float(), dim=1)[0]
                seg_sum = seg if seg_sum is None else seg_sum + seg
    mean: FloatArray = np.mean(probs, axis=0).astype(np.float64)
    labels = None if seg_sum is None else seg_sum.argmax(dim=0).to(torch.uint8).cpu().numpy()
    return mean, labels


def _rule_agreement(cases: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """How often the rule category read off the predicted segmentation equals the label.

    The rule category is the NCCN rule applied to the contact angles measured on the
    network's segmentation (:mod:`inference.tasks.resectability.measurements`); it shows whether the
    segmentation carries the tumor-vessel contact that defines the categories.
    """
    rated = [c for c in cases if c.get("rule_category") is not None and c["truth"] is not None]
    agree = sum(CATEGORY_LABELS.index(c["rule_category"]) == int(c["truth"]) for c in rated)
    return {"n": len(rated), "agree": agree, "fraction": agree / len(rated) if rated else None}


def _preprocess(case: CaseRecord, config: PreprocessConfig) -> Preprocessed | str:
    """The case's cube, or the one-line reason it could not be made."""
    try:
        return preprocess_case(case, config)
    except (ValueError, OSError) as exc:
        return " ".join(f"{type(exc).__name__}: {exc}".split())


def _preprocess_case_all(
    case: CaseRecord, configs: Sequence[PreprocessConfig]
) -> dict[PreprocessConfig, Preprocessed | str]:
    return {config: _preprocess(case, config) for config in configs}


def _labelled_row(case: CaseRecord) -> npt.NDArray[np.bool_] | None:
    """The case's labelled classes as a ``NUM_CLASSES`` mask; ``None`` when it labels all."""
    if not case.partial:
        return None
    mask = np.zeros(NUM_CLASSES, dtype=bool)
    mask[[0, *sorted(case.labelled)]] = True
    return mask


def _cases(data_dir: Path) -> tuple[list[CaseRecord], dict[str, PatientTruth]]:
    cases = discover_cases(data_dir)
    truths = read_truth(data_dir)
    unlabelled = [c.patient_id for c in cases if c.label is None]
    if unlabelled:
        raise ValueError(f"patient {unlabelled[0]}: evaluation needs label.nii.gz")
    missing = [c.patient_id for c in cases if c.patient_id not in truths]
    if missing:
        raise ValueError(f"patient {missing[0]}: not in truth.csv")
    return cases, truths


def _real_ct(probe: PipelineProbe | None, case_dir: Path, out: Path) -> dict[str, Any]:
    if probe is None:
        return {"case": case_dir.name, "error": "the first bundle has no image network"}
    try:
        return evaluate_real_ct(case_dir, probe, out)
    except (ValueError, OSError) as exc:  # recorded, not fatal
        return {"case": case_dir.name, "error": " ".join(f"{type(exc).__name__}: {exc}".split())}


def evaluate_cohort(
    data_dir: Path,
    bundles: Sequence[Path],
    out: Path,
    *,
    pipeline: bool = True,
    device: str = "auto",
    status: Status | None = None,
    workers: int = 1,
    real_ct: Path | None = None,
) -> Evaluation:
    """Evaluate ``bundles`` on the labelled cohort ``data_dir``; write the report to ``out``.

    Parameters
    ----------
    data_dir
        Cohort folder: ``clinical.csv``, ``truth.csv``, ``<patient>/image.nii.gz`` (or
        ``dicom/``) and ``<patient>/label.nii.gz``. ``truth.csv`` may have the columns of
        :mod:`training._evaluation_truth` (tumor-free patients, the generator) or not.
    bundles
        Bundle directories; the first also runs the end-to-end pipeline.
    out
        Output folder: ``evaluation.md``, ``evaluation.json``, ``pipeline/<patient>/`` and
        ``real-ct/``.
    pipeline
        Run the end-to-end analysis with the first bundle.
    device
        ``auto``, ``cpu`` or ``cuda``.
    status
        Optional progress callback.
    workers
        Preprocess the cubes in this many processes (``1``: case by case, in this one).
    real_ct
        The NIH Pancreas-CT 0001 case folder (``dicom/``, ``pancreas_label.nii.gz``): also
        report the first bundle's localisation and pancreas Dice on it
        (:mod:`training._evaluation_real_ct`); ``None``: not run.

    Returns
    -------
    Evaluation
        The report and the paths written.

    Raises
    ------
    ValueError
        On an invalid cohort (missing tables or label maps), no bundles, an unusable device,
        or a bundle that cannot be loaded (:class:`inference.bundle.BundleError`).
    OSError
        If files cannot be read or written.
    """
    if not bundles:
        raise ValueError("give at least one bundle")
    cases, truths = _cases(data_dir)
    torch_device = resolve_device(device)
    models = [_load(path) for path in bundles]
    for model in models:
        for member in model.bundle.members:
            member.model.to(torch_device).eval()
    rows: list[_Row] = []
    for i, model in enumerate(models):
        segments = model.mode is not ModelMode.TABULAR_ONLY
        rows.append(_Row(row_title(model.describe()), i, "cube", segments))
        if model.mode is ModelMode.MULTIMODAL:
            rows.append(_Row(row_title(model.describe(), "knockout"), i, "knockout", False))
    notes: list[str] = []
    probe = None
    if models[0].mode is ModelMode.TABULAR_ONLY:
        if pipeline or real_ct is not None:
            notes.append("end-to-end pipeline skipped: the first bundle has no image network")
    elif pipeline or real_ct is not None:
        probe = PipelineProbe(models[0].path, device)
    if pipeline and probe is not None:
        rows.append(_Row(row_title(models[0].describe(), "pipeline"), 0, "pipeline", False))
    configs = list(dict.fromkeys(m.bundle.preprocess for m in models))
    made = ordered_map(_preprocess_case_all, cases, configs, workers=workers)
    for done, (case, cubes) in enumerate(zip(cases, made, strict=True), start=1):
        truth, raw = truths[case.patient_id], clinical_matrix([case.clinical])
        for row in rows:
            if row.kind == "pipeline":
                continue
            model = models[row.bundle]
            pre = cubes[model.bundle.preprocess]
            if isinstance(pre, str):
                row.failed.append({"patient_id": case.patient_id, "error": pre})
                continue
            knocked = row.kind == "knockout"
            probs, labels = cube_predict(
                model.bundle, pre.image, None if knocked else raw, torch_device,
                segment=row.segments,
            )  # fmt: skip
            extra: dict[str, Any] = {}
            if labels is not None and pre.label is not None:
                counts = dice_counts(labels, pre.label)
                groups = group_labelled(_labelled_row(case))  # only what the case labels
                row.counts[groups] += counts[groups]
                row.counted += groups
                extra["dice"] = {name: float(counts[g, 0] / counts[g, 1])
                                 if counts[g, 1] and groups[g] else None
                                 for g, name in enumerate(DICE_GROUPS)}  # fmt: skip
            row.add(case.patient_id, truth.nccn_label, probs, extra)
        if pipeline and probe is not None:
            centre = next((p.centre_mm for p in cubes.values() if not isinstance(p, str)), None)
            record = pipeline_case(probe, case, truth, data_dir, out / "pipeline", centre)
            rows[-1].cases.append(
                {"patient_id": case.patient_id, "truth": truth.nccn_label, **record}
            )
        if status is not None:
            status("evaluating", done, len(cases))
    labels_known = [t.nccn_label for t in truths.values() if t.nccn_label is not None]
    report: dict[str, Any] = {
        "notice": NOTICE,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cohort": {
            "path": str(data_dir),
            "patients": len(cases),
            "classes": np.bincount(labels_known, minlength=3).tolist(),
            "tumor_free": sum(not truths[c.patient_id].has_tumor for c in cases),
            "nccn_unknown": sum(
                truths[c.patient_id].has_tumor and truths[c.patient_id].nccn_label is None
                for c in cases
            ),
            "partially_labelled": sum(c.partial for c in cases),
            "generator": cohort_generator([truths[c.patient_id] for c in cases]),
        },
        "device": torch_device.type,
        "bundles": [m.describe() for m in models],
        "rows": [r.summary() for r in rows],
        "calibration": {"metric": "expected calibration error", "bins": ECE_BINS},
        "notes": notes,
    }
    if real_ct is not None:
        if status is not None:
            status("real CT", 0, 1)
        report["real_ct"] = _real_ct(probe, real_ct, out / "real-ct")
    report = clean_json(report)
    markdown, json_path = write_outputs(out, report)
    return Evaluation(report, markdown, json_path)
