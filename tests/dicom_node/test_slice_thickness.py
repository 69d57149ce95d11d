"""gather_facts takes the slice spacing from the positions where SliceThickness cannot be used.

SliceThickness (0018,0050) is Type 2 in the Image Plane module (PS3.3 C.7.6.2): it may be empty
or absent (NIH Pancreas-CT leaves it out), and a malformed file may carry several values. The
routing rules then see the median spacing of ImagePositionPatient along the slice normal, and
the reason says so.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom import Dataset, dcmread

from dicom_node.routing import RuleAction, RuleSet, load_rules
from dicom_node.series_assembly import gather_facts
from tests.dicom_node.conftest import TEST_RULES, PhantomSeries
from tests.inference.conftest_volume import NIH_CASE, build_enhanced_ct, require_shared

DERIVED = "derived from ImagePositionPatient spacing along the slice normal"


#: The node tests' rules: at least 10 slices, at most 5 mm (the phantom series has 20 of 3 mm).
SMALL_CT_RULES = RuleSet.model_validate(tomllib.loads(TEST_RULES))


def portal_venous(_paths: object) -> tuple[str, str]:
    """An estimator standing in for the image measurement (the phase is not under test)."""
    return "portal-venous", "test estimator"


def edited_copy(series: PhantomSeries, out: Path, change: Callable[[Dataset], None]) -> list[Path]:
    """A copy of the phantom series with ``change`` applied to every file."""
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for src in series.files:
        ds = dcmread(src)
        change(ds)
        target = out / src.name
        ds.save_as(target)
        files.append(target)
    return files


def blank(ds: Dataset) -> None:
    ds.SliceThickness = ""


def remove(ds: Dataset) -> None:
    del ds.SliceThickness


def multi(ds: Dataset) -> None:
    ds.SliceThickness = ["3", "5"]


def test_slice_thickness_from_the_header_when_present(ct_series: PhantomSeries) -> None:
    facts = gather_facts(ct_series.files)
    assert facts.slice_thickness_mm == pytest.approx(3.0)
    assert facts.slice_thickness_source == "from SliceThickness"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (blank, "SliceThickness empty"),
        (remove, "SliceThickness absent"),
        (multi, "SliceThickness multi-valued"),
    ],
)
def test_unusable_slice_thickness_is_derived_from_positions(
    ct_series: PhantomSeries, tmp_path: Path, change: Callable[[Dataset], None], why: str
) -> None:
    files = edited_copy(ct_series, tmp_path / "series", change)
    facts = gather_facts(files, phase_estimator=portal_venous)
    # The phantom's slices are 3 mm apart.
    assert facts.slice_thickness_mm == pytest.approx(3.0)
    assert facts.slice_thickness_source == f"{why}: {DERIVED}"
    decision = SMALL_CT_RULES.evaluate(facts)
    assert decision.action is RuleAction.ANALYZE, decision.summary
    assert f"slice thickness 3 mm ({why}: {DERIVED}) within limits" in decision.reasons


def test_without_positions_the_thickness_stays_unknown_and_says_why(
    ct_series: PhantomSeries, tmp_path: Path
) -> None:
    def strip(ds: Dataset) -> None:
        ds.SliceThickness = ""
        del ds.ImagePositionPatient

    facts = gather_facts(edited_copy(ct_series, tmp_path / "series", strip))
    assert facts.slice_thickness_mm is None
    decision = SMALL_CT_RULES.evaluate(facts)
    assert decision.action is RuleAction.IGNORE
    assert "slice thickness unknown (SliceThickness empty, and no spacing" in decision.summary


def test_a_single_slice_has_no_spacing(ct_series: PhantomSeries, tmp_path: Path) -> None:
    files = edited_copy(ct_series, tmp_path / "series", blank)[:1]
    assert gather_facts(files).slice_thickness_mm is None


def test_nih_case_without_slice_thickness_is_analysed(tmp_path: Path) -> None:
    """NIH Pancreas-CT 0001: real, portal-venous, 1 mm, SliceThickness empty (as in 0002)."""
    files = sorted((require_shared(NIH_CASE) / "dicom").iterdir())
    facts = gather_facts(files, phase_estimator=portal_venous)
    assert facts.slice_thickness_mm == pytest.approx(1.0)
    assert facts.slice_thickness_source == f"SliceThickness empty: {DERIVED}"
    decision = load_rules().evaluate(facts)
    assert decision.action is RuleAction.ANALYZE, decision.summary
    assert f"slice thickness 1 mm (SliceThickness empty: {DERIVED}) within limits" in (
        decision.reasons
    )
    # The same case with SliceThickness left out altogether.
    removed = tmp_path / "nih"
    removed.mkdir()
    copies = []
    for src in files[:60]:
        ds = dcmread(src)
        del ds.SliceThickness
        ds.save_as(removed / src.name)
        copies.append(removed / src.name)
    facts = gather_facts(copies, phase_estimator=portal_venous)
    assert facts.slice_thickness_mm == pytest.approx(1.0)
    assert facts.slice_thickness_source == f"SliceThickness absent: {DERIVED}"
    assert load_rules().evaluate(facts).action is RuleAction.ANALYZE


def test_enhanced_ct_positions_come_from_the_per_frame_groups(
    ct_series: PhantomSeries, tmp_path: Path
) -> None:
    enhanced = build_enhanced_ct(
        ct_series.files, tmp_path / "enhanced.dcm", frame_order=range(len(ct_series.files))[::-1]
    )
    facts = gather_facts([enhanced])
    # build_enhanced_ct writes SliceThickness 1 in the shared Pixel Measures group.
    assert facts.slice_thickness_mm == pytest.approx(1.0)
    assert facts.slice_thickness_source == "from SliceThickness"
    ds = dcmread(enhanced)
    del ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].SliceThickness
    stripped = tmp_path / "stripped.dcm"
    ds.save_as(stripped)
    facts = gather_facts([stripped])
    assert facts.num_slices == len(ct_series.files)
    assert facts.slice_thickness_mm == pytest.approx(3.0)
    assert facts.slice_thickness_source == f"SliceThickness absent: {DERIVED}"
