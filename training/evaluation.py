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
accuracy, recall per class, confusion) and Dice pooled over cases for
:data:`training._metrics.DICE_GROUPS`.

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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from inference.analysis import (
    AnalysisError,
    Analyzer,
    LocalisationEstimate,
    Localiser,
    default_localiser,
    resolve_device,
)
from inference.bundle import NOTICE, LoadedBundle, load_bundle, sha256_file
from inference.clinical_preprocessing import clinical_matrix
from inference.parallel import ordered_map
from inference.tasks.resectability.model import ModelMode
from inference.volume import Volume
from pancreas_contracts.clinical import ClinicalVariables
from pancreas_contracts.result import CATEGORY_LABELS
from training._evaluation_report import clean_json, row_title, write_outputs
from training._metrics import DICE_GROUPS, classification_metrics, dice_counts
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

    def add(self, pid: str, truth: int, probs: FloatArray, extra: dict[str, Any]) -> None:
        self.cases.append({"patient_id": pid, "truth": truth, "probabilities": probs.tolist()})
        self.cases[-1].update(extra)

    def summary(self) -> dict[str, Any]:
        done = [c for c in self.cases if c.get("probabilities") is not None]
        metrics: dict[str, Any] = {"auc": None, "macro_f1": None, "accuracy": None}
        metrics.update(recall=[None] * 3, confusion=None)
        if done:
            probs = np.asarray([c["probabilities"] for c in done], dtype=np.float64)
            metrics = classification_metrics([int(c["truth"]) for c in done], probs)
        dice = None
        if self.segments and self.counts[:, 1].any():
            dice = {name: float(self.counts[g, 0] / self.counts[g, 1]) if self.counts[g, 1]
                    else float("nan") for g, name in enumerate(DICE_GROUPS)}  # fmt: skip
        extra: dict[str, Any] = {}
        if self.kind == "pipeline":
            reasons = [str(c["reason"]) for c in self.cases if c.get("reason")]
            extra["refused"] = {r: reasons.count(r) for r in sorted(set(reasons))}
            # Analysed without a tumor: no category, so not in the classification metrics.
            extra["no_tumor"] = sum(c.get("outcome") == "no-tumor" for c in self.cases)
            located = [c["localisation"] for c in self.cases if c.get("localisation")]
            distances = [d["distance_mm"] for d in located if d["distance_mm"] is not None]
            extra["rule_agreement"] = _rule_agreement(self.cases)
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


class _RecordingLocaliser:
    """Wraps the analyzer's localiser to keep its last estimate (also on refusals)."""

    def __init__(self, inner: Localiser) -> None:
        self.inner = inner
        self.last: LocalisationEstimate | None = None

    def __call__(self, volume: Volume) -> LocalisationEstimate:
        self.last = self.inner(volume)
        return self.last


def _pipeline_case(
    analyzer: Analyzer, recorder: _RecordingLocaliser, case: CaseRecord, data_dir: Path,
    out: Path, centre: tuple[float, float, float] | None,
) -> dict[str, Any]:  # fmt: skip
    recorder.last = None
    folder = out / case.patient_id
    dicom = data_dir / case.patient_id / "dicom"
    series = dicom if dicom.is_dir() else case.image or case.dicom_dir
    record: dict[str, Any] = {"input": "dicom" if dicom.is_dir() else "nifti"}
    record.update(category=None, probabilities=None, reason=None, message=None)
    record["rule_category"] = None
    record["outcome"] = None  # done or no-tumor once analysed
    started = time.perf_counter()
    try:
        assert series is not None
        result = analyzer.analyze(
            series, ClinicalVariables(case.clinical), out_dir=folder, registry_status="file"
        ).result
        category = result.category  # None: no tumor segmented (outcome no-tumor)
        record.update(
            category=None if category is None else category.label, warnings=list(result.warnings)
        )
        record["rule_category"] = result.rule_category
        record["outcome"] = result.outcome
        record["probabilities"] = None if category is None else list(category.probabilities)
    except AnalysisError as exc:
        record.update(reason=exc.reason, message=str(exc))
    except (ValueError, OSError, RuntimeError) as exc:  # recorded, not fatal
        record.update(reason="error", message=" ".join(f"{type(exc).__name__}: {exc}".split()))
    record["seconds"] = round(time.perf_counter() - started, 2)
    loc = recorder.last
    record["localisation"] = None
    if loc is not None:
        found = [float(v) for v in loc.centre_mm]
        distance = None if centre is None else float(np.linalg.norm(np.subtract(found, centre)))
        record["localisation"] = {
            "centre_mm": found, "true_centre_mm": None if centre is None else list(centre),
            "distance_mm": distance, "confidence": float(loc.confidence),
            "found": bool(loc.found), "method": str(loc.method),
        }  # fmt: skip
    return record


