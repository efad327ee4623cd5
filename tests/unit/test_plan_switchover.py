"""A planned switchover (core/switchover.py) and its news (core/transitions.py): the request
checked, refused or passed on to the Lease, then completed, failed or withdrawn. World in, plan
out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from haoperator.core import transitions
from haoperator.core.actions import Patch, Plan, Result
from haoperator.core.memory import Memory
from haoperator.core.plan import plan
from haoperator.core.switchover import best_standby, judge, timeout
from haoperator.core.times import micro_stamp, stamp
from haoperator.core.vocabulary import Annotation
from tests.unit.plans import (
    ACTIVE,
    NOW,
    NS,
    SERVICE,
    STANDBY,
    events,
    haservice,
    lease,
    made,
    pod,
    reasons,
    results,
    world,
)

TO, REQUESTED = Annotation.SWITCHOVER_TO, Annotation.SWITCHOVER_REQUESTED
Obj = dict[str, Any]
Children = dict[tuple[str, str], Obj]


def active_passive(*, version: str = "100", **spec: Any) -> tuple[Obj, Children]:
    obj = haservice(category="ActivePassive", service=SERVICE, replicas=2, version=version, **spec)
    return obj, made(obj)


def asking(obj: Obj, to: str | None, requested: float | None = None) -> Obj:
    """The HAService with the user's request (and our mark that it was passed on)."""
    annotations: dict[str, str] = {}
    if to is not None:
        annotations[TO] = to
    if requested is not None:
        annotations[REQUESTED] = micro_stamp(requested)
    obj["metadata"]["annotations"] = annotations
    return obj


def carrying(children: Children, to: str, requested: float) -> None:
    """The Lease with the request the operator passed on."""
    annotations = children[("Lease", "web")]["metadata"]["annotations"]
    annotations[TO] = to
    annotations[REQUESTED] = micro_stamp(requested)


def three_pods(**ready: bool) -> list[Obj]:
    return [
        pod("web-a", role=ACTIVE),
        pod("web-b", role=STANDBY, ready=ready.get("web_b", True)),
        pod("web-c", role=STANDBY, ready=ready.get("web_c", True)),
    ]


def patches(outcome: Plan) -> list[Patch]:
    return [step for _, step in outcome.steps if isinstance(step, Patch)]


def patched(outcome: Plan) -> list[tuple[str, Obj]]:
    """(kind, metadata) of every patch of the Lease or the HAService, in the executor's order."""
    return [(p.kind, p.patch["metadata"]) for p in patches(outcome) if p.kind != "Pod"]


def cleared(version: str | None = None) -> Obj:
    """The metadata patch that removes the request from the HAService (conditional on the
    version judged, for one that an event reports)."""
    meta: Obj = {"annotations": {TO: None, REQUESTED: None}}
    if version is not None:
        meta["resourceVersion"] = version
    return meta


LEASE_CLEARED = {"annotations": {TO: None, REQUESTED: None}}


def run(obj: Obj, children: Children, pods: list[Obj], now: float = NOW) -> Plan:
    return plan(world(obj, children=children, pods=pods), Memory(), now)


def switchover_news(outcome: Plan, done: dict[int, Result] | None = None) -> list[str]:
    """The reasons of the switchover's events (not the status's LeaderElected and the like)."""
    return [r for r in reasons(outcome, done) if r.startswith("Switchover")]


def without_haservice_patch(outcome: Plan) -> dict[int, Result]:
    """Every step done, but the patch of the HAService failed (a conflict, say)."""
    failed = next(i for i, s in outcome.steps if isinstance(s, Patch) and s.kind == "HAService")
    return {**results(outcome), failed: Result.FAILED}


REFUSING = "refusing to switch over to it"
NO_HOLDER = "no pod holds the Lease web: no active pod to switch over from"


# -- judge: the checks the operator and `haoperator switchover` share ---------------------------


def creation(p: Obj, at: str) -> Obj:
    p["metadata"]["creationTimestamp"] = at
    return p


