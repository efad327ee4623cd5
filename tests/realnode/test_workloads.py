"""HAServices on real pods, reconciled by the installed operator: the quickstart sample as a user
applies it, and one service of each other category, whose `Ready` follows what the kubelet's
readiness probes find in containers that really run. Every namespace enforces the `restricted`
Pod Security Standard, and every pod the operator makes is admitted and runs."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest
from kubernetes import client

from testenv.harness.cluster import exists, wait_until
from tests.e2e.support import routed
from tests.integration import haservices as has
from tests.realnode.conftest import Operator
from tests.realnode.support import (
    NGINX_IMAGE,
    OVERLAYS,
    REAL_NODE,
    assert_restricted,
    built,
    kubectl_ok,
    make_ready,
    real_node_template,
    running_containers,
    service_pods,
    web_container,
)

pytestmark = pytest.mark.cluster
QUICKSTART = OVERLAYS / "quickstart"
ELECTOR = "ha-elector"


def ready_condition(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    obj = has.get(custom, namespace, name)
    condition = has.condition(obj, "Ready")
    if condition.get("observedGeneration") != obj["metadata"]["generation"]:
        return {}
    return {**condition, "readyReplicas": (obj.get("status") or {}).get("readyReplicas")}


def wait_ready(
    custom: client.CustomObjectsApi, namespace: str, name: str, status: str, ready: int
) -> dict[str, Any]:
    """Wait until the HAService's Ready is `status` with `ready` ready replicas; the condition."""

    def check() -> dict[str, Any]:
        found = ready_condition(custom, namespace, name)
        ok = found.get("status") == status and found.get("readyReplicas") == ready
        return found if ok else {}

    return wait_until(check, timeout=120, what=f"{name}: Ready={status} with {ready} ready")


def all_running(core: client.CoreV1Api, namespace: str, name: str, count: int) -> list[Any]:
    """The HAService's `count` pods, every container (sidecars included) running on the real
    node."""

    def check() -> list[Any]:
        pods = service_pods(core, namespace, name)
        ok = len(pods) == count and all(running_containers(p) for p in pods)
        return pods if ok else []

    pods = wait_until(check, timeout=120, what=f"{count} pods of {name} running")
    assert {p.spec.node_name for p in pods} == {REAL_NODE}
    return pods


