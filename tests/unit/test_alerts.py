"""The Prometheus alerts of manifests/monitoring/: the rule file passes `promtool check rules`,
every alert fires (and keeps quiet) in the promtool unit tests of tests/alerts/, reads only
metrics haoperator serves, and links its section of docs/runbooks.md, which says what it means,
what to check and what to do. promtool comes from testenv/prometheus (Debian's package, cached
per machine): without it these tests fail, they never skip.

Also the component itself: a kustomize Component the base does not need, whose ServiceMonitor
reaches the operator's metrics Service."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from haoperator.api import HAService
from haoperator.core import render
from testenv.harness.cluster import REPO
from tests.unit.promql import (
    PROMETHEUS_OWN,
    RULES_NAME,
    alerts,
    metric_names,
    promtool,
    served_metrics,
    write_rules,
)

MONITORING = REPO / "manifests" / "monitoring"
ALERT_TESTS = sorted((REPO / "tests" / "alerts").glob("*.yaml"))
RUNBOOKS = REPO / "docs" / "runbooks.md"
RUNBOOK_BASE = "https://github.com/haoperator/haoperator/blob/main/docs/runbooks.md#"
SEVERITIES = {"critical", "warning", "info"}
SECTIONS = ("What it means", "What to check", "What to do")
ALERT_NAMES = sorted(rule["alert"] for rule in alerts())
TEMPLATE = {"spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}}


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


# -- promtool ------------------------------------------------------------------------------------


def test_the_rules_pass_promtool_check_rules(tmp_path: Path) -> None:
    done = promtool("check", "rules", write_rules(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in done.stdout


def test_the_alerts_pass_their_promtool_unit_tests(tmp_path: Path) -> None:
    write_rules(tmp_path)
    for path in ALERT_TESTS:
        shutil.copy(path, tmp_path / path.name)
    done = promtool("test", "rules", *(p.name for p in ALERT_TESTS), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(ALERT_TESTS), done.stdout


def test_a_broken_expectation_fails_the_unit_tests(tmp_path: Path) -> None:
    """The unit tests can fail: promtool compares every label and annotation."""
    write_rules(tmp_path)
    broken = ALERT_TESTS[0].read_text().replace("severity: critical", "severity: info", 1)
    (tmp_path / "broken.yaml").write_text(broken)
    done = promtool("test", "rules", "broken.yaml", cwd=tmp_path)
    assert done.returncode != 0
    assert "FAILED" in done.stdout + done.stderr


def alert_tests() -> list[dict[str, Any]]:
    return [
        case
        for path in ALERT_TESTS
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]


def test_the_unit_tests_load_the_rules_as_test_alerts_writes_them() -> None:
    assert ALERT_TESTS, "no promtool unit tests in tests/alerts/"
    for path in ALERT_TESTS:
        assert yaml.safe_load(path.read_text())["rule_files"] == [RULES_NAME], path.name


@pytest.mark.parametrize("alert", ALERT_NAMES)
def test_every_alert_is_tested_firing_and_quiet(alert: str) -> None:
    cases = [case for case in alert_tests() if case["alertname"] == alert]
    assert any(case.get("exp_alerts") for case in cases), f"{alert} is never tested firing"
    assert any(not case.get("exp_alerts") for case in cases), f"{alert} is never tested quiet"


def test_the_unit_tests_name_only_alerts_that_exist() -> None:
    assert {case["alertname"] for case in alert_tests()} <= set(ALERT_NAMES)


# -- what each alert says ------------------------------------------------------------------------


def rule_of(alert: str) -> dict[str, Any]:
    return next(rule for rule in alerts() if rule["alert"] == alert)


@pytest.mark.parametrize("alert", ALERT_NAMES)
def test_every_alert_reads_only_metrics_haoperator_serves(alert: str) -> None:
    used = metric_names(rule_of(alert)["expr"])
    assert used, f"{alert}: no metric found in its expression"
    unknown = used - served_metrics() - PROMETHEUS_OWN
    assert not unknown, f"{alert} reads metrics nothing serves: {sorted(unknown)}"


@pytest.mark.parametrize("alert", ALERT_NAMES)
def test_every_alert_has_a_severity_a_summary_and_a_description(alert: str) -> None:
    rule = rule_of(alert)
    assert rule["labels"]["severity"] in SEVERITIES
    assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
    assert all(str(text).strip() for text in rule["annotations"].values())


def anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def runbook_sections() -> dict[str, str]:
    """docs/runbooks.md's `## ` sections by anchor."""
    sections: dict[str, str] = {}
    current = None
    for line in RUNBOOKS.read_text().splitlines():
        if line.startswith("## "):
            current = anchor(line[3:])
            sections[current] = ""
        elif current is not None:
            sections[current] += line + "\n"
    return sections