@pytest.mark.parametrize(
    ("asked", "holder", "pods", "expected"),
    [
        ("web-b", "web-a", three_pods(), "web-b"),
        ("web-x", "web-a", three_pods(), f"pod web-x is not a pod of web: {REFUSING}"),
        ("web-b", "web-a", three_pods(web_b=False), f"pod web-b is not ready: {REFUSING}"),
        ("web-b", "web-a", [pod("web-a", role=ACTIVE), pod("web-b", deleting=True)],
         f"pod web-b is being deleted: {REFUSING}"),
        ("web-a", "web-a", three_pods(), "pod web-a is already active: nothing to switch over"),
        ("web-b", None, three_pods(), f"{NO_HOLDER} to pod web-b"),
        ("any", None, three_pods(), NO_HOLDER),
        ("any", "web-a", three_pods(web_b=False, web_c=False),
         "no ready standby to switch over to: pod web-a stays active"),
        ("", "web-a", three_pods(), f"{TO} is empty: name a pod of web, or any"),
        (" web-c ", "web-a", three_pods(), "web-c"),
    ],
)  # fmt: skip
def test_a_request_is_checked(
    asked: str, holder: str | None, pods: list[Obj], expected: str
) -> None:
    _, children = active_passive()
    the_lease = lease(children, holder)
    verdict = judge(asked, name="web", category="ActivePassive", lease=the_lease, pods=pods)
    assert (verdict.to or verdict.refused) == expected
    assert (verdict.to is None) != (verdict.refused is None)


def test_a_holder_whose_pod_is_gone_is_no_holder() -> None:
    _, children = active_passive()
    the_lease = lease(children, "web-gone")
    verdict = judge(
        "web-b", name="web", category="ActivePassive", lease=the_lease, pods=three_pods()
    )
    assert verdict.refused == (
        "no pod holds the Lease web: no active pod to switch over from to pod web-b"
    )


def test_only_an_active_passive_service_switches_over() -> None:
    verdict = judge("web-b", name="web", category="LoadBalanced", lease=None, pods=three_pods())
    assert verdict.refused == (
        "web is LoadBalanced: a switchover moves the active pod of an ActivePassive service; "
        "refusing to switch over to web-b"
    )


def test_any_is_the_oldest_ready_standby_then_by_name() -> None:
    pods = [
        creation(pod("web-a", role=ACTIVE), "2027-01-01T00:00:00Z"),  # the holder: never
        creation(pod("web-d"), "2027-01-01T00:00:02Z"),
        creation(pod("web-c"), "2027-01-01T00:00:01Z"),
        creation(pod("web-b"), "2027-01-01T00:00:01Z"),
        creation(pod("web-0", ready=False), "2026-01-01T00:00:00Z"),  # not ready
        creation(pod("web-1", deleting=True), "2026-01-01T00:00:00Z"),  # being deleted
    ]
    assert best_standby("web-a", pods) == "web-b"
    assert best_standby("web-a", pods[:2]) == "web-d"
    assert best_standby("web-a", pods[:1]) is None


@pytest.mark.parametrize(("lease_duration", "expected"), [(1, 10.0), (5, 10.0), (8, 16.0)])
def test_the_deadline_is_two_lease_durations_and_at_least_ten_seconds(
    lease_duration: float, expected: float
) -> None:
    assert timeout(lease_duration) == expected


# -- a new request -------------------------------------------------------------------------------


def test_a_valid_request_is_marked_on_the_version_judged_then_passed_on_to_the_lease() -> None:
    obj, children = active_passive()
    lease(children, "web-a")
    outcome = run(asking(obj, "web-b"), children, three_pods())
    # The mark first, conditional: on a stale HAService (the request already passed on and
    # taken) it meets a conflict, and the Lease is not asked a second time.
    assert patched(outcome) == [
        ("HAService", {"resourceVersion": "100", "annotations": {REQUESTED: micro_stamp(NOW)}}),
        ("Lease", {"annotations": {TO: "web-b", REQUESTED: micro_stamp(NOW)}}),
    ]
    lease_patch = patches(outcome)[1]
    assert (lease_patch.namespace, lease_patch.name) == (NS, "web")
    assert set(lease_patch.patch) == {"metadata"}  # never the electors' spec
    assert switchover_news(outcome) == []
    assert outcome.requeue_after == pytest.approx(10.05)  # the deadline, at the latest


