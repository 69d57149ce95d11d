"""Follow-up truth (issue 25): the hazard model, its draw, the truth.csv columns and the option."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from pancreas_contracts.prognosis import FOLLOW_UP_COLUMNS
from pancreas_node.cli import main
from phantom import (
    FOLLOW_UP_TRUTH_COLUMNS,
    HazardModel,
    PhantomCohort,
    PhantomOptions,
    draw_follow_up,
    event_time,
    follow_up_cells,
    generate_cohort,
    linear_predictor,
)
from phantom._cohort import follow_up_stream

# Seed 2: an N+ and an N0 PDAC patient and a tumor-free one, in a few seconds.
SEED = 2
SMALL = PhantomOptions(
    variation="wide",
    tumor_free_fraction=0.34,
    fov_mm=(160.0, 150.0, 45.0),
    pixel_spacing=2.0,
    slice_thickness=3.0,
)
SMALL_ARGS = [
    "--variation", "wide", "--tumor-free-fraction", "0.34", "--fov-mm", "160,150,45",
    "--pixel-spacing", "2", "--slice-thickness", "3",
]  # fmt: skip


def _truth(out: Path) -> list[dict[str, str]]:
    with (out / "truth.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> PhantomCohort:
    return generate_cohort(tmp_path_factory.mktemp("follow-up"), 3, SEED, SMALL)


@pytest.fixture(scope="module")
def without(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same cohort with ``--no-follow-up``, written by the command line."""
    out = tmp_path_factory.mktemp("no-follow-up") / "cohort"
    args = ["phantom", "--out", str(out), "--patients", "3", "--seed", str(SEED), *SMALL_ARGS]
    assert main([*args, "--no-follow-up"]) == 0
    return out


def test_linear_predictor_is_the_stated_formula() -> None:
    assert linear_predictor(8.0, 0, 0, 37.0, 65.0) == pytest.approx(0.0, abs=1e-12)
    # One doubling, two categories, N+, ten times the CA 19-9 and ten years older.
    assert linear_predictor(16.0, 2, 1, 370.0, 75.0) == pytest.approx(1.0 + 1.4 + 0.8 + 0.5 + 0.3)
    # Non-secretors count as 1 U/mL.
    assert linear_predictor(8.0, 0, 0, 0.5, 65.0) == pytest.approx(0.5 * math.log10(1 / 37))


def test_a_fixed_u_gives_the_closed_form_time() -> None:
    model = HazardModel()
    assert event_time(0.0, math.exp(-1.0)) == pytest.approx(40.0)
    lp, u = 0.7, 0.3
    t = event_time(lp, u, model)
    assert t == pytest.approx(40.0 * (-math.log(u) / math.exp(lp)) ** (1 / 1.5))
    # The survival function at that time is u.
    assert math.exp(-((t / 40.0) ** 1.5) * math.exp(lp)) == pytest.approx(u)
    # The reference patient's median.
    assert event_time(0.0, 0.5) == pytest.approx(40.0 * math.log(2.0) ** (1 / 1.5))
    with pytest.raises(ValueError, match="u must be"):
        event_time(0.0, 0.0)


def test_the_draw_uses_u_then_follow_up_then_loss() -> None:
    model = HazardModel()
    for seed in range(50):
        drawn = draw_follow_up(0.4, np.random.default_rng(seed), model)
        rng = np.random.default_rng(seed)
        u, f, loss = 1.0 - rng.random(), rng.uniform(6.0, 72.0), rng.exponential(240.0)
        assert drawn.event_months == pytest.approx(event_time(0.4, u, model))
        assert (drawn.follow_up_months, drawn.loss_months) == (f, loss)
        assert drawn.os_event == (drawn.event_months <= min(f, loss))
        observed = min(drawn.event_months, f, loss)
        assert drawn.os_months == max(round(observed, 1), 0.1)


def test_a_higher_lp_dies_sooner_and_censoring_is_plausible() -> None:
    rng = np.random.default_rng(0)
    low = [draw_follow_up(-1.0, rng) for _ in range(2000)]
    mid = [draw_follow_up(0.0, rng) for _ in range(2000)]
    high = [draw_follow_up(1.0, rng) for _ in range(2000)]
    medians = [float(np.median([d.event_months for d in group])) for group in (low, mid, high)]
    assert medians[0] > medians[1] > medians[2]
    assert medians[1] == pytest.approx(31.3, rel=0.08)
    censored = [1.0 - float(np.mean([d.os_event for d in group])) for group in (low, mid, high)]
    # Follow-up of 6-72 months censors long survivors: more at low risk, few at high risk.
    assert censored[0] > censored[1] > censored[2]
    assert 0.3 < censored[1] < 0.6 and censored[2] < 0.35
    assert all(d.os_months >= 0.1 for group in (low, mid, high) for d in group)


