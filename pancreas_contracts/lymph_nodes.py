"""Lymph nodes (issue 24; METHOD.md section 3, ``seeds/ln_metastasis_distance_attention.txt``).

What the phantom generator writes and the lymph-node task reads, defined once:

* the ten **attention structures** of the paper (Table II): the organs and vessels whose
  signed distance maps become the node attention map, with the paper's distance range
  ``[d_min, d_max]`` in mm (negative: inside the structure) and their values in the
  ``organs.nii.gz`` label map;
* the **JPS stations** (Japan Pancreas Society, General Rules for the Study of Pancreatic
  Cancer, 7th ed.; regional nodes of the pancreas head and body/tail) a node can belong to;
* the per-node truth of ``lymph_nodes.json`` and the patient's N status in ``truth.csv``;
* ``result.json``'s ``lymph_nodes`` section (schema 1.6): :class:`LymphNodeAssessment`.

Station 15 (middle colic artery) is left out, as in the paper: it belongs to distant
metastasis (M1), not to N.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "ATTENTION_STRUCTURES",
    "BORDER_MM",
    "JPS_STATIONS",
    "LYMPH_NODES_FILE",
    "NODES_FILE",
    "ORGANS_FILE",
    "AttentionStructure",
    "LymphNodeAssessment",
    "LymphNodeFinding",
    "NodeKind",
    "NodeTruth",
    "Station",
    "structure_by_name",
]

#: Per patient folder of a phantom cohort: the ten structures' label map (values of
#: :data:`ATTENTION_STRUCTURES`), the nodes' instance map (0 background, k = the node with
#: ``node_id`` k) and the per-node truth (a JSON list of :class:`NodeTruth`).
ORGANS_FILE: Final = "organs.nii.gz"
NODES_FILE: Final = "nodes.nii.gz"
LYMPH_NODES_FILE: Final = "lymph_nodes.json"

#: The trapezoid mapping's soft border (the paper's 3 mm).
BORDER_MM: Final = 3.0


@dataclass(frozen=True)
class AttentionStructure:
    """One organ or vessel of the paper's attention map.

    Attributes
    ----------
    value
        Its value in ``organs.nii.gz`` (1-10).
    name
        Machine name.
    display
        Human-readable name.
    d_min_mm, d_max_mm
        The distance range (signed, mm; negative inside) in which nodes lie (Table II).
    """

    value: int
    name: str
    display: str
    d_min_mm: float
    d_max_mm: float


#: Table II of the paper, in its order.
ATTENTION_STRUCTURES: Final[tuple[AttentionStructure, ...]] = (
    AttentionStructure(1, "spleen", "Spleen", 0.0, 16.0),
    AttentionStructure(2, "esophagus", "Esophagus", 0.0, 25.0),
    AttentionStructure(3, "stomach", "Stomach", -2.0, 18.0),
    AttentionStructure(4, "aorta", "Aorta", 0.0, 28.0),
    AttentionStructure(5, "pancreas", "Pancreas", -5.0, 20.0),
    AttentionStructure(6, "duodenum", "Duodenum", -5.0, 22.0),
    AttentionStructure(7, "sma", "Superior mesenteric artery", -1.0, 20.0),
    AttentionStructure(8, "celiac_splenic", "Celiac trunk and splenic artery", -2.0, 18.0),
    AttentionStructure(9, "left_gastric", "Left gastric artery", 0.0, 21.0),
    AttentionStructure(10, "hepatic_artery", "Common and proper hepatic artery", 0.0, 20.0),
)


def structure_by_name(name: str) -> AttentionStructure:
    """The attention structure called ``name``.

    Raises
    ------
    KeyError
        For an unknown name.
    """
    for structure in ATTENTION_STRUCTURES:
        if structure.name == name:
            return structure
    raise KeyError(name)


@dataclass(frozen=True)
class Station:
    """One JPS lymph-node station: its code and the structure it lies along."""

    code: str
    description: str


#: The regional stations of the pancreas (JPS 7th ed.; station 15 excluded, see above).
JPS_STATIONS: Final[tuple[Station, ...]] = (
    Station("5", "suprapyloric"),
    Station("6", "infrapyloric"),
    Station("7", "along the left gastric artery"),
    Station("8a", "anterosuperior, along the common hepatic artery"),
    Station("8p", "posterior, along the common hepatic artery"),
    Station("9", "around the celiac trunk"),
    Station("10", "at the splenic hilum"),
    Station("11p", "along the proximal splenic artery"),
    Station("11d", "along the distal splenic artery"),
    Station("12a", "along the hepatic artery in the hepatoduodenal ligament"),
    Station("12b", "along the bile duct"),
    Station("12p", "along the portal vein"),
    Station("13a", "posterior pancreaticoduodenal, above the papilla"),
    Station("13b", "posterior pancreaticoduodenal, below the papilla"),
    Station("14p", "along the proximal superior mesenteric artery"),
    Station("14d", "along the distal superior mesenteric artery"),
    Station("16a2", "para-aortic, celiac trunk to left renal vein"),
    Station("16b1", "para-aortic, left renal vein to inferior mesenteric artery"),
    Station("17a", "anterior pancreaticoduodenal, above the papilla"),
    Station("17b", "anterior pancreaticoduodenal, below the papilla"),
    Station("18", "along the inferior border of the pancreas body and tail"),
)

_STATION_CODES: Final = frozenset(s.code for s in JPS_STATIONS)

#: What a phantom node looks like: a ``benign`` node (small, oval, fatty hilum), a
#: ``metastatic`` one (round, short axis > 10 mm, heterogeneous or necrotic), the hard cases
#: the paper stresses: ``small-metastatic`` (positive, short axis <= 10 mm) and
#: ``inflammatory`` (negative, enlarged).
NodeKind = Literal["benign", "metastatic", "small-metastatic", "inflammatory"]

_Frozen = ConfigDict(frozen=True, extra="forbid")


class NodeTruth(BaseModel):
    """One node of a phantom patient (an entry of ``lymph_nodes.json``)."""

    model_config = _Frozen
    node_id: int = Field(ge=1)
    station: str
    kind: NodeKind
    metastatic: bool
    centre_lps_mm: tuple[float, float, float]
    short_axis_mm: float = Field(gt=0.0)
    long_axis_mm: float = Field(gt=0.0)
    volume_ml: float = Field(gt=0.0)

    @field_validator("station")
    @classmethod
    def _known_station(cls, value: str) -> str:
        if value not in _STATION_CODES:
            raise ValueError(f"unknown JPS station {value!r}")
        return value

    @field_validator("centre_lps_mm")
    @classmethod
    def _finite_centre(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if not all(math.isfinite(v) for v in value):
            raise ValueError("coordinates must be finite")
        return value

    def model_post_init(self, _context: object) -> None:
        """Refuse a node whose kind and status disagree or whose axes are swapped."""
        positive = self.kind in ("metastatic", "small-metastatic")
        if positive != self.metastatic:
            raise ValueError(f"a {self.kind} node cannot have metastatic={self.metastatic}")
        if self.short_axis_mm > self.long_axis_mm:
            raise ValueError("short axis longer than long axis")


class LymphNodeFinding(BaseModel):
    """One node the lymph-node model reports, in DICOM patient coordinates (LPS, mm).

    ``short_axis_mm`` is measured in the axial plane, as radiologists measure nodes (RECIST
    1.1: a node is pathological from 15 mm short axis, suspicious from 10 mm);
    ``probability`` is the classifier's probability of metastasis and ``suspicious`` whether
    it reaches the bundle's threshold. ``station`` is ``None`` when no JPS station could be
    assigned.
    """

    model_config = _Frozen
    node_id: int = Field(ge=1)
    station: str | None = None
    centre_lps_mm: tuple[float, float, float]
    short_axis_mm: float = Field(ge=0.0)
    long_axis_mm: float = Field(ge=0.0)
    volume_ml: float = Field(ge=0.0)
    probability: float = Field(ge=0.0, le=1.0)
    suspicious: bool

    @field_validator("station")
    @classmethod
    def _known_station(cls, value: str | None) -> str | None:
        if value is not None and value not in _STATION_CODES:
            raise ValueError(f"unknown JPS station {value!r}")
        return value

    @field_validator("centre_lps_mm")
    @classmethod
    def _finite_centre(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if not all(math.isfinite(v) for v in value):
            raise ValueError("coordinates must be finite")
        return value


class LymphNodeAssessment(BaseModel):
    """The lymph-node model's answer for one CT (investigational, not for clinical use).

    Attributes
    ----------
    model_version
        The lymph-node bundle's ``name version``.
    n_positive_probability
        The patient-level probability of regional node metastasis (N+).
    threshold
        The operating point (from the bundle; chosen on validation rows).
    n_estimate
        ``N+`` when ``n_positive_probability >= threshold``, else ``N0``.
    nodes
        Reported nodes, the most probable first.
    inputs_used, inputs_missing
        Which inputs the patient model had (``ct``, ``attention``, ``tumor_mask``).
    """

    model_config = _Frozen
    model_version: str = Field(min_length=1)
    n_positive_probability: float = Field(ge=0.0, le=1.0)
    threshold: float = Field(ge=0.0, le=1.0)
    n_estimate: Literal["N0", "N+"]
    nodes: tuple[LymphNodeFinding, ...] = ()
    inputs_used: tuple[str, ...] = ()
    inputs_missing: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def model_post_init(self, _context: object) -> None:
        """Refuse an N estimate that is not the threshold's answer, or duplicate node ids."""
        expected = "N+" if self.n_positive_probability >= self.threshold else "N0"
        if self.n_estimate != expected:
            raise ValueError("n_estimate must say whether the probability reaches the threshold")
        ids = [node.node_id for node in self.nodes]
        if len(set(ids)) != len(ids):
            raise ValueError("node ids must be unique")

    @property
    def suspicious_nodes(self) -> tuple[LymphNodeFinding, ...]:
        """The nodes at or above the bundle's node threshold."""
        return tuple(node for node in self.nodes if node.suspicious)

    def describe(self) -> str:
        """One line: ``N+ (probability 0.71, threshold 0.50): 2 suspicious of 5 nodes``."""
        count = len(self.nodes)
        return (
            f"{self.n_estimate} (probability {self.n_positive_probability:.2f}, threshold "
            f"{self.threshold:.2f}): {len(self.suspicious_nodes)} suspicious of {count} "
            f"node{'s' if count != 1 else ''}"
        )
