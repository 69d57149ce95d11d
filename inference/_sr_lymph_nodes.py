"""The lymph-node content of the TID 1500 SR (result schema 1.6, issue 24), for :mod:`sr_writer`.

- One TID 1501 group (PS3.16), finding type SCT 312500006 *Regional lymph node*, finding site
  SCT 15776009 *Pancreas*: the patient's N+ probability and the operating threshold (UCUM
  ``1``), the N estimate as a coded evaluation (``LN-STATUS``: ``LN-NPOS`` N+ / ``LN-N0`` N0),
  and ``LN-NOTE`` TEXT items for the inputs used and missing and the model's warnings.
- One group per reported node, the most probable first: a TID 1411 Volumetric ROI referencing
  the node's segment in the lymph-node SEG (``seg-lymph-nodes.dcm``, one segment per node, its
  Tracking UID reused as the group's), finding type and site SCT 59441001 *Lymph node*,
  category SCT 91723000 *Anatomical structure*; measurements (TID 300): axial short and long
  axis (SCT 103340004 / 103339001, UCUM ``mm``), volume (SCT 118565006, UCUM ``ml``) and the
  probability of metastasis (DCM 111047 *Probability of cancer*, UCUM ``1``); the coded
  evaluation ``LN-SUSP`` (SCT Yes / No) and the JPS station as ``LN-STATION`` TEXT. A node
  without a segment (none of its voxels on the source images) gets a TID 1410 group with a
  SCOORD3D point at its centre instead (PS3.3 C.18.9), like a detected lesion.

Every group names the lymph-node model as its algorithm (TID 4019). Codes:
:mod:`inference.dicom_codes` (private ones under ``99PANCAI``).
"""

from __future__ import annotations

from collections.abc import Sequence

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from inference.dicom_codes import (
    FINDING_SITE,
    LYMPH_NODE,
    LYMPH_NODE_CATEGORY,
    LYMPH_NODE_LONG_AXIS,
    LYMPH_NODE_NOTE,
    LYMPH_NODE_PROBABILITY,
    LYMPH_NODE_SHORT_AXIS,
    LYMPH_NODE_STATION,
    LYMPH_NODE_SUSPICIOUS,
    N_ESTIMATE,
    N_ESTIMATE_CODES,
    N_POSITIVE_PROBABILITY,
    N_THRESHOLD,
    NO,
    REGIONAL_LYMPH_NODES,
    TUMOR_VOLUME,
    UNIT_MILLILITER,
    UNIT_MILLIMETER,
    UNIT_NONE,
    YES,
)
from inference.lymph_node_seg import node_segments
from pancreas_contracts.lymph_nodes import JPS_STATIONS, LymphNodeAssessment, LymphNodeFinding

__all__ = ["lymph_node_groups", "lymph_node_line"]

_Group = (
    hd.sr.MeasurementsAndQualitativeEvaluations
    | hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations
    | hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations
)
_STATIONS = {s.code: s.description for s in JPS_STATIONS}


def lymph_node_line(assessment: LymphNodeAssessment) -> str:
    """The answer in one line (the SR's ``LN-EST`` item, the PDF, the ``analyze`` output)."""
    return f"Lymph nodes ({assessment.model_version}): {assessment.describe()}"