def test_the_requested_time_has_microseconds() -> None:
    assert micro_stamp(NOW + 0.25) == stamp(NOW).replace("Z", ".250000Z")


def test_any_is_resolved_by_the_operator() -> None:
    obj, children = active_passive()
    lease(children, "web-a")
    pods = [
        creation(pod("web-a", role=ACTIVE), "2027-01-01T00:00:00Z"),
        creation(pod("web-b", role=STANDBY), "2027-01-01T00:00:05Z"),
        creation(pod("web-c", role=STANDBY), "2027-01-01T00:00:03Z"),
    ]
    outcome = run(asking(obj, "any"), children, pods)
    assert patched(outcome)[1] == (
        "Lease",
        {"annotations": {TO: "web-c", REQUESTED: micro_stamp(NOW)}},
    )


@pytest.mark.parametrize(
    ("asked", "holder", "pods", "message"),
    [
        ("web-b", "web-a", three_pods(web_b=False), f"pod web-b is not ready: {REFUSING}"),
        ("web-x", "web-a", three_pods(), f"pod web-x is not a pod of web: {REFUSING}"),
        ("web-a", "web-a", three_pods(), "pod web-a is already active: nothing to switch over"),
        ("any", None, three_pods(), NO_HOLDER),
    ],
)  # fmt: skip
def test_a_refused_request_is_said_once_and_removed(
    asked: str, holder: str | None, pods: list[Obj], message: str
) -> None:
    obj, children = active_passive()
    lease(children, holder)
    outcome = run(asking(obj, asked), children, pods)
    # Removed only from the version judged: a reconcile before the cache has the removal gets
    # a conflict instead of a second event.
    assert patched(outcome) == [("HAService", cleared(version="100"))]
    assert ("SwitchoverRefused", message) in events(outcome)
    refusal = next(e for e in outcome.events if e.reason == "SwitchoverRefused")
    assert refusal.type == "Warning"
    assert switchover_news(outcome, without_haservice_patch(outcome)) == []


def test_a_request_on_another_category_is_refused() -> None:
    obj = haservice(category="LoadBalanced", service=SERVICE, replicas=2)
    outcome = plan(
        world(asking(obj, "web-b"), children=made(obj), pods=three_pods()), Memory(), NOW
    )
    assert patched(outcome) == [("HAService", cleared(version="100"))]
    assert switchover_news(outcome) == ["SwitchoverRefused"]


def test_a_request_passed_on_whose_mark_the_cache_lacks_is_adopted_not_passed_on_again() -> None:
    """The Lease's watch event came before the HAService's: the mark is written again with the
    Lease's time (the same write), and the deadline does not move."""
    obj, children = active_passive()
    lease(children, "web-a")
    carrying(children, "web-b", NOW - 1)
    for asked in ("web-b", "any"):
        outcome = run(asking(obj, asked), children, three_pods())
        assert patched(outcome) == [
            ("HAService", {"annotations": {REQUESTED: micro_stamp(NOW - 1)}})
        ]
        assert switchover_news(outcome) == []


def test_a_new_request_for_another_pod_replaces_a_stale_one_on_the_lease() -> None:
    obj, children = active_passive()
    lease(children, "web-a")
    carrying(children, "web-c", NOW - 60)
    outcome = run(asking(obj, "web-b"), children, three_pods())
    assert patched(outcome)[1] == (
        "Lease",
        {"annotations": {TO: "web-b", REQUESTED: micro_stamp(NOW)}},
    )


# -- under way -----------------------------------------------------------------------------------


def test_a_request_the_lease_carries_is_waited_for_until_its_deadline() -> None:
    obj, children = active_passive()
    lease(children, "web-a", version="120")
    carrying(children, "web-b", NOW - 4)
    outcome = run(asking(obj, "web-b", NOW - 4), children, three_pods())
    assert patched(outcome) == []
    assert switchover_news(outcome) == []
    assert outcome.requeue_after == pytest.approx(6.05)  # requested + 10 s, just after


