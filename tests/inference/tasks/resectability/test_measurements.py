"""Measurements: tumor size, contact angles (analytic shapes and phantoms), the NCCN rule."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from inference.tasks.resectability._measure_fields import bounding_crop, crop_affine
from inference.tasks.resectability.measurements import (
    VESSEL_LABEL_VALUES,
    MeasurementResult,
    labels_region,
    measure,
    nccn_rule_category,
)
from inference.volume import Volume
from pancreas_contracts.labels import label_by_name
from pancreas_contracts.result import KEY_VESSELS, Measurements
from phantom import PatientPlan, PhantomOptions, plan_cohort, render_patient, scan_volumes
from phantom import nccn_rule_category as phantom_rule

FloatArray = npt.NDArray[np.float64]
TUMOR = label_by_name("tumor").value
SMA = label_by_name("sma").value
PV = label_by_name("portal_vein").value


# ---------------------------------------------------------------------------------------------
# Analytic shapes on a grid centred on the world origin


def _grid(spacing: tuple[float, float, float], size_mm: float) -> tuple[FloatArray, FloatArray]:
    """Voxel-centre world positions ``(I, J, K, 3)`` and the affine (origin off-centre)."""
    sp = np.asarray(spacing)
    shape = np.ceil(size_mm / sp).astype(int)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -(shape - 1) / 2.0 * sp + 0.13  # no symmetry about the tube's axis
    axes = [np.arange(n) * s + o for n, s, o in zip(shape, sp, affine[:3, 3], strict=True)]
    world = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    return world, affine


def _unit(vector: tuple[float, float, float] | FloatArray) -> FloatArray:
    v = np.asarray(vector, dtype=np.float64)
    result: FloatArray = v / np.linalg.norm(v)
    return result


@dataclass(frozen=True)
class Cuff:
    """A straight vessel through the origin with a tumor sector of known angle around it."""

    direction: tuple[float, float, float]
    angle: float
    radius: float = 3.0
    thickness: float = 5.0
    half_length: float = 10.0
    facing: tuple[float, float, float] | None = None

    def volume(self, spacing: tuple[float, float, float], vessel: int = SMA) -> Volume:
        world, affine = _grid(spacing, 70.0)
        d = _unit(self.direction)
        t = world @ d
        radial = world - t[..., None] * d
        rho = np.linalg.norm(radial, axis=-1)
        helper = (0.0, 0.0, 1.0) if abs(d[2]) < 0.9 else (1.0, 0.0, 0.0)
        f = np.asarray(self.facing) if self.facing is not None else np.cross(d, helper)
        f = _unit(f - (f @ d) * d)
        sector = radial @ f >= np.cos(np.radians(self.angle / 2.0)) * rho
        cuff = (rho > self.radius) & (rho <= self.radius + self.thickness) & sector
        labels = np.zeros(rho.shape, dtype=np.uint8)
        labels[cuff & (np.abs(t) <= self.half_length)] = TUMOR
        labels[rho <= self.radius] = vessel
        return Volume(labels, affine)


DIRECTIONS = {
    "axial-crossing": (0.0, 0.0, 1.0),
    "in-plane-x": (1.0, 0.0, 0.0),
    "in-plane-diagonal": (1.0, 1.0, 0.0),
    "oblique-45": (1.0, 0.0, 1.0),
    "oblique-111": (1.0, 1.0, 1.0),
    "shallow": (0.3, 1.0, 0.15),
}
SPACINGS = {"iso-1mm": (1.0, 1.0, 1.0), "thick-3mm": (0.8, 0.8, 3.0)}


@pytest.mark.parametrize("spacing", SPACINGS.values(), ids=SPACINGS.keys())
@pytest.mark.parametrize("direction", DIRECTIONS.values(), ids=DIRECTIONS.keys())
def test_half_cuff_measures_180_degrees(
    direction: tuple[float, float, float], spacing: tuple[float, float, float]
) -> None:
    result = measure(Cuff(direction, 180.0).volume(spacing))
    assert result.contact_deg["SMA"] == pytest.approx(180.0, abs=8.0)


#: Largest contact-angle error allowed at 1 mm and at 3 mm slices. With 3 mm slices a cuff
#: around a vessel that runs in the slice plane is voxelised 3 mm coarse across the vessel,
#: so each edge of the sector can move by half a slice at the wall: hypothesis 6.170 found
#: 208 degrees measured for 221 (vessel along y, cuff facing the slice axis, radius 4 mm) and
#: 237 for 220 while shrinking it, with the code before and after issue 27's changes alike.
_ANGLE_TOLERANCE_DEG = {False: 12.0, True: 18.0}


@settings(max_examples=12, deadline=None, derandomize=True)
@given(
    direction=st.tuples(*[st.floats(-1.0, 1.0)] * 3).filter(lambda v: np.linalg.norm(v) > 0.3),
    facing=st.tuples(*[st.floats(-1.0, 1.0)] * 3),
    angle=st.floats(45.0, 315.0),
    radius=st.floats(2.5, 6.0),
    thick=st.booleans(),
)
@example(direction=(0.0, 1.0, 0.0), facing=(0.0, 0.0, 1.0), angle=220.0, radius=4.0, thick=True)
@example(direction=(0.0, 1.0, 0.0), facing=(0.0, 0.0, 1.0), angle=214.0, radius=4.0, thick=True)
def test_cuff_angle_at_any_orientation(
    direction: tuple[float, float, float],
    facing: tuple[float, float, float],
    angle: float,
    radius: float,
    thick: bool,
) -> None:
    d = _unit(direction)
    f = np.asarray(facing) - (np.asarray(facing) @ d) * d
    cuff = Cuff(direction, angle, radius, facing=tuple(f) if np.linalg.norm(f) > 0.2 else None)
    result = measure(cuff.volume(SPACINGS["thick-3mm" if thick else "iso-1mm"], vessel=PV))
    assert result.contact_deg["PV"] == pytest.approx(angle, abs=_ANGLE_TOLERANCE_DEG[thick])


@pytest.mark.parametrize("radius", [1.0, 1.5])
def test_tiny_vessel_is_measured(radius: float) -> None:
    result = measure(Cuff((1.0, 0.2, 0.3), 180.0, radius).volume((0.8, 0.8, 0.8)))
    assert result.contact_deg["SMA"] == pytest.approx(180.0, abs=20.0)


def test_full_encasement_and_no_contact() -> None:
    encased = measure(Cuff((0.2, 1.0, 0.1), 360.0).volume((0.8, 0.8, 2.0)))
    assert encased.contact_deg["SMA"] is not None and encased.contact_deg["SMA"] >= 350.0
    spacing = (1.0, 1.0, 1.0)
    volume = Cuff((0.0, 0.0, 1.0), 180.0).volume(spacing)
    array = np.asarray(volume.array).copy()
    tumor = array == TUMOR
    array[tumor] = 0
    array[np.roll(tumor, 5, axis=1)] = TUMOR  # moved 5 mm away: a fat plane all round
    apart = measure(Volume(array, volume.affine))
    assert apart.contact_deg["SMA"] == 0.0
    assert apart.rule_category == 0


def test_result_does_not_depend_on_array_orientation() -> None:
    volume = Cuff((1.0, 0.4, 0.2), 120.0).volume((0.9, 0.9, 2.5))
    base = measure(volume)
    # Reverse and swap array axes, with the affine that keeps every voxel where it was.
    array = np.asarray(volume.array)[::-1].transpose(2, 0, 1)
    flip = np.eye(4)
    flip[0, 0], flip[0, 3] = -1.0, array.shape[1] - 1
    perm = np.zeros((4, 4))
    perm[0, 1] = perm[1, 2] = perm[2, 0] = perm[3, 3] = 1.0
    moved = measure(Volume(np.ascontiguousarray(array), volume.affine @ flip @ perm))
    assert moved.tumor_volume_ml == pytest.approx(base.tumor_volume_ml)
    assert moved.tumor_max_diameter_mm == pytest.approx(base.tumor_max_diameter_mm, abs=0.01)
    assert moved.contact_deg["SMA"] == pytest.approx(base.contact_deg["SMA"], abs=3.0)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**16),
    margin_mm=st.floats(0.0, 30.0),
    spacing=st.tuples(*[st.sampled_from([0.7, 1.0, 2.5, 5.0])] * 3),
)
def test_the_labels_region_keeps_the_tumor_roi_in_world_space(
    seed: int, margin_mm: float, spacing: tuple[float, float, float]
) -> None:
    """The tumor's ROI cut from the labels' region is the ROI cut from the whole grid."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(8, 40, 3))
    labels = np.zeros(shape, dtype=np.uint8)
    for value in (TUMOR, SMA, PV):
        lo = [int(rng.integers(0, n - 1)) for n in shape]
        hi = [int(rng.integers(a + 1, n + 1)) for a, n in zip(lo, shape, strict=True)]
        labels[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = value
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = rng.normal(0.0, 50.0, 3)
    whole = Volume(labels, affine)
    part = labels_region(whole, margin_mm)
    spacing_array = np.asarray(spacing)
    full_roi = bounding_crop(labels == TUMOR, spacing_array, margin_mm)
    part_roi = bounding_crop(np.asarray(part.array) == TUMOR, spacing_array, margin_mm)
    if full_roi is None:
        assert part_roi is None
        return
    assert part_roi is not None
    np.testing.assert_array_equal(labels[full_roi], np.asarray(part.array)[part_roi])
    np.testing.assert_allclose(
        crop_affine(affine, full_roi), crop_affine(part.affine, part_roi), rtol=0, atol=1e-9
    )


def test_empty_grid_around_the_labels_changes_nothing() -> None:
    """Measuring inside the labels' box (issue 27) gives what the whole grid gives.

    The cuff touches the grid's faces (the vessel runs through it), so the ROI margin is
    clipped there; padding the grid with background moves that clipping, and the result must
    still be the same (the ROI is the labels' box grown by the margin, clipped to the grid).
    """
    volume = Cuff((1.0, 0.4, 0.2), 120.0).volume((0.9, 0.9, 2.5))
    base = measure(volume)
    array = np.asarray(volume.array)
    for before, after in (((40, 3, 0), (0, 50, 7)), ((1, 1, 1), (1, 1, 1))):
        padded = np.pad(array, tuple(zip(before, after, strict=True)))
        shift = np.eye(4)
        shift[:3, 3] = [-b for b in before]
        moved = measure(Volume(padded, volume.affine @ shift))
        # The same up to the last bit of the shifted affine's world coordinates.
        assert moved.contact_deg == base.contact_deg and moved.warnings == base.warnings
        assert moved.rule_category == base.rule_category
        assert moved.tumor_volume_ml == pytest.approx(base.tumor_volume_ml, rel=1e-12)
        assert moved.tumor_max_diameter_mm == pytest.approx(base.tumor_max_diameter_mm, rel=1e-12)
    empty = measure(Volume(np.zeros((5, 6, 7), dtype=np.uint8), volume.affine))
    assert empty.tumor_volume_ml is None and empty.warnings == ("no tumor found",)


# ---------------------------------------------------------------------------------------------
# Size


def _ellipsoid(
    semi: tuple[float, float, float], spacing: tuple[float, float, float], angles: FloatArray
) -> Volume:
    world, affine = _grid(spacing, 2.0 * max(semi) + 10.0)
    ax, ay, az = np.radians(angles)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    local = world @ (rz @ ry @ rx)
    inside = ((local / np.asarray(semi)) ** 2).sum(axis=-1) <= 1.0
    return Volume(np.where(inside, TUMOR, 0).astype(np.uint8), affine)


@pytest.mark.parametrize(
    ("semi", "spacing", "angles"),
    [
        ((20.0, 12.0, 8.0), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)),
        ((20.0, 12.0, 8.0), (0.8, 0.8, 2.0), (20.0, -35.0, 50.0)),
        ((9.0, 15.0, 11.0), (0.7, 0.7, 3.0), (70.0, 10.0, -20.0)),
        ((6.0, 6.0, 6.0), (0.6, 0.6, 1.0), (0.0, 0.0, 0.0)),
    ],
)
def test_ellipsoid_size(
    semi: tuple[float, float, float], spacing: tuple[float, float, float], angles: FloatArray
) -> None:
    result = measure(_ellipsoid(semi, spacing, np.asarray(angles)))
    assert result.tumor_max_diameter_mm is not None and result.tumor_volume_ml is not None
    assert result.tumor_max_diameter_mm == pytest.approx(2.0 * max(semi), abs=max(spacing))
    analytic_ml = 4.0 / 3.0 * np.pi * np.prod(semi) / 1000.0
    assert result.tumor_volume_ml == pytest.approx(analytic_ml, rel=0.05)


