"""The PDAC detection content of the TID 1500 SR (result schema 1.5), for :mod:`sr_writer`.

- One TID 1501 group, finding type SCT 700423003 *Adenocarcinoma of pancreas*: the detector's
  combined likelihood, its two scores and the gate's threshold (UCUM ``1``), whether a PDAC was
  detected (SCT Yes/No) and how the staging segmentation relates (``DET-AGREE`` TEXT).
- One TID 1410 group per reported lesion, finding type SCT 52988006 *Lesion*, located by a
  SCOORD3D point at its centre in the CT's frame of reference (PS3.3 C.18.9), with its largest
  diameter (mm), volume (ml) and probability.

Every group names the detector as its algorithm (TID 4019).
"""

from __future__ import annotations

import highdicom as hd
import numpy as np
from pydicom.uid import generate_uid

from inference.dicom_codes import (
    DETECTION_AGREEMENT,
    DIAMETER,
    DIAMETER_DERIVATION,
    LESION_FINDING,
    LESION_PROBABILITY,
    NO,
    PDAC_CLASSIFICATION,
    PDAC_DETECTED,
    PDAC_DETECTION_MAX,
    PDAC_FINDING,
    PDAC_LIKELIHOOD,
    PDAC_THRESHOLD,
    TUMOR_VOLUME,
    UNIT_MILLILITER,
    UNIT_MILLIMETER,
    UNIT_NONE,
    YES,
)
from pancreas_contracts.detection import DetectedLesion, Detection

__all__ = ["detection_groups"]

_Group = (
    hd.sr.MeasurementsAndQualitativeEvaluations
    | hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations
)


def detection_groups(detection: Detection, frame_of_reference_uid: str) -> list[_Group]:
    """The detection group and one group per lesion (see the module docstring)."""
    name, _, version = detection.model_version.partition(" ")
    algorithm = hd.sr.AlgorithmIdentification(name=name or "pdac-detection", version=version or "0")
    scores = [
        (PDAC_LIKELIHOOD, detection.pdac_likelihood),
        (PDAC_CLASSIFICATION, detection.classification),
        (PDAC_DETECTION_MAX, detection.detection_max),
        (PDAC_THRESHOLD, detection.threshold),
    ]
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=generate_uid(), identifier="PDAC detection"
        ),
        finding_type=PDAC_FINDING,
        algorithm_id=algorithm,
        measurements=[hd.sr.Measurement(name=c, value=v, unit=UNIT_NONE) for c, v in scores],
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(PDAC_DETECTED, YES if detection.detected else NO)
        ],
    )
    if detection.agreement is not None:
        group[0].ContentSequence.append(
            hd.sr.TextContentItem(
                name=DETECTION_AGREEMENT,
                value=detection.agreement,
                relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
            )
        )
    lesions = [
        _lesion_group(lesion, n, algorithm, frame_of_reference_uid)
        for n, lesion in enumerate(detection.lesions, start=1)
    ]
    return [group, *lesions]


def _lesion_group(
    lesion: DetectedLesion,
    number: int,
    algorithm: hd.sr.AlgorithmIdentification,
    frame_of_reference_uid: str,
) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations:
    region = hd.sr.ImageRegion3D(
        graphic_type=hd.sr.GraphicTypeValues3D.POINT,
        graphic_data=np.asarray([lesion.centre_lps_mm], dtype=np.float64),
        frame_of_reference_uid=frame_of_reference_uid,
    )
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=generate_uid(), identifier=f"Detected lesion {number}"
        ),
        referenced_region=region,
        finding_type=LESION_FINDING,
        algorithm_id=algorithm,
        measurements=[
            hd.sr.Measurement(
                name=DIAMETER,
                value=lesion.diameter_mm,
                unit=UNIT_MILLIMETER,
                derivation=DIAMETER_DERIVATION,
            ),
            hd.sr.Measurement(name=TUMOR_VOLUME, value=lesion.volume_ml, unit=UNIT_MILLILITER),
            hd.sr.Measurement(name=LESION_PROBABILITY, value=lesion.probability, unit=UNIT_NONE),
        ],
    )
