"""Import cohorts as research sites store them: MSD / nnU-Net, DICOM SEG, RTSTRUCT, NIfTI.

Each reader yields :class:`ImportedCase` objects (CT, the project's 16-value label map on the
CT's grid, and the structures the case labels); :func:`write_cohort` writes them as the cohort
layout :mod:`training.dataset` reads (``truth.csv`` with the ``labelled`` column,
``clinical.csv``, ``import.json``). A :class:`LabelMapping` (TOML, examples shipped in
``mappings/``) says which source labels become which project labels; unmapped ones are not
labelled. ``pancreas-node import`` is the command line; ``docs/importing.md`` the guide.
"""

from __future__ import annotations

from training.importers.cohort_writer import (
    TRUTH_COLUMNS,
    ClinicalLookup,
    ImportedCase,
    ImportSummary,
    labelled_names,
    read_clinical_csv,
    redact_identifiers,
    write_cohort,
)
from training.importers.dicom_seg import read_dicom_seg, segment_targets
from training.importers.mapping import (
    LabelMapping,
    example_mappings,
    load_mapping,
    normalise_name,
    remap_label_map,
)
from training.importers.msd import MsdDataset, read_msd, scan_msd
from training.importers.nifti_pairs import (
    DEFAULT_IMAGE_GLOB,
    DEFAULT_LABEL_GLOB,
    case_from_label_map,
    pair_files,
    read_nifti_pairs,
)
from training.importers.rtstruct import read_rtstruct, roi_targets

__all__ = [
    "DEFAULT_IMAGE_GLOB",
    "DEFAULT_LABEL_GLOB",
    "FORMATS",
    "TRUTH_COLUMNS",
    "ClinicalLookup",
    "ImportSummary",
    "ImportedCase",
    "LabelMapping",
    "MsdDataset",
    "case_from_label_map",
    "example_mappings",
    "labelled_names",
    "load_mapping",
    "normalise_name",
    "pair_files",
    "read_clinical_csv",
    "read_dicom_seg",
    "read_msd",
    "read_nifti_pairs",
    "read_rtstruct",
    "redact_identifiers",
    "remap_label_map",
    "roi_targets",
    "scan_msd",
    "segment_targets",
    "write_cohort",
]

FORMATS: tuple[str, ...] = ("msd", "dicom-seg", "rtstruct", "nifti")
"""The ``import_source`` values (and ``pancreas-node import --format`` choices)."""