def test_lone_voxel_and_flat_tumor() -> None:
    array = np.zeros((20, 20, 5), dtype=np.uint8)
    array[10, 10, 2] = TUMOR
    one = measure(Volume(array, np.diag([0.8, 0.8, 3.0, 1.0])))
    assert one.tumor_max_diameter_mm == pytest.approx(3.0)
    assert one.tumor_volume_ml == pytest.approx(0.8 * 0.8 * 3.0 / 1000.0)
    array[5:15, 10, 2] = TUMOR  # a line of 10 voxels: no convex hull of its own
    line = measure(Volume(array, np.diag([0.8, 0.8, 3.0, 1.0])))
    assert line.tumor_max_diameter_mm == pytest.approx(8.0)


def test_diameter_of_the_largest_component_volume_of_all() -> None:
    array = np.zeros((40, 20, 20), dtype=np.uint8)
    array[2:12, 5:15, 5:15] = TUMOR  # 10 x 10 x 10 mm cube
    alone = measure(Volume(array.copy(), np.eye(4)))
    array[30:34, 8:12, 8:12] = TUMOR  # 4 mm cube 18 mm away: a second piece
    result = measure(Volume(array, np.eye(4)))
    # The diameter is the big cube's alone (face centres corner to corner: sqrt(10^2 + 2 * 9^2)),
    # never a span across both pieces (about 31 mm).
    assert alone.tumor_max_diameter_mm == pytest.approx(np.sqrt(262.0))
    assert result.tumor_max_diameter_mm == pytest.approx(np.sqrt(262.0))
    assert result.tumor_volume_ml == pytest.approx((1000 + 64) / 1000.0)


