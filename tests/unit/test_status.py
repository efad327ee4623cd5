"""Status rules of API.md, as a pure function of observed children and pods."""

from __future__ import annotations

from typing import Any

import pytest

from haoperator.api import HAServiceSpec
from haoperator.core import status, transitions
from haoperator.core.diff import differences, quantity

TEMPLATE = {"spec": {"containers": [{"name": "c", "image": "i"}]}}


def warnings(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, str]]:
    """The Warning events the change of status calls for, as (reason, message)."""
    return [(news.reason, news.message) for news in transitions.warnings(before, after)]


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
    assert s.quorum_size == 3
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


def pod(name: str, role: str | None, ready: bool = True, version: str = "5") -> dict[str, Any]:
    labels = {"haoperator.dev/role": role} if role else {}
    return {
        "metadata": {"name": name, "labels": labels, "resourceVersion": version},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def lease(holder: str | None, version: str = "4", **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "vip", "resourceVersion": version, **meta},
        "spec": {"holderIdentity": holder},
    }


def ap(**extra: Any) -> status.Observed:
    s = spec(
        category="ActivePassive", replicas=2, service={"ports": [{"name": "http", "port": 80}]}
    )
    base: dict[str, Any] = {"workload": workload(2, 2), "service_present": True}
    base.update(extra)
    return status.Observed("vip", 1, s, **base)


READY = {"conditions": [{"type": "Ready", "status": "True", "reason": "ActivePodReady"}]}


def test_active_passive_ready_needs_the_lease_holder_labelled_active_and_routed() -> None:
    pods = [pod("a", "active"), pod("b", "standby")]
    ok = compute(ap(pods=pods, routed={"a"}, lease=lease("a")))
    assert conditions(ok)["Ready"]["status"] == "True"
    assert conditions(ok)["Ready"]["reason"] == "ActivePodReady"
    assert ok["activePod"] == "a"
    assert (
        conditions(compute(ap(pods=pods, routed=set(), lease=lease("a"))))["Ready"]["reason"]
        == "NotRouted"
    )
    both = [pod("a", "active"), pod("b", "active")]
    split = compute(ap(pods=both, routed={"a"}, lease=lease("a")))
    assert conditions(split)["Ready"]["reason"] == "SplitBrain"


