"""The maintenance pause on the real API server: with `haoperator.dev/paused: "true"` on an
HAService the operator leaves its children as they are (a deleted Service stays deleted, a
Deployment scaled by hand stays scaled), the status says Paused and `kubectl get has` shows it;
removing the annotation reconciles at once, corrects the drift and says so."""

from __future__ import annotations

import pytest
from kubernetes import client

from haoperator.core.vocabulary import Annotation
from testenv.harness.cluster import Kubectl, wait_until
from testenv.harness.operator_process import OperatorProcess
from tests.integration import haservices as has

pytestmark = pytest.mark.cluster
NAME = "web"
TIMEOUT = 60


def reasons(core: client.CoreV1Api, namespace: str) -> list[str]:
    return [e.reason for e in has.events(core, namespace, NAME)]


def reconciles(operator: OperatorProcess) -> float:
    return operator.metrics().get('haoperator_reconcile_total{result="ok"}', 0)


def test_a_paused_haservice_is_left_alone_and_resumes_with_its_drift_corrected(
    namespace: str,
    operator: OperatorProcess,
    core: client.CoreV1Api,
    apps: client.AppsV1Api,
    custom: client.CustomObjectsApi,
    kubectl: Kubectl,
) -> None:
    has.create(
        custom, namespace, has.haservice(NAME, "LoadBalanced", **has.EXAMPLES["LoadBalanced"])
    )
    wait_until(lambda: has.is_ready(custom, namespace, NAME), timeout=TIMEOUT, what="ready")

    has.patch(custom, namespace, NAME, {"metadata": {"annotations": {Annotation.PAUSED: "true"}}})
    wait_until(
        lambda: has.condition(has.get(custom, namespace, NAME), "Paused").get("status") == "True",
        timeout=TIMEOUT,
        what="the Paused condition",
    )
    wait_until(lambda: "Paused" in reasons(core, namespace), timeout=TIMEOUT, what="event")
    shown = kubectl("-n", namespace, "get", "has", NAME)
    assert shown.returncode == 0, shown.stderr
    header, row = shown.stdout.splitlines()[:2]
    assert row[header.index("PAUSED") :].split()[0] == "True", shown.stdout

    # Drift by hand, each change an event the operator reconciles on.
    wanted = has.get(custom, namespace, NAME)["status"]["desiredReplicas"]
    before = reconciles(operator)
    core.delete_namespaced_service(NAME, namespace)
    apps.patch_namespaced_deployment(NAME, namespace, {"spec": {"replicas": wanted + 2}})
    wait_until(lambda: reconciles(operator) >= before + 2, timeout=TIMEOUT, what="reconciles")
    wait_until(operator.metrics_quiet, timeout=TIMEOUT, what="the operator idle")
    assert NAME not in [s.metadata.name for s in core.list_namespaced_service(namespace).items]
    assert apps.read_namespaced_deployment(NAME, namespace).spec.replicas == wanted + 2
    assert "DriftCorrected" not in reasons(core, namespace)

    has.patch(custom, namespace, NAME, {"metadata": {"annotations": {Annotation.PAUSED: None}}})
    wait_until(
        lambda: NAME in [s.metadata.name for s in core.list_namespaced_service(namespace).items],
        timeout=TIMEOUT,
        what="the Service made again",
    )
    wait_until(
        lambda: apps.read_namespaced_deployment(NAME, namespace).spec.replicas == wanted,
        timeout=TIMEOUT,
        what="the Deployment scaled back",
    )
    wait_until(lambda: "Resumed" in reasons(core, namespace), timeout=TIMEOUT, what="event")
    drift = [e.message for e in has.events(core, namespace, NAME, "DriftCorrected")]
    assert any("Service" in m for m in drift), drift
    assert any("replicas" in m for m in drift), drift
    obj = has.get(custom, namespace, NAME)
    assert has.condition(obj, "Paused") == {}
    said = sorted(r for r in reasons(core, namespace) if r in ("Paused", "Resumed"))
    assert said == ["Paused", "Resumed"]  # one each