# ---------------------------------------------------------------------------------------------
# Missing structures and the result contract


def test_no_tumor_and_absent_vessels() -> None:
    array = np.asarray(Cuff((0.0, 0.0, 1.0), 90.0).volume((1.0, 1.0, 1.0)).array).copy()
    array[array == TUMOR] = 0
    result = measure(Volume(array, np.eye(4)))
    assert result.tumor_volume_ml is None and result.tumor_max_diameter_mm is None
    assert result.rule_category is None and result.rule_label is None
    # No tumor: no angle for any vessel, the SMA present in the map included (never 0.0).
    assert np.any(array == SMA)
    assert all(result.contact_deg[k] is None for k in KEY_VESSELS)
    assert result.to_measurements() == Measurements(contact_deg=dict(result.contact_deg))


def test_absent_vessel_counts_as_no_contact_with_a_warning() -> None:
    result = measure(Cuff((0.0, 0.0, 1.0), 90.0).volume((1.0, 1.0, 1.0), vessel=PV))
    assert result.contact_deg["SMA"] is None
    assert any(w.startswith("SMA:") for w in result.warnings)
    assert result.rule_category == 0  # venous contact below 180 degrees
    assert result.rule_label == "resectable"


def test_result_is_frozen_and_converts_to_the_contract() -> None:
    result = measure(Cuff((1.0, 0.0, 0.0), 200.0).volume((1.0, 1.0, 1.0)))
    with pytest.raises(AttributeError):
        result.rule_category = 0  # type: ignore[misc]
    with pytest.raises(TypeError):
        result.contact_deg["SMA"] = 0.0  # type: ignore[index]
    block = result.to_measurements()
    assert set(block.contact_deg) == set(KEY_VESSELS)
    assert block.tumor_volume_ml == result.tumor_volume_ml
    assert Measurements.model_validate_json(block.model_dump_json()) == block
    assert dict(VESSEL_LABEL_VALUES) == {"SMA": 6, "CA": 7, "CHA": 10, "SMV": 5, "PV": 3}