@pytest.mark.parametrize("alert", ALERT_NAMES)
def test_every_alert_links_its_runbook_section(alert: str) -> None:
    url = rule_of(alert)["annotations"]["runbook_url"]
    assert url == RUNBOOK_BASE + anchor(alert)
    sections = runbook_sections()
    assert anchor(alert) in sections, f"docs/runbooks.md has no section ## {alert}"
    body = sections[anchor(alert)]
    for part in SECTIONS:
        assert f"**{part}" in body, f"the runbook of {alert} lacks '{part}'"


def test_every_runbook_section_is_an_alert() -> None:
    assert set(runbook_sections()) == {anchor(a) for a in ALERT_NAMES}


def test_the_anchor_is_githubs() -> None:
    assert anchor("HAServiceNotReady") == "haservicenotready"
    assert anchor("What to do: now!") == "what-to-do-now"


# -- the component -------------------------------------------------------------------------------


def test_monitoring_is_a_component_the_base_does_not_need() -> None:
    component = yaml.safe_load((MONITORING / "kustomization.yaml").read_text())
    assert component["kind"] == "Component"
    assert component["apiVersion"] == "kustomize.config.k8s.io/v1alpha1"
    files = sorted(p.name for p in MONITORING.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(component["resources"]) == files
    kinds = sorted(doc["kind"] for name in files for doc in documents(MONITORING / name))
    assert kinds == ["PrometheusRule", "ServiceMonitor"]
    base = yaml.safe_load((REPO / "manifests" / "kustomization.yaml").read_text())
    assert not any("monitoring" in entry for entry in base["resources"])
    assert "components" not in base


def metrics_service() -> dict[str, Any]:
    (service,) = documents(REPO / "manifests" / "metrics-service.yaml")
    return service


def test_the_service_monitor_scrapes_the_metrics_service() -> None:
    (monitor,) = documents(MONITORING / "service-monitor.yaml")
    service = metrics_service()
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    # The per-HAService series carry the HAService's namespace, not the operator's.
    assert endpoint["honorLabels"] is True


def test_the_operator_down_alert_watches_the_job_the_service_monitor_makes() -> None:
    (monitor,) = documents(MONITORING / "service-monitor.yaml")
    job = metrics_service()["metadata"]["labels"][monitor["spec"]["jobLabel"]]
    assert f'up{{job="{job}"}}' in rule_of("HAOperatorDown")["expr"]


def test_the_electors_pod_monitor_is_a_component_of_its_own() -> None:
    """Optional beside the operator's: it needs a Prometheus that may scrape pods anywhere."""
    electors = MONITORING / "electors"
    component = yaml.safe_load((electors / "kustomization.yaml").read_text())
    assert component["kind"] == "Component"
    assert component["resources"] == ["pod-monitor.yaml"]
    (monitor,) = documents(electors / "pod-monitor.yaml")
    assert monitor["kind"] == "PodMonitor"
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["path"] == "/metrics"
    # The port of the sidecar, on the pods of every ActivePassive service and only those.
    for category, monitored in (("ActivePassive", True), ("LoadBalanced", False)):
        spec = {"category": category, "template": TEMPLATE, "replicas": 2}
        obj = {"apiVersion": "haoperator.dev/v1alpha1", "kind": "HAService",
               "metadata": {"name": "web", "namespace": "ns"}, "spec": spec}  # fmt: skip
        (workload,) = [c for c in render.desired(HAService.model_validate(obj)) if
                       c["kind"] == "Deployment"]  # fmt: skip
        template = workload["spec"]["template"]
        selected = monitor["spec"]["selector"]["matchLabels"].items()
        assert (selected <= template["metadata"]["labels"].items()) is monitored
        if monitored:
            containers = template["spec"]["initContainers"]
            ports = {p["name"] for c in containers for p in c.get("ports", [])}
            assert endpoint["port"] in ports


def test_the_rule_and_monitor_live_with_the_operator() -> None:
    service = metrics_service()
    for name in ("service-monitor.yaml", "prometheus-rule.yaml"):
        (doc,) = documents(MONITORING / name)
        assert doc["metadata"]["namespace"] == service["metadata"]["namespace"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "haoperator"


# -- the extraction the metric checks rely on ----------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ('absent(up{job="haoperator"} == 1)', {"up"}),
        (
            'sum by (namespace, name) (increase(a_total{x="}", le="0.5"}[15m])) >= 3',
            {"a_total"},
        ),
        (
            "histogram_quantile(0.99, sum by (le) (rate(b_bucket[5m]))) > 1e3",
            {"b_bucket"},
        ),
        (
            "max by (n) (a) == 0 unless on (n) group_left (c) (b offset 5m) and bool c",
            {"a", "b", "c"},
        ),
        ("sum(rate(x[1h30m])) by (job) / ignoring (result) sum(y)", {"x", "y"}),
    ],
)
def test_metric_names_are_found_and_nothing_else(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names