def test_past_the_deadline_the_request_fails_and_is_removed_from_both() -> None:
    obj, children = active_passive()
    lease(children, "web-a", version="120")
    carrying(children, "web-b", NOW - 10)
    outcome = run(asking(obj, "web-b", NOW - 10), children, three_pods())
    assert patched(outcome) == [("HAService", cleared(version="100")), ("Lease", LEASE_CLEARED)]
    assert (
        "SwitchoverFailed",
        "pod web-b did not take the active role within 10 s of the request: switchover "
        "abandoned (pod web-a is still active)",
    ) in events(outcome)
    failed = next(e for e in outcome.events if e.reason == "SwitchoverFailed")
    assert failed.type == "Warning"
    assert switchover_news(outcome, without_haservice_patch(outcome)) == []


def test_the_deadline_follows_the_lease_duration() -> None:
    obj, children = active_passive(
        activePassive={"leaseDurationSeconds": 8, "renewDeadlineSeconds": 6}
    )
    lease(children, "web-a", version="120")
    carrying(children, "web-b", NOW - 12)
    waiting = run(asking(obj, "web-b", NOW - 12), children, three_pods())
    assert waiting.requeue_after == pytest.approx(4.05)
    late = run(asking(obj, "web-b", NOW - 12), children, three_pods(), now=NOW + 4)
    assert "SwitchoverFailed" in reasons(late)
    assert "within 16 s" in dict(events(late))["SwitchoverFailed"]


def failover(to: str, reason: str | None, seconds: float = 0.31) -> str:
    record: Obj = {"time": stamp(NOW - 1), "from": "web-a", "to": to, "seconds": seconds}
    if reason:
        record["reason"] = reason
    return json.dumps(record)


def test_a_completed_switchover_is_said_and_the_request_removed() -> None:
    obj, children = active_passive()
    # The new holder took the Lease, removed the request from it and recorded why.
    lease(children, "web-b", version="130", failover=failover("web-b", "Switchover"))
    pods = [pod("web-a", role=STANDBY), pod("web-b", role=ACTIVE), pod("web-c", role=STANDBY)]
    obj["status"] = {"activePod": "web-a", "conditions": []}
    outcome = run(asking(obj, "web-b", NOW - 2), children, pods)
    assert patched(outcome) == [("HAService", cleared())]  # done: no event hangs on it
    assert ("SwitchoverCompleted", "active pod moved from web-a to web-b in 0.31 s") in events(
        outcome
    )
    assert "FailoverCompleted" not in reasons(outcome)
    assert (outcome.status or {})["lastFailover"]["reason"] == "Switchover"
    completed = next(e for e in outcome.events if e.reason == "SwitchoverCompleted")
    assert (completed.type, completed.failover_seconds) == ("Normal", 0.31)


def test_a_completed_switchover_to_any_pod_is_done() -> None:
    obj, children = active_passive()
    lease(children, "web-c", version="130", failover=failover("web-c", "Switchover"))
    outcome = run(asking(obj, "any", NOW - 2), children, three_pods())
    assert patched(outcome) == [("HAService", cleared())]


def test_a_lease_the_cache_has_not_seen_annotated_yet_is_waited_for() -> None:
    """Our mark (HAService version 100) is newer than the Lease in the cache (60): the Lease's
    annotation is on its way, not taken away."""
    obj, children = active_passive()
    lease(children, "web-a", version="60")
    outcome = run(asking(obj, "web-b", NOW - 1), children, three_pods())
    assert patched(outcome) == []
    assert switchover_news(outcome) == []
    assert outcome.requeue_after == pytest.approx(1.05)  # a renewal wakes no reconcile


def test_a_lease_taken_but_not_yet_recorded_is_waited_for() -> None:
    """The new holder removed the request as it took the Lease; it records the failover at its
    first renew, a moment later."""
    obj, children = active_passive()
    lease(children, "web-b", version="130", failover=failover("web-c", "Switchover"))
    obj["status"] = {"lastFailover": json.loads(failover("web-c", "Switchover"))}  # said before
    pods = [pod("web-a", role=STANDBY), pod("web-b", role=ACTIVE), pod("web-c", role=STANDBY)]
    outcome = run(asking(obj, "web-b", NOW - 2), children, pods)
    assert patched(outcome) == []
    assert switchover_news(outcome) == []
    assert outcome.requeue_after == pytest.approx(1.05)


