"""The operator installed as users install it, on the real node: `kubectl apply -k` of
manifests/ through an overlay that changes nothing but the image (there is no registry here) and
where the Deployment runs; the Deployment becomes Available, the kubelet runs its probes, its
metrics answer, and it reconciles with its own ServiceAccount token and nothing else."""

from __future__ import annotations

import json
import textwrap
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from testenv.harness.cluster import REPO, wait_until
from tests.integration import haservices as has
from tests.realnode.conftest import Operator
from tests.realnode.support import (
    LOCAL_IMAGE,
    OPERATOR,
    OPERATOR_USER,
    OVERLAYS,
    REAL_NODE,
    REAL_NODE_KEY,
    SYSTEM_NAMESPACE,
    built,
    kubectl,
    kubectl_ok,
    kubelet_probes,
    make_ready,
    operator_pod,
    real_node_template,
    service_pods,
    web_container,
)

pytestmark = pytest.mark.cluster
BASE_IMAGE = "ghcr.io/haoperator/haoperator:0.1.0"  # manifests/kustomization.yaml


def differences(base: Any, other: Any, path: str = "") -> Iterator[str]:
    """The paths where two decoded manifests differ."""
    if isinstance(base, dict) and isinstance(other, dict):
        for key in sorted(set(base) | set(other)):
            yield from differences(base.get(key), other.get(key), f"{path}/{key}")
    elif isinstance(base, list) and isinstance(other, list) and len(base) == len(other):
        for index, (a, b) in enumerate(zip(base, other, strict=True)):
            yield from differences(a, b, f"{path}/{index}")
    elif base != other:
        yield path


def test_the_overlay_changes_only_the_image_and_where_the_operator_runs() -> None:
    base = {(o["kind"], o["metadata"]["name"]): o for o in built(REPO / "manifests")}
    overlay = {(o["kind"], o["metadata"]["name"]): o for o in built(OVERLAYS / "operator")}
    assert overlay.keys() == base.keys()
    changed = {
        key: list(differences(base[key], overlay[key])) for key in base if base[key] != overlay[key]
    }
    pod = "/spec/template/spec"
    env = base[("Deployment", OPERATOR)]["spec"]["template"]["spec"]["containers"][0]["env"]
    elector_image = [e["name"] for e in env].index("HAOPERATOR_ELECTOR_IMAGE")
    assert changed == {
        ("Deployment", OPERATOR): [
            f"{pod}/containers/0/env/{elector_image}/value",  # the sidecars' image
            f"{pod}/containers/0/image",
            f"{pod}/nodeSelector/{REAL_NODE_KEY}",
            f"{pod}/tolerations",  # one more: the real node's taint
        ]
    }
    deployment = overlay[("Deployment", OPERATOR)]["spec"]["template"]["spec"]
    (container,) = deployment["containers"]
    assert container["image"] == LOCAL_IMAGE
    assert {e["name"]: e.get("value") for e in container["env"]}["HAOPERATOR_ELECTOR_IMAGE"] == (
        LOCAL_IMAGE
    )
    base_spec = base[("Deployment", OPERATOR)]["spec"]["template"]["spec"]
    assert base_spec["containers"][0]["image"] == BASE_IMAGE
    assert deployment["tolerations"] == [
        *base_spec["tolerations"],
        {"key": REAL_NODE_KEY, "operator": "Exists", "effect": "NoSchedule"},
    ]


def test_the_deployment_is_available_on_the_real_node_and_the_kubelet_probes_it(
    installed: Operator, core: client.CoreV1Api
) -> None:
    pod = core.read_namespaced_pod(installed.pod, SYSTEM_NAMESPACE)
    assert pod.spec.node_name == REAL_NODE
    assert pod.status.pod_ip.startswith("10.86.")
    (status,) = pod.status.container_statuses
    assert status.image == LOCAL_IMAGE
    assert status.ready
    # The kubelet runs the liveness probe (GET :8080/healthz every 10 s, after 10 s): its own
    # counters say so, and nothing failed.
    wait_until(
        lambda: probes(core, installed, "Liveness").get("successful", 0) >= 2,
        timeout=90,
        what="two successful liveness probes of the operator, counted by the kubelet",
    )
    assert probes(core, installed, "Liveness").keys() == {"successful"}
    # (Readiness may fail before the server listens: it has no initial delay.)
    assert probes(core, installed, "Readiness").get("successful", 0) >= 1
    pod = core.read_namespaced_pod(installed.pod, SYSTEM_NAMESPACE)
    assert pod.status.container_statuses[0].restart_count == 0
    ready = next(c for c in pod.status.conditions if c.type == "Ready")
    assert ready.status == "True"
    events = core.list_namespaced_event(
        SYSTEM_NAMESPACE, field_selector=f"involvedObject.name={installed.pod}"
    ).items
    troubles = [
        e.message
        for e in events
        if e.reason in ("BackOff", "Killing")
        or (e.reason == "Unhealthy" and not e.message.startswith("Readiness probe failed"))
    ]
    assert troubles == []
    # The host reaches the pod's address: the endpoint the kubelet probes answers.
    assert get(f"http://{installed.pod_ip}:8080/healthz")[0] == 200
    logs = kubectl_ok("-n", SYSTEM_NAMESPACE, "logs", installed.pod)
    started = [json.loads(line) for line in logs.splitlines() if '"operator started"' in line]
    assert [line["namespaces"] for line in started] == ["all"]