# ---------------------------------------------------------------------------------------------
# The NCCN rule: the product's definition is the phantom's


ANGLE = st.one_of(st.sampled_from([0.0, 1.0, 179.0, 179.9, 180.0, 360.0]), st.floats(0.0, 360.0))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(KEY_VESSELS), ANGLE))
def test_rule_agrees_with_the_phantom_truth(angles: dict[str, float]) -> None:
    assert nccn_rule_category(angles) == phantom_rule(angles)


def test_rule_edges_and_errors() -> None:
    assert nccn_rule_category({"SMA": None, "PV": 180.0}) == 1
    assert nccn_rule_category({"CHA": 1.0}) == 1
    assert nccn_rule_category({"CA": 180.0}) == 2
    assert nccn_rule_category({"SMV": 179.9}) == 0
    with pytest.raises(ValueError, match="unknown"):
        nccn_rule_category({"aorta": 10.0})
    with pytest.raises(ValueError, match="0-360"):
        nccn_rule_category({"SMA": 361.0})


# ---------------------------------------------------------------------------------------------
# Phantoms with constructed contact angles (the accuracy check)


def _phantom_plans() -> list[PatientPlan]:
    """Eight patients, four at 1 mm and four at 3 mm slices, covering every key vessel.

    Per slice thickness: patients that add a vessel not yet touched come first, then others
    with some contact, in cohort order.
    """
    chosen: list[PatientPlan] = []
    for thickness, seed in ((1.0, 7), (3.0, 8)):
        options = PhantomOptions(
            fov_mm=(200.0, 200.0, 160.0), pixel_spacing=0.8, slice_thickness=thickness,
            position="random",
        )  # fmt: skip
        plans = [p for p in plan_cohort(40, seed, options) if any(p.angles.values())]
        covered: set[str] = set()
        firsts = []
        for plan in plans:
            new = {k for k, a in plan.angles.items() if a > 0} - covered
            if new:
                firsts.append(plan)
                covered |= new
        rest = [p for p in plans if p not in firsts]
        chosen += (firsts + rest)[:4]
    return chosen