def test_model_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="positive"):
        HazardModel(shape=0.0)
    with pytest.raises(ValueError, match="follow-up"):
        HazardModel(follow_up_min_months=80.0)


def test_option_defaults_and_refusal() -> None:
    assert not PhantomOptions().follow_up_on
    assert PhantomOptions(variation="wide").follow_up_on
    assert PhantomOptions(variation="synth").follow_up_on
    assert not PhantomOptions(variation="wide", follow_up=False).follow_up_on
    assert not PhantomOptions(variation="wide", lymph_nodes=False).follow_up_on
    assert PhantomOptions(lymph_nodes=True, follow_up=True).follow_up_on
    with pytest.raises(ValueError, match="follow-up needs lymph nodes"):
        PhantomOptions(variation="wide", lymph_nodes=False, follow_up=True)
    with pytest.raises(ValueError, match="follow-up needs lymph nodes"):
        PhantomOptions(follow_up=True)
    # Follow-up changes no voxel, so no UID either.
    wide = PhantomOptions(variation="wide")
    assert PhantomOptions(variation="wide", follow_up=False).digest() == wide.digest()


def test_columns_present_and_empty_without_tumor(cohort: PhantomCohort) -> None:
    assert (*FOLLOW_UP_COLUMNS, "hazard_lp") == FOLLOW_UP_TRUTH_COLUMNS
    rows = _truth(cohort.out)
    assert tuple(rows[0])[-3:] == FOLLOW_UP_TRUTH_COLUMNS
    assert [r["has_tumor"] for r in rows].count("0") == 1
    assert {r["n_status"] for r in rows if r["has_tumor"] == "1"} == {"0", "1"}
    for row in rows:
        if row["has_tumor"] == "0":
            assert all(row[c] == "" for c in FOLLOW_UP_TRUTH_COLUMNS)
            continue
        assert float(row["os_months"]) >= 0.1
        assert row["os_event"] in ("0", "1")
        assert row["hazard_lp"] != ""


def test_cells_follow_from_the_truth_and_the_patients_stream(cohort: PhantomCohort) -> None:
    for row, patient in zip(_truth(cohort.out), cohort, strict=True):
        plan = patient.plan
        if not plan.has_tumor:
            continue
        truth = plan.clinical_truth
        covariates = (
            float(row["tumor_volume_ml"]), int(row["rule_category"]), int(row["n_status"]),
            truth["ca19_9_baseline"], truth["age"],
        )  # fmt: skip
        assert float(row["hazard_lp"]) == pytest.approx(linear_predictor(*covariates), abs=5e-5)
        # The same seed gives the same draw.
        cells = follow_up_cells(covariates, follow_up_stream(plan))
        assert cells == {c: row[c] for c in FOLLOW_UP_TRUTH_COLUMNS}


def test_follow_up_changes_no_other_byte(cohort: PhantomCohort, without: Path) -> None:
    with_rows, without_rows = _truth(cohort.out), _truth(without)
    assert not set(FOLLOW_UP_TRUTH_COLUMNS) & set(without_rows[0])
    for on, off in zip(with_rows, without_rows, strict=True):
        assert {k: v for k, v in on.items() if k not in FOLLOW_UP_TRUTH_COLUMNS} == off
    clinical = (cohort.out / "clinical.csv").read_bytes()
    assert clinical == (without / "clinical.csv").read_bytes()
    for patient in cohort:
        other = without / patient.patient_id
        for name in ("image.nii.gz", "label.nii.gz", "lesions.json", "lymph_nodes.json"):
            assert (cohort.out / patient.patient_id / name).read_bytes() == (
                other / name
            ).read_bytes()
        dicom = [path.read_bytes() for path in patient.files.dicom]
        assert dicom == [(other / "dicom" / p.name).read_bytes() for p in patient.files.dicom]


def test_cli_refuses_follow_up_without_lymph_nodes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x"
    args = ["phantom", "--out", str(out), "--variation", "wide", "--no-lymph-nodes"]
    assert main([*args, "--follow-up"]) == 1
    assert "follow-up needs lymph nodes" in capsys.readouterr().err
    assert not out.exists()