def test_the_lease_not_a_label_names_the_active_pod() -> None:
    """A pod labelled active without holding the Lease (its elector died, say) is not the
    active pod; the holder is, and if it lacks the label the Service routes to nobody."""
    pods = [pod("a", "active"), pod("b", "standby")]
    st = compute(ap(pods=pods, routed={"a"}, lease=lease("b")))
    assert st["activePod"] == "b"
    ready = conditions(st)["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "LeaderNotLabelled")
    assert "pod b holds the Lease vip" in ready["message"]
    degraded = conditions(st)["Degraded"]
    assert (degraded["status"], degraded["reason"]) == ("True", "LeaderNotLabelled")


def test_no_lease_holder_is_no_active_pod_and_degraded_once_the_grace_is_over() -> None:
    none = [pod("a", "standby"), pod("b", "standby")]
    st = compute(ap(pods=none, routed=set(), lease=lease(None)))
    assert conditions(st)["Ready"]["reason"] == "NoActivePod"
    assert "no pod holds the Lease vip" in conditions(st)["Ready"]["message"]
    assert conditions(st)["Degraded"]["reason"] == "NoActivePod"
    assert "activePod" not in st
    # Within a lease duration of losing it: a service that was Ready is failing over...
    handing = conditions(compute(ap(pods=none, lease=lease(None), electing=True, previous=READY)))
    assert (handing["Ready"]["status"], handing["Ready"]["reason"]) == ("True", "FailingOver")
    assert handing["Degraded"]["status"] == "False"
    # ...and a new one is still electing: not Ready, not yet degraded, no news.
    first = conditions(compute(ap(pods=none, lease=lease(None), electing=True)))
    assert (first["Ready"]["status"], first["Ready"]["reason"]) == ("False", "NoActivePod")
    assert first["Degraded"]["status"] == "False"
    # No pod ready: nothing to elect; the replicas are what is missing.
    down = compute(ap(pods=[pod("a", None, ready=False)], lease=lease(None),
                      workload=workload(0, 2)))  # fmt: skip
    assert conditions(down)["Degraded"]["reason"] == "ReplicasUnavailable"


def test_an_unhealthy_active_pod_with_no_ready_standby_keeps_the_role_and_says_so() -> None:
    """The electors keep the role where it is when no pod could serve better (no flapping); the
    HAService says why nothing moves, with one Warning."""
    sick = [pod("a", "active", ready=False), pod("b", "standby", ready=False)]
    good = compute(ap(pods=[pod("a", "active"), pod("b", "standby")], routed={"a"},
                      lease=lease("a")))  # fmt: skip
    st = compute(ap(pods=sick, routed=set(), lease=lease("a"), previous=good))
    ready, degraded = conditions(st)["Ready"], conditions(st)["Degraded"]
    assert (ready["status"], ready["reason"]) == ("False", "ActivePodUnhealthy")
    assert "pod a is active but not ready, and no standby is ready" in ready["message"]
    assert (degraded["status"], degraded["reason"]) == ("True", "ActivePodUnhealthy")
    assert warnings(good, st) == [("ActivePodUnhealthy", degraded["message"])]
    again = compute(ap(pods=sick, routed=set(), lease=lease("a"), previous=st))
    assert warnings(st, again) == []
    # A service starting up, none of whose pods has been ready yet, is not told this.
    starting = compute(ap(pods=sick, routed=set(), lease=lease("a")))
    assert conditions(starting)["Ready"]["reason"] == "NoActivePod"
    assert warnings({}, starting) == []
    # A ready standby exists: the electors are moving the role; not this reason.
    moving = [pod("a", "active", ready=False), pod("b", "standby")]
    other = compute(ap(pods=moving, routed=set(), lease=lease("a")))
    assert conditions(other)["Ready"]["reason"] == "NoActivePod"


def test_a_warning_once_when_the_service_loses_its_leader() -> None:
    pods = [pod("a", "standby"), pod("b", "standby")]
    good = compute(ap(pods=[pod("a", "active"), pod("b", "standby")], routed={"a"},
                      lease=lease("a")))  # fmt: skip
    bad = compute(ap(pods=pods, routed=set(), lease=lease("a"), previous=good))
    assert warnings(good, bad) == [("LeaderNotLabelled", conditions(bad)["Degraded"]["message"])]
    again = compute(ap(pods=pods, routed=set(), lease=lease("a"), previous=bad))
    assert warnings(bad, again) == []
    assert warnings(again, good) == []


@pytest.mark.parametrize(
    ("pods", "holder", "fenced"),
    [
        ([pod("a", "active"), pod("b", "standby")], "a", []),
        # Two labelled: all but the holder lose it, whatever the versions.
        ([pod("a", "active"), pod("b", "active", version="9")], "a", ["b"]),
        # One labelled, not the holder, its label older than the Lease: a dead elector's pod.
        ([pod("a", "active", version="3"), pod("b", "standby")], "b", ["a"]),
        # Labelled after the Lease we know of: maybe a leader whose Lease write we have not
        # seen yet; left alone.
        ([pod("a", "active", version="7"), pod("b", "standby")], "b", []),
        ([pod("a", "active", version="3")], None, ["a"]),
    ],
)
def test_the_operator_fences_labels_the_lease_contradicts(
    pods: list[dict[str, Any]], holder: str | None, fenced: list[str]
) -> None:
    assert status.to_fence(lease(holder, version="5"), pods) == fenced


def test_the_pod_that_just_released_the_lease_is_left_to_relabel_itself() -> None:
    """Its elector frees the Lease first and relabels a moment later: no SplitBrainPrevented for
    a graceful handover. Anyone else with a stale label still loses it."""
    released = lease(None, version="5", annotations={"haoperator.dev/released-by": "a"})
    assert status.to_fence(released, [pod("a", "active", version="3"), pod("b", "standby")]) == []
    assert status.to_fence(released, [pod("b", "active", version="3"), pod("a", "standby")]) == [
        "b"
    ]


def test_no_lease_yet_fences_only_a_second_label() -> None:
    assert status.to_fence(None, [pod("a", "active")]) == []
    assert status.to_fence(None, [pod("a", "active"), pod("b", "active")]) == ["a", "b"]


def test_failover_comes_from_the_lease() -> None:
    record = '{"from": "a", "to": "b", "time": "t", "seconds": 0.4}'
    held = lease("b", annotations={"haoperator.dev/last-failover": record})
    held["spec"]["leaseTransitions"] = 3
    st = compute(ap(pods=[pod("b", "active")], routed={"b"}, lease=held))
    assert st["failovers"] == 3
    assert st["lastFailover"] == {"from": "a", "to": "b", "time": "t", "seconds": 0.4}


def test_desired_replicas_is_reported_with_the_category_default() -> None:
    assert compute(status.Observed("w", 1, spec(category="QueueWorker")))["desiredReplicas"] == 2
    clustered = status.Observed("db", 1, spec(category="Clustered"))
    assert compute(clustered)["desiredReplicas"] == 3


def test_pods_that_cannot_be_created_say_why_in_ready_and_degraded() -> None:
    """The Deployment carries its ReplicaSet's ReplicaFailure: that message, not `0/2`."""
    s = spec(category="LoadBalanced", replicas=2)
    failing = workload(0, 0)
    failing["status"]["conditions"] = [
        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
         "message": 'pods "web-1" is forbidden: violates PodSecurity "restricted:latest"'},
    ]  # fmt: skip
    st = compute(status.Observed("web", 1, s, failing))
    ready, degraded = conditions(st)["Ready"], conditions(st)["Degraded"]
    assert (ready["status"], ready["reason"]) == ("False", "PodsCannotBeCreated")
    assert ready["message"].startswith('0/2 ready: pods "web-1" is forbidden')
    assert (degraded["status"], degraded["reason"]) == ("True", "PodsCannotBeCreated")
    assert warnings({}, st) == [("PodsCannotBeCreated", degraded["message"])]


