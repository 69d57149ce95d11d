"""The held-out generator's anatomy, laid out relative to the first lumbar vertebral body.

Body frame: millimetres, origin at the middle of the anterior surface of the vertebral body at
the level of the superior mesenteric artery's origin; ``x`` to the patient's left, ``y``
posterior, ``z`` superior (the LPS directions, so a rotation and a shift place it in the
scanner). Every size and offset is drawn from this module's own distributions. Vessels are
tubes along cubic splines that start on their parent's centreline (so each tree is connected);
the pancreas is a tube along a curved centreline from the head (beside the duodenum) over the
SMV and SMA to the splenic hilum, blended with a head blob and an uncinate process that
reaches behind the SMV.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from phantom.holdout._sdf import (
    Blend,
    FloatArray,
    Ripple,
    Shape,
    Superquadric,
    Tube,
    rotation_xyz,
)

__all__ = ["SITES", "Anatomy", "draw_anatomy"]

#: Where a tumor can sit, in the order of ``truth.csv``'s ``tumor_location`` values.
SITES: tuple[str, ...] = ("head", "uncinate", "body", "tail")
_Z_TOP, _Z_BOTTOM = 110.0, -120.0


@dataclass(frozen=True, eq=False)
class Anatomy:
    """One patient's anatomy in the body frame.

    Parameters
    ----------
    tissues
        Unlabelled solids in paint order (later wins), each with its tissue name.
    vessels
        Label name (``"aorta"``, ``"smv"``...) -> tube.
    pancreas
        The pancreas solid (head, uncinate, neck, body, tail).
    pancreas_axis
        Centreline from the head to the tail tip (the main duct follows it).
    bile_duct
        Common bile duct centreline nodes, hilum to papilla.
    sites
        Tumor site -> a point inside the pancreas there.
    duodenum
        The duodenal C-loop (lumen plus wall).
    variant
        Anatomical variant name (``"standard"`` or ``"long-celiac"``...).
    parts
        Organ name (``"visceral_fat"``, ``"spleen"``, ``"stomach"``, ``"duodenum"``) ->
        indices of its solids in ``tissues`` (wall and lumen for the hollow organs).
    stomach
        The stomach's outer surface (before the abdominal wall cuts it).
    """

    tissues: tuple[tuple[Shape, str], ...]
    vessels: Mapping[str, Tube]
    pancreas: Shape
    pancreas_axis: Tube
    bile_duct: FloatArray
    sites: Mapping[str, FloatArray]
    duodenum: Tube
    variant: str
    parts: Mapping[str, tuple[int, ...]]
    stomach: Superquadric


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _p(*values: float) -> FloatArray:
    return np.array(values, dtype=np.float64)


def _wiggle(rng: np.random.Generator, nodes: FloatArray, mm: float) -> FloatArray:
    """Interior nodes moved by up to ``mm`` (ends kept, so branches stay attached)."""
    moved = nodes.copy()
    moved[1:-1] += rng.uniform(-mm, mm, size=(len(nodes) - 2, 3))
    return moved


def _at(tube: Tube, z: float) -> FloatArray:
    """The centreline sample of ``tube`` closest to height ``z``."""
    index = int(np.argmin(np.abs(tube.points[:, 2] - z)))
    result: FloatArray = tube.points[index].copy()
    return result


def _great_vessels(rng: np.random.Generator) -> dict[str, Tube]:
    ax, ar = _u(rng, 8.0, 16.0), _u(rng, 9.0, 12.5)
    ay = -(ar + _u(rng, 1.0, 4.0))
    aorta_nodes = _p(ax, ay, _Z_BOTTOM), _p(ax, ay, 0.0), _p(ax, ay + 2.0, _Z_TOP)
    aorta = Tube.through(_wiggle(rng, np.stack(aorta_nodes), 3.0), (ar * 0.92, ar))
    ir = _u(rng, 9.0, 12.0)
    ix, iy = -_u(rng, 20.0, 27.0) - ir * 0.5, _u(rng, -14.0, -6.0)
    ivc_nodes = (
        _p(ix + 4.0, iy + 6.0, _Z_BOTTOM),
        _p(ix, iy, 0.0),
        _p(ix - 6.0, iy - _u(rng, 4.0, 10.0), _Z_TOP),
    )
    ivc = Tube.through(_wiggle(rng, np.stack(ivc_nodes), 3.0), (ir, ir * 1.1))
    return {"aorta": aorta, "ivc": ivc}


def _arteries(
    rng: np.random.Generator, aorta: Tube, hilum: FloatArray, variant: str
) -> dict[str, Tube]:
    """Celiac trunk, CHA, PHA, GDA, splenic artery and SMA, each starting on its parent."""
    ar = float(aorta.radii.mean())
    z_ca = _u(rng, 14.0, 24.0)
    o_ca = _at(aorta, z_ca)
    length = _u(rng, 15.0, 24.0) * (1.4 if variant == "long-celiac" else 1.0)
    fork = o_ca + _p(_u(rng, -4, 2), -(ar + length), _u(rng, 0.0, 6.0))
    celiac = Tube.through(
        np.stack([o_ca, o_ca + _p(0, -ar - 3.0, 1.0), fork]), (_u(rng, 3.2, 4.2), 3.2)
    )
    rc = _u(rng, 2.6, 3.2)
    split = fork + _p(-_u(rng, 30.0, 40.0), -_u(rng, 0.0, 6.0), -_u(rng, 0.0, 6.0))
    cha_mid = 0.5 * (fork + split) + _p(0, -_u(rng, 1, 4), _u(rng, -2, 2))
    cha = Tube.through(np.stack([fork, cha_mid, split]), (rc, rc * 0.9))
    pha_end = split + _p(-_u(rng, 5, 15), _u(rng, 0, 6), _u(rng, 30, 42))
    pha = Tube.through(
        _wiggle(rng, np.stack([split, split + _p(-3, 0, 10), pha_end]), 2.0), (rc * 0.8, 2.0)
    )
    gda_end = split + _p(-_u(rng, 0, 6), -_u(rng, 4, 9), -_u(rng, 35, 48))
    gda = Tube.through(
        _wiggle(rng, np.stack([split, split + _p(0, -3, -10), gda_end]), 2.0),
        (_u(rng, 1.6, 2.1), 1.4),
    )
    spa_nodes = np.stack(
        [
            fork,
            fork + _p(20, _u(rng, -2, 6), _u(rng, 2, 8)),
            fork + _p(45, _u(rng, 4, 14), _u(rng, -4, 8)),
            fork + _p(65, _u(rng, 10, 22), _u(rng, -2, 10)),
            hilum + _p(-4, 0, 4),
        ]
    )
    splenic = Tube.through(_wiggle(rng, spa_nodes, 4.0), (_u(rng, 2.5, 3.0), 2.2))
    o_sma = _at(aorta, z_ca - _u(rng, 10.0, 18.0))
    sy = o_sma[1] - ar - _u(rng, 12.0, 18.0)
    sma_nodes = np.stack(
        [
            o_sma,
            o_sma + _p(0, -ar - 4.0, -3.0),
            _p(o_sma[0] - 1.0, sy, o_sma[2] - 20.0),
            _p(o_sma[0] - _u(rng, 0, 6), sy - _u(rng, 0, 6), _Z_BOTTOM),
        ]
    )
    sma = Tube.through(sma_nodes, (_u(rng, 3.3, 4.2), 2.8))
    return {
        "celiac_trunk": celiac,
        "cha": cha,
        "pha": pha,
        "gda": gda,
        "splenic_artery": splenic,
        "sma": sma,
    }


def _veins(
    rng: np.random.Generator, sma: Tube, hilum: FloatArray, z_conf: float
) -> dict[str, Tube]:
    """SMV, portal vein and splenic vein, all meeting at the confluence."""
    s = _at(sma, z_conf)
    conf = s + _p(-_u(rng, 11.0, 15.0), _u(rng, -2.0, 2.0), 0.0)
    rv = _u(rng, 5.0, 6.5)
    smv_nodes = np.stack(
        [
            _p(conf[0] - _u(rng, 0, 5), conf[1] - _u(rng, 0, 6), _Z_BOTTOM),
            conf + _p(-_u(rng, 0, 3), -_u(rng, 0, 3), -40.0),
            conf,
        ]
    )
    smv = Tube.through(smv_nodes, (rv * 0.85, rv))
    pv_end = conf + _p(-_u(rng, 30, 40), _u(rng, -4, 8), _u(rng, 38, 50))
    pv = Tube.through(
        np.stack([conf, conf + _p(-8, 0, 14), pv_end]), (_u(rng, 6.0, 7.5), _u(rng, 5.5, 6.5))
    )
    return {"smv": smv, "portal_vein": pv}


def _pancreas(
    rng: np.random.Generator, vessels: Mapping[str, Tube], hilum: FloatArray, conf: FloatArray
) -> tuple[Shape, Tube, dict[str, FloatArray], FloatArray, Tube]:
    smv, sma = vessels["smv"], vessels["sma"]
    rv = float(smv.radii[-1])
    head = conf + _p(-_u(rng, 20.0, 26.0), _u(rng, -3.0, 4.0), -_u(rng, 14.0, 22.0))
    neck = conf + _p(2.0, -(rv + _u(rng, 8.0, 11.0)), _u(rng, -2.0, 3.0))
    s = _at(sma, conf[2] + 6.0)
    body = _p(s[0] + _u(rng, 16, 26), s[1] - _u(rng, 16, 24), conf[2] + _u(rng, 6, 14))
    tail = hilum + _p(-_u(rng, 8.0, 14.0), -_u(rng, 2.0, 8.0), -_u(rng, 0.0, 8.0))
    mid = 0.5 * (body + tail) + _p(0, _u(rng, -4, 4), _u(rng, 0, 6))
    nodes = np.stack([head, neck, body, mid, tail])
    axis = Tube.through(nodes, (1.0, 1.0))
    frac = np.linspace(0.0, 1.0, len(axis.points))
    r_head, r_body, r_tail = _u(rng, 11.0, 14.0), _u(rng, 8.5, 11.0), _u(rng, 7.0, 9.0)
    radii = np.interp(frac, [0.0, 0.22, 0.45, 0.8, 1.0], [r_head, 8.0, r_body, r_tail, 4.5])
    gland = Tube(axis.points, radii)
    blob = Superquadric(
        head + _p(-2.0, 0.0, -4.0),
        _p(_u(rng, 13, 17), _u(rng, 10, 13), _u(rng, 20, 27)),
        rotation_xyz((0.0, 0.0, _u(rng, -0.3, 0.3))),
        ripple=Ripple.draw(rng, 1.5, (18.0, 40.0)),
    )
    smv_low = _at(smv, head[2] - 8.0)
    hook = smv_low + _p(_u(rng, 2.0, 6.0), rv + _u(rng, 6.0, 9.0), 0.0)
    uncinate_nodes = np.stack([head + _p(0, 4, -6), 0.5 * (head + hook) + _p(0, 4, -4), hook])
    uncinate = Tube.through(uncinate_nodes, (_u(rng, 8.0, 10.0), 5.0))
    solid = Blend((gland, blob, uncinate), smooth_mm=4.0)
    sites = {
        "head": head + _p(-3.0, 0.0, -4.0),
        "uncinate": uncinate.points[uncinate.index_at(0.6)],
        "body": axis.points[axis.index_at(0.45)],
        "tail": axis.points[axis.index_at(0.82)],
    }
    dr = _u(rng, 11.0, 13.0)
    lateral = head[0] - 15.0 - dr - 2.0
    duo_nodes = np.stack(
        [
            head + _p(8, -30, 30),
            head + _p(-22, -16, 22),
            _p(lateral, head[1], head[2]),
            head + _p(-20, 4, -34),
            head + _p(8, 6, -44),
            _p(float(sma.points[0, 0]) + 12, head[1] + 4, head[2] - 42),
        ]
    )
    duodenum = Tube.through(duo_nodes, (dr, dr * 0.9))
    papilla = _p(lateral + dr + 1.0, head[1] + 4.0, head[2] - 6.0)
    pv_end = vessels["portal_vein"].points[-1]
    bile = np.stack([pv_end + _p(8, -8, -2), head + _p(-8, 9, 14), head + _p(-11, 7, 0), papilla])
    return solid, axis, sites, bile, duodenum


def _splenic_vein(rng: np.random.Generator, axis: Tube, conf: FloatArray) -> Tube:
    """Behind the pancreas body and tail, from the splenic hilum to the confluence."""
    idx = [axis.index_at(f) for f in (0.95, 0.8, 0.62, 0.45)]
    back = _p(0.0, _u(rng, 13.0, 17.0), -_u(rng, 1.0, 4.0))
    nodes = np.stack([axis.points[i] + back for i in idx] + [conf])
    return Tube.through(nodes, (_u(rng, 3.5, 4.5), _u(rng, 4.5, 5.5)))


def _organs(
    rng: np.random.Generator, hilum: FloatArray, duodenum: Tube
) -> tuple[list[tuple[Shape, str]], dict[str, tuple[int, ...]], Superquadric]:
    """Body wall, spine, liver, spleen, kidneys, stomach and bowel (unlabelled).

    Also returns where the lymph-node truth's organs are in the list, and the stomach.
    """
    eye = np.eye(3)
    half_w, half_d = _u(rng, 125.0, 150.0), _u(rng, 95.0, 120.0)
    centre = _p(0.0, _u(rng, 5.0, 20.0), 0.0)
    wall = _u(rng, 8.0, 28.0)

    def slab(a: float, b: float, power: float, c: FloatArray = centre) -> Superquadric:
        return Superquadric(c, _p(a, b, 1.0), eye, power, infinite_z=True)

    cavity = slab(half_w - wall - 9, half_d - wall - 9, 2.6)
    out: list[tuple[Shape, str]] = [
        (slab(half_w, half_d, 2.6), "fat"),
        (slab(half_w - wall, half_d - wall, 2.6), "muscle"),
        (cavity, "fat"),
    ]
    out += [
        (slab(22.0, 16.0, 2.8, _p(0, 17, 0)), "bone"),
        (slab(19.0, 13.5, 2.8, _p(0, 17, 0)), "marrow"),
        (slab(8.0, 7.0, 2.0, _p(0, 43, 0)), "csf"),
        (slab(24.0, 10.0, 2.0, _p(0, 60, 0)), "bone"),
    ]
    for side in (-1.0, 1.0):
        psoas = Superquadric(_p(side * 34, 22, -60), _p(16, 14, 90), eye, 2.0)
        kidney = Superquadric(
            _p(side * _u(rng, 62, 75), _u(rng, 35, 50), _u(rng, -40, -5)),
            _p(_u(rng, 24, 30), _u(rng, 20, 25), _u(rng, 48, 58)),
            rotation_xyz((0.0, side * 0.25, side * _u(rng, 0.3, 0.6))),
        )
        out += [(psoas, "muscle"), (kidney, "kidney")]
    liver = Superquadric(
        _p(-_u(rng, 80, 95), _u(rng, -5, 15), _u(rng, 60, 80)),
        _p(_u(rng, 75, 90), _u(rng, 70, 85), _u(rng, 70, 85)),
        rotation_xyz((0.0, 0.0, _u(rng, -0.2, 0.2))),
        2.0,
        Ripple.draw(rng, 4.0, (60.0, 140.0)),
    )
    spleen = Superquadric(
        hilum + _p(_u(rng, 18, 26), _u(rng, 10, 20), _u(rng, 5, 15)),
        _p(_u(rng, 18, 25), _u(rng, 40, 50), _u(rng, 45, 60)),
        rotation_xyz((0.0, 0.0, -0.7)),
    )
    stomach = Superquadric(
        _p(_u(rng, 40, 60), -_u(rng, 50, 65), _u(rng, 45, 65)),
        _p(_u(rng, 40, 55), _u(rng, 28, 36), _u(rng, 40, 50)),
        ripple=Ripple.draw(rng, 3.0, (40.0, 90.0)),
    )
    viscera: list[tuple[Shape, str]] = [
        (liver, "liver"),
        (spleen, "spleen"),
        (stomach, "bowel_wall"),
        (_Offset(stomach, 4.0), "fluid"),
    ]
    for _ in range(int(rng.integers(4, 8))):
        loop = Superquadric(
            _p(_u(rng, -80, 80), -_u(rng, 40, 80), _u(rng, -120, -55)),
            _p(_u(rng, 12, 20), _u(rng, 12, 20), _u(rng, 12, 24)),
        )
        viscera += [(loop, "bowel_wall"), (_Offset(loop, 3.0), "fluid")]
    # Organs drawn near the flanks are cut by the abdominal wall, never poke through it.
    first = len(out)
    out += [(_Within(shape, cavity), tissue) for shape, tissue in viscera]
    out += [(duodenum, "bowel_wall"), (_Offset(duodenum, 2.5), "fluid")]
    parts = {
        "visceral_fat": (2,),
        "spleen": (first + 1,),
        "stomach": (first + 2, first + 3),
        "duodenum": (len(out) - 2, len(out) - 1),
    }
    return out, parts, stomach


@dataclass(frozen=True)
class _Offset:
    """``shape`` shrunk by ``mm`` (its inner part: a lumen inside a wall)."""

    shape: Shape
    mm: float

    def sdf(self, points: FloatArray) -> FloatArray:
        result: FloatArray = self.shape.sdf(points) + self.mm
        return result

    def bounds(self) -> tuple[FloatArray, FloatArray]:
        return self.shape.bounds()


@dataclass(frozen=True)
class _Within:
    """The part of ``shape`` inside ``container``."""

    shape: Shape
    container: Shape

    def sdf(self, points: FloatArray) -> FloatArray:
        result: FloatArray = np.maximum(self.shape.sdf(points), self.container.sdf(points))
        return result

    def bounds(self) -> tuple[FloatArray, FloatArray]:
        return self.shape.bounds()


def draw_anatomy(rng: np.random.Generator) -> Anatomy:
    """Draw one patient's anatomy.

    Parameters
    ----------
    rng
        The patient's anatomy stream.

    Returns
    -------
    Anatomy
        Every solid in the body frame.
    """
    variant = "long-celiac" if rng.random() < 0.2 else "standard"
    vessels: dict[str, Tube] = _great_vessels(rng)
    hilum = _p(_u(rng, 85.0, 100.0), _u(rng, 8.0, 22.0), _u(rng, 18.0, 32.0))
    vessels.update(_arteries(rng, vessels["aorta"], hilum, variant))
    z_conf = float(vessels["sma"].points[0, 2]) - _u(rng, 0.0, 8.0)
    vessels.update(_veins(rng, vessels["sma"], hilum, z_conf))
    conf = vessels["smv"].points[-1]
    pancreas, axis, sites, bile, duodenum = _pancreas(rng, vessels, hilum, conf)
    vessels["splenic_vein"] = _splenic_vein(rng, axis, conf)
    tissues, parts, stomach = _organs(rng, hilum, duodenum)
    return Anatomy(
        tissues=tuple(tissues),
        vessels=MappingProxyType(vessels),
        pancreas=pancreas,
        pancreas_axis=axis,
        bile_duct=bile,
        sites=MappingProxyType(sites),
        duodenum=duodenum,
        variant=variant,
        parts=MappingProxyType(parts),
        stomach=stomach,
    )


def vertebral_angle(rng: np.random.Generator) -> float:
    """A small yaw of the body on the table (radians)."""
    return math.radians(_u(rng, -6.0, 6.0))
