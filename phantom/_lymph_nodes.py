"""Lymph nodes of a phantom patient: N status, node kinds, sizes and stations (no voxels).

Drawn at planning time from the patient's own ``NODES`` stream (so switching nodes on changes
no other draw); :mod:`phantom._node_layout` places and paints them.

**N-status model** (plausible, not fitted to any cohort). A tumor-free patient is always N0.
A PDAC patient is N+ with probability

    p = 1 / (1 + exp(-(-0.6 + 0.5 * (D - 30 mm) / 10 mm + 0.4 * c)))

with ``D`` the tumor diameter (wide modes: the drawn core diameter; standard mode: the
midpoint of the wide modes' range for the class, 22.5 / 30 / 35 mm) and ``c`` the NCCN rule
category of the contact angles (0 resectable, 1 borderline, 2 locally advanced): a 3 cm
resectable tumor is N+ with p = 0.35, borderline 0.45, locally advanced 0.55; 1 cm resectable
0.17, 5 cm locally advanced 0.77. Over the default wide cohort's PDAC patients the mean p is
0.38 (a 300-patient plan, seed 17: 40 % drawn N+), a little below the paper's discovery set
(351 of 749 = 47 %), whose tumors were larger (median 3.0 cm).

**Nodes per patient.** An N+ patient has 1-6 positive nodes (1, 2, ... 6 with probabilities
0.33, 0.21, 0.15, 0.14, 0.10, 0.07: pN1 = 1-3 nodes in 69 %, pN2 = 4+ in 31 %, the paper's
242 : 109) and 2-8 negative ones; an N0 patient 3-10 negative ones; at most
:data:`MAX_NODES` in all.

**Kinds.** Positive nodes are ``metastatic`` (short axis 10.5-20 mm, long/short 1.0-1.3,
heterogeneous or, in 40 %, with a necrotic centre) or, in :data:`SMALL_POSITIVE_SHARE` of them,
``small-metastatic`` (short axis 5-10 mm, long/short 1.0-1.4, no hilum). Negative nodes are
``benign`` (short axis 3-8 mm, long/short 1.5-2.5, fatty hilum) or, in
:data:`INFLAMMATORY_SHARE` of them, ``inflammatory`` (enlarged: short axis 10-15 mm, long/short
1.4-2.0, homogeneous, with hilum): the paper's hard cases, where size alone misleads.

**Stations.** Positive nodes lie at the first stations that drain the tumor's site
(:data:`DRAINAGE`: head and uncinate to the pancreaticoduodenal, SMA, hepatic and infrapyloric
nodes; body and tail to the splenic, celiac, left gastric and inferior-border nodes); negative
nodes at any of the JPS stations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import numpy as np

from pancreas_contracts.lymph_nodes import JPS_STATIONS, NodeKind

__all__ = [
    "DRAINAGE",
    "INFLAMMATORY_SHARE",
    "MAX_NODES",
    "N_MODEL",
    "SMALL_POSITIVE_SHARE",
    "STANDARD_DIAMETER_MM",
    "NodePlan",
    "NodeSpec",
    "n_positive_probability",
    "plan_nodes",
]

#: Logistic model of N+ for a PDAC patient: intercept, per 10 mm diameter above 30 mm, per
#: NCCN class.
N_MODEL: Final = (-0.6, 0.5, 0.4)
#: Standard mode: the tumor diameter the N model assumes per NCCN class (mm).
STANDARD_DIAMETER_MM: Final = (22.5, 30.0, 35.0)
MAX_NODES: Final = 12
SMALL_POSITIVE_SHARE: Final = 0.35
INFLAMMATORY_SHARE: Final = 0.15
NECROTIC_SHARE: Final = 0.4
# Probabilities of 1..6 positive nodes (pN1 1-3: 0.69, pN2 4+: 0.31).
_POSITIVE_COUNTS: Final = (0.33, 0.21, 0.15, 0.14, 0.10, 0.07)

#: First drainage stations of a tumor by site (``"body"`` also serves the standard mode).
DRAINAGE: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType({
    "head": ("13a", "13b", "17a", "17b", "14p", "14d", "8a", "8p", "12b", "6"),
    "uncinate": ("13b", "17b", "14p", "14d", "13a", "17a", "16b1"),
    "body": ("11p", "18", "9", "8a", "14p", "7", "11d"),
    "tail": ("11d", "10", "11p", "18", "9", "7"),
})  # fmt: skip

_ALL_STATIONS: Final = tuple(station.code for station in JPS_STATIONS)

# (short axis mm, long/short ratio) ranges by kind.
_SIZES: Final[Mapping[str, tuple[tuple[float, float], tuple[float, float]]]] = MappingProxyType({
    "benign": ((3.0, 8.0), (1.5, 2.5)),
    "metastatic": ((10.5, 20.0), (1.0, 1.3)),
    "small-metastatic": ((5.0, 10.0), (1.0, 1.4)),
    "inflammatory": ((10.0, 15.0), (1.4, 2.0)),
})  # fmt: skip


@dataclass(frozen=True)
class NodeSpec:
    """One planned node.

    Attributes
    ----------
    kind
        What it looks like (and whether it is positive).
    stations
        Stations to try, preferred first (the layout falls back along them).
    short_axis_mm, long_axis_mm
        Its diameters (the third equals the short axis times ``depth``).
    depth
        Third diameter over the short axis (1 to at most long/short).
    necrotic
        A metastatic node with a necrotic centre (else heterogeneous).
    """

    kind: NodeKind
    stations: tuple[str, ...]
    short_axis_mm: float
    long_axis_mm: float
    depth: float
    necrotic: bool = False

    @property
    def metastatic(self) -> bool:
        """Whether the node is positive."""
        return self.kind in ("metastatic", "small-metastatic")


@dataclass(frozen=True)
class NodePlan:
    """A patient's planned nodes and drawn N status (``n_positive``: the model said N+)."""

    n_positive: bool
    p_positive: float
    nodes: tuple[NodeSpec, ...]


