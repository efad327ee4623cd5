"""A real Prometheus (Debian's server, from testenv/prometheus, run here as a local process)
scrapes the installed operator and the ha-elector sidecars of real pods, and evaluates the alerts
of manifests/monitoring/prometheus-rule.yaml: a real failover storm and an ActivePassive service
left without an active pod, then a real quorum loss, fire their alerts, which resolve once the
services recover; and every metric a rule or a dashboard panel reads is in the scrape, where
every query of docs/grafana-dashboard.json runs.

The scrape is the monitors' own, without the Prometheus Operator: both operator pods (the
standby exports haoperator_leader 0) with the labels the ServiceMonitor gives its targets (job
from the Service's app.kubernetes.io/name, namespace, service, pod, container, endpoint) and its
honor_labels; the electors of a test's ActivePassive pods with the labels the electors'
PodMonitor gives them (job `<its namespace>/<its name>`, namespace, pod, container, endpoint, and
its relabeling: name, the pod's haoperator.dev/service). The operator's pods stay put, so they
are static_configs; the electors' pods come and go with failovers, so their targets are a
file_sd_configs file the test rewrites, which Prometheus re-reads on its own.

Changed for test speed, and nothing else: scrape and evaluation every second (the monitors say
30 s), and every alert's `for:` shortened to FOR (HAServiceNotReady 10m, HAServiceNoActivePod
2m, HAServiceQuorumLost 1m, HAOperatorReconcileErrors 15m, HAOperatorDown 5m as shipped). The
expressions, their range windows (HAServiceFailoverStorm's 15 minutes included: four failovers
in a test are within it), labels and annotations are the shipped ones, read from the
PrometheusRule: what fires here is what fires in a cluster, only sooner.

Not driven here: HAServiceRestartBudgetReached (a spent budget bans the real node for its window,
test_recovery's business) and HAOperatorReconcileErrors (nothing honest makes reconciles fail);
their promtool unit tests in tests/alerts/ cover them."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from testenv.harness.cluster import REPO, wait_until
from tests.integration import haservices as has
from tests.realnode.conftest import Operator
from tests.realnode.support import (
    OPERATOR,
    OPERATOR_SELECTOR,
    SYSTEM_NAMESPACE,
    kubectl_ok,
    make_ready,
    operator_pod,
    pod_ready,
    real_node_template,
    runtime_process,
    service_pods,
    web_container,
)
from tests.realnode.test_active_passive import NAME, settled
from tests.realnode.test_workloads import all_running, wait_ready
from tests.unit.promql import (
    PROMETHEUS_OWN,
    alerts,
    metric_names,
    prometheus_bin,
    prometheus_rule,
    served_metrics,
)
from tests.unit.test_dashboard import VARIABLE, expressions, substituted, targets

pytestmark = pytest.mark.cluster
MONITORING = REPO / "manifests" / "monitoring"
INTERVAL = "1s"  # scrape and evaluation
FOR = "2s"  # every alert's `for:`
TIMEOUT = 120
DB = "db"
CLUSTERED = {
    "service": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    "clustered": {"peerPorts": [{"name": "peer", "port": 8080}]},
}


def monitor(path: Path) -> dict[str, Any]:
    (doc,) = [d for d in yaml.safe_load_all(path.read_text()) if d]
    return dict(doc)


def fast_rules() -> dict[str, Any]:
    """The PrometheusRule's groups with every `for:` set to FOR; nothing else changed."""
    spec = copy.deepcopy(prometheus_rule()["spec"])
    for group in spec["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = FOR
    return dict(spec)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def label_name(key: str) -> str:
    """A Kubernetes label key as Prometheus' service discovery names it (__meta_..._label_X)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", key)


@dataclass
class Prometheus:
    """The running server: its HTTP API, and the electors it scrapes."""

    process: subprocess.Popen[bytes]
    url: str
    directory: Path
    log: Path
    operator_job: str
    electors: dict[str, Any]
    """The electors' PodMonitor."""

    @property
    def electors_job(self) -> str:
        """The job the Prometheus Operator names a PodMonitor's targets with."""
        return f"{self.electors['metadata']['namespace']}/{self.electors['metadata']['name']}"

    def api(self, path: str, **params: str | list[str]) -> Any:
        """GET on the HTTP API; its `data`, once it says `success` (it answers errors in JSON,
        with a 4xx status)."""
        query = urllib.parse.urlencode(params, doseq=True)
        try:
            with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as answer:
                body = json.load(answer)
        except urllib.error.HTTPError as error:
            body = json.load(error)
        assert body["status"] == "success", (
            f"{path} {params}: {body.get('errorType')}: {body.get('error')}"
        )
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's vector: [{"metric": {...}, "value": [time, "value"]}]."""
        data = self.api("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", data
        return list(data["result"])

    def values(self, expr: str, *labels: str) -> dict[tuple[str, ...], float]:
        """An instant query's values by those labels of each series."""
        return {
            tuple(s["metric"].get(label, "") for label in labels): float(s["value"][1])
            for s in self.query(expr)
        }

    def alerts(self, name: str, state: str = "firing", /, **labels: str) -> list[dict[str, Any]]:
        """The alerts `name` with these labels Prometheus holds now in `state` ("" for any)."""
        return [
            alert
            for alert in self.api("/api/v1/alerts")["alerts"]
            if alert["labels"]["alertname"] == name
            and labels.items() <= alert["labels"].items()
            and state in ("", alert["state"])
        ]

    def fires(self, name: str, /, **labels: str) -> dict[str, Any]:
        """Wait until exactly one alert `name` with these labels fires; that alert."""
        found = wait_until(
            lambda: self.alerts(name, **labels),
            timeout=TIMEOUT,
            what=f"{name} {labels} firing",
        )
        assert len(found) == 1, found
        return found[0]

    def quiet(self, name: str, /, **labels: str) -> None:
        """Wait until no alert `name` with these labels is pending or firing."""
        wait_until(
            lambda: not self.alerts(name, "", **labels),
            timeout=TIMEOUT,
            what=f"{name} {labels} resolved",
        )

    def up(self, job: str) -> list[str]:
        """The targets of `job` Prometheus has scraped successfully, by pod."""
        return sorted(
            target["labels"]["pod"]
            for target in self.api("/api/v1/targets", state="active")["activeTargets"]
            if target["labels"]["job"] == job and target["health"] == "up"
        )

    def scrape_electors(self, core: client.CoreV1Api, namespace: str, service: str) -> list[str]:
        """Scrape the ha-elector of each live pod of `service` (replacing the pods scraped
        before), as the electors' PodMonitor has them; wait until Prometheus has; their names."""
        endpoint = self.electors["spec"]["podMetricsEndpoints"][0]
        groups, names = [], []
        for pod in service_pods(core, namespace, service):
            ports = {
                port.name: (container.name, port.container_port)
                for container in [*(pod.spec.init_containers or []), *pod.spec.containers]
                for port in container.ports or []
            }
            container, port = ports[endpoint["port"]]
            labels = {
                "job": self.electors_job,
                "namespace": namespace,
                "pod": pod.metadata.name,
                "container": container,
                "endpoint": endpoint["port"],
            }
            pod_labels = {label_name(k): v for k, v in (pod.metadata.labels or {}).items()}
            for relabeling in endpoint.get("relabelings", []):
                (source,) = relabeling["sourceLabels"]
                labels[relabeling["targetLabel"]] = pod_labels[
                    source.removeprefix("__meta_kubernetes_pod_label_")
                ]
            groups.append({"targets": [f"{pod.status.pod_ip}:{port}"], "labels": labels})
            names.append(pod.metadata.name)
        path = self.directory / "electors.json"
        path.with_suffix(".new").write_text(json.dumps(groups))
        path.with_suffix(".new").replace(path)  # atomically: Prometheus watches the file
        wait_until(
            lambda: self.up(self.electors_job) == sorted(names),
            timeout=60,
            what=f"Prometheus scraping the electors of {sorted(names)}",
        )
        return names


def scrape_config(
    apps: client.AppsV1Api, service_monitor: dict[str, Any], pod_monitor: dict[str, Any]
) -> list[dict[str, Any]]:
    """The two jobs: the operator's pods behind the Service its ServiceMonitor selects, and the
    electors' file."""
    (endpoint,) = service_monitor["spec"]["endpoints"]
    selector = ",".join(
        f"{k}={v}" for k, v in service_monitor["spec"]["selector"]["matchLabels"].items()
    )
    core = client.CoreV1Api(apps.api_client)
    (service,) = core.list_namespaced_service(SYSTEM_NAMESPACE, label_selector=selector).items
    port = next(p for p in service.spec.ports if p.name == endpoint["port"])
    replicas = apps.read_namespaced_deployment(OPERATOR, SYSTEM_NAMESPACE).spec.replicas
    pods = wait_until(
        lambda: (
            found
            if len(found := live_operator_pods(core)) == replicas
            and all(p.status.pod_ip for p in found)
            else None
        ),
        timeout=TIMEOUT,
        what=f"the {replicas} operator pods with an address",
    )
    operator_targets = []
    for pod in pods:
        container, number = next(
            (c.name, p.container_port)
            for c in pod.spec.containers
            for p in c.ports or []
            if p.name == port.target_port or p.container_port == port.target_port
        )
        labels = {
            "namespace": SYSTEM_NAMESPACE,
            "service": service.metadata.name,
            "pod": pod.metadata.name,
            "container": container,
            "endpoint": endpoint["port"],
        }
        operator_targets.append({"targets": [f"{pod.status.pod_ip}:{number}"], "labels": labels})
    (elector_endpoint,) = pod_monitor["spec"]["podMetricsEndpoints"]
    return [
        {
            "job_name": service.metadata.labels[service_monitor["spec"]["jobLabel"]],
            "honor_labels": endpoint["honorLabels"],
            "metrics_path": endpoint["path"],
            "scheme": endpoint["scheme"],
            "static_configs": operator_targets,
        },
        {
            "job_name": "electors",  # each target says its job, as the PodMonitor's would
            "metrics_path": elector_endpoint["path"],
            "file_sd_configs": [{"files": ["electors.json"], "refresh_interval": INTERVAL}],
        },
    ]


def live_operator_pods(core: client.CoreV1Api) -> list[Any]:
    pods = core.list_namespaced_pod(SYSTEM_NAMESPACE, label_selector=OPERATOR_SELECTOR).items
    return sorted(
        (p for p in pods if p.metadata.deletion_timestamp is None),
        key=lambda p: p.metadata.name,
    )


@pytest.fixture
def prometheus(installed: Operator, apps: client.AppsV1Api) -> Iterator[Prometheus]:
    """Prometheus scraping every operator pod, with the fast rules; stopped (by its pid) and its
    directory deleted at the end."""
    directory = Path(tempfile.mkdtemp(prefix="haoperator-prometheus-"))
    try:
        pod_monitor = monitor(MONITORING / "electors" / "pod-monitor.yaml")
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": INTERVAL,
                "scrape_timeout": INTERVAL,
                "evaluation_interval": INTERVAL,
            },
            "rule_files": ["rules.yaml"],
            "scrape_configs": scrape_config(
                apps, monitor(MONITORING / "service-monitor.yaml"), pod_monitor
            ),
        }
        (directory / "rules.yaml").write_text(yaml.safe_dump(fast_rules(), sort_keys=False))
        (directory / "prometheus.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (directory / "electors.json").write_text("[]")
        port = free_port()
        log = directory / "prometheus.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    str(prometheus_bin() / "prometheus"),
                    f"--config.file={directory / 'prometheus.yaml'}",
                    f"--storage.tsdb.path={directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                cwd=directory,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    operator = config["scrape_configs"][0]
    server = Prometheus(
        process, f"http://127.0.0.1:{port}", directory, log, operator["job_name"], pod_monitor
    )
    try:
        wait_until(lambda: started(server), timeout=60, what="Prometheus ready")
        pods = [group["labels"]["pod"] for group in operator["static_configs"]]
        wait_until(
            lambda: server.up(server.operator_job) == sorted(pods),
            timeout=60,
            what=f"Prometheus scraping the operator pods {pods}",
        )
        yield server
    finally:
        stop(server)


def started(server: Prometheus) -> bool:
    """Whether Prometheus answers /-/ready; fails at once, with its log, if it exited."""
    if server.process.poll() is not None:
        pytest.fail(
            f"prometheus exited with {server.process.returncode}:\n{server.log.read_text()}",
            pytrace=False,
        )
    try:
        with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def stop(server: Prometheus) -> None:
    """SIGTERM to our Prometheus' pid (SIGKILL if it lingers); its log's end for a failure's
    report; its directory deleted."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(server.process.pid, signal.SIGTERM)
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=30)
    with contextlib.suppress(OSError):
        tail = server.log.read_text().splitlines()[-20:]
        print("prometheus log (end):", *tail, sep="\n", file=sys.stderr)
    shutil.rmtree(server.directory, ignore_errors=True)


# -- the services ---------------------------------------------------------------------------------


def pair() -> dict[str, Any]:
    """test_active_passive's two-pod service, with web servers whose readiness the test sets
    (web_container's /ready file): a pod can be made not ready, and so the service left with
    no active pod."""
    return has.haservice(
        NAME,
        "ActivePassive",
        replicas=2,
        template=real_node_template(web_container()),
        service=has.SERVICE,
        activePassive={
            "leaseDurationSeconds": 5,
            "renewDeadlineSeconds": 3,
            "retryPeriodSeconds": 1,
        },
    )


def start_pair(core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str) -> str:
    """The pair created, both pods made ready and settled; its active pod."""
    has.create(custom, namespace, pair())
    for pod in all_running(core, namespace, NAME, 2):
        make_ready(namespace, pod.metadata.name)
    return str(settled(core, custom, namespace))


def status(custom: client.CustomObjectsApi, namespace: str, name: str = NAME) -> dict[str, Any]:
    return dict(has.get(custom, namespace, name).get("status") or {})


def moved(core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str, old: str) -> str:
    """The new active pod, once the role has left `old` and the service has settled again."""
    wait_until(
        lambda: status(custom, namespace).get("activePod") not in (None, "", old),
        timeout=TIMEOUT,
        what=f"the active role leaving {old}",
    )
    return str(settled(core, custom, namespace))


def ready_standby(core: client.CoreV1Api, namespace: str, pod: str) -> None:
    wait_until(lambda: pod_ready(core, namespace, pod), timeout=TIMEOUT, what=f"{pod} Ready")


def cluster() -> dict[str, Any]:
    """test_workloads' Clustered service: three web servers whose readiness the test sets."""
    template = real_node_template(web_container())
    return has.haservice(DB, "Clustered", replicas=3, template=template, **CLUSTERED)


def standby_of(core: client.CoreV1Api, namespace: str, active: str) -> str:
    (standby,) = {p.metadata.name for p in service_pods(core, namespace, NAME)} - {active}
    return str(standby)


def crash(namespace: str, pod: str) -> None:
    """SIGKILL of the pod's application process, found through the node's container runtime:
    the kubelet restarts it and reports it not ready meanwhile (its /ready file, on the pod's
    emptyDir, outlives the crash)."""
    _, pid = runtime_process(namespace, pod, "app")
    os.kill(pid, signal.SIGKILL)


def sees_active(prometheus: Prometheus, namespace: str, active: str) -> None:
    """Prometheus has scraped the operator saying `active` serves, and its elector alone
    leading."""
    served = f'haoperator_haservice_active_pod{{namespace="{namespace}", name="{NAME}"}}'
    leading = f'haoperator_elector_leading{{namespace="{namespace}", name="{NAME}"}}'

    def seen() -> bool:
        electors = prometheus.values(leading, "pod")
        return (
            prometheus.values(served, "active_pod") == {(active,): 1.0}
            and electors.get((active,)) == 1.0
            and sum(electors.values()) == 1.0
        )

    wait_until(seen, timeout=60, what=f"Prometheus seeing {active} active, its elector leading")


# -- the tests ------------------------------------------------------------------------------------


def test_a_failover_storm_and_a_service_without_an_active_pod_fire_their_alerts(
    prometheus: Prometheus,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
) -> None:
    """Four real failovers within minutes (a crashed application, a deleted pod, an application
    not ready, twice) are a storm; both pods not ready leave no active pod. Each alert names the
    service; HAServiceNotReady keeps quiet about what HAServiceNoActivePod says; the service
    recovered, HAServiceNoActivePod resolves, while the storm stays reported for its window."""
    active = start_pair(core, custom, namespace)
    prometheus.scrape_electors(core, namespace, NAME)
    sees_active(prometheus, namespace, active)
    here = {"namespace": namespace, "name": NAME}
    for quiet in ("HAServiceNoActivePod", "HAServiceNotReady", "HAServiceFailoverStorm"):
        prometheus.quiet(quiet, **here)  # settled: what fired while the pods started resolved
    before = int(status(custom, namespace).get("failovers") or 0)

    crash(namespace, active)
    active = moved(core, custom, namespace, active)
    assert status(custom, namespace)["lastFailover"]["reason"] == "ApplicationUnhealthy"

    kubectl_ok("-n", namespace, "delete", "pod", active, "--wait=false")
    active = moved(core, custom, namespace, active)
    for pod in all_running(core, namespace, NAME, 2):
        if pod.metadata.name != active:
            make_ready(namespace, pod.metadata.name)  # the deleted pod's replacement
    prometheus.scrape_electors(core, namespace, NAME)

    for _ in range(2):
        ready_standby(core, namespace, standby_of(core, namespace, active))
        make_ready(namespace, active, ready=False)
        old, active = active, moved(core, custom, namespace, active)
        assert status(custom, namespace)["lastFailover"]["reason"] == "ApplicationUnhealthy"
        make_ready(namespace, old)

    failovers = int(status(custom, namespace)["failovers"]) - before
    assert failovers >= 4, failovers
    sees_active(prometheus, namespace, active)
    storm = prometheus.fires("HAServiceFailoverStorm", **here)
    assert storm["labels"]["severity"] == "warning"
    assert float(storm["value"]) >= 4, storm
    assert storm["annotations"]["runbook_url"].endswith("#haservicefailoverstorm")

    # Neither pod ready: the active pod keeps the role but serves nothing.
    standby = standby_of(core, namespace, active)
    make_ready(namespace, standby, ready=False)
    wait_until(lambda: not pod_ready(core, namespace, standby), timeout=TIMEOUT,
               what=f"{standby} not ready")  # fmt: skip
    make_ready(namespace, active, ready=False)
    alert = prometheus.fires("HAServiceNoActivePod", **here)
    assert alert["labels"]["severity"] == "critical"
    assert status(custom, namespace)["activePod"] == active
    assert has.condition(has.get(custom, namespace, NAME), "Ready")["status"] == "False"
    # Said once: the same evaluation found the service not Ready, and left that to this alert.
    assert prometheus.alerts("HAServiceNotReady", "", **here) == []
    served = f'haoperator_haservice_active_pod{{namespace="{namespace}", name="{NAME}"}}'
    assert prometheus.values(served, "active_pod") == {("",): 0.0}

    # Ready again: the service has its active pod back, the alert resolves.
    make_ready(namespace, active)
    assert settled(core, custom, namespace) == active
    sees_active(prometheus, namespace, active)
    prometheus.quiet("HAServiceNoActivePod", **here)
    prometheus.quiet("HAServiceNotReady", **here)
    # The storm is about the last 15 minutes, which still hold the four failovers.
    assert prometheus.alerts("HAServiceFailoverStorm", **here)


def test_a_lost_quorum_fires_its_alert_and_a_forming_cluster_only_not_ready(
    prometheus: Prometheus,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
) -> None:
    """A Clustered service of three real members: while it forms its first quorum it is only
    not Ready; two members not ready after that, it has lost its quorum, which
    HAServiceQuorumLost says (and HAServiceNotReady leaves to it); a member back, it resolves."""
    has.create(custom, namespace, cluster())
    members = [p.metadata.name for p in all_running(core, namespace, DB, 3)]
    here = {"namespace": namespace, "name": DB}

    forming = prometheus.fires("HAServiceNotReady", **here)
    assert forming["labels"]["category"] == "Clustered"
    assert prometheus.alerts("HAServiceQuorumLost", "", **here) == []

    for pod in members:
        make_ready(namespace, pod)
    assert wait_ready(custom, namespace, DB, "True", 3)["reason"] == "QuorumReached"
    prometheus.quiet("HAServiceNotReady", **here)
    assert prometheus.alerts("HAServiceQuorumLost", "", **here) == []

    for pod in members[:2]:
        make_ready(namespace, pod, ready=False)
    assert wait_ready(custom, namespace, DB, "False", 1)["reason"] == "QuorumLost"
    lost = prometheus.fires("HAServiceQuorumLost", **here)
    assert lost["labels"]["severity"] == "critical"
    assert lost["annotations"]["runbook_url"].endswith("#haservicequorumlost")
    assert prometheus.alerts("HAServiceNotReady", "", **here) == []

    make_ready(namespace, members[0])
    assert wait_ready(custom, namespace, DB, "True", 2)["reason"] == "QuorumReached"
    prometheus.quiet("HAServiceQuorumLost", **here)
    prometheus.quiet("HAServiceNotReady", **here)


def test_every_metric_the_rules_and_dashboard_read_is_scraped_and_every_panel_runs(
    prometheus: Prometheus,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
) -> None:
    """With an ActivePassive service that failed over after a crash and a Clustered one still
    forming, every metric name the rules and the dashboard read is in the scrape, from the job
    that serves it; every dashboard query runs, and the panels say what the cluster says."""
    has.create(custom, namespace, cluster())
    active = start_pair(core, custom, namespace)
    crash(namespace, active)
    active = moved(core, custom, namespace, active)
    wait_until(lambda: has.events(core, namespace, NAME, "PodFailed"), timeout=TIMEOUT,
               what="PodFailed")  # fmt: skip
    prometheus.scrape_electors(core, namespace, NAME)
    sees_active(prometheus, namespace, active)
    prometheus.fires("HAServiceNotReady", namespace=namespace, name=DB)  # forming: ALERTS has it
    prometheus.quiet("HAOperatorDown")

    used = {name for rule in alerts() for name in metric_names(rule["expr"])}
    used |= {name for _, expr in expressions() for name in metric_names(substituted(expr))}
    wanted = used | served_metrics()
    scraped = set[str]()

    def missing() -> set[str]:
        scraped.update(prometheus.api("/api/v1/label/__name__/values"))
        return wanted - scraped

    wait_until(lambda: not missing(), timeout=60, what=f"every metric in the scrape: {wanted}")
    operator_job = prometheus.operator_job
    for name in sorted(wanted - PROMETHEUS_OWN):
        jobs = {s["job"] for s in prometheus.api("/api/v1/series", **{"match[]": name})}
        elector = name.startswith("haoperator_elector_")
        assert jobs == {prometheus.electors_job if elector else operator_job}, (name, jobs)

    # The dashboard's variables: the operator's job, and the HAServices' own namespaces (the
    # operator's series keep theirs: honor_labels).
    assert prometheus.api(
        "/api/v1/label/job/values", **{"match[]": "haoperator_reconcile_total"}
    ) == [operator_job]
    namespaces = prometheus.api(
        "/api/v1/label/namespace/values",
        **{"match[]": f'haoperator_haservice_ready{{job=~"{operator_job}"}}'},
    )
    assert namespace in namespaces
    assert SYSTEM_NAMESPACE not in namespaces

    # Every query runs, as Grafana sends it with the variables filled in.
    for where, expr in expressions():
        try:
            prometheus.api("/api/v1/query", query=substituted(expr))
        except AssertionError as error:
            pytest.fail(f"{where}: {error}", pytrace=False)

    # And the panels say what the cluster says, for this test's namespace.
    panel = panel_queries(namespace)
    assert prometheus.values(panel["Operator"][0]) == {(): 1.0}
    leader = operator_pod(core).metadata.name
    assert prometheus.values(panel["Operator leader"][0], "identity") == {(leader,): 1.0}
    # Each operator pod says whether it leads (the identity is its pod's name): the standby 0.
    pods = [p.metadata.name for p in live_operator_pods(core)]
    assert prometheus.values("haoperator_leader", "pod", "identity") == {
        (pod, pod): float(pod == leader) for pod in pods
    }
    # Only the leader exports what it reconciles (a standby would double every sum), each
    # category and readiness from 0.
    assert prometheus.values("count by (pod) (haoperator_haservices)", "pod") == {(leader,): 8.0}
    assert prometheus.values(
        panel["Active pod per ActivePassive service"][0], "namespace", "name", "active_pod"
    ) == {(namespace, NAME, active): 1.0}
    leading, failsafe = panel["Electors leading and in failsafe"]
    assert prometheus.values(leading, "namespace", "name") == {(namespace, NAME): 1.0}
    assert prometheus.values(failsafe, "namespace", "name") == {}
    assert prometheus.values(panel["Without an active pod"][0]) == {(): 0.0}
    assert prometheus.values(panel["Quorums lost"][0]) == {(): 0.0}
    now = prometheus.values(panel["HAServices now"][0], "namespace", "name", "category")
    assert now == {(namespace, NAME, "ActivePassive"): 1.0, (namespace, DB, "Clustered"): 0.0}
    reported = prometheus.values(panel["Failovers reported"][0])
    assert list(reported) == [()], reported
    assert reported[()] >= 1, reported
    assert prometheus.values(panel["Alerts firing"][0])[()] >= 1


def panel_queries(namespace: str) -> dict[str, list[str]]:
    """Each panel's queries by its title, for `namespace` (the other variables as
    test_dashboard fills them in)."""

    def value(match: re.Match[str]) -> str:
        return namespace if (match.group(1) or match.group(2)) == "namespace" else match.group(0)

    found: dict[str, list[str]] = {}
    for panel, target in targets():
        found.setdefault(panel["title"], []).append(
            substituted(VARIABLE.sub(value, target["expr"]))
        )
    return found
