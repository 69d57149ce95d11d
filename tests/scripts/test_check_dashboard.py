"""scripts/check_dashboard.py: the shipped Grafana dashboard passes, broken ones are named."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dicom_node import NodeMetrics
from scripts.check_dashboard import check_dashboard, check_file, main, metrics_in_expr
from tests.conftest import REPO_ROOT

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "pancreas-ai-dashboard.json"


@pytest.fixture(scope="module")
def known() -> frozenset[str]:
    return NodeMetrics().family_names()


@pytest.fixture
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def problems_of(dashboard: dict[str, Any], known: frozenset[str]) -> list[str]:
    return [str(p) for p in check_dashboard(dashboard, known)]


def test_shipped_dashboard_passes(known: frozenset[str]) -> None:
    assert [str(p) for p in check_file(DASHBOARD, known)] == []


def test_script_exits_zero_on_the_shipped_dashboard() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "scripts.check_dashboard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "pancreas-ai-dashboard.json: ok" in run.stdout


def test_dashboard_shows_the_panels_the_issue_asks_for(dashboard: dict[str, Any]) -> None:
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    for needed in (
        "pancreas_ai_instances_received_total",
        "pancreas_ai_instances_rejected_total",
        "pancreas_ai_series_routed_total",
        "pancreas_ai_jobs{",
        "histogram_quantile(0.5, sum by (le, stage) (rate(pancreas_ai_analysis_stage_seconds",
        "histogram_quantile(0.95, sum by (le, stage) (rate(pancreas_ai_analysis_stage_seconds",
        "pancreas_ai_analysis_seconds_bucket",
        "pancreas_ai_jobs_finished_total",
        "pancreas_ai_delivery_failures_total",
        "pancreas_ai_registry_lookups_total",
    ):
        assert needed in exprs


def test_renamed_metric_fails(dashboard: dict[str, Any], known: frozenset[str]) -> None:
    broken = copy.deepcopy(dashboard)
    target = broken["panels"][0]["targets"][0]
    target["expr"] = target["expr"].replace(
        "pancreas_ai_instances_received_total", "pancreas_ai_instances_in_total"
    )
    found = problems_of(broken, known)
    assert any("pancreas_ai_instances_in_total is not exposed" in p for p in found)


def test_metric_without_a_panel_fails(dashboard: dict[str, Any], known: frozenset[str]) -> None:
    broken = copy.deepcopy(dashboard)
    broken["panels"] = [
        p for p in broken["panels"] if "registry_lookups" not in json.dumps(p.get("targets", []))
    ]
    found = problems_of(broken, known)
    assert "panels: no panel shows metric pancreas_ai_registry_lookups" in found


def test_structure_problems_are_named(dashboard: dict[str, Any], known: frozenset[str]) -> None:
    broken = copy.deepcopy(dashboard)
    del broken["uid"]
    broken["schemaVersion"] = 16
    broken["panels"][1]["id"] = broken["panels"][0]["id"]
    broken["panels"][2]["gridPos"] = {"x": 20, "y": 0, "w": 8, "h": 4}
    broken["panels"][3]["gridPos"] = dict(broken["panels"][0]["gridPos"])
    broken["panels"][4]["type"] = "graph-old"
    broken["panels"][5]["targets"][0]["expr"] = "sum(rate(pancreas_ai_analysis_seconds_sum[5m]"
    broken["panels"][6]["datasource"] = {"type": "prometheus", "uid": "my-prom"}
    broken["__inputs"] = []
    found = "\n".join(problems_of(broken, known))
    assert "uid: must be" in found
    assert "schemaVersion: must be an integer >= 36" in found
    assert "used twice" in found
    assert "gridPos needs" in found
    assert "overlaps panels[0]" in found
    assert "unknown panel type 'graph-old'" in found
    assert "expr is not PromQL" in found
    assert "datasource must be prometheus with uid ${DS_PROMETHEUS}" in found
    assert "__inputs: no Prometheus data source input DS_PROMETHEUS" in found


def test_exprs_are_parsed_not_pattern_matched() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le) (rate(pancreas_ai_analysis_seconds_bucket"
        '{instance=~"$instance"}[$__rate_interval]))) / on() group_left '
        "max(pancreas_ai_jobs)"
    )
    assert metrics_in_expr(expr) == {"pancreas_ai_analysis_seconds_bucket", "pancreas_ai_jobs"}
    with pytest.raises(ValueError):
        metrics_in_expr("sum(rate(pancreas_ai_jobs[5m])")


def test_unreadable_file_and_main_exit_status(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json", encoding="utf-8")
    assert main([str(bad)]) == 1
    assert main([str(DASHBOARD)]) == 0
