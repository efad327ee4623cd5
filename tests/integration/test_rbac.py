"""The ClusterRole in manifests/ is enough, and no more: the operator runs with a token of the
manifests' ServiceAccount (not the tests' admin credentials) through the reconcile and failover
scenarios, and neither it nor the electors (with a token of the ServiceAccount the operator made
for them) meet a single Forbidden. What the role must not allow, the API server refuses."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from testenv.harness.cluster import Kubectl, token_kubeconfig, wait_until
from testenv.harness.electors import ElectorStandIns
from testenv.harness.operator_process import OperatorProcess
from tests.e2e.support import OPERATOR, SYSTEM_NAMESPACE, forbidden_lines, install_access
from tests.integration import haservices as has
from tests.integration.test_operator import test_lifecycle as lifecycle_scenario
from tests.integration.test_recovery import (
    test_crash_loop_past_the_budget_migrates_and_the_ban_lifts as migration_scenario,
)

pytestmark = pytest.mark.cluster
ACCOUNT = f"system:serviceaccount:{SYSTEM_NAMESPACE}:{OPERATOR}"


@pytest.fixture(scope="module")
def installed_rbac(kubectl: Kubectl) -> None:
    """The manifests' namespace, ServiceAccount, ClusterRole and ClusterRoleBinding, as
    `kubectl apply -k manifests/` installs them (the Deployment's image cannot run here)."""
    install_access(kubectl)
    wait_until(
        lambda: (
            kubectl("auth", "can-i", "list", "haservices.haoperator.dev", "--as", ACCOUNT)
            .stdout.strip()
            .startswith("yes")
        ),
        timeout=30,
        what="the ClusterRoleBinding in effect",
    )


@pytest.fixture(scope="module")
def operator_kubeconfig(
    installed_rbac: None, kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    path = tmp_path_factory.mktemp("rbac") / "operator.kubeconfig"
    return token_kubeconfig(kubectl, SYSTEM_NAMESPACE, OPERATOR, path)


@pytest.fixture
def operator(
    crd: None, namespace: str, operator_kubeconfig: Path, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """`haoperator run` authenticated as the manifests' ServiceAccount; after the test, its log
    must hold no Forbidden."""
    process = OperatorProcess(
        [namespace], tmp_path / "operator.log", kubeconfig=operator_kubeconfig
    ).start()
    yield process
    code = process.stop()
    assert code == 0, f"operator exited {code} on SIGTERM:\n{process.log_tail()}"
    refused = forbidden_lines(process.log_path)
    assert not refused, "the operator was refused:\n" + "\n".join(refused)


def can_i(kubectl: Kubectl, *args: str) -> bool:
    result = kubectl("auth", "can-i", *args, "--as", ACCOUNT)
    assert result.returncode in (0, 1), result.stderr
    return result.stdout.strip().startswith("yes")


@pytest.mark.parametrize(
    "request_",
    [
        ("get", "secrets", "-A"),
        ("list", "secrets", "-A"),
        ("watch", "secrets", "-n", "default"),
        ("get", "configmaps", "-A"),
        ("create", "pods", "-n", "default"),
        ("update", "deployments.apps", "-n", "default"),
        ("update", "haservices.haoperator.dev", "-n", "default"),
        ("delete", "haservices.haoperator.dev", "-n", "default"),
        ("create", "clusterroles.rbac.authorization.k8s.io"),
        ("escalate", "roles.rbac.authorization.k8s.io", "-n", "default"),
        ("bind", "clusterroles.rbac.authorization.k8s.io"),
        ("impersonate", "serviceaccounts", "-n", "default"),
        ("create", "serviceaccounts", "--subresource=token", "-n", "default"),
        ("create", "pods", "--subresource=exec", "-n", "default"),
        ("create", "pods", "--subresource=eviction", "-n", "default"),
        ("update", "nodes"),
        ("delete", "nodes"),
        ("list", "customresourcedefinitions.apiextensions.k8s.io"),
        ("list", "namespaces"),
        ("*", "*"),
    ],
    ids=lambda r: "-".join(a for a in r[:3] if not a.startswith("-n")),
)
def test_the_service_account_is_refused_what_it_does_not_need(
    installed_rbac: None, kubectl: Kubectl, request_: tuple[str, ...]
) -> None:
    assert not can_i(kubectl, *request_)


def test_the_service_account_may_do_what_the_operator_does(
    installed_rbac: None, kubectl: Kubectl
) -> None:
    for request_ in [
        ("watch", "haservices.haoperator.dev", "-A"),
        ("patch", "haservices.haoperator.dev", "--subresource=status", "-n", "default"),
        # a switchover request's annotations (core/switchover.py)
        ("patch", "haservices.haoperator.dev", "-n", "default"),
        ("create", "deployments.apps", "-n", "default"),
        ("delete", "statefulsets.apps", "-n", "default"),
        ("patch", "poddisruptionbudgets.policy", "-n", "default"),
        ("create", "roles.rbac.authorization.k8s.io", "-n", "default"),
        ("watch", "pods", "-A"),
        ("watch", "leases.coordination.k8s.io", "-A"),
        ("create", "events", "-n", "default"),
        ("patch", "nodes"),
        ("list", "endpointslices.discovery.k8s.io", "-A"),
    ]:
        assert can_i(kubectl, *request_), request_


@pytest.mark.parametrize("category", list(has.EXAMPLES))
def test_lifecycle_with_the_manifests_service_account(
    category: str,
    namespace: str,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    apps: client.AppsV1Api,
    kubectl: Kubectl,
) -> None:
    """The whole reconcile scenario of test_operator (create, Ready, drift, scale, roll, delete),
    with the operator holding only the ClusterRole."""
    lifecycle_scenario(category, namespace, operator, custom, core, apps, kubectl)


def test_recovery_with_the_manifests_service_account(
    namespace: str,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    chaos: Callable[..., None],
) -> None:
    """Recovery's own writes with the ClusterRole: a pod's restart history (pod patch), its
    migration (pod delete) and the ban on its node (node patch, then its removal)."""
    migration_scenario(namespace, operator, custom, core, chaos)


def _status(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    return dict(has.get(custom, namespace, name).get("status") or {})


def _active_and_ready(
    custom: client.CustomObjectsApi, namespace: str, name: str, not_: set[str]
) -> str:
    obj = has.get(custom, namespace, name)
    active = str((obj.get("status") or {}).get("activePod") or "")
    ready = has.condition(obj, "Ready").get("status") == "True"
    return active if ready and active and active not in not_ else ""


def _roles(core: client.CoreV1Api, namespace: str, name: str) -> dict[str, str]:
    pods = core.list_namespaced_pod(namespace, label_selector=f"haoperator.dev/service={name}")
    return {
        p.metadata.name: (p.metadata.labels or {}).get("haoperator.dev/role", "")
        for p in pods.items
        if p.metadata.deletion_timestamp is None
    }


def _labelled(
    core: client.CoreV1Api, namespace: str, name: str, active: str, electors: ElectorStandIns
) -> bool:
    """`active` is labelled active and every other pod with a running elector standby."""
    others = electors.running() - {active}
    want = {active: "active", **dict.fromkeys(others, "standby")}
    return bool(others) and _roles(core, namespace, name) == want


def test_failover_with_the_manifests_service_account(
    namespace: str,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    kubectl: Kubectl,
    tmp_path: Path,
) -> None:
    """ActivePassive end to end with least privilege on both sides: the operator with the
    manifests' ClusterRole, the electors with the Role the operator rendered for them."""
    name = "db"
    has.create(
        custom, namespace, has.haservice(name, "ActivePassive", **has.EXAMPLES["ActivePassive"])
    )
    wait_until(
        lambda: kubectl("-n", namespace, "get", "rolebinding", f"{name}-elector").returncode == 0,
        timeout=30,
        what="the elector's ServiceAccount, Role and RoleBinding",
    )
    elector_kubeconfig = token_kubeconfig(
        kubectl, namespace, f"{name}-elector", tmp_path / "elector.kubeconfig"
    )
    with ElectorStandIns(core, namespace, name, elector_kubeconfig, tmp_path) as electors:
        try:
            first = wait_until(
                lambda: _active_and_ready(custom, namespace, name, set()),
                timeout=90,
                what="an active pod, Ready",
            )
            wait_until(
                lambda: _labelled(core, namespace, name, first, electors),
                timeout=30,
                what="one pod labelled active, the other standby",
            )

            # The active pod is deleted: its elector gets SIGTERM, releases the Lease, and the
            # standby takes over at once.
            core.delete_namespaced_pod(first, namespace)
            second = wait_until(
                lambda: _active_and_ready(custom, namespace, name, {first}),
                timeout=60,
                what="failover after the active pod was deleted",
            )

            # The active elector dies without a word (SIGKILL): the Lease expires and the
            # replacement pod, standby so far, takes over and fences the old one.
            wait_until(
                lambda: len(electors.running() - {second}) == 1,
                timeout=60,
                what="an elector for the replacement pod",
            )
            electors.crash(second)
            third = wait_until(
                lambda: _active_and_ready(custom, namespace, name, {first, second}),
                timeout=60,
                what="failover after the active elector died",
            )
            wait_until(
                lambda: _roles(core, namespace, name) == {second: "standby", third: "active"},
                timeout=15,
                what="the dead elector's pod fenced to standby",
            )
            status = _status(custom, namespace, name)
            assert status["failovers"] >= 2, json.dumps(status)
            assert electors.error is None, electors.error
        except AssertionError:
            print(electors.log_tail())
            raise
        refused = forbidden_lines(*electors.logs)
        assert not refused, "an elector was refused:\n" + "\n".join(refused)
