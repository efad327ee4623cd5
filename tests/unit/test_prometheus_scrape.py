"""A real Prometheus (testenv/prometheus's, on loopback) scrapes the operator's metrics endpoint,
as the ServiceMonitor has it (honor_labels, the target's namespace and pod), with the rules of
manifests/monitoring/ loaded: the exposition parses, the per-HAService series keep their
HAService's namespace, every rule evaluates without error, alerts come from real scraped series,
and every query of the dashboard runs. A few seconds: one scrape and one evaluation a second."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY, start_http_server

from haoperator.controller import metrics
from haoperator.controller.metrics import ServiceState
from tests.unit.promql import alerts, prometheus_bin, write_rules
from tests.unit.test_dashboard import expressions, substituted

DEADLINE = 30.0
SERVICES = {
    ("shop", "web"): ServiceState("ActivePassive", True, active_pod="web-a", failovers=2),
    ("db", "galera"): ServiceState("Clustered", False, quorum_lost=True),
    ("shop", "worker"): ServiceState("QueueWorker", True),
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Prometheus:
    url: str
    log: Path

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=5) as answer:
            body = json.load(answer)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"] if data["resultType"] == "vector" else []
        return result

    def until(self, what: str, found: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            try:
                value = found()
            except OSError:  # not listening yet
                value = None
            if value:
                return value
            time.sleep(0.25)
        said = self.log.read_text()[-4000:]
        pytest.fail(f"Prometheus: {what}: not within {DEADLINE:.0f} s; its log:\n{said}")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    for key, state in SERVICES.items():
        metrics.SERVICES.observe(key, state)
    metrics.RECONCILES.labels("ok").inc()
    exporter, _ = start_http_server(0, addr="127.0.0.1", registry=REGISTRY)
    directory: Path = tmp_path_factory.mktemp("prometheus")
    rules = write_rules(directory)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {
                "job_name": "haoperator",
                "honor_labels": True,
                "static_configs": [
                    {
                        "targets": [f"127.0.0.1:{exporter.server_port}"],
                        "labels": {"namespace": "haoperator-system", "pod": "haoperator-0"},
                    }
                ],
            }
        ],
    }
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log_path = directory / "prometheus.log"
    log = log_path.open("w")
    server = subprocess.Popen(
        [
            str(prometheus_bin() / "prometheus"),
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield Prometheus(f"http://127.0.0.1:{port}", log_path)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        exporter.shutdown()
        for key in SERVICES:
            metrics.SERVICES.observe(key, None)


@pytest.fixture(scope="module")
def scraped(prometheus: Prometheus) -> Prometheus:
    """Once the operator is scraped and every rule has been evaluated."""
    prometheus.until(
        "the operator scraped (up == 1)",
        lambda: prometheus.query('up{job="haoperator"} == 1'),
    )

    def evaluated() -> bool:
        groups = prometheus.api("rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return len(rules) == len(alerts()) and all(r["health"] != "unknown" for r in rules)

    prometheus.until("every rule evaluated", evaluated)
    return prometheus


def test_every_rule_evaluates_without_error(scraped: Prometheus) -> None:
    for group in scraped.api("rules")["groups"]:
        for rule in group["rules"]:
            assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))


def test_the_series_keep_their_haservices_namespace_and_the_targets_other_labels(
    scraped: Prometheus,
) -> None:
    (ready,) = scraped.query('haoperator_haservice_ready{name="web"}')
    assert ready["metric"]["namespace"] == "shop"
    assert ready["metric"]["category"] == "ActivePassive"
    assert ready["metric"]["pod"] == "haoperator-0"
    assert ready["value"][1] == "1"
    (active,) = scraped.query('haoperator_haservice_active_pod{namespace="shop", name="web"}')
    assert active["metric"]["active_pod"] == "web-a"
    (reconciles,) = scraped.query('haoperator_reconcile_total{result="ok"}')
    assert reconciles["metric"]["namespace"] == "haoperator-system"


def test_a_lost_quorum_raises_its_alert_from_the_scraped_series(scraped: Prometheus) -> None:
    (alert,) = scraped.until(
        "HAServiceQuorumLost pending",
        lambda: scraped.query('ALERTS{alertname="HAServiceQuorumLost"}'),
    )
    assert alert["metric"]["namespace"] == "db"
    assert alert["metric"]["name"] == "galera"
    assert alert["metric"]["alertstate"] == "pending"  # for: 1m


def test_a_restart_budget_reached_fires_from_a_counter_that_started_at_zero(
    scraped: Prometheus,
) -> None:
    assert not scraped.query('ALERTS{alertname="HAServiceRestartBudgetReached"}')
    metrics.SERVICES.recovery_limit_reached(("shop", "worker"))
    (alert,) = scraped.until(
        "HAServiceRestartBudgetReached firing",
        lambda: scraped.query('ALERTS{alertname="HAServiceRestartBudgetReached"}'),
    )
    assert alert["metric"]["alertstate"] == "firing"
    assert (alert["metric"]["namespace"], alert["metric"]["name"]) == ("shop", "worker")


def test_every_dashboard_query_runs(scraped: Prometheus) -> None:
    failed = []
    for where, expr in expressions():
        try:
            scraped.api("query", query=substituted(expr))
        except (AssertionError, OSError) as error:
            failed.append(f"{where}: {error}")
    assert not failed, "\n".join(failed)


def test_the_dashboards_active_pod_query_names_the_pod(scraped: Prometheus) -> None:
    (row,) = scraped.query(
        substituted(
            'max by (namespace, name, active_pod) (haoperator_haservice_active_pod{job=~"$job", '
            'namespace=~"$namespace"} == 1)'
        )
    )
    assert row["metric"] == {"namespace": "shop", "name": "web", "active_pod": "web-a"}
