"""The Grafana dashboard (docs/grafana-dashboard.json): every PromQL expression in it parses
(promtool checks them as recording rules, its variables given sample values), reads only metrics
haoperator and its ha-elector serve, and the panels the issue asks for are there. A static check:
the expressions are not run against a Prometheus here."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testenv.harness.cluster import REPO
from tests.unit.promql import PROMETHEUS_OWN, metric_names, promtool, served_metrics

DASHBOARD_PATH = REPO / "docs" / "grafana-dashboard.json"
DASHBOARD: dict[str, Any] = json.loads(DASHBOARD_PATH.read_text())
GRAFANA_VARIABLES = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}
SAMPLE_VALUES = {"datasource": "prometheus", "job": "haoperator", "namespace": ".*"}
"""What each of the dashboard's own variables stands for in a check."""
VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")
LABEL_VALUES = re.compile(r"^label_values\((.+),\s*(\w+)\)$")


def panels() -> Iterator[dict[str, Any]]:
    for panel in DASHBOARD["panels"]:
        yield panel
        yield from panel.get("panels", [])


def targets() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in panels():
        for target in panel.get("targets", []):
            yield panel, target


def variables() -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in DASHBOARD["templating"]["list"]}


def substituted(expr: str) -> str:
    """`expr` with Grafana's and the dashboard's variables replaced by sample values."""
    known = {**GRAFANA_VARIABLES, **SAMPLE_VALUES}

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in known, f"unknown variable ${name} in {expr!r}"
        return known[name]

    return VARIABLE.sub(value, expr)


def expressions() -> list[tuple[str, str]]:
    """(where, PromQL) for every query of the dashboard: its panels' targets and the
    metric of its variables' label_values()."""
    found = [
        (f"panel {panel['id']} ({panel['title']}) {target['refId']}", target["expr"])
        for panel, target in targets()
    ]
    for name, variable in variables().items():
        if variable["type"] == "query":
            query = variable["query"]["query"]
            matched = LABEL_VALUES.match(query)
            assert matched, f"variable {name}: {query!r} is not label_values(SELECTOR, LABEL)"
            found.append((f"variable {name}", matched.group(1)))
    return found


def dashboard_text() -> str:
    return "\n".join(expr for _, expr in expressions())


# -- the expressions -----------------------------------------------------------------------------


def test_every_expression_parses(tmp_path: Path) -> None:
    """promtool has no `check query`: a rule file with each expression as a recording rule is
    checked instead, which parses every one of them."""
    rules = [
        {"record": f"haoperator_dashboard:query_{i}", "expr": substituted(expr)}
        for i, (_, expr) in enumerate(expressions())
    ]
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = promtool("check", "rules", path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout


def test_a_broken_expression_fails_the_check(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    rule = {"record": "x", "expr": "sum by (le (rate(x[5m]))"}
    path.write_text(yaml.safe_dump({"groups": [{"name": "broken", "rules": [rule]}]}))
    assert promtool("check", "rules", path).returncode != 0


@pytest.mark.parametrize(("where", "expr"), expressions(), ids=[w for w, _ in expressions()])
def test_every_expression_reads_only_metrics_haoperator_serves(where: str, expr: str) -> None:
    used = metric_names(substituted(expr))
    assert used, f"{where}: no metric in {expr!r}"
    unknown = used - served_metrics() - PROMETHEUS_OWN
    assert not unknown, f"{where} reads metrics nothing serves: {sorted(unknown)}"


def test_every_metric_haoperator_serves_is_on_the_dashboard() -> None:
    used = {name for _, expr in expressions() for name in metric_names(substituted(expr))}
    families = {re.sub(r"_(bucket|count|sum)$", "", name) for name in served_metrics()}
    shown = {re.sub(r"_(bucket|count|sum)$", "", name) for name in used}
    assert families <= shown, f"not on the dashboard: {sorted(families - shown)}"


@pytest.mark.parametrize(
    ("what", "pattern"),
    [
        ("services by category and readiness", r"by \(category, ready\) \(haoperator_haservices"),
        ("the active pod per ActivePassive service", r"active_pod\) \(haoperator_haservice_active"),
        ("failovers", r"increase\(haoperator_haservice_failovers_total"),
        ("failover seconds", r"histogram_quantile\(0\.99, .*haoperator_failover_seconds_bucket"),
        ("recovery actions", r"by \(action\) \(increase\(haoperator_recovery_actions_total"),
        ("the reconcile rate", r"by \(result\) \(rate\(haoperator_reconcile_total"),
        ("reconcile latency", r"histogram_quantile\(0\.99, .*haoperator_reconcile_seconds_bucket"),
        ("reconcile errors", r'haoperator_reconcile_total\{[^}]*result="error"'),
    ],
)
def test_the_dashboard_shows(what: str, pattern: str) -> None:
    assert re.search(pattern, dashboard_text()), f"no panel shows {what}"


# -- the dashboard as Grafana loads it -----------------------------------------------------------


def test_it_names_itself_and_its_data_source() -> None:
    assert DASHBOARD["uid"] == "haoperator"
    assert DASHBOARD["title"]
    assert isinstance(DASHBOARD["schemaVersion"], int)
    assert "id" not in DASHBOARD  # Grafana assigns it; a fixed one clashes on import
    assert variables()["datasource"]["type"] == "datasource"
    assert variables()["datasource"]["query"] == "prometheus"
    assert set(variables()) == set(SAMPLE_VALUES)


def test_every_query_uses_the_chosen_data_source() -> None:
    source = {"type": "prometheus", "uid": "${datasource}"}
    for variable in variables().values():
        if variable["type"] == "query":
            assert variable["datasource"] == source
    for panel in panels():
        if panel["type"] != "row":
            assert panel["datasource"] == source, panel["title"]
            assert panel["targets"], panel["title"]
    for panel, target in targets():
        assert target["datasource"] == source, panel["title"]


def test_panels_have_unique_ids_titles_and_descriptions() -> None:
    ids = [panel["id"] for panel in panels()]
    assert len(ids) == len(set(ids))
    for panel in panels():
        assert panel["title"]
        if panel["type"] != "row":
            assert panel.get("description"), f"{panel['title']} says not what it shows"
    for panel in panels():
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), panel["title"]


def test_panels_fit_the_grid_without_overlapping() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in panels():
        grid = panel["gridPos"]
        assert 0 <= grid["x"] < grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_the_dashboard_file_is_formatted() -> None:
    """Two-space indented JSON, as the generator and Grafana's export write it: diffs stay
    readable."""
    assert DASHBOARD_PATH.read_text() == json.dumps(DASHBOARD, indent=2) + "\n"
