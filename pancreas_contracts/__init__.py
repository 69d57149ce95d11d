"""Shared, versioned contracts that every room of the node reads.

This package sits upstream of ``dicom_node``, ``db``, ``inference`` and ``orthanc_plugin``
and depends on none of them: the typed settings, the 16-label map and the job states live
here exactly once (see ``../shared/ARCHITECTURE.md``, "Shared contracts").
"""

from pancreas_contracts.clinical import (
    CLINICAL_VARIABLES,
    ClinicalVariable,
    ClinicalVariables,
    VariableKind,
)
from pancreas_contracts.job_states import JobState
from pancreas_contracts.labels import LABELS, NUM_CLASSES, Label, label_by_name
from pancreas_contracts.settings import Settings, load_settings

__all__ = [
    "CLINICAL_VARIABLES",
    "LABELS",
    "NUM_CLASSES",
    "ClinicalVariable",
    "ClinicalVariables",
    "JobState",
    "Label",
    "Settings",
    "VariableKind",
    "label_by_name",
    "load_settings",
]
