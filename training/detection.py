"""``pancreas-node train --task detection``: train, evaluate and bundle the PDAC detector.

Protocol (METHOD.md section 2, ``docs/detection.md``): the cohort's patients (PDAC: truth.csv
``has_tumor`` 1; without: 0) are split by :func:`training._splits.nested_splits` stratified
by PDAC; for each of the first ``folds_to_run`` outer folds stage 1 and stage 2 are trained on
the inner training rows (:mod:`training._detection_fit`), the fold's model is written as a
bundle (float16 weights by default), loaded back and run end to end on the validation and
outer test rows (:mod:`training._detection_eval`). Fold 0's bundle is ``OUT/bundle.json``
(other folds' under ``OUT/folds/<k>/``); ``OUT/report.md`` and ``OUT/evaluation.json`` hold
the metrics. :func:`evaluate_detection` scores a bundle on another cohort (fresh phantoms, the
held-out generator).
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
import torch

from inference.tasks.detection.bundle import (
    load_detection_bundle,
    save_detection_bundle,
    update_detection_metrics,
)
from inference.tasks.detection.task import DetectionModel
from training._detection_data import DetectionArrays, load_detection_arrays
from training._detection_eval import evaluate_cases, summarise
from training._detection_fit import PhaseLog, fit_stage1, fit_stage2
from training._detection_report import metrics_section, write_report
from training._loop import pick_device
from training._splits import FoldSplit, nested_splits
from training.dataset import CaseRecord, discover_cases
from training.detection_config import DetectionConfig

__all__ = ["MODEL_NAME", "DetectionRun", "detection_cases", "evaluate_detection",
           "train_detection"]  # fmt: skip

MODEL_NAME = "pdac-detection"
Status = Callable[[str, int, int], None]


@dataclass(frozen=True)
class DetectionRun:
    """What a detection training run wrote."""

    out: Path
    bundle_json: Path
    report: Path
    summary: dict[str, Any]


def _data_hash(arrays: DetectionArrays) -> str:
    digest = hashlib.sha256()
    for name, positive in zip(arrays.patient_ids, arrays.positive.tolist(), strict=True):
        digest.update(f"{name}:{positive}\n".encode())
    for array in (arrays.stage1_images, arrays.stage2_images, arrays.stage2_masks):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _fold(
    arrays: DetectionArrays,
    cases: list[CaseRecord],
    split: FoldSplit,
    config: DetectionConfig,
    target: Path,
    status: Status | None,
) -> tuple[Path, dict[str, Any], list[PhaseLog]]:
    device = pick_device(config.device)
    started = time.monotonic()
    stage1, log1 = fit_stage1(arrays, split.train, config, device, status)
    stage2, logs2 = fit_stage2(arrays, split.train, config, device, status)
    logs = [log1, *logs2]
    training = {
        "config": config.to_dict(),
        "fold": split.fold,
        "rows": {"train": len(split.train), "val": len(split.val), "test": len(split.test)},
        "patients": len(cases),
        "device": str(device),
        "train_seconds": round(time.monotonic() - started, 1),
        "losses": {log.phase: [round(v, 5) for v in log.losses] for log in logs},
    }
    bundle_json = save_detection_bundle(
        target, (stage1, config.stage1), stage2, config.settings(), name=MODEL_NAME,
        version=f"0.1.0+{config.sha256()[:8]}", config_sha256=config.sha256(),
        data_hash=_data_hash(arrays), metrics={}, training=training,
        weights_dtype=config.weights_dtype,
    )  # fmt: skip
    model = DetectionModel(load_detection_bundle(target))  # what is shipped, float16 included
    metrics = {
        name: summarise(evaluate_cases(model, [cases[i] for i in rows]))
        for name, rows in (("validation", split.val), ("test", split.test))
    }
    update_detection_metrics(target, metrics)
    return bundle_json, metrics, logs


def detection_cases(cases: Sequence[CaseRecord]) -> tuple[list[CaseRecord], list[str]]:
    """The patients whose tumor status is known, and the IDs of those left out.

    A detector learns and is scored on "PDAC or not": an imported case that labels only the
    pancreas (``has_tumor`` empty, no NCCN category, :mod:`training.dataset`) may have a tumor
    nobody drew, so it is neither a positive nor a negative.
    """
    kept = [c for c in cases if c.tumor_status_known]
    return kept, [c.patient_id for c in cases if not c.tumor_status_known]


def _left_out(unknown: Sequence[str]) -> list[str]:
    if not unknown:
        return []
    return [f"left out, tumor status unknown (tumor not labelled): {len(unknown)} patient(s): "
            f"{', '.join(unknown[:12])}{' ...' if len(unknown) > 12 else ''}"]  # fmt: skip


def train_detection(
    data: Path, out: Path, config: DetectionConfig, status: Status | None = None
) -> DetectionRun:
    """Train and evaluate the detector on the cohort in ``data``; write everything to ``out``.

    Raises
    ------
    ValueError
        On an unreadable cohort, too few patients for the folds, or missing label maps.
    """
    if config.num_threads > 0:
        torch.set_num_threads(config.num_threads)
    cases, unknown = detection_cases(discover_cases(data))
    labels = [int(c.has_tumor) for c in cases]
    splits = nested_splits(labels, config.outer_folds, config.seed)
    arrays = load_detection_arrays(cases, config, out / "cache")
    folds: list[dict[str, Any]] = []
    sections, bundle_json = [], out / "bundle.json"
    for split in splits[: config.folds_to_run]:
        target = out if split.fold == 0 else out / "folds" / str(split.fold)
        path, metrics, logs = _fold(arrays, cases, split, config, target, status)
        bundle_json = path if split.fold == 0 else bundle_json
        folds.append({"fold": split.fold, **metrics})
        sections.append(metrics_section(f"Fold {split.fold}: outer test rows", metrics["test"]))
        val_title = f"Fold {split.fold}: validation rows"
        sections.append(metrics_section(val_title, metrics["validation"]))
        sections.append(_loss_lines(split.fold, logs))
    summary = {"folds": folds, "config_sha256": config.sha256()}
    (out / "evaluation.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    facts = [
        f"cohort `{data.name}`: {len(cases)} patients, {sum(labels)} PDAC, "
        f"{len(cases) - sum(labels)} without",
        f"model {MODEL_NAME}, config sha256 `{config.sha256()[:16]}`, "
        f"weights {config.weights_dtype}",
        f"{config.outer_folds}-fold nested CV stratified by PDAC, {config.folds_to_run} run",
        *_left_out(unknown),
    ]
    report = write_report(out / "report.md", "PDAC detection: training report", facts, sections)
    return DetectionRun(out, bundle_json, report, summary)


def _loss_lines(fold: int, logs: list[PhaseLog]) -> list[str]:
    lines = [f"## Fold {fold}: training losses", "", "| phase | epochs | first | last |",
             "| --- | --- | --- | --- |"]  # fmt: skip
    for log in logs:
        lines.append(
            f"| {log.phase} | {len(log.losses)} | {log.losses[0]:.4f} | {log.losses[-1]:.4f} |"
        )
    return [*lines, ""]


def evaluate_detection(
    bundle: Path, data: Path, report: Path | None = None, title: str = "evaluation"
) -> dict[str, Any]:
    """Score the bundle in ``bundle`` on every patient of the cohort in ``data``.

    Writes a markdown report to ``report`` when given; never trains.

    Raises
    ------
    inference.bundle.BundleError
        If the bundle cannot be loaded.
    ValueError
        On an unreadable cohort.
    """
    loaded = load_detection_bundle(bundle)
    cases, unknown = detection_cases(discover_cases(data))
    started = time.monotonic()
    summary = summarise(evaluate_cases(DetectionModel(loaded), cases))
    seconds = time.monotonic() - started
    if report is not None:
        facts = [
            f"bundle `{bundle.name}` ({loaded.version}), cohort `{data.name}`",
            f"{seconds:.0f} s on CPU for {len(cases)} patients",
            *_left_out(unknown),
        ]
        sections = [metrics_section(title, summary)]
        write_report(report, f"PDAC detection: {title}", facts, sections)
    return summary