def test_the_quickstart_runs_on_real_pods_with_its_sidecars(
    installed: Operator, core: client.CoreV1Api, custom: client.CustomObjectsApi
) -> None:
    """`kubectl apply -k` of the quickstart, its image replaced (tests/realnode/overlay/quickstart):
    two nginx pods, each with the real ha-elector native sidecar; one active; the Service
    answers from it."""
    objects = built(QUICKSTART)
    (ns,) = [o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"]
    if exists(lambda: core.read_namespace(ns)):  # left by an interrupted run: the tier's own
        kubectl_ok("delete", "namespace", ns, "--ignore-not-found", "--wait=false")
    wait_until(lambda: not exists(lambda: core.read_namespace(ns)), timeout=120, what=f"no {ns}")
    kubectl_ok("apply", "-k", str(QUICKSTART))
    try:
        pods = all_running(core, ns, "hello", 2)
        for pod in pods:
            (nginx,) = pod.status.container_statuses
            assert nginx.image == NGINX_IMAGE
            (sidecar,) = pod.spec.init_containers
            assert (sidecar.name, sidecar.restart_policy) == (ELECTOR, "Always")
            assert pod.status.init_container_statuses[0].restart_count == 0
        active = wait_until(
            lambda: (
                has.condition(obj := has.get(custom, ns, "hello"), "Ready").get("status") == "True"
                and (obj.get("status") or {}).get("activePod")
            ),
            timeout=120,
            what="hello Ready with an active pod",
        )
        labelled = [
            p.metadata.name
            for p in service_pods(core, ns, "hello")
            if (p.metadata.labels or {}).get("haoperator.dev/role") == "active"
        ]
        assert labelled == [active]
        # The Service's address (kube-proxy routes it from this machine too) reaches nginx in
        # the active pod, which names itself.
        address = core.read_namespaced_service("hello", ns).spec.cluster_ip
        body = wait_until(
            lambda: _get(f"http://{address}:80/"), timeout=30, what="an answer from the Service"
        )
        assert body == f"hello from {active}\n"
        assert_restricted(core, ns)
        # Both nginx containers ready, as the kubelet's probes found them: the standby too.
        wait_until(
            lambda: (has.get(custom, ns, "hello").get("status") or {}).get("readyReplicas") == 2,
            timeout=60,
            what="both replicas of hello ready",
        )
    finally:
        kubectl_ok("delete", "-k", str(QUICKSTART), "--wait=false")


def test_each_category_is_ready_only_when_the_kubelet_finds_its_containers_ready(
    installed: Operator, core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str
) -> None:
    """A LoadBalanced, a QueueWorker and a Clustered service of real web servers whose readiness
    probe asks for a file that nothing has written yet: they run, unready, and the HAServices
    say so; written, the kubelet finds them ready and so does `Ready`; removed again, the
    HAServices follow."""
    discovery = client.DiscoveryV1Api(core.api_client)
    template = real_node_template(web_container())
    services = {
        "web": ("LoadBalanced", 2, {"service": has.SERVICE}),
        "worker": ("QueueWorker", 2, {}),
        "db": (
            "Clustered",
            3,
            {
                "service": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
                "clustered": {"peerPorts": [{"name": "peer", "port": 8080}]},
            },
        ),
    }
    for name, (category, replicas, extra) in services.items():
        has.create(
            custom,
            namespace,
            has.haservice(name, category, replicas=replicas, template=template, **extra),
        )
    pods = {name: all_running(core, namespace, name, n) for name, (_, n, _) in services.items()}

    # Running, not ready: the probes fail (404), and the HAServices are not Ready.
    assert wait_ready(custom, namespace, "web", "False", 0)["reason"] == "NotEnoughReplicas"
    assert wait_ready(custom, namespace, "worker", "False", 0)["reason"] == "NotEnoughReplicas"
    assert wait_ready(custom, namespace, "db", "False", 0)["reason"] in ("Forming", "QuorumLost")

    # Ready files written: the kubelet's probe succeeds, and every service is Ready.
    for group in pods.values():
        for pod in group:
            make_ready(namespace, pod.metadata.name)
    assert wait_ready(custom, namespace, "web", "True", 2)["reason"] == "AllReplicasReady"
    assert wait_ready(custom, namespace, "worker", "True", 2)["reason"] == "AllReplicasReady"
    assert wait_ready(custom, namespace, "db", "True", 3)["reason"] == "QuorumReached"
    web = {p.metadata.name for p in pods["web"]}
    wait_until(
        lambda: routed(discovery, namespace, "web") == web,
        timeout=60,
        what="the Service routing to both web pods",
    )

    # One web pod unready: the Service stops routing to it and the service counts one ready;
    # two of three members unready: the cluster has lost its quorum.
    gone = pods["web"][0].metadata.name
    make_ready(namespace, gone, ready=False)
    wait_until(
        lambda: routed(discovery, namespace, "web") == web - {gone},
        timeout=60,
        what=f"the Service no longer routing to {gone}",
    )
    assert wait_ready(custom, namespace, "web", "True", 1)["reason"] == "MinimumReplicasReady"
    for pod in pods["db"][:2]:
        make_ready(namespace, pod.metadata.name, ready=False)
    assert wait_ready(custom, namespace, "db", "False", 1)["reason"] == "QuorumLost"

    assert_restricted(core, namespace)
    # The kubelet's view, not a restart, made all this: no container restarted.
    for group in pods.values():
        for pod in group:
            status = core.read_namespaced_pod(pod.metadata.name, namespace).status
            assert [s.restart_count for s in status.container_statuses] == [0]


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return str(answer.read().decode())
    except OSError:
        return ""
