"""Score a lymph-node model on patients with truth, end to end as at analysis.

Each CT goes through :meth:`inference.tasks.lymph_nodes.task.LymphNodeModel.
analyse_with_maps`: the **predicted** organs and their attention, the node instances, their
classification and the patient model (with the truth PDAC mask of ``label.nii.gz``: the
bundle has no PDAC segmenter; without a tumor, the node branch alone). The instances (on the
node cube) are resampled onto ``nodes.nii.gz``'s grid (nearest neighbour) and matched to the
truth nodes (IoU >= 0.3, :func:`~inference.tasks.lymph_nodes.nodes.match_instances`); false
positives are the instances found without a truth node (one lost in the resampling counts
as a false positive too). The node classifier is also run on every truth node's crop
(centred on its centre of mass): the classification AUC "on truth nodes", the paper's
Table IV; "on detected nodes" is the AUC over the hits, each with its truth node's status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from inference.tasks.lymph_nodes.bundle import LymphNodeBundle
from inference.tasks.lymph_nodes.nodes import match_instances
from inference.tasks.lymph_nodes.task import LymphNodeAnalysis, LymphNodeModel
from inference.volume import Volume
from training._lymph_node_data import (
    LymphNodeCase,
    node_centres,
    node_crop,
    read_case_volumes,
)
from training._lymph_node_mining import on_truth_grid
from training.lymph_node_metrics import (
    NodeCounts,
    auroc,
    detection_summary,
    score_metrics,
    validation_threshold,
)

__all__ = [
    "FROC_FP_RATES",
    "CaseOutcome",
    "choose_node_threshold",
    "choose_thresholds",
    "evaluate_cases",
    "froc",
    "outcome_rows",
    "summarise",
    "summarise_nodes",
]


@dataclass(frozen=True)
class CaseOutcome:
    """One evaluated patient.

    Attributes
    ----------
    patient_id, n_status
        The patient and its N status (truth).
    counts
        Its node detection.
    kinds_found
        ``(kind, hit)`` for each truth node.
    truth_scores
        ``(metastatic, probability)`` of the classifier on each truth node's crop.
    detected_scores
        ``(metastatic, probability)`` of each detected node that hit a truth node.
    probability
        The patient model's N+ probability.
    largest_positive_ml
        Volume of the largest suspicious node (the node-only patient score).
    tumor_used
        Whether the patient model saw tumor slices.
    candidates
        ``(node probability, hit)`` of every candidate before the bundle's node threshold
        (hits matched one-to-one among the candidates): the detection's FROC.
    """

    patient_id: str
    n_status: int
    counts: NodeCounts
    kinds_found: tuple[tuple[str, bool], ...]
    truth_scores: tuple[tuple[int, float], ...]
    detected_scores: tuple[tuple[int, float], ...]
    probability: float
    largest_positive_ml: float
    tumor_used: bool
    candidates: tuple[tuple[float, bool], ...] = ()


def _truth_scores(
    bundle: LymphNodeBundle, case: LymphNodeCase, image: Volume, nodes: Volume
) -> tuple[tuple[int, float], ...]:
    if not case.truth:
        return ()
    classifier = bundle.networks.classifier
    size, mm = classifier.config.crop_size, classifier.crop_mm
    crops = np.stack([node_crop(image, c, size, mm) for c in node_centres(nodes, case.truth)])
    with torch.no_grad():
        logits = classifier(torch.from_numpy(crops[:, None]))
    probabilities = classifier.probabilities(logits)[1].tolist()
    return tuple(
        (int(n.metastatic), round(float(p), 6))
        for n, p in zip(case.truth, probabilities, strict=True)
    )


def _candidates(analysis: LymphNodeAnalysis, nodes: Volume) -> tuple[tuple[float, bool], ...]:
    """``(node probability, hit)`` of every candidate before the node threshold."""
    on_grid = on_truth_grid(analysis.candidates, analysis.probability, nodes)
    matching = match_instances(on_grid, np.asarray(nodes.array, dtype=np.int64))
    hits = {p for p, _, _ in matching.hits}
    return tuple(
        (round(p, 6), k + 1 in hits) for k, p in enumerate(analysis.candidate_node_probability)
    )


def _judge(
    analysis: LymphNodeAnalysis, case: LymphNodeCase, nodes: Volume
) -> tuple[NodeCounts, tuple[tuple[str, bool], ...], tuple[tuple[int, float], ...]]:
    on_grid = on_truth_grid(analysis.instances, analysis.probability, nodes)
    matching = match_instances(on_grid, np.asarray(nodes.array, dtype=np.int64))
    truth = {n.node_id: n for n in case.truth}
    found = {t for _, t, _ in matching.hits}
    kinds = tuple((n.kind, n.node_id in found) for n in case.truth)
    detected = tuple(
        (int(truth[t].metastatic), analysis.result.nodes[p - 1].metastasis_probability)
        for p, t, _ in matching.hits
        if t in truth
    )
    hits = len(matching.hits)
    counts = NodeCounts(hits, len(analysis.result.nodes) - hits, len(case.truth))
    return counts, kinds, detected


def evaluate_case(bundle: LymphNodeBundle, case: LymphNodeCase) -> CaseOutcome:
    """Run the bundle on one patient and judge its output (see the module docstring).

    Raises
    ------
    ValueError
        If the patient has no NIfTI image.
    """
    volumes = read_case_volumes(case)
    analysis = LymphNodeModel(bundle).analyse_with_maps(volumes.image, volumes.tumor)
    counts, kinds, detected = _judge(analysis, case, volumes.nodes)
    result = analysis.result
    return CaseOutcome(
        patient_id=case.patient_id, n_status=case.n_status, counts=counts, kinds_found=kinds,
        truth_scores=_truth_scores(bundle, case, volumes.image, volumes.nodes),
        detected_scores=detected, probability=result.n_positive_probability,
        largest_positive_ml=result.largest_suspicious_volume_ml,
        tumor_used="tumor_mask" in result.inputs,
        candidates=_candidates(analysis, volumes.nodes),
    )  # fmt: skip


def evaluate_cases(bundle: LymphNodeBundle, cases: Sequence[LymphNodeCase]) -> list[CaseOutcome]:
    """:func:`evaluate_case` for every patient, in order."""
    return [evaluate_case(bundle, case) for case in cases]


def _recall_by_kind(outcomes: Sequence[CaseOutcome]) -> dict[str, float]:
    pairs = [pair for o in outcomes for pair in o.kinds_found]
    kinds = sorted({kind for kind, _ in pairs})
    return {k: float(np.mean([hit for kind, hit in pairs if kind == k])) for k in kinds}


def _node_auc(pairs: Sequence[tuple[int, float]]) -> float:
    return auroc([p[0] for p in pairs], [p[1] for p in pairs])


def _labels(outcomes: Sequence[CaseOutcome]) -> list[int]:
    return [o.n_status for o in outcomes]


#: The false positives per patient at which the FROC's recall is reported.
FROC_FP_RATES = (0.5, 1.0, 2.0, 4.0, 8.0)


def _sweep(outcomes: Sequence[CaseOutcome]) -> list[tuple[float, float, float]]:
    """``(threshold, recall, false positives per patient)`` at each candidate's probability."""
    pairs = sorted((p for o in outcomes for p in o.candidates), key=lambda c: -c[0])
    truth = max(1, sum(o.counts.truth for o in outcomes))
    patients = max(1, len(outcomes))
    points, hits, false = [], 0, 0
    for n, (probability, hit) in enumerate(pairs):
        hits, false = hits + hit, false + (not hit)
        if n + 1 == len(pairs) or pairs[n + 1][0] < probability:
            points.append((probability, hits / truth, false / patients))
    return points


