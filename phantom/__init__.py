"""Synthetic phantom cohorts: portal-venous abdominal CT with the 16 labels, NCCN truth and
clinical variables, written as DICOM series, NIfTI files and CSV tables.

Nothing here uses patient data: every voxel, angle and lab value is drawn from seeded random
streams, so a cohort is reproducible from ``(n, seed, options)``.

Typical use::

    from phantom import PhantomOptions, generate_cohort
    generate_cohort(Path("cohort"), n=10, seed=1, options=PhantomOptions(slice_thickness=2.0))

or, without files, ``render_patient(plan_cohort(1, seed=1)[0])``.

``PhantomOptions(variation="wide")`` draws scanner, contrast phase, body, vessel variant and
tumor look per patient and adds tumor-free patients (:mod:`phantom._variation`); its
``truth.csv`` has :data:`WIDE_TRUTH_COLUMNS`. The default ``"standard"`` mode is unchanged.

For a PDAC detector the wide modes also draw (:mod:`phantom._lesions`): small (at most
:data:`SMALL_PDAC_MM`) and iso-attenuating PDAC, tumor-free patients of each of
:data:`NEGATIVE_KINDS` (normal, atrophic, cysts, a neuroendocrine tumor; none labelled tumor),
incidental cysts, at the shares of :class:`LesionMix` and the PDAC share
``PhantomOptions(pdac_prevalence=...)`` (0.8 by default; :data:`PANORAMA_PDAC_PREVALENCE` for a
detection cohort). Each patient gets ``lesions.nii.gz`` (instance mask, ids 1..K) and
``lesions.json`` (:class:`Lesion` of every id: kind, location, centre and box in LPS mm,
volume), and ``truth.csv`` the :data:`LESION_COLUMNS` of the main lesion.

Lymph nodes (issue 24; on by default in the wide modes, ``PhantomOptions(lymph_nodes=...)``):
the ten attention structures of the lymph-node paper (:mod:`phantom._attention`), nodes at
the JPS stations (:data:`STATION_SITES`) with an N-status model (:mod:`phantom._lymph_nodes`),
written as ``organs.nii.gz``, ``nodes.nii.gz`` and ``lymph_nodes.json``; ``truth.csv`` gains
:data:`NODE_COLUMNS` (:func:`truth_columns`).

Follow-up (issue 25; on by default in the wide modes, ``PhantomOptions(follow_up=...)``, needs
lymph nodes): every PDAC patient's overall survival drawn from the Weibull
proportional-hazards model :class:`HazardModel` (tumor volume, NCCN rule category, N status,
true CA 19-9 and age) with administrative censoring (:mod:`phantom._follow_up`);
``truth.csv`` gains :data:`FOLLOW_UP_TRUTH_COLUMNS`. :func:`linear_predictor` and
:func:`draw_follow_up` are the pure model, also used by the held-out generator.
"""

from pancreas_contracts.nccn import nccn_rule_category
from phantom._anatomy import Material, Vessel
from phantom._clinical import BIOLOGICAL_CA19_9, MISSING_FRACTION
from phantom._cohort import (
    PatientPlan,
    allocate_classes,
    cohort_targets,
    make_grid,
    plan_cohort,
    plan_patient,
    render_patient,
)
from phantom._dicom_writer import TRANSFER_SYNTAXES
from phantom._follow_up import (
    FOLLOW_UP_TRUTH_COLUMNS,
    FollowUp,
    HazardModel,
    draw_follow_up,
    event_time,
    follow_up_cells,
    linear_predictor,
)
from phantom._geometry import Grid
from phantom._lesions import (
    LESION_KINDS,
    LESION_LOCATIONS,
    NEGATIVE_KINDS,
    PANORAMA_PDAC_PREVALENCE,
    SMALL_PDAC_MM,
    Lesion,
    LesionMix,
    LesionSpec,
)
from phantom._lymph_nodes import (
    DRAINAGE,
    N_MODEL,
    NodePlan,
    NodeSpec,
    n_positive_probability,
)
from phantom._node_layout import CLEARANCE_MM, STATION_SITES, StationSite
from phantom._node_output import NODE_COLUMNS
from phantom._options import POSITIONS, PhantomOptions
from phantom._output import (
    CLINICAL_COLUMNS,
    LESION_COLUMNS,
    LESIONS_JSON_VERSION,
    TRUTH_COLUMNS,
    WIDE_TRUTH_COLUMNS,
    PatientFiles,
    PhantomCohort,
    PhantomPatient,
    check_encoder,
    clinical_rows,
    generate_cohort,
    lesion_volume,
    lesions_document,
    main_lesion,
    scan_volumes,
    truth_columns,
    write_patient,
)
from phantom._render import PhantomScan
from phantom._tumor import (
    ARTERIAL,
    FAT_PLANE_MM,
    KEY_VESSELS,
    VENOUS,
    VESSEL_LABELS,
)
from phantom._variation import (
    CONTRAST_PHASES,
    DEFAULT_TUMOR_FREE_FRACTION,
    REPLACED_RHA,
    REPLACED_RHA_RATE,
    TUMOR_FREE_KINDS,
    TUMOR_SHAPES,
    TUMOR_SITES,
    TUMOR_TEXTURES,
    VARIATIONS,
    Acquisition,
    Body,
    TumorLook,
    Variation,
)

__all__ = [
    "ARTERIAL",
    "BIOLOGICAL_CA19_9",
    "CLEARANCE_MM",
    "CLINICAL_COLUMNS",
    "CONTRAST_PHASES",
    "DEFAULT_TUMOR_FREE_FRACTION",
    "DRAINAGE",
    "FAT_PLANE_MM",
    "FOLLOW_UP_TRUTH_COLUMNS",
    "KEY_VESSELS",
    "LESIONS_JSON_VERSION",
    "LESION_COLUMNS",
    "LESION_KINDS",
    "LESION_LOCATIONS",
    "MISSING_FRACTION",
    "NEGATIVE_KINDS",
    "NODE_COLUMNS",
    "N_MODEL",
    "PANORAMA_PDAC_PREVALENCE",
    "POSITIONS",
    "REPLACED_RHA",
    "REPLACED_RHA_RATE",
    "SMALL_PDAC_MM",
    "STATION_SITES",
    "TRANSFER_SYNTAXES",
    "TRUTH_COLUMNS",
    "TUMOR_FREE_KINDS",
    "TUMOR_SHAPES",
    "TUMOR_SITES",
    "TUMOR_TEXTURES",
    "VARIATIONS",
    "VENOUS",
    "VESSEL_LABELS",
    "WIDE_TRUTH_COLUMNS",
    "Acquisition",
    "Body",
    "FollowUp",
    "Grid",
    "HazardModel",
    "Lesion",
    "LesionMix",
    "LesionSpec",
    "Material",
    "NodePlan",
    "NodeSpec",
    "PatientFiles",
    "PatientPlan",
    "PhantomCohort",
    "PhantomOptions",
    "PhantomPatient",
    "PhantomScan",
    "StationSite",
    "TumorLook",
    "Variation",
    "Vessel",
    "allocate_classes",
    "check_encoder",
    "clinical_rows",
    "cohort_targets",
    "draw_follow_up",
    "event_time",
    "follow_up_cells",
    "generate_cohort",
    "lesion_volume",
    "lesions_document",
    "linear_predictor",
    "main_lesion",
    "make_grid",
    "n_positive_probability",
    "nccn_rule_category",
    "plan_cohort",
    "plan_patient",
    "render_patient",
    "scan_volumes",
    "truth_columns",
    "write_patient",
]
