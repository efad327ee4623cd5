"""A reconcile that fails half-way still reports what it did: the operator runs with the
manifests' ClusterRole minus `patch nodes`, so the ban of a crash-looping pod's node is refused
on every reconcile; the children it updated before that, in the same reconcile, are still
announced (Reconciled) and reported (status.observedGeneration)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from testenv.harness.cluster import Kubectl, token_kubeconfig, wait_until
from testenv.harness.operator_process import OperatorProcess
from tests.e2e.support import apply, built_manifests
from tests.integration import haservices as has
from tests.integration.conftest import ready_pods

pytestmark = pytest.mark.cluster
ACCOUNT = "haoperator-no-node-patch"


def without_node_patch(role: dict[str, Any], name: str) -> dict[str, Any]:
    """The manifests' ClusterRole, renamed, whose nodes rule lacks `patch`."""
    narrowed = copy.deepcopy(role)
    narrowed["metadata"] = {"name": name}
    for rule in narrowed["rules"]:
        if "nodes" in rule["resources"]:
            rule["verbs"] = [verb for verb in rule["verbs"] if verb != "patch"]
    return narrowed


@pytest.fixture
def narrow_kubeconfig(
    namespace: str, kubectl: Kubectl, api_client: client.ApiClient, tmp_path: Path
) -> Iterator[Path]:
    """A token of a ServiceAccount of the test's namespace bound to that narrowed ClusterRole."""
    name = f"{ACCOUNT}-{namespace}"
    role = next(o for o in built_manifests(kubectl) if o["kind"] == "ClusterRole")
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": namespace}],
    }
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": ACCOUNT, "namespace": namespace},
    }
    apply(kubectl, [without_node_patch(role, name), binding, account])
    as_account = f"system:serviceaccount:{namespace}:{ACCOUNT}"
    wait_until(
        lambda: kubectl("auth", "can-i", "list", "nodes", "--as", as_account).returncode == 0,
        timeout=30,
        what="the narrowed ClusterRole in effect",
    )
    assert kubectl("auth", "can-i", "patch", "nodes", "--as", as_account).returncode != 0
    yield token_kubeconfig(kubectl, namespace, ACCOUNT, tmp_path / "narrow.kubeconfig")
    rbac = client.RbacAuthorizationV1Api(api_client)
    rbac.delete_cluster_role_binding(name)
    rbac.delete_cluster_role(name)


def reconcile_errors(operator: OperatorProcess) -> float:
    return operator.metrics().get('haoperator_reconcile_total{result="error"}', 0.0)


def test_a_denied_node_patch_keeps_the_events_and_status_of_the_children_before_it(
    crd: None,
    namespace: str,
    narrow_kubeconfig: Path,
    tmp_path: Path,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    apps: client.AppsV1Api,
    chaos: Callable[..., None],
) -> None:
    operator = OperatorProcess(
        [namespace], tmp_path / "operator.log", kubeconfig=narrow_kubeconfig
    ).start()
    try:
        body = has.haservice(
            "worker", "QueueWorker", replicas=1, placement={"spread": "None"},
            recovery={"restart": {"maxRestarts": 1, "windowSeconds": 3600, "onLimit": "Migrate"}},
        )  # fmt: skip
        has.create(custom, namespace, body)
        pod = wait_until(
            lambda: ready_pods(core, namespace, "haoperator.dev/service=worker"),
            timeout=60,
            what="the worker's pod",
        )[0]
        chaos("crashloop", namespace, pod.metadata.name)
        # Past its restart limit: every reconcile now fails at the ban (403), after the rest.
        wait_until(lambda: reconcile_errors(operator) >= 1, timeout=90, what="a refused ban")

        has.patch(custom, namespace, "worker", {"spec": {"replicas": 2}})
        generation = has.get(custom, namespace, "worker")["metadata"]["generation"]
        wait_until(
            lambda: apps.read_namespaced_deployment("worker", namespace).spec.replicas == 2,
            timeout=30,
            what="the Deployment updated",
        )
        reconciled = wait_until(
            lambda: [
                e
                for e in has.events(core, namespace, "worker", "Reconciled")
                if "Updated Deployment worker" in e.message
            ],
            timeout=30,
            what="Reconciled for the update, although its reconcile failed at the ban",
        )
        assert reconciled[0].type == "Normal"
        wait_until(
            lambda: (
                has.get(custom, namespace, "worker")["status"].get("observedGeneration")
                == generation
            ),
            timeout=30,
            what="the status of the new generation",
        )
        # The ban was refused, so the pod was not migrated and nobody says it was.
        assert not has.events(core, namespace, "worker", "PodMigrated")
        assert pod.metadata.uid in {
            p.metadata.uid
            for p in core.list_namespaced_pod(
                namespace, label_selector="haoperator.dev/service=worker"
            ).items
        }
        chaos("heal", namespace, pod.metadata.name)
    finally:
        assert operator.stop() == 0
