"""What the operator may write and bind, on the real API server: never an object it does not
own, nor a grant that points at one; orphans of its own are adopted."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from haoperator.api import HAService
from haoperator.core.render import sidecar
from testenv.harness.cluster import exists, wait_until
from testenv.harness.operator_process import OperatorProcess
from tests.integration import haservices as has

pytestmark = pytest.mark.cluster
Kubectl = Callable[..., subprocess.CompletedProcess[str]]
NAME = "vip"


def ready_condition(custom: client.CustomObjectsApi, namespace: str) -> dict[str, Any]:
    return has.condition(has.get(custom, namespace, NAME), "Ready")


def conflicted(custom: client.CustomObjectsApi, namespace: str, text: str) -> bool:
    ready = ready_condition(custom, namespace)
    return ready.get("reason") == "NameConflict" and text in ready.get("message", "")


def active_passive() -> dict[str, Any]:
    return has.haservice(NAME, "ActivePassive", replicas=2, service=has.SERVICE)


def test_a_lease_of_the_same_name_that_is_not_ours_is_left_untouched(
    namespace: str,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
) -> None:
    """Another controller's leader election: the electors used to take it over and rewrite its
    lease duration. Nothing may write it, and no Role of ours may grant access to it."""
    leases = client.CoordinationV1Api(core.api_client)
    foreign = leases.create_namespaced_lease(
        namespace,
        {
            "metadata": {"name": NAME},
            "spec": {"holderIdentity": "someone-else", "leaseDurationSeconds": 15},
        },
    )
    has.create(custom, namespace, active_passive())
    wait_until(
        lambda: conflicted(custom, namespace, f"Lease {NAME} already exists"),
        timeout=30,
        what="Ready=False NameConflict naming the Lease",
    )
    event = wait_until(
        lambda: has.events(core, namespace, NAME, "NameConflict"), timeout=15, what="event"
    )[0]
    assert event.type == "Warning"
    rbac = client.RbacAuthorizationV1Api(core.api_client)
    assert not exists(lambda: rbac.read_namespaced_role(f"{NAME}-elector", namespace))
    assert not exists(lambda: rbac.read_namespaced_role_binding(f"{NAME}-elector", namespace))
    after = leases.read_namespaced_lease(NAME, namespace)
    assert after.metadata.resource_version == foreign.metadata.resource_version
    assert after.spec.lease_duration_seconds == 15
    assert not after.metadata.owner_references


def test_a_role_of_the_same_name_that_is_not_ours_is_never_bound(
    namespace: str,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
) -> None:
    rbac = client.RbacAuthorizationV1Api(core.api_client)
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": f"{NAME}-elector"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
        },
    )
    has.create(custom, namespace, active_passive())
    wait_until(
        lambda: conflicted(custom, namespace, f"Role {NAME}-elector already exists"),
        timeout=30,
        what="Ready=False NameConflict naming the Role",
    )
    message = ready_condition(custom, namespace)["message"]
    assert f"RoleBinding {NAME}-elector not applied: it would refer to Role {NAME}-elector" in (
        message
    )
    assert not exists(lambda: rbac.read_namespaced_role_binding(f"{NAME}-elector", namespace))

    # Once the foreign Role is gone, ours and its binding are made.
    rbac.delete_namespaced_role(f"{NAME}-elector", namespace)
    wait_until(
        lambda: exists(lambda: rbac.read_namespaced_role_binding(f"{NAME}-elector", namespace)),
        timeout=60,  # the conflict backs off: 2, 4, 8 ... s
        what="our Role and RoleBinding made",
    )
    role = rbac.read_namespaced_role(f"{NAME}-elector", namespace)
    ours = sidecar.role(HAService.model_validate(active_passive()))
    assert [r.resources for r in role.rules] == [r["resources"] for r in ours["rules"]]


def test_a_bound_role_replaced_by_a_foreign_one_is_unbound(
    crd: None,
    namespace: str,
    tmp_path: Path,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
) -> None:
    """Our RoleBinding names the Role by name: if that name comes to mean someone else's Role
    (ours deleted while no operator watched, theirs created), the binding must go."""
    rbac = client.RbacAuthorizationV1Api(core.api_client)
    first = OperatorProcess([namespace], tmp_path / "first.log").start()
    try:
        has.create(custom, namespace, active_passive())
        wait_until(
            lambda: exists(lambda: rbac.read_namespaced_role_binding(f"{NAME}-elector", namespace)),
            timeout=30,
            what="the elector's RoleBinding",
        )
    finally:
        assert first.stop() == 0
    rbac.delete_namespaced_role(f"{NAME}-elector", namespace)
    wait_until(
        lambda: not exists(lambda: rbac.read_namespaced_role(f"{NAME}-elector", namespace)),
        timeout=30,
        what="our Role gone",
    )
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": f"{NAME}-elector"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}],
        },
    )
    second = OperatorProcess([namespace], tmp_path / "second.log").start()
    try:
        wait_until(
            lambda: (
                not exists(lambda: rbac.read_namespaced_role_binding(f"{NAME}-elector", namespace))
            ),
            timeout=30,
            what="our RoleBinding deleted",
        )
        wait_until(
            lambda: conflicted(custom, namespace, f"it would refer to Role {NAME}-elector"),
            timeout=30,
            what="NameConflict naming the binding and the Role",
        )
        assert any(
            f"Deleted RoleBinding {NAME}-elector" in e.message
            for e in has.events(core, namespace, NAME, "Reconciled")
        )
        role = rbac.read_namespaced_role(f"{NAME}-elector", namespace)
        assert role.rules[0].resources == ["secrets"]  # theirs, untouched
    finally:
        assert second.stop() == 0


def test_children_orphaned_by_a_deletion_are_adopted_by_the_new_haservice(
    namespace: str,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    apps: client.AppsV1Api,
    kubectl: Kubectl,
) -> None:
    """`kubectl delete --cascade=orphan`, then the HAService again: its own children carry its
    labels and no owner, and are taken back rather than reported as someone else's."""
    body = has.haservice("web", "LoadBalanced", service=has.SERVICE)
    has.create(custom, namespace, body)
    wait_until(lambda: has.is_ready(custom, namespace, "web"), timeout=60, what="Ready")
    before = apps.read_namespaced_deployment("web", namespace).metadata.uid
    orphaned = kubectl(
        "-n", namespace, "delete", "haservices.haoperator.dev", "web", "--cascade=orphan"
    )
    assert orphaned.returncode == 0, orphaned.stderr
    wait_until(
        lambda: not apps.read_namespaced_deployment("web", namespace).metadata.owner_references,
        timeout=30,
        what="the Deployment orphaned",
    )
    uid = has.create(custom, namespace, body)["metadata"]["uid"]
    wait_until(lambda: has.is_ready(custom, namespace, "web"), timeout=60, what="Ready again")
    deployment = apps.read_namespaced_deployment("web", namespace)
    assert deployment.metadata.uid == before  # the same object, not a new one
    assert [r.uid for r in deployment.metadata.owner_references] == [uid]
    assert not has.events(core, namespace, "web", "NameConflict")


def test_a_replica_count_above_the_operators_limit_is_refused_and_nothing_is_made(
    crd: None,
    namespace: str,
    tmp_path: Path,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    apps: client.AppsV1Api,
) -> None:
    process = OperatorProcess(
        [namespace], tmp_path / "operator.log", extra_args=["--max-replicas", "3"]
    ).start()
    try:
        has.create(custom, namespace, has.haservice("web", "LoadBalanced", replicas=4))
        message = has.ready_because(custom, namespace, "web", "ReplicasAboveLimit")["message"]
        assert "spec.replicas 4 is above this operator's limit of 3" in message
        event = wait_until(
            lambda: has.events(core, namespace, "web", "ReplicasAboveLimit"), timeout=15, what="ev"
        )[0]
        assert event.type == "Warning"
        time.sleep(2)
        assert not apps.list_namespaced_deployment(namespace).items
        has.patch(custom, namespace, "web", {"spec": {"replicas": 3}})
        wait_until(lambda: has.is_ready(custom, namespace, "web"), timeout=90, what="Ready")
        assert apps.read_namespaced_deployment("web", namespace).spec.replicas == 3
    finally:
        assert process.stop() == 0
