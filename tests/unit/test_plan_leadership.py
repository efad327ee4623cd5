"""ActivePassive in the plan: stray active labels fenced, the electing grace, leadership news.
World in, plan out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from haoperator.core.actions import Result
from haoperator.core.memory import Memory
from haoperator.core.plan import plan
from haoperator.core.vocabulary import Label
from tests.unit.plans import (
    ACTIVE,
    NOW,
    SERVICE,
    STANDBY,
    condition,
    events,
    haservice,
    lease,
    made,
    pod,
    reasons,
    steps,
    world,
)


def active_passive() -> tuple[dict[str, Any], dict[tuple[str, str], Any]]:
    obj = haservice(category="ActivePassive", service=SERVICE, replicas=2)
    return obj, made(obj)


def routed_to(*pods: str) -> dict[str, Any]:
    return {
        "kind": "EndpointSlice",
        "metadata": {"name": "web-x1", "labels": {Label.ENDPOINT_SLICE_SERVICE: "web"}},
        "endpoints": [{"conditions": {"ready": True}, "targetRef": {"name": p}} for p in pods],
    }


def test_an_active_label_the_lease_does_not_back_is_removed() -> None:
    obj, children = active_passive()
    lease(children, "web-b", version="60")
    pods = [pod("web-a", role=ACTIVE), pod("web-b", role=ACTIVE)]
    outcome = plan(world(obj, children=children, pods=pods), Memory(), NOW)
    assert steps(outcome) == [("patch", "Pod", "web-a", f"{Label.ROLE}={STANDBY}")]
    assert (
        "SplitBrainPrevented",
        "removed the active role from web-a: the Lease web names web-b",
    ) in events(outcome)
    ((fence, _),) = outcome.steps
    assert "SplitBrainPrevented" not in reasons(outcome, {fence: Result.FAILED})


def test_a_label_newer_than_the_lease_we_know_is_left_to_its_elector() -> None:
    obj, children = active_passive()
    lease(children, "web-b", version="60")
    pods = [pod("web-a", role=ACTIVE, version="70"), pod("web-b", role=STANDBY)]
    assert steps(plan(world(obj, children=children, pods=pods), Memory(), NOW)) == []


def test_a_missing_leader_is_not_news_within_a_lease_duration() -> None:
    obj, children = active_passive()
    lease(children, None)
    pods = [pod("web-a", role=STANDBY), pod("web-b", role=STANDBY)]
    first = plan(world(obj, children=children, pods=pods), Memory(), NOW)
    assert first.memory is not None
    assert first.memory.leaderless_since == NOW
    assert first.requeue_after == pytest.approx(5.05)  # just after the grace ends
    assert condition(first, "Degraded")["reason"] != "NoActivePod"
    later = plan(world(obj, children=children, pods=pods), first.memory, NOW + 6)
    degraded = condition(later, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "NoActivePod")
    assert "NoActivePod" in reasons(later)
    assert later.memory is not None
    assert later.memory.leaderless_since == NOW  # the clock runs from the first sight


def test_a_serving_leader_clears_the_clock_and_makes_the_service_ready() -> None:
    obj, children = active_passive()
    lease(children, "web-a")
    children[("EndpointSlice", "web-x1")] = routed_to("web-a")
    pods = [pod("web-a", role=ACTIVE), pod("web-b", role=STANDBY)]
    outcome = plan(world(obj, children=children, pods=pods), Memory(leaderless_since=NOW - 2), NOW)
    assert outcome.memory is not None
    assert outcome.memory.leaderless_since is None
    ready = condition(outcome, "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "ActivePodReady")
    assert ("LeaderElected", "pod web-a is active") in events(outcome)


def test_a_failover_the_electors_recorded_is_reported_with_its_seconds() -> None:
    obj, children = active_passive()
    record = {"time": "2027-01-15T08:00:00Z", "from": "web-a", "to": "web-b", "seconds": 0.42}
    lease(children, "web-b", failover=json.dumps(record))
    children[("EndpointSlice", "web-x1")] = routed_to("web-b")
    pods = [pod("web-a", role=STANDBY), pod("web-b", role=ACTIVE)]
    before = {"activePod": "web-a", "conditions": []}
    outcome = plan(world({**obj, "status": before}, children=children, pods=pods), Memory(), NOW)
    assert ("FailoverCompleted", "active pod moved from web-a to web-b in 0.42 s") in events(
        outcome
    )
    failover = next(e for e in outcome.events if e.reason == "FailoverCompleted")
    assert failover.failover_seconds == 0.42
    assert (outcome.status or {})["lastFailover"] == record