def froc(outcomes: Sequence[CaseOutcome]) -> dict[str, float]:
    """Recall at :data:`FROC_FP_RATES` false positives per patient (candidates' sweep).

    Counted on the candidates before the node threshold; a truth node counts once (the
    candidates' one-to-one matching).
    """
    points = _sweep(outcomes)
    return {
        f"{rate:g}": max((r for _, r, fp in points if fp <= rate), default=0.0)
        for rate in FROC_FP_RATES
    }


def choose_node_threshold(validation: Sequence[CaseOutcome], fp_per_patient: float) -> float:
    """The lowest node threshold with at most ``fp_per_patient`` false positives (validation).

    The detection's operating point, as CAD systems state one (sensitivity at a number of
    false positives per patient); 1.0 when no threshold gets there.
    """
    allowed = [t for t, _, fp in _sweep(validation) if fp <= fp_per_patient]
    return min(allowed, default=1.0)


def choose_thresholds(validation: Sequence[CaseOutcome]) -> dict[str, float]:
    """The patient thresholds of best balanced accuracy on the validation rows.

    ``patient``: on the full model's N+ probability; ``nodes_only``: on the largest positive
    node's volume (the paper's *ClsbyLNSeg*). NaN without both classes among the rows.
    """
    labels = _labels(validation)
    return {
        "patient": validation_threshold(labels, [o.probability for o in validation]),
        "nodes_only": validation_threshold(labels, [o.largest_positive_ml for o in validation]),
    }