def test_a_statefulsets_failed_create_counts_only_while_pods_are_missing() -> None:
    s = spec(category="Clustered", replicas=3)
    message = 'pods "db-0" is forbidden: exceeded quota: pods'
    short = compute(status.Observed("db", 1, s, workload(0, 0, "StatefulSet"),
                                    failed_create=message))  # fmt: skip
    assert conditions(short)["Ready"]["reason"] == "PodsCannotBeCreated"
    assert message in conditions(short)["Ready"]["message"]
    full = compute(status.Observed("db", 1, s, workload(3, 3, "StatefulSet"),
                                   failed_create=message))  # fmt: skip
    assert conditions(full)["Ready"]["reason"] == "QuorumReached"
    assert conditions(full)["Degraded"]["status"] == "False"


def test_unschedulable_pods_say_what_the_scheduler_said() -> None:
    s = spec(category="Clustered", replicas=3)
    pending = {
        "metadata": {"name": "db-0"},
        "status": {"conditions": [{"type": "PodScheduled", "status": "False",
                                   "reason": "Unschedulable",
                                   "message": "0/3 nodes are available: pod has unbound "
                                              "immediate PersistentVolumeClaims."}]},
    }  # fmt: skip
    st = compute(status.Observed("db", 1, s, workload(0, 1, "StatefulSet"), pods=[pending]))
    ready = conditions(st)["Ready"]
    assert ready["reason"] == "PodsUnschedulable"
    assert "pod db-0: 0/3 nodes are available" in ready["message"]


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


def test_identity_is_not_drift() -> None:
    want = {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 2}}
    assert differences(want, {"spec": {"replicas": 2}}) == []
    assert differences(want, {"spec": {"replicas": 3}}) == ["spec.replicas: 3 (want 2)"]


def test_an_outage_the_active_pod_rode_out_is_in_the_status_and_said_once() -> None:
    record = '{"peers": 1, "pod": "a", "seconds": 61.5, "time": "2026-12-02T00:01:00.000000Z"}'
    pods = [pod("a", "active"), pod("b", "standby")]
    before = compute(ap(pods=pods, routed={"a"}, lease=lease("a")))
    held = lease("a", annotations={"haoperator.dev/last-failsafe": record})
    after = compute(ap(pods=pods, routed={"a"}, lease=held, previous=before))
    assert after["lastFailsafe"] == {
        "pod": "a", "seconds": 61.5, "peers": 1, "time": "2026-12-02T00:01:00.000000Z",
    }  # fmt: skip
    said = [(n.reason, n.message) for n in transitions.news(before, after)]
    assert said == [
        (
            "FailsafeHeld",
            "pod a kept the active role through 61.5 s without the API server, confirmed by 1 "
            "other pod(s) every retry period",
        )
    ]
    again = compute(ap(pods=pods, routed={"a"}, lease=held, previous=after))
    assert transitions.news(after, again) == []
    broken = lease("a", annotations={"haoperator.dev/last-failsafe": "{not json"})
    assert "lastFailsafe" not in compute(ap(pods=pods, routed={"a"}, lease=broken))


def test_a_pod_that_releases_and_retakes_the_lease_is_announced_once() -> None:
    """No failover recorded (the same pod each time): LeaderElected once, not per cycle."""
    up = {"activePod": "a", "failovers": 0}
    down = {"failovers": 0}
    first = [n.reason for n in transitions.news(down, up, None)]
    assert first == ["LeaderElected"]
    assert transitions.news(down, up, "a") == []  # the same pod back: no news
    assert [n.reason for n in transitions.news(down, {**up, "activePod": "b"}, "a")] == [
        "LeaderElected"
    ]