@dataclass(frozen=True)
class Case:
    plan: PatientPlan
    truth_volume_ml: float
    result: MeasurementResult


@pytest.fixture(scope="module")
def phantom_cases() -> Iterator[list[Case]]:
    cases = []
    for plan in _phantom_plans():
        scan = render_patient(plan)
        _, label = scan_volumes(scan)
        cases.append(Case(plan, scan.tumor_volume_ml, measure(label)))
    yield cases


def test_phantom_contact_angles_within_10_degrees_on_average(
    phantom_cases: list[Case], capsys: pytest.CaptureFixture[str]
) -> None:
    errors: dict[str, list[float]] = {k: [] for k in KEY_VESSELS}
    for case in phantom_cases:
        for key in KEY_VESSELS:
            measured = case.result.contact_deg[key]
            assert measured is not None, (case.plan.patient_id, key)
            errors[key].append(abs(measured - case.plan.angles[key]))
    overall = float(np.mean([e for v in errors.values() for e in v]))
    touched = [
        abs((c.result.contact_deg[k] or 0.0) - c.plan.angles[k])
        for c in phantom_cases
        for k in KEY_VESSELS
        if c.plan.angles[k] > 0
    ]
    table = ", ".join(f"{k} {np.mean(v):.1f}" for k, v in errors.items())
    with capsys.disabled():
        print(
            f"\ncontact MAE (deg) over {len(phantom_cases)} phantoms: {table}; "
            f"overall {overall:.1f}; {len(touched)} contacts only {np.mean(touched):.1f}"
        )
    assert {k for c in phantom_cases for k in KEY_VESSELS if c.plan.angles[k] > 0} == set(
        KEY_VESSELS
    )
    assert overall <= 10.0
    assert float(np.mean(touched)) <= 10.0


def test_phantom_rule_category_and_volume(phantom_cases: list[Case]) -> None:
    agree = sum(c.result.rule_category == c.plan.rule_category for c in phantom_cases)
    assert agree >= len(phantom_cases) - 1
    for case in phantom_cases:
        assert case.result.tumor_volume_ml == pytest.approx(case.truth_volume_ml, rel=0.1)
        diameter = case.result.tumor_max_diameter_mm
        assert diameter is not None and 10.0 < diameter < 150.0
