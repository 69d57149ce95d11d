"""The survival model in :class:`inference.analysis.Analyzer` (result schema 1.7, issue 25).

With a survival bundle configured (settings ``survival_bundle_path``), the model
(:class:`inference.tasks.survival.task.SurvivalModel`) runs last, on the CT and the staging
tumor mask, with the registry's sex, age and CA 19-9 and the TNM inputs: T from the staging
measurements (largest tumor diameter, arterial contact), N from the lymph-node model when it
ran, M missing (:mod:`inference.tasks.survival.staging`). Its answer becomes
``result.prognosis`` (:class:`~pancreas_contracts.prognosis.SurvivalPrognosis`); its stages
are timed as ``survival_radiomics``, ``survival_densenet`` and ``survival``.

There is no prognosis when there is no PDAC to give one for: no tumor segmented, the PDAC
detector found none, or the CT is strongly out of domain (the category is withheld, and a
prognosis read off the same segmentation would be no better); a note says which. A failure
of the model (``ValueError`` or ``RuntimeError``) does not lose the analysis: the result has
no ``prognosis`` and a warning beginning with :data:`SURVIVAL_FAILED` says why.
Investigational, not for clinical use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Any, Final

import torch

from inference._analysis_lymph_nodes import tumor_mask_of
from inference.bundle import sha256_file
from inference.tasks.survival import (
    SurvivalAnswer,
    SurvivalModel,
    load_survival_bundle,
    n_stage,
    t_stage,
)
from inference.timing import timed
from inference.volume import Volume
from pancreas_contracts.clinical import ClinicalVariables
from pancreas_contracts.lymph_nodes import LymphNodeAssessment
from pancreas_contracts.prognosis import StageInput, SurvivalPrognosis
from pancreas_contracts.result import BundleRef, Measurements

__all__ = [
    "SURVIVAL_FAILED",
    "SurvivalAssessor",
    "SurvivalStage",
    "run_survival",
    "staging_inputs",
]

_log = logging.getLogger(__name__)

#: How the warning of a failed survival stage begins.
SURVIVAL_FAILED: Final = "survival model failed"
#: The registry values the clinical model reads.
_REGISTRY: Final = ("sex", "age", "ca19_9_baseline")

#: What the Analyzer calls: the CT, the tumor mask, registry values and the TNM inputs.
SurvivalStage = Callable[
    [Volume, Volume, Mapping[str, float | None], Mapping[str, StageInput]], SurvivalAnswer
]


class SurvivalAssessor:
    """A survival bundle as a stage of the analysis.

    Parameters
    ----------
    bundle_path
        The survival bundle (``inference/tasks/survival``), folder or ``bundle.json``.
    device
        Where its DenseNets run.

    Raises
    ------
    BundleError
        If the bundle cannot be loaded (at start-up, not per study).
    """

    def __init__(self, bundle_path: Path, device: torch.device) -> None:
        bundle = load_survival_bundle(bundle_path)
        self._model = SurvivalModel(bundle, device)
        model = bundle.meta.get("model", {})
        self._ref = BundleRef(
            name=str(model.get("name", "")) or "survival",
            version=str(model.get("version", "")) or "0",
            sha256=sha256_file(bundle.path / "bundle.json"),
        )

    @property
    def bundle(self) -> BundleRef:
        """The survival bundle's reference (name, version, ``bundle.json`` sha256)."""
        return self._ref

    def __call__(
        self,
        image: Volume,
        tumor: Volume,
        values: Mapping[str, float | None],
        staging: Mapping[str, StageInput],
    ) -> SurvivalAnswer:
        """Run the model on the CT and its tumor mask."""
        return self._model.predict(image, tumor, values, staging)


def staging_inputs(fields: Mapping[str, Any]) -> dict[str, StageInput]:
    """T from the staging measurements, N from the lymph-node answer, M missing."""
    measured = fields.get("measurements")
    if isinstance(measured, Measurements):
        t = t_stage(measured.tumor_max_diameter_mm, measured.contact_deg)
    else:
        t = StageInput(value=None, source="missing")
    nodes = fields.get("lymph_nodes")
    n = n_stage(nodes.n_estimate if isinstance(nodes, LymphNodeAssessment) else None)
    return {"T": t, "N": n, "M": StageInput(value=None, source="missing")}


def _skip_reason(fields: Mapping[str, Any], tumor: Volume | None) -> str | None:
    outcome = fields.get("outcome", "done")
    if outcome == "no-pdac":
        return "the PDAC detector found no PDAC"
    if outcome == "out-of-domain":
        return "the CT is strongly out of the training domain"
    if outcome == "no-tumor" or tumor is None:
        return "no tumor was segmented"
    return None


def run_survival(
    stage: SurvivalStage,
    image: Volume,
    label: Volume,
    fields: Mapping[str, Any],
    clinical: ClinicalVariables | None,
    notes: list[str],
    timings: MutableMapping[str, float],
) -> SurvivalPrognosis | None:
    """Run ``stage`` after the staging (and lymph-node) answer; ``None`` if skipped or failed.

    A skip adds a note saying why there is no prognosis; a failure adds a
    :data:`SURVIVAL_FAILED` warning with the error.
    """
    tumor = tumor_mask_of(label)
    reason = _skip_reason(fields, tumor)
    if reason is not None or tumor is None:
        notes.append(f"no survival prognosis: {reason}")
        return None
    values = {} if clinical is None else {k: clinical.values.get(k) for k in _REGISTRY}
    staging = staging_inputs(fields)
    try:
        answer = timed(timings, "survival", lambda: stage(image, tumor, values, staging))
    except (ValueError, RuntimeError) as exc:
        text = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]
        _log.warning("%s (%s)", SURVIVAL_FAILED, text)
        notes.append(f"{SURVIVAL_FAILED} ({text}); no survival prognosis")
        return None
    timings.update(answer.timings_s)
    notes.extend(f"survival: {w}" for w in answer.prognosis.warnings)
    return answer.prognosis
