"""The 16-class label map of METHOD.md section 1, defined once.

Each foreground label carries its SNOMED CT code (taken from ``pydicom.sr.codedict.codes``,
i.e. the DICOM content mapping resources of PS3.16) for the segment property type
(CID 7151 "Segmentation Property Types") and its category (CID 7150), and a display colour
used by the DICOM-SEG writer and the OHIF panel legend.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

__all__ = ["LABELS", "NUM_CLASSES", "Label", "label_by_name"]


@dataclass(frozen=True)
class Label:
    """One class of the auxiliary segmentation.

    Parameters
    ----------
    value
        Integer value in the label map (0 is background).
    name
        Short machine name (also used in ``result.json``).
    display
        Human-readable name.
    property_type
        SNOMED CT code of the structure (CID 7151).
    property_category
        SNOMED CT category code (CID 7150).
    rgb
        Display colour, 0-255 per channel.
    """

    value: int
    name: str
    display: str
    property_type: Code
    property_category: Code
    rgb: tuple[int, int, int]

    def __post_init__(self) -> None:
        if not 0 <= self.value < 16:
            raise ValueError(f"label value {self.value} outside 0..15")
        if any(not 0 <= c <= 255 for c in self.rgb):
            raise ValueError(f"label {self.name}: colour out of range")


_ANATOMY = codes.SCT.AnatomicalStructure
_ABNORMAL = codes.SCT.MorphologicallyAbnormalStructure

LABELS: tuple[Label, ...] = (
    Label(
        0, "background", "Background", codes.SCT.BodyTissueStructure, codes.SCT.Tissue, (0, 0, 0)
    ),
    Label(1, "pancreas", "Pancreas", codes.SCT.Pancreas, _ANATOMY, (230, 180, 100)),
    Label(2, "tumor", "Pancreatic neoplasm", codes.SCT.Neoplasm, _ABNORMAL, (255, 40, 40)),
    Label(3, "portal_vein", "Portal vein", codes.SCT.PortalVein, _ANATOMY, (0, 90, 255)),
    Label(4, "splenic_vein", "Splenic vein", codes.SCT.SplenicVein, _ANATOMY, (70, 130, 255)),
    Label(
        5,
        "smv",
        "Superior mesenteric vein",
        codes.SCT.SuperiorMesentericVein,
        _ANATOMY,
        (0, 170, 255),
    ),
    Label(
        6,
        "sma",
        "Superior mesenteric artery",
        codes.SCT.SuperiorMesentericArtery,
        _ANATOMY,
        (255, 120, 0),
    ),
    Label(7, "celiac_trunk", "Celiac trunk", codes.SCT.CeliacAxis, _ANATOMY, (255, 0, 160)),
    Label(8, "aorta", "Aorta", codes.SCT.Aorta, _ANATOMY, (200, 0, 0)),
    Label(9, "ivc", "Inferior vena cava", codes.SCT.InferiorVenaCava, _ANATOMY, (0, 0, 160)),
    Label(
        10, "cha", "Common hepatic artery", codes.SCT.CommonHepaticArtery, _ANATOMY, (255, 200, 0)
    ),
    Label(
        11, "pha", "Proper hepatic artery", codes.SCT.ProperHepaticArtery, _ANATOMY, (220, 220, 60)
    ),
    Label(
        12, "gda", "Gastroduodenal artery", codes.SCT.GastroduodenalArtery, _ANATOMY, (180, 110, 40)
    ),
    Label(13, "splenic_artery", "Splenic artery", codes.SCT.SplenicArtery, _ANATOMY, (255, 90, 90)),
    Label(
        14,
        "pancreatic_duct",
        "Dilated pancreatic duct",
        codes.SCT.PancreaticDuct,
        _ANATOMY,
        (0, 200, 120),
    ),
    Label(15, "bile_duct", "Bile duct", codes.SCT.BileDuct, _ANATOMY, (40, 160, 40)),
)

NUM_CLASSES: int = len(LABELS)


def label_by_name(name: str) -> Label:
    """Return the label called ``name``.

    Raises
    ------
    KeyError
        If no label has that name.
    """
    for label in LABELS:
        if label.name == name:
            return label
    raise KeyError(name)