def test_an_old_switchover_record_is_not_this_ones() -> None:
    """The cache's Lease is older than our mark: its record is of an earlier switchover."""
    obj, children = active_passive()
    lease(children, "web-c", version="60", failover=failover("web-c", "Switchover"))
    obj["status"] = {"lastFailover": json.loads(failover("web-c", "Switchover"))}  # said before
    outcome = run(asking(obj, "any", NOW - 2), children, three_pods())
    assert patched(outcome) == []
    assert switchover_news(outcome) == []


def test_a_request_another_failover_took_away_fails_at_the_deadline() -> None:
    obj, children = active_passive()
    lease(children, "web-c", version="130", failover=failover("web-c", "LeaseExpired"))
    waiting = run(asking(obj, "web-b", NOW - 2), children, three_pods())
    assert (patched(waiting), switchover_news(waiting)) == ([], [])
    outcome = run(asking(obj, "web-b", NOW - 2), children, three_pods(), now=NOW + 8)
    assert patched(outcome) == [("HAService", cleared(version="100"))]
    assert (
        "SwitchoverFailed",
        "switchover to web-b abandoned: the Lease web no longer asks for it "
        "(pod web-c is still active)",
    ) in events(outcome)


def test_a_lease_never_seen_annotated_fails_at_the_deadline() -> None:
    obj, children = active_passive()
    lease(children, "web-a", version="60")
    outcome = run(asking(obj, "any", NOW - 10), children, three_pods())
    assert patched(outcome) == [("HAService", cleared(version="100"))]
    assert "switchover to a ready standby abandoned" in dict(events(outcome))["SwitchoverFailed"]


# -- withdrawn -----------------------------------------------------------------------------------


def test_a_withdrawn_request_is_removed_from_the_lease_and_the_mark_silently() -> None:
    obj, children = active_passive()
    lease(children, "web-a", version="120")
    carrying(children, "web-b", NOW - 1)
    outcome = run(asking(obj, None, NOW - 1), children, three_pods())
    assert patched(outcome) == [
        ("HAService", {"annotations": {TO: None, REQUESTED: None}}),
        ("Lease", LEASE_CLEARED),
    ]
    assert switchover_news(outcome) == []


def test_no_request_no_step() -> None:
    obj, children = active_passive()
    lease(children, "web-a")
    assert patched(run(obj, children, three_pods())) == []


# -- transitions: the news of a change of active pod ---------------------------------------------


def last(reason: str | None) -> Obj:
    record: Obj = {"time": "2027-01-15T08:00:00Z", "from": "web-a", "to": "web-b", "seconds": 0.42}
    if reason is not None:
        record["reason"] = reason
    return {"activePod": "web-b", "lastFailover": record}


def said(before: Obj, after: Obj) -> list[tuple[str, str, str, float | None]]:
    return [
        (n.type, n.reason, n.message, n.failover_seconds)
        for n in transitions.leadership(before, after)
    ]


MOVED = "active pod moved from web-a to web-b in 0.42 s"


def test_a_switchover_is_news_as_switchover_completed() -> None:
    assert said({"activePod": "web-a"}, last("Switchover")) == [
        ("Normal", "SwitchoverCompleted", MOVED, 0.42)
    ]


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("ApplicationUnhealthy", f"{MOVED} (ApplicationUnhealthy)"),
        ("LeaseExpired", f"{MOVED} (LeaseExpired)"),
        (None, MOVED),
    ],
)  # fmt: skip
def test_any_other_failover_says_why_it_moved(reason: str | None, message: str) -> None:
    assert said({"activePod": "web-a"}, last(reason)) == [
        ("Normal", "FailoverCompleted", message, 0.42)
    ]


def test_the_same_switchover_is_not_news_twice() -> None:
    assert said(last("Switchover"), last("Switchover")) == []
