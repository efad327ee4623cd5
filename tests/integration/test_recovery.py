"""Recovery policies on the real API server, with failures played by testenv/chaos.

The nodes these tests take down are the kwok nodes their pods run on: the real node's taint
keeps every pod here off it, and testenv/chaos acts on kwok nodes only."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from haoperator.core.recovery import avoid_label
from haoperator.core.vocabulary import Annotation
from testenv.harness.cluster import wait_until
from testenv.harness.operator_process import OperatorProcess
from tests.integration import haservices as has
from tests.integration.conftest import force_deleted_and_back, ready_pods

pytestmark = pytest.mark.cluster
Chaos = Callable[..., None]


def pods_of(core: client.CoreV1Api, namespace: str, name: str) -> list[Any]:
    return list(
        core.list_namespaced_pod(namespace, label_selector=f"haoperator.dev/service={name}").items
    )


def event_messages(core: client.CoreV1Api, namespace: str, name: str, reason: str) -> list[str]:
    return [e.message for e in has.events(core, namespace, name, reason)]


def crash_looping_worker(
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    chaos: Chaos,
    namespace: str,
    max_restarts: int,
    window: int,
) -> Any:
    """A one-pod QueueWorker with `onLimit: Migrate` whose pod crash-loops; the pod."""
    body = has.haservice(
        "worker", "QueueWorker", replicas=1, placement={"spread": "None"},
        recovery={"restart": {"maxRestarts": max_restarts, "windowSeconds": window,
                              "onLimit": "Migrate"}},
    )  # fmt: skip
    has.create(custom, namespace, body)
    pod = wait_until(
        lambda: ready_pods(core, namespace, "haoperator.dev/service=worker"), timeout=60, what="pod"
    )[0]
    chaos("crashloop", namespace, pod.metadata.name)
    return pod


def test_crash_loop_past_the_budget_migrates_and_the_ban_lifts(
    namespace: str,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    chaos: Chaos,
) -> None:
    pod = crash_looping_worker(custom, core, chaos, namespace, max_restarts=2, window=30)
    first_node = pod.spec.node_name
    failed = wait_until(
        lambda: event_messages(core, namespace, "worker", "PodFailed"), timeout=30, what="PodFailed"
    )
    assert f"pod {pod.metadata.name}: container app exited with code 1 (Error)" in failed
    wait_until(
        lambda: event_messages(core, namespace, "worker", "PodMigrated"),
        timeout=60,
        what="PodMigrated",
    )
    assert any(
        "restarted more than 2 times within 30 s" in m
        for m in event_messages(core, namespace, "worker", "RecoveryLimitReached")
    )
    replacement = wait_until(
        lambda: [
            p
            for p in ready_pods(core, namespace, "haoperator.dev/service=worker")
            if p.metadata.name != pod.metadata.name
        ],
        timeout=60,
        what="a replacement pod, ready",
    )[0]
    assert replacement.spec.node_name != first_node
    label = avoid_label(namespace, "worker")
    assert label in (core.read_node(first_node).metadata.labels or {})
    # One PodFailed event per pod and reason, its count growing, not one per restart.
    events = has.events(core, namespace, "worker", "PodFailed")
    assert len(events) == 1
    assert events[0].count >= 3
    # The ban lifts by itself once the window has passed.
    wait_until(
        lambda: label not in (core.read_node(first_node).metadata.labels or {}),
        timeout=60,
        what="ban lifted",
    )

    metrics = (
        urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5)
        .read()
        .decode()
    )
    assert 'haoperator_recovery_actions_total{action="pod_migrated"} 1.0' in metrics
    assert 'haoperator_recovery_actions_total{action="pod_failed"}' in metrics
    assert 'haoperator_haservices{category="QueueWorker",ready="true"} 1.0' in metrics
    assert "haoperator_reconcile_seconds_count" in metrics
    assert 'haoperator_reconcile_total{result="ok"}' in metrics


def test_deleting_the_haservice_lifts_its_bans_at_once(
    namespace: str,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    chaos: Chaos,
) -> None:
    """A ban outlived its HAService: nothing lifted the node label once nobody reconciled it."""
    pod = crash_looping_worker(custom, core, chaos, namespace, max_restarts=1, window=3600)
    wait_until(
        lambda: event_messages(core, namespace, "worker", "PodMigrated"),
        timeout=60,
        what="PodMigrated",
    )
    label = avoid_label(namespace, "worker")
    node = pod.spec.node_name
    assert label in (core.read_node(node).metadata.labels or {})
    custom.delete_namespaced_custom_object(has.GROUP, has.VERSION, namespace, has.PLURAL, "worker")
    wait_until(
        lambda: label not in (core.read_node(node).metadata.labels or {}),
        timeout=30,
        what="the ban lifted with its HAService, long before its hour is up",
    )


def test_notify_only_warns(
    namespace: str,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    chaos: Chaos,
) -> None:
    body = has.haservice(
        "worker", "QueueWorker", replicas=1,
        recovery={"restart": {"maxRestarts": 1, "windowSeconds": 600, "onLimit": "Notify"}},
    )  # fmt: skip
    has.create(custom, namespace, body)
    pod = wait_until(
        lambda: ready_pods(core, namespace, "haoperator.dev/service=worker"), timeout=60, what="pod"
    )[0]
    chaos("crashloop", namespace, pod.metadata.name)

    def degraded() -> dict[str, Any]:
        cond = has.condition(has.get(custom, namespace, "worker"), "Degraded")
        return cond if cond.get("reason") == "RecoveryLimitReached" else {}

    assert (
        wait_until(degraded, timeout=30, what="Degraded RecoveryLimitReached")["status"] == "True"
    )
    warning = wait_until(
        lambda: has.events(core, namespace, "worker", "RecoveryLimitReached"),
        timeout=10,
        what="event",
    )
    assert warning[0].type == "Warning"
    chaos("heal", namespace, pod.metadata.name)
    assert [p.metadata.uid for p in pods_of(core, namespace, "worker")] == [pod.metadata.uid]
    assert not has.events(core, namespace, "worker", "PodMigrated")


def wait_members(core: client.CoreV1Api, namespace: str) -> None:
    wait_until(
        lambda: len(ready_pods(core, namespace, "haoperator.dev/service=db")) == 3,
        timeout=90,
        what="3 members",
    )


def identities(core: client.CoreV1Api, namespace: str) -> dict[str, str]:
    return {p.metadata.name: p.metadata.uid for p in pods_of(core, namespace, "db")}


def test_node_loss_with_force_delete_brings_the_member_back_elsewhere(
    namespace: str,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    chaos: Chaos,
    downed: list[str],
) -> None:
    has.create(custom, namespace, has.clustered("db", "ForceDelete", 10))
    wait_members(core, namespace)
    victim = core.read_namespaced_pod("db-1", namespace)
    lost_node = victim.spec.node_name
    claim = core.read_namespaced_persistent_volume_claim("data-db-1", namespace).spec.volume_name
    chaos("node-down", lost_node)
    downed.append(lost_node)
    wait_until(
        lambda: event_messages(core, namespace, "db", "NodeLost"), timeout=60, what="NodeLost"
    )
    force_deleted_and_back(core, namespace, "db", "db-1", lost_node)
    # Same identity, same claim, same volume.
    assert (
        core.read_namespaced_persistent_volume_claim("data-db-1", namespace).spec.volume_name
        == claim
    )


def test_node_loss_with_wait_deletes_nothing(
    namespace: str,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    chaos: Chaos,
    downed: list[str],
) -> None:
    has.create(custom, namespace, has.clustered("db", "Wait", 5))
    wait_members(core, namespace)
    before = identities(core, namespace)
    node = core.read_namespaced_pod("db-0", namespace).spec.node_name
    chaos("node-down", node)
    downed.append(node)
    wait_until(
        lambda: event_messages(core, namespace, "db", "NodeLost"), timeout=60, what="NodeLost"
    )
    time.sleep(5)
    assert identities(core, namespace) == before
    assert not has.events(core, namespace, "db", "PodForceDeleted")


def test_a_node_back_within_the_grace_is_left_alone(
    namespace: str,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    chaos: Chaos,
    downed: list[str],
) -> None:
    has.create(custom, namespace, has.clustered("db", "ForceDelete", 40))
    wait_members(core, namespace)
    before = identities(core, namespace)
    node = core.read_namespaced_pod("db-2", namespace).spec.node_name

    def node_ready() -> str:
        return str(
            next(c.status for c in core.read_node(node).status.conditions if c.type == "Ready")
        )

    chaos("node-down", node)
    downed.append(node)
    wait_until(lambda: node_ready() != "True", timeout=40, what="node NotReady")
    chaos("node-up", node)
    wait_until(lambda: node_ready() == "True", timeout=40, what="node Ready again")
    time.sleep(5)
    assert identities(core, namespace) == before
    assert not has.events(core, namespace, "db", "NodeLost")


def test_quorum_lost_and_restored(
    namespace: str,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    chaos: Chaos,
    downed: list[str],
) -> None:
    has.create(custom, namespace, has.clustered("db", "Wait", 3600))
    wait_members(core, namespace)
    nodes = sorted({p.spec.node_name for p in pods_of(core, namespace, "db")})
    assert len(nodes) == 3  # spread Preferred puts one member per kwok node (the real is tainted)
    for node in nodes[:2]:
        chaos("node-down", node)
        downed.append(node)

    def quorum_lost() -> bool:
        obj = has.get(custom, namespace, "db")
        return (
            has.condition(obj, "QuorumLost").get("status") == "True"
            and has.condition(obj, "Ready").get("status") == "False"
        )

    wait_until(quorum_lost, timeout=60, what="QuorumLost=True, Ready=False")
    lost = wait_until(
        lambda: has.events(core, namespace, "db", "QuorumLost"), timeout=10, what="QuorumLost event"
    )
    assert lost[0].type == "Warning"
    for node in nodes[:2]:
        chaos("node-up", node)
    downed.clear()
    wait_until(lambda: has.is_ready(custom, namespace, "db"), timeout=60, what="Ready again")
    restored = wait_until(
        lambda: has.events(core, namespace, "db", "QuorumRestored"),
        timeout=10,
        what="QuorumRestored",
    )
    assert restored[0].type == "Normal"


def test_the_restart_count_survives_an_operator_restart(
    crd: None,
    namespace: str,
    tmp_path: Path,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    chaos: Chaos,
) -> None:
    body = has.haservice(
        "worker",
        "QueueWorker",
        replicas=1,
        recovery={"restart": {"maxRestarts": 1000, "windowSeconds": 600}},
    )
    has.create(custom, namespace, body)
    first = OperatorProcess([namespace], tmp_path / "first.log").start()
    pod = wait_until(
        lambda: ready_pods(core, namespace, "haoperator.dev/service=worker"), timeout=60, what="pod"
    )[0]
    name = pod.metadata.name
    chaos("crashloop", namespace, name)

    def remembered() -> dict[str, Any]:
        raw = (core.read_namespaced_pod(name, namespace).metadata.annotations or {}).get(
            Annotation.RESTARTS
        )
        return json.loads(raw) if raw else {}

    wait_until(lambda: remembered().get("seen", 0) >= 2, timeout=30, what="2 restarts remembered")
    assert first.stop() == 0
    seen_before = remembered()["seen"]
    # Restarts happen while no operator watches.
    wait_until(
        lambda: (
            core.read_namespaced_pod(name, namespace).status.container_statuses[0].restart_count
            >= seen_before + 2
        ),
        timeout=30,
        what="more restarts",
    )
    chaos("heal", namespace, name)
    second = OperatorProcess([namespace], tmp_path / "second.log").start()
    try:

        def caught_up() -> bool:
            total = (
                core.read_namespaced_pod(name, namespace).status.container_statuses[0].restart_count
            )
            record = remembered()
            return record.get("seen") == total and len(record.get("times", [])) == total

        wait_until(
            caught_up, timeout=30, what="history counts every restart, including those it missed"
        )
    finally:
        assert second.stop() == 0
