"""Lymph-node planning: the N-status model, kinds, sizes, stations, options and streams."""

from __future__ import annotations

import numpy as np
import pytest

from pancreas_contracts.lymph_nodes import JPS_STATIONS
from phantom import (
    DRAINAGE,
    N_MODEL,
    STATION_SITES,
    PhantomOptions,
    n_positive_probability,
    plan_cohort,
)
from phantom._lymph_nodes import MAX_NODES, plan_nodes

WIDE = PhantomOptions(variation="wide", tumor_free_fraction=0.3)


def test_n_model_rises_with_size_and_class() -> None:
    assert N_MODEL == (-0.6, 0.5, 0.4)
    assert n_positive_probability(30.0, 0) == pytest.approx(0.354, abs=1e-3)
    assert n_positive_probability(30.0, 1) == pytest.approx(0.450, abs=1e-3)
    assert n_positive_probability(30.0, 2) == pytest.approx(0.550, abs=1e-3)
    assert n_positive_probability(10.0, 0) < n_positive_probability(30.0, 0)
    assert n_positive_probability(50.0, 2) == pytest.approx(0.769, abs=1e-3)


def test_every_station_has_a_site_and_drainage_is_known() -> None:
    assert set(STATION_SITES) == {station.code for station in JPS_STATIONS}
    codes = set(STATION_SITES)
    assert all(set(stations) <= codes for stations in DRAINAGE.values())


def test_tumor_free_patients_are_n0_with_negative_nodes_only() -> None:
    for seed in range(40):
        plan = plan_nodes(np.random.default_rng(seed), None, 40.0, 2)
        assert not plan.n_positive and plan.p_positive == 0.0
        assert 3 <= len(plan.nodes) <= 10
        assert {n.kind for n in plan.nodes} <= {"benign", "inflammatory"}


def test_n_positive_plans_have_positive_nodes_at_the_drainage_first() -> None:
    positives = 0
    for seed in range(60):
        plan = plan_nodes(np.random.default_rng(seed), "head", 45.0, 2)
        assert 3 <= len(plan.nodes) <= MAX_NODES
        kinds = [n.metastatic for n in plan.nodes]
        assert any(kinds) == plan.n_positive
        for spec in plan.nodes:
            assert len(spec.stations) == len(STATION_SITES)
            if spec.metastatic:
                assert spec.stations[0] in DRAINAGE["head"]
        positives += plan.n_positive
    assert 25 < positives < 60  # p = 0.71


@pytest.mark.parametrize(
    ("kind", "short", "ratio"),
    [
        ("benign", (3.0, 8.0), (1.5, 2.5)),
        ("metastatic", (10.5, 20.0), (1.0, 1.3)),
        ("small-metastatic", (5.0, 10.0), (1.0, 1.4)),
        ("inflammatory", (10.0, 15.0), (1.4, 2.0)),
    ],
)
def test_sizes_by_kind(kind: str, short: tuple[float, float], ratio: tuple[float, float]) -> None:
    found = 0
    for seed in range(80):
        for spec in plan_nodes(np.random.default_rng(seed), "body", 50.0, 2).nodes:
            if spec.kind != kind:
                continue
            found += 1
            assert short[0] <= spec.short_axis_mm <= short[1]
            assert ratio[0] - 0.01 <= spec.long_axis_mm / spec.short_axis_mm <= ratio[1] + 0.01
            assert 1.0 <= spec.depth <= spec.long_axis_mm / spec.short_axis_mm + 0.01
            assert spec.necrotic <= (kind == "metastatic")
    assert found


def test_nodes_follow_the_variation_unless_given() -> None:
    assert not PhantomOptions().nodes_on
    assert PhantomOptions(variation="wide").nodes_on and PhantomOptions(variation="synth").nodes_on
    assert PhantomOptions(lymph_nodes=True).nodes_on
    assert not PhantomOptions(variation="wide", lymph_nodes=False).nodes_on
    # At the variation's default the UIDs stay those of earlier versions.
    assert PhantomOptions(lymph_nodes=False).digest() == PhantomOptions().digest()
    wide = PhantomOptions(variation="wide")
    assert PhantomOptions(variation="wide", lymph_nodes=True).digest() == wide.digest()
    assert PhantomOptions(variation="wide", lymph_nodes=False).digest() != wide.digest()
    assert all(plan.nodes is None for plan in plan_cohort(3, 1))


def test_node_plans_use_their_own_stream() -> None:
    on = plan_cohort(6, 5, WIDE)
    off = plan_cohort(6, 5, PhantomOptions(variation="wide", tumor_free_fraction=0.3,
                                           lymph_nodes=False))  # fmt: skip
    for with_nodes, without in zip(on, off, strict=True):
        assert with_nodes.nodes is not None and without.nodes is None
        assert with_nodes.variation == without.variation
        assert with_nodes.angles == without.angles
        assert with_nodes.clinical == without.clinical
        assert with_nodes.nccn_label == without.nccn_label
        if not with_nodes.has_tumor:
            assert not with_nodes.nodes.n_positive
    assert [p.nodes for p in on] == [p.nodes for p in plan_cohort(6, 5, WIDE)]