def lymph_node_groups(
    assessment: LymphNodeAssessment,
    seg: Dataset | None,
    source_series_uid: str,
    frame_of_reference_uid: str,
) -> list[_Group]:
    """The patient group and one group per node (see the module docstring).

    Parameters
    ----------
    assessment
        ``result.lymph_nodes``.
    seg
        The lymph-node SEG (``None`` when none was written: every node then gets a point).
    source_series_uid
        The CT series the SEG derives from.
    frame_of_reference_uid
        The CT's Frame of Reference (for the points of nodes without a segment).
    """
    name, _, version = assessment.model_version.partition(" ")
    algorithm = hd.sr.AlgorithmIdentification(name=name or "lymph-nodes", version=version or "0")
    segments = {} if seg is None else node_segments(seg)
    groups: list[_Group] = [_patient_group(assessment, algorithm)]
    for finding in assessment.nodes:
        segment = segments.get(finding.node_id)
        if seg is not None and segment is not None:
            number, uid = segment
            reference = hd.sr.ReferencedSegment(
                sop_class_uid=str(seg.SOPClassUID),
                sop_instance_uid=str(seg.SOPInstanceUID),
                segment_number=number,
                source_series=hd.sr.SourceSeriesForSegmentation(source_series_uid),
            )
            group: _Group = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=_tracking(finding, uid),
                referenced_segment=reference,
                **_node_content(finding, algorithm),  # type: ignore[arg-type]
            )
        else:
            region = hd.sr.ImageRegion3D(
                graphic_type=hd.sr.GraphicTypeValues3D.POINT,
                graphic_data=np.asarray([finding.centre_lps_mm], dtype=np.float64),
                frame_of_reference_uid=frame_of_reference_uid,
            )
            group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=_tracking(finding, generate_uid()),
                referenced_region=region,
                **_node_content(finding, algorithm),  # type: ignore[arg-type]
            )
        station = finding.station
        text = "not assigned" if station is None else f"{station}: {_STATIONS[station]}"
        group[0].ContentSequence.append(_text(LYMPH_NODE_STATION, text))
        groups.append(group)
    return groups


def _tracking(finding: LymphNodeFinding, uid: str) -> hd.sr.TrackingIdentifier:
    return hd.sr.TrackingIdentifier(uid=uid, identifier=f"Lymph node {finding.node_id}")


def _node_content(
    finding: LymphNodeFinding, algorithm: hd.sr.AlgorithmIdentification
) -> dict[str, object]:
    """What a node's group says, whichever template holds it."""
    return {
        "finding_type": LYMPH_NODE,
        "finding_category": LYMPH_NODE_CATEGORY,
        "finding_sites": [hd.sr.FindingSite(anatomic_location=LYMPH_NODE)],
        "algorithm_id": algorithm,
        "measurements": [
            hd.sr.Measurement(
                name=LYMPH_NODE_SHORT_AXIS, value=finding.short_axis_mm, unit=UNIT_MILLIMETER
            ),
            hd.sr.Measurement(
                name=LYMPH_NODE_LONG_AXIS, value=finding.long_axis_mm, unit=UNIT_MILLIMETER
            ),
            hd.sr.Measurement(name=TUMOR_VOLUME, value=finding.volume_ml, unit=UNIT_MILLILITER),
            hd.sr.Measurement(
                name=LYMPH_NODE_PROBABILITY, value=finding.probability, unit=UNIT_NONE
            ),
        ],
        "qualitative_evaluations": [
            hd.sr.QualitativeEvaluation(LYMPH_NODE_SUSPICIOUS, YES if finding.suspicious else NO)
        ],
    }


def _patient_group(
    assessment: LymphNodeAssessment, algorithm: hd.sr.AlgorithmIdentification
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=generate_uid(), identifier="Lymph-node assessment"
        ),
        finding_type=REGIONAL_LYMPH_NODES,
        finding_sites=[hd.sr.FindingSite(anatomic_location=FINDING_SITE)],
        algorithm_id=algorithm,
        measurements=[
            hd.sr.Measurement(
                name=N_POSITIVE_PROBABILITY,
                value=assessment.n_positive_probability,
                unit=UNIT_NONE,
            ),
            hd.sr.Measurement(name=N_THRESHOLD, value=assessment.threshold, unit=UNIT_NONE),
        ],
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(N_ESTIMATE, N_ESTIMATE_CODES[assessment.n_estimate])
        ],
    )
    notes: Sequence[str] = (
        f"inputs used: {', '.join(assessment.inputs_used) or 'none'}",
        f"inputs missing: {', '.join(assessment.inputs_missing) or 'none'}",
        *assessment.warnings,
    )
    for note in notes:
        group[0].ContentSequence.append(_text(LYMPH_NODE_NOTE, note))
    return group


def _text(name: Code, value: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(
        name=name, value=value, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
    )