def _rule_agreement(cases: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """How often the rule category read off the predicted segmentation equals the label.

    The rule category is the NCCN rule applied to the contact angles measured on the
    network's segmentation (:mod:`inference.tasks.resectability.measurements`); it shows whether the
    segmentation carries the tumor-vessel contact that defines the categories.
    """
    rated = [c for c in cases if c.get("rule_category") is not None]
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


def evaluate_cohort(
    data_dir: Path,
    bundles: Sequence[Path],
    out: Path,
    *,
    pipeline: bool = True,
    device: str = "auto",
    status: Status | None = None,
    workers: int = 1,
) -> Evaluation:
    """Evaluate ``bundles`` on the labelled cohort ``data_dir``; write the report to ``out``.

    Parameters
    ----------
    data_dir
        Cohort folder: ``clinical.csv``, ``truth.csv``, ``<patient>/image.nii.gz`` (or
        ``dicom/``) and ``<patient>/label.nii.gz``.
    bundles
        Bundle directories; the first also runs the end-to-end pipeline.
    out
        Output folder: ``evaluation.md``, ``evaluation.json`` and ``pipeline/<patient>/``.
    pipeline
        Run the end-to-end analysis with the first bundle.
    device
        ``auto``, ``cpu`` or ``cuda``.
    status
        Optional progress callback.
    workers
        Preprocess the cubes in this many processes (``1``: case by case, in this one).

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
    cases = discover_cases(data_dir)
    unlabelled = [c.patient_id for c in cases if c.label is None]
    if unlabelled:
        raise ValueError(f"patient {unlabelled[0]}: evaluation needs label.nii.gz")
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
    analyzer = recorder = None
    if pipeline and models[0].mode is ModelMode.TABULAR_ONLY:
        notes.append("end-to-end pipeline skipped: the first bundle has no image network")
    elif pipeline:
        # Observe the localiser the node would use (the bundle's learned one or the landmarks).
        recorder = _RecordingLocaliser(default_localiser(models[0].bundle))
        analyzer = Analyzer(models[0].path, device, localiser=recorder)
        rows.append(_Row(row_title(models[0].describe(), "pipeline"), 0, "pipeline", False))
    configs = list(dict.fromkeys(m.bundle.preprocess for m in models))
    made = ordered_map(_preprocess_case_all, cases, configs, workers=workers)
    for done, (case, cubes) in enumerate(zip(cases, made, strict=True), start=1):
        truth, raw = case.nccn_label, clinical_matrix([case.clinical])
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
                row.counts += counts
                extra["dice"] = {name: float(counts[g, 0] / counts[g, 1]) if counts[g, 1]
                                 else None for g, name in enumerate(DICE_GROUPS)}  # fmt: skip
            row.add(case.patient_id, truth, probs, extra)
        if analyzer is not None and recorder is not None:
            centre = next((p.centre_mm for p in cubes.values() if not isinstance(p, str)), None)
            record = _pipeline_case(analyzer, recorder, case, data_dir, out / "pipeline", centre)
            rows[-1].cases.append({"patient_id": case.patient_id, "truth": truth, **record})
        if status is not None:
            status("evaluating", done, len(cases))
    classes = np.bincount([c.nccn_label for c in cases], minlength=3).tolist()
    report = {
        "notice": NOTICE,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cohort": {"path": str(data_dir), "patients": len(cases), "classes": classes},
        "device": torch_device.type,
        "bundles": [m.describe() for m in models],
        "rows": [r.summary() for r in rows],
        "notes": notes,
    }
    report = clean_json(report)
    markdown, json_path = write_outputs(out, report)
    return Evaluation(report, markdown, json_path)