def n_positive_probability(diameter_mm: float, nccn_class: int) -> float:
    """P(N+) of a PDAC patient under :data:`N_MODEL`."""
    intercept, per_size, per_class = N_MODEL
    logit = intercept + per_size * (diameter_mm - 30.0) / 10.0 + per_class * nccn_class
    return 1.0 / (1.0 + math.exp(-logit))


def _spec(kind: NodeKind, stations: tuple[str, ...], rng: np.random.Generator) -> NodeSpec:
    (short_lo, short_hi), (ratio_lo, ratio_hi) = _SIZES[kind]
    short = round(float(rng.uniform(short_lo, short_hi)), 2)
    ratio = float(rng.uniform(ratio_lo, ratio_hi))
    depth = float(rng.uniform(1.0, min(1.2, ratio)))
    necrotic = kind == "metastatic" and bool(rng.random() < NECROTIC_SHARE)
    return NodeSpec(kind, stations, short, round(short * ratio, 2), depth, necrotic)


def _stations(preferred: tuple[str, ...], rng: np.random.Generator) -> tuple[str, ...]:
    """``preferred`` in a random order, then every other station in a random order."""
    first = tuple(str(s) for s in rng.permutation(np.array(preferred)))
    rest = [s for s in _ALL_STATIONS if s not in first]
    return first + tuple(str(s) for s in rng.permutation(np.array(rest)))


def plan_nodes(
    rng: np.random.Generator, site: str | None, diameter_mm: float, nccn_class: int
) -> NodePlan:
    """Draw a patient's N status and nodes.

    Parameters
    ----------
    rng
        The patient's ``NODES`` stream.
    site
        The tumor's site (a key of :data:`DRAINAGE`), ``None`` for a tumor-free patient.
    diameter_mm, nccn_class
        The tumor's diameter and NCCN class (ignored without a tumor).
    """
    p = 0.0 if site is None else n_positive_probability(diameter_mm, nccn_class)
    positive = bool(rng.random() < p)
    if positive:
        n_pos = 1 + int(rng.choice(len(_POSITIVE_COUNTS), p=_POSITIVE_COUNTS))
        n_neg = min(int(rng.integers(2, 9)), MAX_NODES - n_pos)
    else:
        n_pos, n_neg = 0, int(rng.integers(3, 11))
    drainage = DRAINAGE.get(site or "body", DRAINAGE["body"])
    nodes: list[NodeSpec] = []
    for _ in range(n_pos):
        small = rng.random() < SMALL_POSITIVE_SHARE
        kind: NodeKind = "small-metastatic" if small else "metastatic"
        nodes.append(_spec(kind, _stations(drainage, rng), rng))
    for _ in range(n_neg):
        inflamed = rng.random() < INFLAMMATORY_SHARE
        kind = "inflammatory" if inflamed else "benign"
        nodes.append(_spec(kind, _stations((), rng), rng))
    return NodePlan(positive, round(p, 4), tuple(nodes))
