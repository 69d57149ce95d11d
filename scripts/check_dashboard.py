"""Check a Grafana dashboard JSON against what Grafana needs and the node's metrics (issue 27).

``python -m scripts.check_dashboard [FILE ...]`` (default: ``deploy/grafana/*.json``) exits 1
and names every problem, one per line:

- the dashboard: ``uid`` (1-40 characters of ``[A-Za-z0-9_-]``), ``title``, ``schemaVersion``
  (36 or later: the ``timeseries`` era), a ``panels`` list, and the ``DS_PROMETHEUS`` data source
  input (``__inputs``, for Dashboards > Import) with a data source variable of that name (for
  file provisioning, which does not fill ``__inputs``);
- each panel: a unique integer ``id``, a known ``type``, a ``title``, a ``gridPos`` inside the
  24-column grid that overlaps no other panel, the Prometheus data source, and targets with
  unique ``refId``\\ s and an ``expr``;
- each ``expr`` (and each ``label_values`` variable query) parses as PromQL (the
  ``promql-parser`` package, Grafana's ``$__rate_interval``-style variables replaced by a
  duration first), and every metric it selects is one :class:`dicom_node.NodeMetrics` exposes,
  so renaming a metric without the dashboard fails the build;
- every metric family of :class:`dicom_node.NodeMetrics` is shown by at least one panel.

No JSON schema of Grafana dashboards is published as an installable package (Grafana keeps its
schema as CUE and TypeScript in its own repository), hence these structural checks.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser

from dicom_node import NodeMetrics

__all__ = ["DashboardProblem", "check_dashboard", "check_file", "main", "metrics_in_expr"]

_ROOT = Path(__file__).resolve().parent.parent
_DEFAULT_GLOB = "deploy/grafana/*.json"
_UID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_GRID_COLUMNS = 24
_MIN_SCHEMA_VERSION = 36
_DATASOURCE_INPUT = "DS_PROMETHEUS"
_DATASOURCE_REF = "${DS_PROMETHEUS}"
_PANEL_TYPES = frozenset(
    {"timeseries", "stat", "gauge", "bargauge", "table", "heatmap", "piechart", "text", "row"}
)
_NO_TARGETS = frozenset({"text", "row"})
# Grafana's interval variables stand where PromQL wants a duration.
_DURATION_VARIABLES = re.compile(r"\$\{?__(rate_interval|interval|range)(_ms|_s)?\}?")
# Other variables only inside label matchers' strings ("$instance"), which PromQL takes as text.
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?P<selector>[^,]+?)\s*,\s*[A-Za-z_]\w*\s*\)\s*$")
# Suffixes that are series of a family (the dashboard need not show _created).
_FAMILY_SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")


@dataclass(frozen=True)
class DashboardProblem:
    """One thing wrong with a dashboard: where (a JSON path) and what."""

    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def metrics_in_expr(expr: str) -> frozenset[str]:
    """The metric names a PromQL expression selects.

    Raises
    ------
    ValueError
        If ``expr`` is not PromQL (after Grafana's interval variables became ``5m``).
    """
    tree = promql_parser.parse(_DURATION_VARIABLES.sub("5m", expr))
    names: set[str] = set()

    def visit(node: object) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        return True

    promql_parser.walk(tree, visit)
    return frozenset(names)


def _family(series_name: str) -> str:
    for suffix in _FAMILY_SUFFIXES:
        if series_name.endswith(suffix):
            return series_name.removesuffix(suffix)
    return series_name


def check_dashboard(
    dashboard: Mapping[str, Any], known_metrics: frozenset[str]
) -> list[DashboardProblem]:
    """Every problem of ``dashboard`` (empty: Grafana can load it and each query is valid).

    Parameters
    ----------
    dashboard
        The parsed dashboard JSON.
    known_metrics
        The series names the node exposes (:meth:`dicom_node.NodeMetrics.family_names`).
    """
    problems = list(_check_top(dashboard))
    used: set[str] = set()
    panels = dashboard.get("panels")
    if isinstance(panels, list):
        problems.extend(_check_panels(panels, known_metrics, used))
    problems.extend(_check_variables(dashboard, known_metrics, used))
    shown = {_family(name) for name in used}
    for family in sorted({_family(name) for name in known_metrics} - shown):
        problems.append(DashboardProblem("panels", f"no panel shows metric {family}"))
    return problems


def _check_top(dashboard: Mapping[str, Any]) -> Iterator[DashboardProblem]:
    uid = dashboard.get("uid")
    if not isinstance(uid, str) or not _UID.match(uid):
        yield DashboardProblem("uid", "must be 1-40 characters of letters, digits, '-' or '_'")
    if not isinstance(dashboard.get("title"), str) or not dashboard["title"].strip():
        yield DashboardProblem("title", "missing or empty")
    version = dashboard.get("schemaVersion")
    if not isinstance(version, int) or version < _MIN_SCHEMA_VERSION:
        yield DashboardProblem("schemaVersion", f"must be an integer >= {_MIN_SCHEMA_VERSION}")
    panels = dashboard.get("panels")
    if not isinstance(panels, list) or not panels:
        yield DashboardProblem("panels", "must be a non-empty list")
    inputs = dashboard.get("__inputs", [])
    if not any(
        isinstance(i, dict)
        and i.get("name") == _DATASOURCE_INPUT
        and i.get("type") == "datasource"
        and i.get("pluginId") == "prometheus"
        for i in inputs
    ):
        yield DashboardProblem("__inputs", f"no Prometheus data source input {_DATASOURCE_INPUT}")
    variables = _variables(dashboard)
    if not any(
        v.get("name") == _DATASOURCE_INPUT
        and v.get("type") == "datasource"
        and v.get("query") == "prometheus"
        for v in variables
    ):
        yield DashboardProblem(
            "templating", f"no Prometheus data source variable {_DATASOURCE_INPUT}"
        )


def _variables(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    templating = dashboard.get("templating", {})
    found = templating.get("list", []) if isinstance(templating, dict) else []
    return [v for v in found if isinstance(v, dict)]


def _check_panels(
    panels: Sequence[Any], known: frozenset[str], used: set[str]
) -> Iterator[DashboardProblem]:
    ids: set[int] = set()
    boxes: list[tuple[str, tuple[int, int, int, int]]] = []
    for index, panel in enumerate(panels):
        where = f"panels[{index}]"
        if not isinstance(panel, dict):
            yield DashboardProblem(where, "not an object")
            continue
        where = f"{where} {panel.get('title', '?')!r}"
        panel_id = panel.get("id")
        if not isinstance(panel_id, int) or isinstance(panel_id, bool) or panel_id < 1:
            yield DashboardProblem(where, "id must be a positive integer")
        elif panel_id in ids:
            yield DashboardProblem(where, f"id {panel_id} used twice")
        else:
            ids.add(panel_id)
        if panel.get("type") not in _PANEL_TYPES:
            yield DashboardProblem(where, f"unknown panel type {panel.get('type')!r}")
        if not isinstance(panel.get("title"), str) or not panel["title"].strip():
            yield DashboardProblem(where, "missing title")
        box = _grid_box(panel.get("gridPos"))
        if box is None:
            yield DashboardProblem(where, "gridPos needs integers h, w >= 1, x, y >= 0, x+w <= 24")
        else:
            for other, other_box in boxes:
                if _overlap(box, other_box):
                    yield DashboardProblem(where, f"overlaps {other}")
            boxes.append((where, box))
        if panel.get("type") not in _NO_TARGETS:
            yield from _check_targets(where, panel, known, used)


def _grid_box(grid: object) -> tuple[int, int, int, int] | None:
    if not isinstance(grid, dict):
        return None
    values = [grid.get(k) for k in ("x", "y", "w", "h")]
    numbers = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    if len(numbers) != len(values):
        return None
    x, y, w, h = numbers
    if x < 0 or y < 0 or w < 1 or h < 1 or x + w > _GRID_COLUMNS:
        return None
    return x, y, w, h


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def _is_prometheus(datasource: object) -> bool:
    return (
        isinstance(datasource, dict)
        and datasource.get("type") == "prometheus"
        and datasource.get("uid") == _DATASOURCE_REF
    )


def _check_targets(
    where: str, panel: Mapping[str, Any], known: frozenset[str], used: set[str]
) -> Iterator[DashboardProblem]:
    if not _is_prometheus(panel.get("datasource")):
        yield DashboardProblem(where, f"datasource must be prometheus with uid {_DATASOURCE_REF}")
    targets = panel.get("targets")
    if not isinstance(targets, list) or not targets:
        yield DashboardProblem(where, "no targets")
        return
    ref_ids: set[str] = set()
    for number, target in enumerate(targets):
        at = f"{where} targets[{number}]"
        if not isinstance(target, dict):
            yield DashboardProblem(at, "not an object")
            continue
        ref_id = target.get("refId")
        if not isinstance(ref_id, str) or not ref_id or ref_id in ref_ids:
            yield DashboardProblem(at, "refId missing or used twice")
        else:
            ref_ids.add(ref_id)
        if "datasource" in target and not _is_prometheus(target["datasource"]):
            yield DashboardProblem(at, f"datasource must be prometheus with uid {_DATASOURCE_REF}")
        expr = target.get("expr")
        if not isinstance(expr, str) or not expr.strip():
            yield DashboardProblem(at, "no expr")
            continue
        yield from _check_expr(at, expr, known, used)


def _check_expr(
    at: str, expr: str, known: frozenset[str], used: set[str]
) -> Iterator[DashboardProblem]:
    try:
        names = metrics_in_expr(expr)
    except ValueError as exc:
        yield DashboardProblem(at, f"expr is not PromQL ({exc}): {expr}")
        return
    if not names:
        yield DashboardProblem(at, f"expr selects no metric: {expr}")
    for name in sorted(names - known):
        yield DashboardProblem(at, f"metric {name} is not exposed by NodeMetrics")
    used.update(names & known)


def _check_variables(
    dashboard: Mapping[str, Any], known: frozenset[str], used: set[str]
) -> Iterator[DashboardProblem]:
    for variable in _variables(dashboard):
        if variable.get("type") != "query":
            continue
        at = f"templating {variable.get('name', '?')!r}"
        query = variable.get("query")
        text = query.get("query") if isinstance(query, dict) else query
        match = _LABEL_VALUES.match(text) if isinstance(text, str) else None
        if match is None:
            yield DashboardProblem(at, "query must be label_values(<selector>, <label>)")
            continue
        yield from _check_expr(at, match["selector"], known, used)


def check_file(path: Path, known_metrics: frozenset[str]) -> list[DashboardProblem]:
    """:func:`check_dashboard` of the JSON file at ``path`` (unreadable JSON is a problem)."""
    try:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [DashboardProblem(str(path), f"not readable JSON ({exc})")]
    if not isinstance(dashboard, dict):
        return [DashboardProblem(str(path), "not a JSON object")]
    return check_dashboard(dashboard, known_metrics)


def main(argv: Sequence[str] | None = None) -> int:
    """Check the files named (default: ``deploy/grafana/*.json``); 0 when all pass."""
    args = list(sys.argv[1:] if argv is None else argv)
    paths = [Path(a) for a in args] or sorted(_ROOT.glob(_DEFAULT_GLOB))
    if not paths:
        sys.stderr.write(f"no dashboard found ({_DEFAULT_GLOB})\n")
        return 1
    known = NodeMetrics().family_names()
    failed = False
    for path in paths:
        problems = check_file(path, known)
        for problem in problems:
            sys.stderr.write(f"{path}: {problem}\n")
        failed = failed or bool(problems)
        if not problems:
            sys.stdout.write(f"{path}: ok\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
