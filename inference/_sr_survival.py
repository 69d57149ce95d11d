"""The survival prognosis in the TID 1500 SR (result schema 1.7, issue 25), for :mod:`sr_writer`.

One patient-level Measurement Group (PS3.16 TID 1501 *Measurement and Qualitative Evaluation
Group*, the template of the lymph-node model's N-estimate group): the prognosis concerns the
patient, not a region, so it references no segment (TID 1411 needs one) and carries finding
type ``SURV-PROG`` *Survival prognosis*, finding site SCT 15776009 *Pancreas*, tracking
identifier ``Survival prognosis`` and the survival model as its TID 4019 Algorithm
Identification (name and version from ``model_version``). Its content:

- TID 300 measurements: the fusion model's probability of death within 1, 2 and 3 years
  (``SURV-D1Y`` / ``SURV-D2Y`` / ``SURV-D3Y``), and the risk cut-off (``SURV-THR``), in UCUM
  ``1`` like every probability the node reports (CID 7181); the horizon the cut-off applies to
  (``SURV-HOR``, UCUM ``a``);
- the risk group as a coded evaluation (``SURV-RISK``: SCT 15508007 *High risk* / SCT 75976002
  *Low risk*);
- TEXT items, as the lymph-node group writes its inputs: the TNM inputs (``SURV-T`` /
  ``SURV-N`` / ``SURV-M``: the value and where it came from, or ``missing``), and ``SURV-NOTE``
  items for the inputs used and missing, each component model's probabilities and the model's
  warnings.

:func:`survival_line` is the one line the SR's qualitative evaluations (``SURV-EST``) and the
PDF print. Codes: :mod:`inference.dicom_codes` (private ones under ``99PANCAI``).
"""

from __future__ import annotations

from typing import Final, Literal

import highdicom as hd
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from inference.dicom_codes import (
    FINDING_SITE,
    SURVIVAL_DEATH_PROBABILITY,
    SURVIVAL_NOTE,
    SURVIVAL_PROGNOSIS,
    SURVIVAL_RISK_CUTOFF,
    SURVIVAL_RISK_GROUP,
    SURVIVAL_RISK_GROUPS,
    SURVIVAL_RISK_HORIZON,
    TNM_INPUT_CODES,
    UNIT_NONE,
    UNIT_YEAR,
)
from pancreas_contracts.prognosis import StageInput, SurvivalPrognosis

__all__ = ["TRACKING_IDENTIFIER", "survival_group", "survival_line", "tnm_inputs"]

#: Tracking Identifier (TID 1501 row 2) of the prognosis group: how a reader finds it.
TRACKING_IDENTIFIER: Final = "Survival prognosis"
_TNM: Final[tuple[Literal["T", "N", "M"], ...]] = ("T", "N", "M")


def survival_line(prognosis: SurvivalPrognosis) -> str:
    """The prognosis in one line (the SR's ``SURV-EST`` item, the PDF)."""
    return f"Survival prognosis ({prognosis.model_version}): {prognosis.describe()}"


def _stage_text(stage: StageInput | None) -> str:
    if stage is None or stage.value is None:
        return "missing"
    return f"{stage.value} (source: {stage.source})"


def tnm_inputs(prognosis: SurvivalPrognosis) -> list[tuple[Literal["T", "N", "M"], str]]:
    """The TNM inputs as the SR and the PDF word them: ``("T", "T3 (source: node)")``.

    An input the model lacked (or that is absent from ``staging``) reads ``missing``.
    """
    return [(key, _stage_text(prognosis.staging.get(key))) for key in _TNM]


def _component_note(name: str, probabilities: tuple[float, float, float]) -> str:
    values = "/".join(f"{p:.2f}" for p in probabilities)
    return f"{name} model: death by 1/2/3 years {values}"


def survival_group(
    prognosis: SurvivalPrognosis,
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """The TID 1501 prognosis group (see the module docstring).

    Parameters
    ----------
    prognosis
        ``result.prognosis``.

    Returns
    -------
    highdicom.sr.MeasurementsAndQualitativeEvaluations
        The group, for the report's Imaging Measurements.
    """
    name, _, version = prognosis.model_version.partition(" ")
    algorithm = hd.sr.AlgorithmIdentification(name=name or "survival", version=version or "0")
    measurements = [
        hd.sr.Measurement(name=code, value=p, unit=UNIT_NONE)
        for code, p in zip(SURVIVAL_DEATH_PROBABILITY, prognosis.death_probability, strict=True)
    ]
    measurements += [
        hd.sr.Measurement(name=SURVIVAL_RISK_CUTOFF, value=prognosis.risk_cutoff, unit=UNIT_NONE),
        hd.sr.Measurement(
            name=SURVIVAL_RISK_HORIZON, value=prognosis.risk_horizon_years, unit=UNIT_YEAR
        ),
    ]
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=generate_uid(), identifier=TRACKING_IDENTIFIER
        ),
        finding_type=SURVIVAL_PROGNOSIS,
        finding_sites=[hd.sr.FindingSite(anatomic_location=FINDING_SITE)],
        algorithm_id=algorithm,
        measurements=measurements,
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(
                SURVIVAL_RISK_GROUP, SURVIVAL_RISK_GROUPS[prognosis.risk_group]
            )
        ],
    )
    items = group[0].ContentSequence
    for key, text in tnm_inputs(prognosis):
        items.append(_text(TNM_INPUT_CODES[key], text))
    notes = (
        f"inputs used: {', '.join(prognosis.inputs_used) or 'none'}",
        f"inputs missing: {', '.join(prognosis.inputs_missing) or 'none'}",
        *(_component_note(n, m.death_probability) for n, m in prognosis.components.items()),
        *prognosis.warnings,
    )
    for note in notes:
        items.append(_text(SURVIVAL_NOTE, note))
    return group


def _text(name: Code, value: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(
        name=name, value=value, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
    )
