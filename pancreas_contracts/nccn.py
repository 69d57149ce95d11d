"""The NCCN resectability rule on tumor-vessel contact angles, defined once.

The surrogate of the NCCN Guidelines (Pancreatic Adenocarcinoma) that ``docs/method.md`` states:
solid-tumor contact of 180 degrees or more with an artery (SMA, celiac trunk, common hepatic
artery) is locally advanced; any smaller arterial contact, or contact of 180 degrees or more
with the SMV or portal vein, is borderline resectable; no arterial contact and venous contact
below 180 degrees is resectable.
The measurement (``inference``) and the phantom's ground truth (``phantom``) both read this
module, so the rule the product reports and the rule the phantoms are labelled with cannot
drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum

from pancreas_contracts.result import KEY_VESSELS

__all__ = ["ARTERIAL_VESSELS", "VENOUS_VESSELS", "NccnCategory", "nccn_rule_category"]

#: Arteries whose contact decides between borderline and locally advanced.
ARTERIAL_VESSELS: tuple[str, ...] = ("SMA", "CA", "CHA")
#: Veins whose contact of 180 degrees or more makes a tumor borderline.
VENOUS_VESSELS: tuple[str, ...] = ("SMV", "PV")
assert set(ARTERIAL_VESSELS) | set(VENOUS_VESSELS) == set(KEY_VESSELS)

_ENCASEMENT_DEG = 180.0


class NccnCategory(IntEnum):
    """The three NCCN categories, in the order of ``result.CATEGORY_LABELS``."""

    RESECTABLE = 0
    BORDERLINE = 1
    LOCALLY_ADVANCED = 2


def nccn_rule_category(angles: Mapping[str, float | None]) -> int:
    """The NCCN resectability category implied by tumor-vessel contact angles.

    Parameters
    ----------
    angles
        Contact angle in degrees (0-360) by vessel key (``"SMA"``, ``"CA"``, ``"CHA"``,
        ``"SMV"``, ``"PV"``); absent keys and ``None`` count as no contact.

    Returns
    -------
    int
        :class:`NccnCategory` value: 0 resectable, 1 borderline resectable, 2 locally
        advanced. Arterial contact of 180 degrees or more is 2; any smaller arterial contact,
        or venous contact of 180 degrees or more, is 1; anything else is 0.

    Raises
    ------
    ValueError
        On an unknown vessel key or an angle outside 0-360.
    """
    unknown = set(angles) - set(KEY_VESSELS)
    if unknown:
        raise ValueError(f"unknown vessels {sorted(unknown)}; expected {list(KEY_VESSELS)}")
    values = {k: 0.0 if v is None else float(v) for k, v in angles.items()}
    for name, value in values.items():
        if not 0.0 <= value <= 360.0:
            raise ValueError(f"contact angle for {name} must be 0-360 degrees, got {value}")
    arterial = max(values.get(v, 0.0) for v in ARTERIAL_VESSELS)
    venous = max(values.get(v, 0.0) for v in VENOUS_VESSELS)
    if arterial >= _ENCASEMENT_DEG:
        return NccnCategory.LOCALLY_ADVANCED.value
    if arterial > 0.0 or venous >= _ENCASEMENT_DEG:
        return NccnCategory.BORDERLINE.value
    return NccnCategory.RESECTABLE.value
