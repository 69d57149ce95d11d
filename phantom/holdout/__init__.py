"""The held-out phantom generator: a second, separately written synthetic CT generator.

It exists only to **evaluate** (never to train): a model trained on the training generator
(:mod:`phantom`) is scored here on anatomy, rendering and tumors it has not seen, so the
team's numbers measure generalisation rather than memory of one generator. Nothing here
calls the training generator's anatomy, tumor, rendering or cohort code: organs are deformed
superquadrics and vessels are tubes along cubic splines laid out relative to the vertebral
body, rendered by supersampling the signed distances, with its own HU tables, correlated
noise and DICOM writer. Tumor-vessel contact angles are read off the finished solids, and the
NCCN truth follows :func:`pancreas_contracts.nccn.nccn_rule_category`.

Lymph nodes (on by default, ``HoldoutOptions(lymph_nodes=False)`` or ``--no-lymph-nodes`` to
leave them out) follow this generator's own N-status model, stations, sizes and looks, with the
training generator's files and meaning (``organs.nii.gz``, ``nodes.nii.gz``,
``lymph_nodes.json``; ``docs/lymph_nodes.md``, "Nodes in the held-out generator"), so the
lymph-node model can be scored here too.

Typical use::

    from phantom.holdout import generate_holdout_cohort
    generate_holdout_cohort(Path("holdout"), n=10, seed=101)

or ``pancreas-node phantom --generator holdout --patients 10 --seed 101 --out holdout``.
"""

from phantom.holdout._body import SITES
from phantom.holdout._cohort import (
    HOLDOUT_TRUTH_COLUMNS,
    HoldoutCohort,
    HoldoutRecord,
    generate_holdout_cohort,
    holdout_truth_columns,
    scan_volumes,
)
from phantom.holdout._dicom import HOLDOUT_SYNTAXES, SeriesIdentity, write_ct_series
from phantom.holdout._lesion import FAT_PLANE_MM
from phantom.holdout._nodes import DRAINAGE, STATION_STRUCTURES, n_positive_probability
from phantom.holdout._patient import HoldoutOptions, HoldoutPatient, make_patient, tumor_targets

__all__ = [
    "DRAINAGE",
    "FAT_PLANE_MM",
    "HOLDOUT_SYNTAXES",
    "HOLDOUT_TRUTH_COLUMNS",
    "SITES",
    "STATION_STRUCTURES",
    "HoldoutCohort",
    "HoldoutOptions",
    "HoldoutPatient",
    "HoldoutRecord",
    "SeriesIdentity",
    "generate_holdout_cohort",
    "holdout_truth_columns",
    "make_patient",
    "n_positive_probability",
    "scan_volumes",
    "tumor_targets",
    "write_ct_series",
]
