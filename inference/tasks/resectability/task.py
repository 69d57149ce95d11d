"""The resectability task: cube, ensemble, labels, measurements and the NCCN category.

Steps (timed in ``result.timings_s``), after the pipeline has read and localised the CT:

1. ``preprocess``: the bundle's cube (160 mm) around the localised pancreas
   (:func:`inference.preprocessing.preprocess_volume`); a cube partly outside the scan is
   padded with a warning.
2. ``inference``: every bundle member, sliding window with Gaussian blending where the cube is
   larger than the network's window; mean probabilities, their spread as uncertainty.
3. ``postprocess``: argmax, largest connected component per organ/vessel, checks (a pancreas is
   found and not cut by the end of the scan), then the label map on the CT grid (nearest
   neighbour), where tumor components below the bundle's ``inference.min_tumor_ml`` (default
   0.1 mL) or away from the pancreas are removed (``_post.filter_tumor``).
4. ``measure``: tumor volume, diameter, contact angles and the NCCN rule category
   (:func:`inference.tasks.resectability.measurements.measure`); disagreement with the network
   is flagged.
5. ``domain``: the CT's intensities and the segmentation against the bundle's training cohort
   (:mod:`inference.domain`), in ``result.domain``; ``not-available`` for a bundle without a
   ``domain`` section. **Out of domain** (with a tumor): the NCCN category and the rule
   category are withheld (``outcome`` ``out-of-domain``, the warning
   :data:`pancreas_contracts.result.OUT_OF_DOMAIN_NOTE` and the reasons); the segmentation and
   the measurements are still written.

No tumor left after post-processing: the result's ``outcome`` is ``no-tumor``, with no NCCN
category, no rule category, no disagreement, no size and no contact angle, and the warning
"no tumor segmented: staging not possible" (:data:`pancreas_contracts.result.NO_TUMOR_NOTE`).

Clinical inputs: ``None`` (or all missing) takes the knock-out path - the models use their
training-mean clinical embedding - and the result says so (``result.clinical``). Otherwise
missing variables are filled by the bundle's KNN/mode imputer and listed as imputed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch

from inference.bundle import BundleError, BundleMember, LoadedBundle
from inference.clinical_preprocessing import clinical_matrix
from inference.domain import case_stats, check_domain
from inference.preprocessing import preprocess_volume
from inference.tasks.protocol import AnalysisError, TaskContext, TaskOutput
from inference.tasks.resectability._ensemble import EnsembleOutput, run_ensemble
from inference.tasks.resectability._post import (
    DEFAULT_MIN_TUMOR_ML,
    CtWindow,
    clean_labels,
    ct_window,
    cube_reference,
    field_of_view,
    filter_tumor,
    has_pancreas,
    pancreas_is_cut,
    paste,
)
from inference.tasks.resectability.measurements import MeasurementResult, measure
from inference.timing import timed
from inference.volume import Volume
from pancreas_contracts.clinical import CLINICAL_VARIABLES, ClinicalVariables
from pancreas_contracts.result import (
    CATEGORY_LABELS,
    NO_TUMOR_NOTE,
    OUT_OF_DOMAIN_NOTE,
    Category,
    ClinicalUse,
    DomainCheck,
)

__all__ = [
    "NAME",
    "ResectabilityTask",
    "check_clinical_spec",
    "clinical_weight_notes",
    "min_tumor_ml",
]

#: The task's name (its folder).
NAME: Final = "resectability"  # = inference.tasks.resectability.NAME
_ALL_VARIABLES: Final = tuple(v.name for v in CLINICAL_VARIABLES)


def check_clinical_spec(bundle: LoadedBundle) -> None:
    """Refuse a bundle whose clinical variables differ from the node's 17.

    Raises
    ------
    BundleError
        If the bundle's ``clinical_variables`` are not the node's, in the node's order.
    """
    names = tuple(str(v.get("name")) for v in bundle.meta.get("clinical_variables", []))
    if names != _ALL_VARIABLES:
        raise BundleError(
            f"bundle {bundle.path}: its clinical variables differ from this node's registry "
            f"specification ({len(names)} vs {len(_ALL_VARIABLES)} variables)"
        )


def min_tumor_ml(bundle: LoadedBundle) -> float:
    """The bundle's smallest tumor component (``inference.min_tumor_ml``), in mL.

    Raises
    ------
    BundleError
        If the value is not a finite number of at least 0.
    """
    value = bundle.meta.get("inference", {}).get("min_tumor_ml", DEFAULT_MIN_TUMOR_ML)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1e6:
        raise BundleError(
            f"bundle {bundle.path}: inference.min_tumor_ml must be a number of mL >= 0"
        )
    return float(value)


def clinical_weight_notes(members: Sequence[BundleMember]) -> tuple[str, ...]:
    """A note when logit-sum fusion gave every clinical expert weight 0 (inputs read, unused).

    Parameters
    ----------
    members
        The bundle's models.

    Returns
    -------
    tuple of str
        The note, or nothing for other models and for a clinical expert with a weight.
    """
    weights = [w for m in members if (w := m.model.clinical_expert_weight) is not None]
    if weights and max(weights) == 0.0:
        return (
            "the model's clinical expert has weight 0 (no gain on its validation patients): "
            "the category rests on the CT alone",
        )
    return ()


def _clinical_use(
    clinical: ClinicalVariables | None, ensemble: EnsembleOutput, registry_status: str
) -> tuple[ClinicalUse, tuple[str, ...]]:
    if clinical is None or not clinical.present:
        use = ClinicalUse(missing=_ALL_VARIABLES, knocked_out=True, registry_status=registry_status)
        return use, ("no clinical variables: knock-out path (imaging only)",)
    if ensemble.knocked_out:
        use = ClinicalUse(
            missing=clinical.missing, knocked_out=True, registry_status=registry_status
        )
        return use, ("the bundle's model does not use clinical variables (CT only)",)
    use = ClinicalUse(
        used=clinical.present,
        missing=clinical.missing,
        imputed=ensemble.imputed,
        knocked_out=False,
        registry_status=registry_status,
    )
    return use, ()


class ResectabilityTask:
    """NCCN resectability with the bundle's Swin-UNETR ensemble (``docs/method.md``).

    Parameters
    ----------
    bundle
        The loaded bundle (its members are moved to ``device`` and set to eval mode).
    device
        Where the networks run.

    Raises
    ------
    BundleError
        If the bundle's clinical variables differ from the node's.
    """

    def __init__(self, bundle: LoadedBundle, device: torch.device) -> None:
        check_clinical_spec(bundle)
        self._bundle = bundle
        self._device = device
        for member in bundle.members:
            member.model.to(device).eval()
        inference = bundle.meta.get("inference", {})
        self._roi = int(inference.get("roi_size", bundle.preprocess.target_size))
        self._min_tumor_ml = min_tumor_ml(bundle)

    @property
    def name(self) -> str:
        """``resectability``."""
        return NAME

    def run(self, context: TaskContext) -> TaskOutput:
        """Segment, measure and classify one CT (see the module docstring).

        Raises
        ------
        AnalysisError
            ``outside-scan``, ``non-finite``, ``no-pancreas`` or ``pancreas-cut``.
        """
        timings: dict[str, float] = {}
        notes: list[str] = []
        image = context.image
        values, cube, inside = timed(timings, "preprocess", lambda: self._cube(context))
        coverage = float(inside.mean())
        if coverage < 1.0:
            cube_mm = self._bundle.preprocess.cube_mm
            notes.append(f"the {cube_mm:.0f} mm cube is {coverage:.0%} inside the scan")
        clinical = context.clinical
        raw = None if clinical is None or not clinical.present else clinical_matrix([clinical])
        flips = context.tta_flips
        ensemble = timed(timings, "inference", lambda: self._infer(values, raw, flips))
        label_ct = timed(
            timings, "postprocess", lambda: self._labels(ensemble, cube, inside, image)
        )
        if context.on_label_map is not None:
            context.on_label_map(label_ct)
        measured = timed(timings, "measure", lambda: measure(label_ct))
        no_tumor = measured.tumor_volume_ml is None
        if no_tumor:  # "no tumor found" is said as the note the result requires
            notes.append(NO_TUMOR_NOTE)
            notes.extend(w for w in measured.warnings if w != "no tumor found")
        else:
            notes.extend(measured.warnings)
        domain = timed(timings, "domain", lambda: self._domain(context, label_ct))
        withheld = domain.grade == "out-of-domain" and not no_tumor
        if withheld:
            notes.append(OUT_OF_DOMAIN_NOTE)
        if domain.grade in ("borderline", "out-of-domain"):
            notes.extend(f"domain check: {reason}" for reason in domain.reasons)
        use, clinical_notes = _clinical_use(clinical, ensemble, context.registry_status)
        notes.extend(clinical_notes)
        if not use.knocked_out:
            notes.extend(clinical_weight_notes(self._bundle.members))
        if len(self._bundle.members) == 1 and not no_tumor and not withheld and not flips:
            notes.append("single-model bundle: no ensemble spread (uncertainty 0)")
        if flips and not no_tumor and not withheld:
            notes.append(
                f"uncertainty: spread over {ensemble.passes} test-time flip passes per model"
            )
        fields = self._fields(ensemble, measured, use)
        if withheld:
            fields.update(outcome="out-of-domain", category=None, rule_category=None)
            fields["disagreement"] = False
        return TaskOutput(
            result_update={**fields, "domain": domain},
            label_map=label_ct,
            warnings=tuple(notes),
            timings_s=timings,
        )

    def _domain(self, context: TaskContext, label_ct: Volume) -> DomainCheck:
        """The CT and its segmentation against the bundle's training cohort."""
        centre = context.localisation.centre_mm
        stats = case_stats(context.image, label_ct, self._bundle.preprocess, centre)
        return check_domain(self._bundle.domain, stats)

    def _cube(
        self, context: TaskContext
    ) -> tuple[npt.NDArray[np.float32], Volume, npt.NDArray[np.bool_]]:
        config = self._bundle.preprocess
        loc = context.localisation
        centre = np.asarray(loc.centre_mm, dtype=np.float64)
        cube = cube_reference(centre, config.target_size, config.spacing_mm)
        inside = field_of_view(context.image, cube)
        if not inside.any():
            raise AnalysisError("outside-scan", "the analysis cube misses the scan")
        values = preprocess_volume(context.image, config, centre_mm=loc.centre_mm).image
        if not np.isfinite(values).all():
            raise AnalysisError("non-finite", "NaN or infinite values after preprocessing")
        return values, cube, inside

    def _infer(
        self, values: npt.NDArray[np.float32], raw: npt.NDArray[np.float64] | None, flips: bool
    ) -> EnsembleOutput:
        try:
            return run_ensemble(
                self._bundle.members, values, raw, device=self._device, roi=self._roi,
                flips=flips,
            )  # fmt: skip
        except ValueError as exc:
            raise AnalysisError("non-finite", str(exc)) from exc

    def _labels(
        self,
        ensemble: EnsembleOutput,
        cube: Volume,
        inside: npt.NDArray[np.bool_],
        image: Volume,
    ) -> Volume:
        labels = np.argmax(ensemble.seg_probabilities, axis=0).astype(np.uint8)
        labels[~inside] = 0
        labels, _ = clean_labels(labels)
        if not has_pancreas(labels):
            raise AnalysisError("no-pancreas", "the network found no pancreas in the cube")
        if pancreas_is_cut(labels, inside):
            raise AnalysisError("pancreas-cut", "the pancreas is cut by the end of the scan")
        # Mapped back and filtered only in the CT box the labels reach (zeros elsewhere).
        window = ct_window(labels, cube, image)
        part, _ = filter_tumor(window.labels, self._min_tumor_ml)
        if not has_pancreas(part.array):
            raise AnalysisError("no-pancreas", "the pancreas is too small for the CT grid")
        return paste(CtWindow(part, window.window), image)

    @staticmethod
    def _fields(
        ensemble: EnsembleOutput, measured: MeasurementResult, use: ClinicalUse
    ) -> dict[str, Any]:
        if measured.tumor_volume_ml is None:  # no tumor: nothing to stage
            return {
                "outcome": "no-tumor",
                "category": None,
                "rule_category": None,
                "disagreement": False,
                "measurements": measured.to_measurements(),
                "clinical": use,
            }
        probs = tuple(float(p) for p in ensemble.probabilities)
        label = CATEGORY_LABELS[int(np.argmax(ensemble.probabilities))]
        rule = None if measured.rule_category is None else CATEGORY_LABELS[measured.rule_category]
        category = Category.model_validate(
            {
                "label": label,
                "probabilities": (probs[0], probs[1], probs[2]),
                "uncertainty": round(ensemble.uncertainty, 6),
                "ensemble_size": len(ensemble.member_probabilities),
                "passes": ensemble.passes if ensemble.passes > 1 else None,
            }
        )
        return {
            "category": category,
            "rule_category": rule,
            "disagreement": rule is not None and rule != label,
            "measurements": measured.to_measurements(),
            "clinical": use,
        }