def test_metrics_answer_on_the_pod_address_and_through_the_metrics_service(
    installed: Operator, core: client.CoreV1Api
) -> None:
    code, body = get(f"http://{installed.pod_ip}:9090/metrics")
    assert code == 200
    assert "# TYPE haoperator_failovers_total counter" in body
    assert "haoperator_reconcile_seconds" in body
    # As Prometheus would scrape it: the Service's ClusterIP, which kube-proxy routes.
    service = core.read_namespaced_service("haoperator-metrics", SYSTEM_NAMESPACE)
    code, body = get(f"http://{service.spec.cluster_ip}:9090/metrics")
    assert code == 200
    assert "# TYPE haoperator_failovers_total counter" in body


def test_it_reconciles_with_its_own_service_account_token_and_nothing_else(
    installed: Operator,
    core: client.CoreV1Api,
    apps: client.AppsV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
) -> None:
    pod = core.read_namespaced_pod(installed.pod, SYSTEM_NAMESPACE)
    assert pod.spec.service_account_name == OPERATOR
    # Its only credential is the projected ServiceAccount token the kubelet mounts: no Secret,
    # no host path, no kubeconfig, nothing from the environment.
    volumes = {v.name: v for v in pod.spec.volumes}
    token_volumes = [name for name, v in volumes.items() if name.startswith("kube-api-access-")]
    assert sorted(volumes) == sorted(["tmp", *token_volumes])
    assert len(token_volumes) == 1
    sources = volumes[token_volumes[0]].projected.sources
    assert [s.service_account_token is not None for s in sources].count(True) == 1
    assert all(s.secret is None for s in sources)
    (container,) = pod.spec.containers
    assert all(e.value_from is None or e.value_from.field_ref for e in container.env)
    assert not container.env_from
    assert "KUBECONFIG" not in {e.name for e in container.env}
    assert container.args == ["run", "--all-namespaces"]

    # Inside the container, that token authenticates as the operator's ServiceAccount.
    whoami = kubectl_ok(
        "-n", SYSTEM_NAMESPACE, "exec", installed.pod, "-c", "operator", "--",
        "python3", "-c", WHOAMI,
    )  # fmt: skip
    assert whoami.strip() == OPERATOR_USER
    # ... which may do what the ClusterRole grants, and not what an admin may.
    for verb, resource, allowed in [
        ("patch", "haservices.haoperator.dev --subresource=status", "yes"),
        ("patch", "deployments.apps", "yes"),
        ("get", "secrets", "no"),
        ("create", "pods", "no"),
        ("update", "haservices.haoperator.dev", "no"),
    ]:
        result = kubectl("auth", "can-i", verb, *resource.split(), "--as", OPERATOR_USER, "-A")
        assert result.stdout.strip() == allowed, (verb, resource, result.stdout + result.stderr)

    # What it writes for an HAService is written by that pod: server-side apply under its
    # field manager, events naming the pod as their reporting instance.
    has.create(
        custom,
        namespace,
        has.haservice(
            "worker", "QueueWorker", replicas=1, template=real_node_template(web_container())
        ),
    )
    deployment = wait_until(
        lambda: apps.list_namespaced_deployment(namespace).items,
        timeout=60,
        what="the HAService's Deployment",
    )[0]
    managers = {(m.manager, m.operation) for m in deployment.metadata.managed_fields}
    assert ("haoperator", "Apply") in managers
    worker = wait_until(lambda: service_pods(core, namespace, "worker"), timeout=60, what="pod")[0]
    wait_until(
        lambda: core.read_namespaced_pod(worker.metadata.name, namespace).status.pod_ip,
        timeout=90,
        what="the pod running",
    )
    wait_until(
        lambda: _exec_ready(namespace, worker.metadata.name), timeout=60, what="the app started"
    )
    wait_until(lambda: has.is_ready(custom, namespace, "worker"), timeout=90, what="worker Ready")
    events = has.events(core, namespace, "worker")
    assert events, "no events on the HAService"
    # Recorded by the instance that leads now (leadership may have moved since the install: a
    # frozen API server outlasts the operator's renew deadline).
    leader = operator_pod(core)
    assert leader is not None
    assert {(e.reporting_component, e.reporting_instance) for e in events} == {
        ("haoperator.dev/haoperator", leader.metadata.name)
    }


def _exec_ready(namespace: str, pod: str) -> bool:
    try:
        make_ready(namespace, pod)
    except AssertionError:
        return False  # the container is not running yet
    return True


# -- helpers --------------------------------------------------------------------------------------


def probes(core: client.CoreV1Api, operator: Operator, probe_type: str) -> dict[str, float]:
    return kubelet_probes(core, SYSTEM_NAMESPACE, operator.pod, "operator", probe_type)


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return int(answer.status), answer.read().decode()


# Run in the operator's container: a SelfSubjectReview with the mounted token, through the
# kubernetes Service's address, as the operator's in-cluster client does.
WHOAMI = textwrap.dedent(
    """
    import json, os, ssl, urllib.request
    secrets = "/var/run/secrets/kubernetes.io/serviceaccount"
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    port = os.environ["KUBERNETES_SERVICE_PORT"]
    context = ssl.create_default_context(cafile=f"{secrets}/ca.crt")
    request = urllib.request.Request(
        f"https://{host}:{port}/apis/authentication.k8s.io/v1/selfsubjectreviews",
        data=b'{"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}',
        headers={
            "Authorization": "Bearer " + open(f"{secrets}/token").read(),
            "Content-Type": "application/json",
        },
    )
    answer = urllib.request.urlopen(request, context=context, timeout=10)
    print(json.load(answer)["status"]["userInfo"]["username"])
    """
)
