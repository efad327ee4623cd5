"""What a user does after `kubectl apply -k manifests/`: apply HAServices, see them Ready, break
something and watch it heal, read the events. Only public behaviour is asserted: what the API
server holds (status, pods, EndpointSlices, events)."""

from __future__ import annotations

from typing import Any

import yaml
from kubernetes import client

from testenv.harness.cluster import REPO, wait_until
from testenv.harness.electors import ElectorStandIns
from testenv.harness.operator_process import OperatorProcess
from tests.e2e.conftest import Electors
from tests.e2e.support import HostVolumes, Placement, forbidden_lines, routed
from tests.integration import haservices as has

QUICKSTART = REPO / "manifests" / "samples" / "quickstart" / "hello.yaml"


def ready(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    wait_until(
        lambda: has.is_ready(custom, namespace, name), timeout=180, what=f"HAService {name} Ready"
    )
    return has.get(custom, namespace, name)


def all_ready(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    """Ready, with every replica ready."""

    def check() -> dict[str, Any]:
        obj = has.get(custom, namespace, name)
        status = obj.get("status") or {}
        complete = has.is_ready(custom, namespace, name) and status.get(
            "readyReplicas"
        ) == status.get("replicas")
        return obj if complete and status.get("replicas") == obj["spec"]["replicas"] else {}

    return wait_until(check, timeout=180, what=f"every replica of {name} ready")


def pods(core: client.CoreV1Api, namespace: str, name: str) -> dict[str, Any]:
    found = core.list_namespaced_pod(namespace, label_selector=f"haoperator.dev/service={name}")
    return {p.metadata.name: p for p in found.items if p.metadata.deletion_timestamp is None}


def reasons(core: client.CoreV1Api, namespace: str, name: str) -> set[str]:
    return {e.reason for e in has.events(core, namespace, name)}


def test_a_load_balanced_service_serves_and_heals(
    namespace: str,
    operator: OperatorProcess | None,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    place: Placement,
) -> None:
    discovery = client.DiscoveryV1Api(core.api_client)
    has.create(
        custom,
        namespace,
        place(has.haservice("web", "LoadBalanced", **has.EXAMPLES["LoadBalanced"])),
    )
    all_ready(custom, namespace, "web")
    wait_until(
        lambda: routed(discovery, namespace, "web") == set(pods(core, namespace, "web")),
        timeout=60,
        what="the Service routing to every pod",
    )
    assert len(pods(core, namespace, "web")) == 3
    assert "Reconciled" in reasons(core, namespace, "web")

    # A pod dies: a new one takes its place and the Service follows.
    victim = sorted(pods(core, namespace, "web"))[0]
    core.delete_namespaced_pod(victim, namespace)
    wait_until(
        lambda: (
            victim not in pods(core, namespace, "web") and len(pods(core, namespace, "web")) == 3
        ),
        timeout=90,
        what="a replacement pod",
    )
    all_ready(custom, namespace, "web")
    wait_until(
        lambda: routed(discovery, namespace, "web") == set(pods(core, namespace, "web")),
        timeout=60,
        what="the Service routing to the replacement",
    )

    # Someone deletes the Service: it comes back, and the event says so.
    before = core.read_namespaced_service("web", namespace).metadata.uid
    core.delete_namespaced_service("web", namespace)
    wait_until(
        lambda: "DriftCorrected" in reasons(core, namespace, "web"),
        timeout=60,
        what="a DriftCorrected event",
    )
    assert core.read_namespaced_service("web", namespace).metadata.uid != before


def test_a_clustered_service_gets_its_member_back(
    namespace: str,
    operator: OperatorProcess | None,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    place: Placement,
    volumes: HostVolumes,
) -> None:
    volumes("data-db-0", "data-db-1", "data-db-2")
    has.create(
        custom, namespace, place(has.haservice("db", "Clustered", **has.EXAMPLES["Clustered"]))
    )
    all_ready(custom, namespace, "db")
    assert sorted(pods(core, namespace, "db")) == ["db-0", "db-1", "db-2"]
    uid = pods(core, namespace, "db")["db-1"].metadata.uid
    core.delete_namespaced_pod("db-1", namespace)
    wait_until(
        lambda: (
            "db-1" in pods(core, namespace, "db")
            and pods(core, namespace, "db")["db-1"].metadata.uid != uid
        ),
        timeout=120,
        what="db-1 recreated",
    )
    obj = all_ready(custom, namespace, "db")
    assert has.condition(obj, "QuorumLost").get("status") != "True"


def test_active_passive_fails_over_when_the_active_pod_is_deleted(
    namespace: str,
    operator: OperatorProcess | None,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    electors: Electors,
    place: Placement,
) -> None:
    """The README quickstart: the sample, then `kubectl delete pod <active>`."""
    discovery = client.DiscoveryV1Api(core.api_client)
    for document in yaml.safe_load_all(QUICKSTART.read_text()):
        if document["kind"] == "HAService":
            has.create(custom, namespace, place(document))
        else:
            core.create_namespaced_config_map(namespace, document)
    stand_ins = electors("hello")
    try:
        first = _active(custom, namespace, set())
        wait_until(
            lambda: routed(discovery, namespace, "hello") == {first},
            timeout=60,
            what=f"the Service routing to {first} only",
        )
        assert "LeaderElected" in reasons(core, namespace, "hello")

        core.delete_namespaced_pod(first, namespace)
        second = _active(custom, namespace, {first})
        wait_until(
            lambda: routed(discovery, namespace, "hello") == {second},
            timeout=60,
            what=f"the Service routing to {second} only",
        )
        # The status follows the route (the operator records the event, then the status); an
        # earlier failover (a first leader whose application was not Ready yet hands over) may
        # be there until then.
        wait_until(
            lambda: (
                ((last := has.get(custom, namespace, "hello")["status"].get("lastFailover")) or {})
                and (last["from"], last["to"]) == (first, second)
            ),
            timeout=30,
            what=f"status.lastFailover from {first} to {second}",
        )
        assert has.get(custom, namespace, "hello")["status"]["failovers"] >= 1
        wait_until(
            lambda: "FailoverCompleted" in reasons(core, namespace, "hello"),
            timeout=30,
            what="a FailoverCompleted event",
        )
        # The replacement pod joins as the standby.
        all_ready(custom, namespace, "hello")
        assert len(pods(core, namespace, "hello")) == 2
    finally:
        _report(stand_ins)
    if stand_ins is not None:
        assert stand_ins.error is None, stand_ins.error
        assert forbidden_lines(*stand_ins.logs) == []


def _active(custom: client.CustomObjectsApi, namespace: str, not_: set[str]) -> str:
    def check() -> str:
        obj = has.get(custom, namespace, "hello")
        active = str((obj.get("status") or {}).get("activePod") or "")
        ok = has.condition(obj, "Ready").get("status") == "True" and active not in not_
        return active if ok else ""

    return wait_until(check, timeout=180, what="an active pod, Ready")


def _report(stand_ins: ElectorStandIns | None) -> None:
    if stand_ins is not None:
        print(stand_ins.log_tail())
