"""The lymph-node model in :class:`inference.analysis.Analyzer` (result schema 1.6, issue 24).

With a lymph-node bundle configured (settings ``lymph_node_bundle_path``), the model
(:class:`inference.tasks.lymph_nodes.task.LymphNodeModel`) runs after the staging segmentation,
with the staging tumor mask when the segmentation has a tumor (else without, and the result
says so in ``inputs_missing``). Its answer becomes ``result.lymph_nodes``
(:class:`~pancreas_contracts.lymph_nodes.LymphNodeAssessment`): nodes in LPS mm with JPS
station, axial short and long axis, volume, probability of metastasis and the suspicious flag,
the most probable first; the patient's N estimate at the bundle's own patient threshold.
Its stages are timed as ``lymph_nodes_<stage>`` (and ``lymph_nodes`` in all).

A failure of the model (an :class:`~inference.tasks.protocol.AnalysisError`, ``ValueError`` or
``RuntimeError``, e.g. a CUDA out-of-memory) does not lose the analysis: the result has no
``lymph_nodes`` section and a warning beginning with :data:`LN_FAILED` says which error.
Investigational, not for clinical use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import torch

from inference._analysis_detection import labels_on_image
from inference.bundle import sha256_file
from inference.tasks.lymph_nodes.bundle import load_lymph_node_bundle
from inference.tasks.lymph_nodes.task import LymphNodeAnalysis, LymphNodeModel
from inference.tasks.protocol import AnalysisError
from inference.timing import timed
from inference.volume import Volume
from pancreas_contracts.labels import label_by_name
from pancreas_contracts.lymph_nodes import LymphNodeAssessment, LymphNodeFinding
from pancreas_contracts.result import BundleRef

__all__ = [
    "LN_FAILED",
    "LN_INPUTS",
    "LymphNodeAssessor",
    "LymphNodeOutput",
    "LymphNodeStage",
    "node_map",
    "run_lymph_nodes",
    "to_assessment",
    "tumor_mask_of",
]

_log = logging.getLogger(__name__)

#: The inputs the lymph-node model can use (``inputs_used`` + ``inputs_missing``).
LN_INPUTS: Final = ("ct", "attention", "tumor_mask")
#: How the warning of a failed lymph-node stage begins.
LN_FAILED: Final = "lymph-node model failed"
#: Node ids above it have no SEG segment (segment values are 8 bits).
_MAX_SEG_NODE: Final = 255


@dataclass(frozen=True, eq=False)
class LymphNodeOutput:
    """The lymph-node stage's answer, its nodes on the CT grid and its bundle.

    Attributes
    ----------
    assessment
        The answer (``result.lymph_nodes``).
    nodes
        ``node_id`` where that node is, 0 elsewhere, on the CT's grid; ``None`` when no node
        is reported (or none lands on the CT).
    bundle
        The lymph-node bundle (the SEG's algorithm identification).
    timings_s
        Seconds per stage of the model.
    """

    assessment: LymphNodeAssessment
    nodes: Volume | None
    bundle: BundleRef
    timings_s: dict[str, float]


#: What the Analyzer calls: the CT and the staging tumor mask (or ``None``) in.
LymphNodeStage = Callable[[Volume, Volume | None], LymphNodeOutput]


class LymphNodeAssessor:
    """A lymph-node bundle as a stage of the analysis.

    Parameters
    ----------
    bundle_path
        The lymph-node bundle (``inference/tasks/lymph_nodes``), folder or ``bundle.json``.
    device
        Where its networks run.

    Raises
    ------
    BundleError
        If the bundle cannot be loaded (at start-up, not per study).
    """

    def __init__(self, bundle_path: Path, device: torch.device) -> None:
        bundle = load_lymph_node_bundle(bundle_path)
        self._model = LymphNodeModel(bundle, device)
        self._threshold = bundle.settings.patient_threshold
        model = bundle.meta.get("model", {})
        self._ref = BundleRef(
            name=str(model.get("name", "")) or "lymph-nodes",
            version=str(model.get("version", "")) or "0",
            sha256=sha256_file(bundle.path / "bundle.json"),
        )

    @property
    def bundle(self) -> BundleRef:
        """The bundle's reference (name, version, ``bundle.json`` sha256)."""
        return self._ref

    def __call__(self, image: Volume, tumor_mask: Volume | None) -> LymphNodeOutput:
        """Run the model on the CT (with the tumor mask when given)."""
        analysis = self._model.analyse_with_maps(image, tumor_mask)
        assessment = to_assessment(analysis, self._threshold)
        return LymphNodeOutput(
            assessment,
            node_map(analysis, image),
            self._ref,
            dict(analysis.result.timings_s),
        )


def to_assessment(analysis: LymphNodeAnalysis, threshold: float) -> LymphNodeAssessment:
    """The contract's view of the model's answer.

    ``node_id`` ``n`` is the model's ``n``-th node (instance ``n`` of its map, largest
    first); the nodes are listed the most probable first. ``threshold`` is the bundle's
    patient threshold (the N estimate's operating point).
    """
    result = analysis.result
    findings = [
        LymphNodeFinding(
            node_id=n,
            station=node.station,
            centre_lps_mm=_rounded(node.centre_lps_mm),
            short_axis_mm=round(node.short_axis_mm, 1),
            long_axis_mm=round(node.long_axis_mm, 1),
            volume_ml=round(node.volume_ml, 3),
            probability=round(node.metastasis_probability, 4),
            suspicious=node.suspicious,
        )
        for n, node in enumerate(result.nodes, start=1)
    ]
    findings.sort(key=lambda f: (-f.probability, f.node_id))
    probability = round(result.n_positive_probability, 4)
    return LymphNodeAssessment(
        model_version=result.model_version,
        n_positive_probability=probability,
        threshold=threshold,
        n_estimate="N+" if probability >= threshold else "N0",
        nodes=tuple(findings),
        inputs_used=tuple(result.inputs),
        inputs_missing=tuple(x for x in LN_INPUTS if x not in result.inputs),
        warnings=result.warnings,
    )


def _rounded(point: tuple[float, float, float]) -> tuple[float, float, float]:
    x, y, z = point
    return (round(float(x), 2), round(float(y), 2), round(float(z), 2))


def node_map(analysis: LymphNodeAnalysis, image: Volume) -> Volume | None:
    """The reported nodes (value ``node_id``) on ``image``'s grid; ``None`` without any."""
    instances = np.asarray(analysis.instances)
    if not analysis.result.nodes or not instances.any():
        return None
    kept = np.where(instances <= _MAX_SEG_NODE, instances, 0).astype(np.uint8)
    return labels_on_image(Volume(kept, analysis.probability.affine), image)


def tumor_mask_of(label: Volume) -> Volume | None:
    """The staging segmentation's tumor as a mask; ``None`` when it has no tumor voxel."""
    tumor = np.asarray(label.array) == label_by_name("tumor").value
    return Volume(tumor.astype(np.uint8), label.affine) if tumor.any() else None


def run_lymph_nodes(
    stage: LymphNodeStage,
    image: Volume,
    label: Volume,
    notes: list[str],
    timings: MutableMapping[str, float],
) -> LymphNodeOutput | None:
    """Run ``stage`` after the staging segmentation ``label``; ``None`` if it failed.

    The model's stages go into ``timings`` as ``lymph_nodes_<stage>`` (and the whole as
    ``lymph_nodes``), its warnings into ``notes``; a failure adds a :data:`LN_FAILED` warning
    with the error instead.
    """
    mask = tumor_mask_of(label)
    try:
        output = timed(timings, "lymph_nodes", lambda: stage(image, mask))
    except (AnalysisError, ValueError, RuntimeError) as exc:
        reason = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]
        _log.warning("%s (%s)", LN_FAILED, reason)
        notes.append(f"{LN_FAILED} ({reason}); no lymph-node assessment")
        return None
    for name, seconds in output.timings_s.items():
        timings[f"lymph_nodes_{name}"] = seconds
    notes.extend(f"lymph nodes: {w}" for w in output.assessment.warnings)
    return output
