"""Status rules of API.md, as a pure function of observed children and pods."""

from __future__ import annotations

from typing import Any

from haoperator import status
from haoperator.api import HAServiceSpec
from haoperator.diff import differences, quantity

TEMPLATE = {"spec": {"containers": [{"name": "c", "image": "i"}]}}


def spec(**fields: Any) -> HAServiceSpec:
    return HAServiceSpec.model_validate({"template": TEMPLATE, **fields})


def workload(ready: int, replicas: int, kind: str = "Deployment") -> dict[str, Any]:
    return {
        "kind": kind,
        "metadata": {"generation": 1},
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": replicas,
        },
    }


def conditions(st: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in st["conditions"]}


def compute(observed: status.Observed, now: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    return status.compute(observed, now)


def test_load_balanced_ready_within_the_disruption_budget() -> None:
    s = spec(category="LoadBalanced", replicas=4, disruption={"maxUnavailable": "25%"})
    st = compute(status.Observed("web", 1, s, workload(3, 4)))
    c = conditions(st)
    assert c["Ready"]["status"] == "True"
    assert c["Ready"]["reason"] == "MinimumReplicasReady"
    assert c["Degraded"]["status"] == "True"
    st = compute(status.Observed("web", 1, s, workload(2, 4)))
    assert conditions(st)["Ready"]["status"] == "False"


def test_clustered_ready_with_quorum_and_quorum_lost_below_it() -> None:
    s = spec(category="Clustered", replicas=5)
    assert status.quorum(s) == 3
    ok = conditions(compute(status.Observed("db", 1, s, workload(3, 5, "StatefulSet"))))
    assert ok["Ready"]["status"] == "True"
    assert ok["QuorumLost"]["status"] == "False"
    had = compute(status.Observed("db", 1, s, workload(3, 5, "StatefulSet")))
    lost = conditions(
        compute(status.Observed("db", 1, s, workload(2, 5, "StatefulSet"), previous=had))
    )
    assert lost["Ready"]["reason"] == "QuorumLost"
    assert lost["QuorumLost"]["status"] == "True"
    assert lost["QuorumLost"]["reason"] == "QuorumLost"


def test_a_clustered_service_that_never_had_quorum_is_forming_not_lost() -> None:
    """Creating a cluster is not losing one: no QuorumLost/QuorumRestored news while forming."""
    s = spec(category="Clustered", replicas=3)
    first = compute(status.Observed("db", 1, s, workload(0, 3, "StatefulSet")))
    assert conditions(first)["QuorumLost"]["reason"] == "Forming"
    assert conditions(first)["Ready"]["reason"] == "Forming"
    still = compute(status.Observed("db", 1, s, workload(1, 3, "StatefulSet"), previous=first))
    assert conditions(still)["QuorumLost"]["reason"] == "Forming"
    formed = compute(status.Observed("db", 1, s, workload(2, 3, "StatefulSet"), previous=still))
    assert conditions(formed)["QuorumLost"]["status"] == "False"
    again = compute(status.Observed("db", 1, s, workload(1, 3, "StatefulSet"), previous=formed))
    assert conditions(again)["QuorumLost"]["reason"] == "QuorumLost"


def pod(name: str, role: str | None, ready: bool = True) -> dict[str, Any]:
    labels = {"haoperator.dev/role": role} if role else {}
    return {
        "metadata": {"name": name, "labels": labels},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def ap(**extra: Any) -> status.Observed:
    s = spec(
        category="ActivePassive", replicas=2, service={"ports": [{"name": "http", "port": 80}]}
    )
    base: dict[str, Any] = {"workload": workload(2, 2), "service_present": True}
    base.update(extra)
    return status.Observed("vip", 1, s, **base)


def test_active_passive_ready_needs_one_active_pod_that_the_service_routes_to() -> None:
    pods = [pod("a", "active"), pod("b", "standby")]
    assert conditions(compute(ap(pods=pods, routed={"a"})))["Ready"]["status"] == "True"
    assert compute(ap(pods=pods, routed={"a"}))["activePod"] == "a"
    assert conditions(compute(ap(pods=pods, routed=set())))["Ready"]["reason"] == "NotRouted"
    both = [pod("a", "active"), pod("b", "active")]
    assert conditions(compute(ap(pods=both, routed={"a"})))["Ready"]["reason"] == "SplitBrain"
    none = [pod("a", "standby"), pod("b", "standby")]
    assert conditions(compute(ap(pods=none, routed=set())))["Ready"]["reason"] == "NoActivePod"
    handing = conditions(compute(ap(pods=none, routed=set(), failing_over=True)))
    assert handing["Ready"]["status"] == "True"
    assert handing["Ready"]["reason"] == "FailingOver"


def test_failover_comes_from_the_lease() -> None:
    record = '{"from": "a", "to": "b", "time": "t", "seconds": 0.4}'
    lease = {
        "metadata": {"annotations": {"haoperator.dev/last-failover": record}},
        "spec": {"leaseTransitions": 3},
    }
    st = compute(ap(pods=[pod("b", "active")], routed={"b"}, lease=lease))
    assert st["failovers"] == 3
    assert st["lastFailover"] == {"from": "a", "to": "b", "time": "t", "seconds": 0.4}


def test_an_unchanged_world_gives_an_identical_status() -> None:
    s = spec(category="QueueWorker", replicas=2)
    first = compute(status.Observed("w", 1, s, workload(2, 2)), now="2026-01-01T00:00:00Z")
    again = compute(
        status.Observed("w", 1, s, workload(2, 2), previous=first), now="2026-01-01T01:00:00Z"
    )
    assert again == first
    degraded = compute(
        status.Observed("w", 1, s, workload(1, 2), previous=first), now="2026-01-01T02:00:00Z"
    )
    assert conditions(degraded)["Degraded"]["lastTransitionTime"] == "2026-01-01T02:00:00Z"
    assert conditions(degraded)["Ready"]["lastTransitionTime"] == "2026-01-01T00:00:00Z"


def test_differences_ignore_what_the_server_adds_and_normalises() -> None:
    want = {
        "spec": {
            "replicas": 2,
            "template": {"resources": {"cpu": "0.5", "memory": "1Gi"}},
            "labels": {},
        }
    }
    have = {
        "spec": {
            "replicas": 2,
            "template": {"resources": {"cpu": "500m", "memory": "1024Mi"}},
            "extra": 1,
        }
    }
    assert differences(want, have) == []
    assert differences({"spec": {"replicas": 2}}, {"spec": {"replicas": 5}}) == [
        "spec.replicas: 5 (want 2)"
    ]
    assert differences({"a": [1, 2]}, {"a": [1]}) == ["a: 1 items, want 2"]
    assert differences({"a": {"b": 1}}, {}) == ["a: missing"]
    assert quantity("1Ki") == 1024
    assert quantity("abc") is None
