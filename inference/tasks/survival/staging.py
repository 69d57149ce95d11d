"""The clinical model's inputs: sex, age, TNM (AJCC 8th edition) and CA 19-9.

The paper's clinical variables are sex, age, T, N and M. The node derives them as follows,
and every answer says where each came from (:class:`~pancreas_contracts.prognosis.StageInput`):

- **T** from its own measurements (AJCC 8th edition, pancreas; Amin et al. 2017): T4 when the
  tumor involves the celiac axis, SMA or common hepatic artery, else T1 up to 20 mm, T2 up to
  40 mm, T3 above. "Involves" is read as contact above 180 degrees, the NCCN's encasement of
  an artery (locally advanced), so T4 here means what the resectability task calls locally
  advanced on the arteries.
- **N** from the lymph-node model's N estimate when it ran, else missing (the registry's 17
  variables hold no N).
- **M** is missing: the node does not look for distant metastases and the registry holds no
  M; the bundle imputes it (M0 in every phantom cohort, where no patient has metastases).

CA 19-9 (baseline, from the registry) is added to the paper's five: it is a documented
prognostic factor in pancreatic cancer and one of the phantom hazard's inputs; the report
shows the paper's clinical model and this one side by side.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

import numpy as np
import numpy.typing as npt

from pancreas_contracts.prognosis import StageInput

__all__ = [
    "ARTERIES",
    "CLINICAL_INPUTS",
    "PAPER_CLINICAL_INPUTS",
    "clinical_row",
    "n_stage",
    "t_stage",
]

#: The clinical model's inputs, in column order.
CLINICAL_INPUTS: Final = ("sex", "age", "T", "N", "M", "ca19_9_baseline")
#: The paper's five (the report's "clinical (paper)" row).
PAPER_CLINICAL_INPUTS: Final = ("sex", "age", "T", "N", "M")
#: The arteries of AJCC T4 (result keys).
ARTERIES: Final = ("SMA", "CA", "CHA")
_ENCASEMENT_DEG: Final = 180.0


def t_stage(max_diameter_mm: float | None, contact_deg: Mapping[str, float | None]) -> StageInput:
    """AJCC 8th T from the tumor's largest diameter and its arterial contact angles."""
    if max_diameter_mm is None or not math.isfinite(max_diameter_mm):
        return StageInput(value=None, source="missing")
    if any((contact_deg.get(a) or 0.0) > _ENCASEMENT_DEG for a in ARTERIES):
        return StageInput(value="T4", source="node")
    value = "T1" if max_diameter_mm <= 20.0 else "T2" if max_diameter_mm <= 40.0 else "T3"
    return StageInput(value=value, source="node")


def n_stage(n_estimate: str | None) -> StageInput:
    """N from the lymph-node model's estimate (``N0`` / ``N+``), else missing."""
    if n_estimate is None:
        return StageInput(value=None, source="missing")
    return StageInput(value=n_estimate, source="lymph-node-model")


def _stage_number(stage: StageInput) -> float:
    if stage.value is None:
        return math.nan
    if stage.value.startswith("T"):
        return float(stage.value[1])
    return 1.0 if stage.value in ("N+", "M1") else 0.0


def clinical_row(
    values: Mapping[str, float | None], staging: Mapping[str, StageInput]
) -> npt.NDArray[np.float64]:
    """One row of :data:`CLINICAL_INPUTS` (NaN where missing).

    ``values`` holds ``sex``, ``age`` and ``ca19_9_baseline`` as the registry gives them
    (CA 19-9 enters as log10 of U/mL, at least 1); ``staging`` holds ``T``, ``N``, ``M``.
    """
    ca = values.get("ca19_9_baseline")
    row = {
        "sex": values.get("sex"),
        "age": values.get("age"),
        "ca19_9_baseline": None if ca is None else math.log10(max(float(ca), 1.0)),
        **{key: _stage_number(stage) for key, stage in staging.items()},
    }
    return np.array(
        [math.nan if row.get(n) is None else float(row[n] or 0.0) for n in CLINICAL_INPUTS]
    )