def summarise_nodes(outcomes: Sequence[CaseOutcome], nodes_only_threshold: float) -> dict[
    str, Any
]:  # fmt: skip
    """Node detection and classification, and the node-only patient score, of ``outcomes``."""
    scores = [o.largest_positive_ml for o in outcomes]
    return {
        "detection": {**detection_summary([o.counts for o in outcomes]),
                      "recall_by_kind": _recall_by_kind(outcomes),
                      "froc": froc(outcomes)},
        "node_auc_truth": _node_auc([p for o in outcomes for p in o.truth_scores]),
        "node_auc_detected": _node_auc([p for o in outcomes for p in o.detected_scores]),
        "nodes_only": score_metrics(_labels(outcomes), scores, nodes_only_threshold),
    }  # fmt: skip


def summarise(
    outcomes: Sequence[CaseOutcome],
    thresholds: Mapping[str, float],
    ablation: tuple[Sequence[CaseOutcome], Mapping[str, float]] | None = None,
) -> dict[str, Any]:
    """The metrics of one set of patients at the given thresholds, with the ablation.

    Returns
    -------
    dict
        ``patients``, ``n_positive``, ``patient`` (the full model's N+ probability: AUC and
        the thresholded metrics at ``thresholds["patient"]``), ``tumor_used`` (share of
        patients whose tumor slices were used), ``attention`` (:func:`summarise_nodes` of the
        model) and, with ``ablation`` (the no-attention model's outcomes on the same patients
        and its thresholds), ``no_attention``.
    """
    probabilities = [o.probability for o in outcomes]
    out: dict[str, Any] = {
        "patients": len(outcomes),
        "n_positive": sum(_labels(outcomes)),
        "patient": score_metrics(_labels(outcomes), probabilities, thresholds["patient"]),
        "tumor_used": float(np.mean([o.tumor_used for o in outcomes])) if outcomes else 0.0,
        "attention": summarise_nodes(outcomes, thresholds["nodes_only"]),
    }
    if ablation is not None:
        out["no_attention"] = summarise_nodes(ablation[0], ablation[1]["nodes_only"])
    return out


def outcome_rows(outcomes: Sequence[CaseOutcome]) -> list[dict[str, Any]]:
    """Per-patient rows for ``evaluation.json``."""
    return [
        {"patient_id": o.patient_id, "n_status": o.n_status, "probability": o.probability,
         "largest_positive_ml": o.largest_positive_ml, "hits": o.counts.hits,
         "false_positives": o.counts.false_positives, "truth_nodes": o.counts.truth}
        for o in outcomes
    ]  # fmt: skip
