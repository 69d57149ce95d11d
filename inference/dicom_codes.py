"""Coded concepts, units and fixed attribute values of the node's DICOM outputs, defined once.

The SEG (:mod:`inference.seg_writer`), SR (:mod:`inference.sr_writer`) and encapsulated PDF
(:mod:`inference.pdf_report`) writers take every code from here or from
:data:`pancreas_contracts.labels.LABELS` (segment property categories and types).

Standard codes come from ``pydicom.sr.codedict.codes`` (the DICOM content mapping resources of
PS3.16) where it has them; the few standard codes it lacks are spelled out below with their
source. The NCCN resectability classes, the circumferential contact-angle method and the
node's bookkeeping concepts (clinical inputs, usage notice) have no standard code, so they are
**private codes** under the coding scheme designator ``99PANCAI``: PS3.3 section 8.2 reserves
designators beginning with ``99`` for private coding schemes. Every object that uses them
declares the scheme in the Coding Scheme Identification Sequence of its SOP Common module
(PS3.3 C.12.1, :func:`private_coding_scheme`).

Private codes (scheme ``99PANCAI``, declared as version ``1.0``):

================  ===================================================================
Code value        Code meaning
================  ===================================================================
``NCCN-CAT``      NCCN resectability category (network)
``RULE-CAT``      NCCN resectability category (contact-angle rule)
``DISAGREE``      Network and rule categories disagree (value: SCT Yes / No)
``NCCN-R``        Resectable
``NCCN-BR``       Borderline resectable
``NCCN-LA``       Locally advanced
``P-R``           Probability of resectable
``P-BR``          Probability of borderline resectable
``P-LA``          Probability of locally advanced
``UNCERT``        Ensemble uncertainty of the class probabilities
``CONTACT``       Circumferential tumor-vessel contact (measurement method of an angle)
``LOC-CONF``      Pancreas localisation confidence
``CLIN-USED``     Clinical variable used
``CLIN-MISS``     Clinical variable missing
``CLIN-IMP``      Clinical variable imputed
``CLIN-KO``       Clinical input knocked out (value: SCT Yes / No)
``REG-STATUS``    Clinical registry status
``NOTICE``        Usage notice
``WARNING``       Analysis warning
``TUMOR-SEG``     Tumor segmented (value: SCT Present / Absent; Absent: the result's
                  outcome is ``no-tumor`` and there is no category, rule category,
                  disagreement or probability in the SR)
``NO-STAGE``      No tumor segmented: staging not possible (value of ``NCCN-STAGE``)
``NCCN-STAGE``    NCCN resectability staging (a no-tumor or out-of-domain result's
                  evaluation)
``OOD-STAGE``     Out of the training domain: category withheld (value of
                  ``NCCN-STAGE`` when the result's outcome is ``out-of-domain``)
``DOMAIN``        Training-domain check (``result.domain``; values below)
``DOM-IN``        Within the training domain
``DOM-BORDER``    At the border of the training domain
``DOM-OUT``       Out of the training domain
``DOM-NA``        Training-domain check not available (the bundle has no statistics)
``DOM-REASON``    Training-domain check finding (TEXT, one per reason)
``LN-STATION``    JPS lymph-node station (TEXT: the station code and its description)
``LN-SUSP``       Lymph node suspicious for metastasis (value: SCT Yes / No)
``LN-STATUS``     Regional lymph-node status estimate (values ``LN-NPOS`` / ``LN-N0``)
``LN-NPOS``       N+: regional lymph-node metastasis estimated
``LN-N0``         N0: no regional lymph-node metastasis estimated
``LN-NPROB``      Probability of regional lymph-node metastasis (N+)
``LN-THR``        Lymph-node N+ operating threshold
``LN-NOTE``       Lymph-node assessment note (TEXT: inputs used or missing, warnings)
``LN-EST``        Lymph-node assessment (TEXT: the N estimate in one line)
``SURV-PROG``     Survival prognosis (finding type of the prognosis group)
``SURV-D1Y``      Probability of death within 1 year of diagnosis
``SURV-D2Y``      Probability of death within 2 years of diagnosis
``SURV-D3Y``      Probability of death within 3 years of diagnosis
``SURV-THR``      Survival risk cut-off (on the death probability at the risk horizon)
``SURV-HOR``      Survival risk horizon (UCUM ``a``)
``SURV-RISK``     Survival risk group (values SCT High risk / Low risk)
``SURV-T``        Clinical T category (survival model input; TEXT with its source)
``SURV-N``        Clinical N category (survival model input; TEXT with its source)
``SURV-M``        Clinical M category (survival model input; TEXT with its source)
``SURV-NOTE``     Survival prognosis note (TEXT: inputs used or missing, component
                  models' probabilities, warnings)
``SURV-EST``      Survival prognosis (TEXT: the risk group in one line)
``REVIEW``        Radiologist's review of the AI result (values ``REV-*``; SR amendment)
``REV-AGREE``     Radiologist agrees with the AI result
``REV-OVERRIDE``  Radiologist overrides the AI category
``REV-CORRECT``   Radiologist corrected the AI segmentation
``REV-CAT``       Radiologist's category (values ``NCCN-R``, ``NCCN-BR``, ``NCCN-LA``,
                  ``METASTATIC``)
``METASTATIC``    Metastatic disease
``REV-REASON``    Radiologist's reason for the review (TEXT)
================  ===================================================================
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

__all__ = [
    "ALGORITHM_FAMILY",
    "CATEGORY_CODES",
    "CATEGORY_DISAGREEMENT",
    "CLINICAL_IMPUTED",
    "CLINICAL_KNOCKED_OUT",
    "CLINICAL_MISSING",
    "CLINICAL_USED",
    "CONTACT_ANGLE",
    "CONTACT_METHOD",
    "CORRECTED_SEG_CONTENT_LABEL",
    "CORRECTED_SEG_CONTENT_PREFIX",
    "CORRECTED_SEG_SERIES_DESCRIPTION",
    "CORRECTED_SEG_SERIES_NUMBER",
    "CORRECTION_DERIVATION_DESCRIPTION",
    "CORRECTION_SOURCE_PURPOSE",
    "DETECTION_AGREEMENT",
    "DETECTION_SEG_SERIES_DESCRIPTION",
    "DETECTION_SEG_SERIES_NUMBER",
    "DIAMETER",
    "DIAMETER_DERIVATION",
    "DOMAIN_CHECK",
    "DOMAIN_GRADES",
    "DOMAIN_REASON",
    "FINDING_SITE",
    "LESION_CATEGORY",
    "LESION_FINDING",
    "LESION_PROBABILITY",
    "LOCALISATION_CONFIDENCE",
    "LYMPH_NODE",
    "LYMPH_NODE_ASSESSMENT",
    "LYMPH_NODE_CATEGORY",
    "LYMPH_NODE_LONG_AXIS",
    "LYMPH_NODE_NOTE",
    "LYMPH_NODE_PROBABILITY",
    "LYMPH_NODE_SEG_SERIES_DESCRIPTION",
    "LYMPH_NODE_SEG_SERIES_NUMBER",
    "LYMPH_NODE_SHORT_AXIS",
    "LYMPH_NODE_STATION",
    "LYMPH_NODE_SUSPICIOUS",
    "MANUFACTURER",
    "NETWORK_CATEGORY",
    "NO",
    "NO_PDAC_STAGING",
    "N_ESTIMATE",
    "N_ESTIMATE_CODES",
    "N_POSITIVE_PROBABILITY",
    "N_THRESHOLD",
    "OUT_OF_DOMAIN_STAGING",
    "PDAC_CLASSIFICATION",
    "PDAC_DETECTED",
    "PDAC_DETECTION",
    "PDAC_DETECTION_MAX",
    "PDAC_FINDING",
    "PDAC_LIKELIHOOD",
    "PDAC_THRESHOLD",
    "PDF_DOCUMENT_TITLE",
    "PDF_SERIES_DESCRIPTION",
    "PDF_SERIES_NUMBER",
    "PDF_TITLE_CODE",
    "PRIVATE_SCHEME",
    "PRIVATE_SCHEME_VERSION",
    "PROBABILITY_CODES",
    "PROCEDURE_REPORTED",
    "QUALITATIVE_EVALUATIONS",
    "REGIONAL_LYMPH_NODES",
    "REGISTRY_STATUS",
    "REVIEWER_CATEGORY",
    "REVIEWER_CATEGORY_CODES",
    "REVIEW_REASON",
    "REVIEW_VERDICT",
    "REVIEW_VERDICT_CODES",
    "RULE_CATEGORY",
    "SEG_CONTENT_LABEL",
    "SEG_SERIES_DESCRIPTION",
    "SEG_SERIES_NUMBER",
    "SOURCE_SERIES",
    "SR_AMENDMENT_SERIES_DESCRIPTION",
    "SR_AMENDMENT_SERIES_NUMBER",
    "SR_SERIES_DESCRIPTION",
    "SR_SERIES_NUMBER",
    "SURVIVAL_DEATH_PROBABILITY",
    "SURVIVAL_NOTE",
    "SURVIVAL_PROGNOSIS",
    "SURVIVAL_RISK_CUTOFF",
    "SURVIVAL_RISK_GROUP",
    "SURVIVAL_RISK_GROUPS",
    "SURVIVAL_RISK_HORIZON",
    "SURVIVAL_SUMMARY",
    "TASK_NOTE",
    "TNM_INPUT_CODES",
    "TUMOR_VOLUME",
    "UNCERTAINTY",
    "UNIT_DEGREE",
    "UNIT_MILLILITER",
    "UNIT_MILLIMETER",
    "UNIT_NONE",
    "UNIT_YEAR",
    "USAGE_NOTICE",
    "VOLUME",
    "WARNING",
    "YES",
    "private_coding_scheme",
]

# --- fixed attribute values -------------------------------------------------------------------

#: Manufacturer (0008,0070) of every object the node writes (General Equipment, PS3.3 C.7.5.1).
MANUFACTURER: Final = "PancreasAI Node"
SEG_SERIES_NUMBER: Final = 9001
SR_SERIES_NUMBER: Final = 9002
PDF_SERIES_NUMBER: Final = 9003
#: The SEG of the lesions the PDAC detector reports (result 1.5), a series of its own.
DETECTION_SEG_SERIES_NUMBER: Final = 9004
DETECTION_SEG_SERIES_DESCRIPTION: Final = "PancreasAI PDAC detection (investigational)"
#: The SEG of the nodes the lymph-node model reports (result 1.6), a series of its own.
LYMPH_NODE_SEG_SERIES_NUMBER: Final = 9005
LYMPH_NODE_SEG_SERIES_DESCRIPTION: Final = "PancreasAI lymph nodes (investigational)"
SEG_SERIES_DESCRIPTION: Final = "PancreasAI segmentation (investigational)"
SR_SERIES_DESCRIPTION: Final = "PancreasAI measurements (investigational)"
PDF_SERIES_DESCRIPTION: Final = "PancreasAI report (investigational)"
#: Content Label (0070,0080) of the SEG: CS, at most 16 of ``A-Z 0-9 _ space``.
SEG_CONTENT_LABEL: Final = "PANCREASAI"
PDF_DOCUMENT_TITLE: Final = "PancreasAI CT pancreas report (investigational)"

# --- private coding scheme --------------------------------------------------------------------

PRIVATE_SCHEME: Final = "99PANCAI"
PRIVATE_SCHEME_VERSION: Final = "1.0"


def _private(value: str, meaning: str) -> Code:
    # No Coding Scheme Version on the codes (Type 1C, not needed for a private designator);
    # the version is declared once in the Coding Scheme Identification Sequence. Readers that
    # match concept names without the version (highdicom's content search) then find them.
    return Code(value, PRIVATE_SCHEME, meaning)


def private_coding_scheme() -> CodingSchemeIdentificationItem:
    """A Coding Scheme Identification Sequence item declaring ``99PANCAI`` (PS3.3 C.12.1).

    Returns a new item on each call (the item is a mutable ``Dataset``).
    """
    return CodingSchemeIdentificationItem(
        designator=PRIVATE_SCHEME,
        name="PancreasAI Node private codes",
        version=PRIVATE_SCHEME_VERSION,
        responsible_organization="PancreasAI Node project",
    )


# --- standard codes ---------------------------------------------------------------------------

#: Algorithm Family Code Sequence value of the model (CID 7162): DCM 123110.
ALGORITHM_FAMILY: Final = codes.DCM.ArtificialIntelligence
#: TID 1500 "Procedure reported" (CID 100): LOINC 25045-6 CT unspecified body region.
PROCEDURE_REPORTED: Final = codes.LN.CTUnspecifiedBodyRegion
#: Concept Name Code Sequence of the PDF (CID 7000 document titles): LOINC 41806-1.
PDF_TITLE_CODE: Final = codes.LN.CTAbdomenReport
#: TID 1500 row 12 container; not in pydicom's code dictionary (PS3.16 TID 1500, UMLS).
QUALITATIVE_EVALUATIONS: Final = Code("C0034375", "UMLS", "Qualitative Evaluations")
#: Finding site of the tumor group (SCT 15776009 Pancreas).
FINDING_SITE: Final = codes.SCT.Pancreas
#: Tumor volume (SCT 118565006 Volume, CID 7469).
TUMOR_VOLUME: Final = codes.SCT.Volume
#: Largest 3D tumor diameter: SCT 81827009 Diameter with derivation SCT 56851009 Maximum
#: (CID 7464 "General Region of Interest Measurement Modifiers").
DIAMETER: Final = codes.SCT.Diameter
DIAMETER_DERIVATION: Final = codes.SCT.Maximum
#: Tumor-vessel contact angle (SCT 1483009 Angle), method :data:`CONTACT_METHOD`.
CONTACT_ANGLE: Final = codes.SCT.Angle
YES: Final = codes.SCT.Yes
NO: Final = codes.SCT.No

#: UCUM units (CID 7181). pydicom's dictionary has no millilitre; UCUM spells it ``ml``.
UNIT_MILLILITER: Final = Code("ml", "UCUM", "milliliter")
UNIT_MILLIMETER: Final = codes.UCUM.Millimeter
UNIT_DEGREE: Final = codes.UCUM.Degree
UNIT_NONE: Final = codes.UCUM.NoUnits
UNIT_YEAR: Final = codes.UCUM.Year

# --- private codes (see the module docstring) -------------------------------------------------

NETWORK_CATEGORY: Final = _private("NCCN-CAT", "NCCN resectability category (network)")
RULE_CATEGORY: Final = _private("RULE-CAT", "NCCN resectability category (contact-angle rule)")
CATEGORY_DISAGREEMENT: Final = _private("DISAGREE", "Network and rule categories disagree")
#: Value codes of the NCCN classes, in the order of ``CATEGORY_LABELS``.
CATEGORY_CODES: Final[tuple[Code, Code, Code]] = (
    _private("NCCN-R", "Resectable"),
    _private("NCCN-BR", "Borderline resectable"),
    _private("NCCN-LA", "Locally advanced"),
)
#: Class probability concepts, in the order of ``CATEGORY_LABELS``.
PROBABILITY_CODES: Final[tuple[Code, Code, Code]] = (
    _private("P-R", "Probability of resectable"),
    _private("P-BR", "Probability of borderline resectable"),
    _private("P-LA", "Probability of locally advanced"),
)
UNCERTAINTY: Final = _private("UNCERT", "Ensemble uncertainty of the class probabilities")
CONTACT_METHOD: Final = _private("CONTACT", "Circumferential tumor-vessel contact")
LOCALISATION_CONFIDENCE: Final = _private("LOC-CONF", "Pancreas localisation confidence")
CLINICAL_USED: Final = _private("CLIN-USED", "Clinical variable used")
CLINICAL_MISSING: Final = _private("CLIN-MISS", "Clinical variable missing")
CLINICAL_IMPUTED: Final = _private("CLIN-IMP", "Clinical variable imputed")
CLINICAL_KNOCKED_OUT: Final = _private("CLIN-KO", "Clinical input knocked out")
REGISTRY_STATUS: Final = _private("REG-STATUS", "Clinical registry status")
#: Which version of the series, with how many instances, the analysis read (result 1.4).
SOURCE_SERIES: Final = _private("SRC-SERIES", "Analysed series version")
USAGE_NOTICE: Final = _private("NOTICE", "Usage notice")
#: A line of a further task's section (its outcome, notes, findings it could not measure).
TASK_NOTE: Final = _private("TASK-NOTE", "Analysis task note")
WARNING: Final = _private("WARNING", "Analysis warning")
#: Whether the network segmented a tumor (value :data:`PRESENT` / :data:`ABSENT`).
TUMOR_SEGMENTED: Final = _private("TUMOR-SEG", "Tumor segmented")
PRESENT: Final = codes.SCT.Present
ABSENT: Final = codes.SCT.Absent
#: A no-tumor result's staging evaluation (instead of the category) and its value.
STAGING: Final = _private("NCCN-STAGE", "NCCN resectability staging")
NO_TUMOR_STAGING: Final = _private("NO-STAGE", "No tumor segmented: staging not possible")
#: An out-of-domain result's staging evaluation (instead of the category).
OUT_OF_DOMAIN_STAGING: Final = _private(
    "OOD-STAGE", "Out of the training domain: category withheld"
)
#: A no-pdac result's staging evaluation (result 1.5: the PDAC detector gated the staging).
NO_PDAC_STAGING: Final = _private("NOPDAC-STAGE", "No PDAC detected: staging not given")
#: The PDAC detection group (result 1.5): finding type SCT 700423003 Adenocarcinoma of
#: pancreas; the detector's scores as measurements, its verdict as a coded evaluation, each
#: reported lesion as a TID 1410 group with a 3D point (SCOORD3D) at its centre.
PDAC_FINDING: Final = codes.SCT.AdenocarcinomaOfPancreas
LESION_FINDING: Final = codes.SCT.Lesion
#: Segmented Property Category of a detected lesion's segment (CID 7150).
LESION_CATEGORY: Final = codes.SCT.MorphologicallyAbnormalStructure
PDAC_LIKELIHOOD: Final = _private("PDAC-LIK", "PDAC likelihood (combined score)")
PDAC_CLASSIFICATION: Final = _private("PDAC-CLS", "PDAC classification probability")
PDAC_DETECTION_MAX: Final = _private("PDAC-DMAX", "Detection map maximum")
PDAC_THRESHOLD: Final = _private("PDAC-THR", "PDAC detection operating threshold")
PDAC_DETECTED: Final = _private("PDAC-FOUND", "PDAC detected")
LESION_PROBABILITY: Final = _private("LES-PROB", "Lesion probability")
DETECTION_AGREEMENT: Final = _private("DET-AGREE", "Detection and staging segmentation")
#: The detector's answer in one line, among the qualitative evaluations (what the viewer shows).
PDAC_DETECTION: Final = _private("PDAC-DET", "PDAC detection")
#: The training-domain check (``result.domain``) and its grades, by ``DomainCheck.grade``.
DOMAIN_CHECK: Final = _private("DOMAIN", "Training-domain check")
DOMAIN_GRADES: Final = {
    "in-domain": _private("DOM-IN", "Within the training domain"),
    "borderline": _private("DOM-BORDER", "At the border of the training domain"),
    "out-of-domain": _private("DOM-OUT", "Out of the training domain"),
    "not-available": _private("DOM-NA", "Training-domain check not available"),
}
DOMAIN_REASON: Final = _private("DOM-REASON", "Training-domain check finding")

# --- lymph nodes (result 1.6, issue 24) -------------------------------------------------------

#: A reported node: Segmented Property Type / finding type and finding site SCT 59441001
#: *Lymph node* (CID 7166 segmentation property types, CID 7151), category SCT 91723000
#: *Anatomical structure* (CID 7150).
LYMPH_NODE: Final = codes.SCT.LymphNode
LYMPH_NODE_CATEGORY: Final = codes.SCT.AnatomicalStructure
#: Finding site of the patient-level group: SCT 312500006 *Regional lymph node* (CID 7600).
REGIONAL_LYMPH_NODES: Final = codes.SCT.RegionalLymphNode
#: Axial short and long axis of a node (SCT 103340004 / 103339001, CID 7469), UCUM ``mm``.
LYMPH_NODE_SHORT_AXIS: Final = codes.SCT.ShortAxis
LYMPH_NODE_LONG_AXIS: Final = codes.SCT.LongAxis
#: A node's probability of metastasis: DCM 111047 *Probability of cancer* (PS3.16 Annex D),
#: UCUM ``1``.
LYMPH_NODE_PROBABILITY: Final = codes.DCM.ProbabilityOfCancer
LYMPH_NODE_STATION: Final = _private("LN-STATION", "JPS lymph-node station")
LYMPH_NODE_SUSPICIOUS: Final = _private("LN-SUSP", "Lymph node suspicious for metastasis")
#: The patient's N estimate (a coded evaluation) and its values, by ``n_estimate``.
N_ESTIMATE: Final = _private("LN-STATUS", "Regional lymph-node status estimate")
N_ESTIMATE_CODES: Final = {
    "N+": _private("LN-NPOS", "N+: regional lymph-node metastasis estimated"),
    "N0": _private("LN-N0", "N0: no regional lymph-node metastasis estimated"),
}
N_POSITIVE_PROBABILITY: Final = _private(
    "LN-NPROB", "Probability of regional lymph-node metastasis (N+)"
)
N_THRESHOLD: Final = _private("LN-THR", "Lymph-node N+ operating threshold")
LYMPH_NODE_NOTE: Final = _private("LN-NOTE", "Lymph-node assessment note")
#: The lymph-node answer in one line, among the qualitative evaluations (like ``PDAC-DET``).
LYMPH_NODE_ASSESSMENT: Final = _private("LN-EST", "Lymph-node assessment")

# --- survival prognosis (result 1.7, issue 25) ------------------------------------------------

#: Finding type of the prognosis group (no standard concept for a model's survival prognosis).
SURVIVAL_PROGNOSIS: Final = _private("SURV-PROG", "Survival prognosis")
#: The fusion model's probability of death within 1, 2 and 3 years (the order of
#: ``pancreas_contracts.prognosis.HORIZONS_YEARS``), UCUM ``1`` like every probability here.
SURVIVAL_DEATH_PROBABILITY: Final[tuple[Code, Code, Code]] = (
    _private("SURV-D1Y", "Probability of death within 1 year of diagnosis"),
    _private("SURV-D2Y", "Probability of death within 2 years of diagnosis"),
    _private("SURV-D3Y", "Probability of death within 3 years of diagnosis"),
)
SURVIVAL_RISK_CUTOFF: Final = _private("SURV-THR", "Survival risk cut-off")
SURVIVAL_RISK_HORIZON: Final = _private("SURV-HOR", "Survival risk horizon")
#: The risk group (a coded evaluation) and its values, by ``risk_group``: SCT 15508007 *High
#: risk* and SCT 75976002 *Low risk* (pydicom's code dictionary). Read-only, like the TNM codes:
#: every writer in the process shares them.
SURVIVAL_RISK_GROUP: Final = _private("SURV-RISK", "Survival risk group")
SURVIVAL_RISK_GROUPS: Final = MappingProxyType(
    {"high": codes.SCT.HighRisk, "low": codes.SCT.LowRisk}
)
#: The clinical model's TNM inputs (AJCC 8th edition), by ``staging`` key; pydicom's dictionary
#: has no TNM category concepts, so they are private.
TNM_INPUT_CODES: Final = MappingProxyType(
    {
        "T": _private("SURV-T", "Clinical T category (survival model input)"),
        "N": _private("SURV-N", "Clinical N category (survival model input)"),
        "M": _private("SURV-M", "Clinical M category (survival model input)"),
    }
)
SURVIVAL_NOTE: Final = _private("SURV-NOTE", "Survival prognosis note")
#: The prognosis in one line, among the qualitative evaluations (like ``LN-EST``).
SURVIVAL_SUMMARY: Final = _private("SURV-EST", "Survival prognosis estimate")

# --- the radiologist's segmentation correction (issue 26) --------------------------------------

#: The reviewer-corrected SEG (:mod:`inference.seg_correction`): a series after the AI's
#: (:data:`SEG_SERIES_NUMBER`), one per correction.
CORRECTED_SEG_SERIES_NUMBER: Final = 9011
CORRECTED_SEG_SERIES_DESCRIPTION: Final = (
    "PancreasAI segmentation, reviewer-corrected (investigational)"
)
#: Content Label (0070,0080): CS, at most 16 of ``A-Z 0-9 _ space`` (PS3.5 6.2).
CORRECTED_SEG_CONTENT_LABEL: Final = "PANCREASAI_CORR"
#: Content Description's prefix (the AI model's name and version follow).
CORRECTED_SEG_CONTENT_PREFIX: Final = "Reviewer-corrected segmentation"
#: Derivation Description (0008,2111, PS3.3 C.12.4) of the corrected SEG.
CORRECTION_DERIVATION_DESCRIPTION: Final = (
    "AI segmentation (Source Image Sequence) edited by a radiologist in the viewer"
)
#: Purpose of Reference of the AI SEG in the corrected SEG's Source Image Sequence (CID 7202):
#: DCM 121322 "Source image for image processing operation".
CORRECTION_SOURCE_PURPOSE: Final = codes.DCM.SourceImageForImageProcessingOperation
#: The SR amendment (:mod:`inference.sr_amendment`), a series after the corrected SEG's.
SR_AMENDMENT_SERIES_NUMBER: Final = 9012
SR_AMENDMENT_SERIES_DESCRIPTION: Final = (
    "PancreasAI measurements, reviewer amendment (investigational)"
)
#: A structure's volume (SCT 118565006 Volume, CID 7469), UCUM ``ml``.
VOLUME: Final = codes.SCT.Volume
REVIEW_VERDICT: Final = _private("REVIEW", "Radiologist's review of the AI result")
#: Value codes of the review verdicts, by ``pancreas_contracts.boards.ReviewVerdict`` value.
REVIEW_VERDICT_CODES: Final = MappingProxyType(
    {
        "agree": _private("REV-AGREE", "Radiologist agrees with the AI result"),
        "override": _private("REV-OVERRIDE", "Radiologist overrides the AI category"),
        "correct": _private("REV-CORRECT", "Radiologist corrected the AI segmentation"),
    }
)
REVIEWER_CATEGORY: Final = _private("REV-CAT", "Radiologist's category")
#: Value codes of the board categories, by ``pancreas_contracts.boards.BoardCategory`` value:
#: the NCCN classes' codes, and a private one for metastatic disease (the node has no M model).
REVIEWER_CATEGORY_CODES: Final = MappingProxyType(
    {
        "resectable": CATEGORY_CODES[0],
        "borderline": CATEGORY_CODES[1],
        "locally-advanced": CATEGORY_CODES[2],
        "metastatic": _private("METASTATIC", "Metastatic disease"),
    }
)
REVIEW_REASON: Final = _private("REV-REASON", "Radiologist's reason for the review")
