"""Recovery in the plan: failures reported once, the restart budget, migration and bans, node loss,
and bans lifted when they expire or their HAService goes. World in, plan out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from haoperator.core.actions import Patch, Result
from haoperator.core.memory import MAX_FAILURES, PENDING_SECONDS, Memory
from haoperator.core.plan import plan
from haoperator.core.recovery import History, avoid_label
from haoperator.core.vocabulary import Annotation
from tests.unit.plans import (
    ACTIVE,
    NOW,
    condition,
    events,
    haservice,
    made,
    node,
    pod,
    reasons,
    results,
    settle,
    steps,
    world,
)

BAN = avoid_label("ns", "web")
MIGRATE = {"restart": {"maxRestarts": 2, "windowSeconds": 60, "onLimit": "Migrate"}}
NOTIFY = {"restart": {"maxRestarts": 2, "windowSeconds": 60, "onLimit": "Notify"}}


def settled(recovery: dict[str, Any] | None = None, **spec: Any) -> tuple[dict[str, Any], Any]:
    if recovery:
        spec["recovery"] = recovery
    obj = haservice(**spec)
    children = made(obj)
    obj, memory = settle(obj, children=children, pods=[pod("web-a"), pod("web-b")])
    return obj, (children, memory)


def history(*times: float) -> dict[str, str]:
    return {Annotation.RESTARTS: History(len(times), tuple(times)).to_annotation()}


# -- failures ------------------------------------------------------------------------------------


def test_a_container_failure_is_reported_on_the_haservice_and_the_pod_once() -> None:
    obj, (children, memory) = settled()
    failing = pod("web-a", restarts=1, terminated_at=NOW - 3)
    first = plan(world(obj, children=children, pods=[failing]), memory, NOW)
    message = "pod web-a: container app exited with code 1 (Error)"
    recorded = first.due_events(results(first))
    assert [(e.about.kind, e.reason, e.message) for e in recorded if e.reason == "PodFailed"] == [
        ("HAService", "PodFailed", message),
        ("Pod", "PodFailed", message),
    ]
    assert first.memory is not None
    again = plan(world(obj, children=children, pods=[failing]), first.memory, NOW + 1)
    assert "PodFailed" not in reasons(again)


def test_a_failure_from_before_the_operator_started_is_not_news() -> None:
    obj, (children, memory) = settled()
    failing = pod("web-a", restarts=1, terminated_at=NOW - 100)
    outcome = plan(world(obj, children=children, pods=[failing], started_at=NOW - 10), memory, NOW)
    assert "PodFailed" not in reasons(outcome)


@pytest.mark.parametrize(
    ("earlier", "reported"),
    [
        ((), True),
        ((NOW - 30,), True),
        ((NOW - 40, NOW - 30), True),
        ((NOW - 50, NOW - 40, NOW - 30), False),
    ],
    ids=["first", "second", "the one past the limit", "past the budget"],
)
def test_failures_are_reported_while_the_pod_is_within_its_budget(
    earlier: tuple[float, ...], reported: bool
) -> None:
    """maxRestarts 2: the third failure within the window reaches the limit and is reported;
    past it, RecoveryLimitReached (once per window) speaks for the rest."""
    obj, (children, memory) = settled(NOTIFY)
    failing = pod(
        "web-a", restarts=len(earlier), terminated_at=NOW - 3, annotations=history(*earlier)
    )
    outcome = plan(world(obj, children=children, pods=[failing]), memory, NOW)
    assert ("PodFailed" in reasons(outcome)) is reported
    assert outcome.memory is not None
    assert len(outcome.memory.failures_reported) == 1  # seen, reported or not


def test_failures_are_remembered_for_the_pods_that_exist_and_no_more_than_the_bound() -> None:
    obj, (children, _) = settled()
    remembered = {(f"uid-gone-{i}", "app", float(i)) for i in range(3)}
    remembered |= {("uid-web-a", "app", float(i)) for i in range(MAX_FAILURES + 10)}
    outcome = plan(
        world(obj, children=children, pods=[pod("web-a")]),
        Memory(failures_reported=frozenset(remembered)),
        NOW,
    )
    assert outcome.memory is not None
    kept = outcome.memory.failures_reported
    assert len(kept) == MAX_FAILURES
    assert {uid for uid, _, _ in kept} == {"uid-web-a"}
    assert min(at for _, _, at in kept) == 10.0  # the newest kept


# -- the restart budget --------------------------------------------------------------------------


def test_new_restarts_are_written_on_the_pod_and_nothing_waits_for_them_to_age() -> None:
    """Under the limit a restart leaving the window changes nothing: no reconcile is due then
    (one once came back every 0.5 s for a restart older than the window, forever)."""
    obj, (children, memory) = settled(MIGRATE)
    restarted = pod("web-a", restarts=1, terminated_at=NOW - 10)
    outcome = plan(world(obj, children=children, pods=[restarted]), memory, NOW)
    assert ("patch", "Pod", "web-a", f"{Annotation.RESTARTS}=...") in steps(outcome)
    assert outcome.requeue_after is None
    aged = pod("web-a", restarts=1, annotations=history(NOW - 500))
    idle = plan(world(obj, children=children, pods=[aged]), memory, NOW)
    assert (steps(idle), idle.requeue_after) == ([], None)


@pytest.mark.parametrize(
    ("recovery", "steps_wanted", "events_wanted", "degraded"),
    [
        (
            MIGRATE,
            [("patch", "Node", "node-a", f"{BAN}={int(NOW + 60)}"), ("delete", "Pod", "web-a", "")],
            [
                "RecoveryLimitReached: pod web-a restarted more than 2 times within 60 s: "
                "migrating it",
                "PodMigrated: deleted pod web-a from node node-a; node node-a avoided until "
                "2027-01-15T08:01:00Z",
            ],
            "AllReplicasReady",
        ),
        (
            NOTIFY,
            [("patch", "Pod", "web-a", f"{Annotation.RESTARTS}=...")],  # when it was said
            ["RecoveryLimitReached: pod web-a restarted more than 2 times within 60 s"],
            "RecoveryLimitReached",
        ),
    ],
    ids=["Migrate", "Notify"],
)
def test_past_the_restart_limit(
    recovery: dict[str, Any],
    steps_wanted: list[tuple[str, ...]],
    events_wanted: list[str],
    degraded: str,
) -> None:
    obj, (children, memory) = settled(recovery)
    crashing = pod("web-a", restarts=3, annotations=history(NOW - 30, NOW - 20, NOW - 10))
    outcome = plan(world(obj, children=children, pods=[crashing, pod("web-b")]), memory, NOW)
    assert steps(outcome) == steps_wanted
    assert [f"{r}: {m}" for r, m in events(outcome)] == events_wanted
    assert condition(outcome, "Degraded")["reason"] == degraded


def test_a_migration_is_reported_only_when_both_the_ban_and_the_deletion_succeeded() -> None:
    obj, (children, memory) = settled(MIGRATE)
    crashing = pod("web-a", restarts=3, annotations=history(NOW - 30, NOW - 20, NOW - 10))
    outcome = plan(world(obj, children=children, pods=[crashing]), memory, NOW)
    (ban, _), (delete, _) = outcome.steps
    assert reasons(outcome, {ban: Result.FAILED}) == []
    assert reasons(outcome, {ban: Result.CHANGED, delete: Result.FAILED}) == []
    assert reasons(outcome, {ban: Result.CHANGED, delete: Result.UNCHANGED}) == [
        "RecoveryLimitReached",
        "PodMigrated",
    ]


@pytest.mark.parametrize(
    ("warned", "said"),
    [(None, True), (NOW - 30, False), (NOW - 60, True)],
    ids=["never", "within the window", "a window ago"],
)
def test_notify_says_the_limit_once_per_window_and_marks_it_on_the_pod(
    warned: float | None, said: bool
) -> None:
    obj, (children, memory) = settled(NOTIFY)
    mark = History(3, (NOW - 30, NOW - 20, NOW - 10), warned).to_annotation()
    crashing = pod("web-a", restarts=3, annotations={Annotation.RESTARTS: mark})
    outcome = plan(world(obj, children=children, pods=[crashing]), memory, NOW)
    assert ("RecoveryLimitReached" in reasons(outcome)) is said
    assert len(outcome.steps) == (1 if said else 0)
    assert condition(outcome, "Degraded")["reason"] == "RecoveryLimitReached"
    assert outcome.requeue_after == pytest.approx(30.0)  # when NOW - 30 leaves the window
    if said:
        (_, patch), *_ = outcome.steps
        assert isinstance(patch, Patch)
        written = json.loads(patch.patch["metadata"]["annotations"][Annotation.RESTARTS])
        assert written["warned"] == NOW
        # Said once the mark is on the pod: a refused patch leaves it to the next reconcile.
        assert "RecoveryLimitReached" not in reasons(outcome, results(outcome, Result.FAILED))


def test_a_reconcile_before_the_cache_shows_our_write_repeats_neither_it_nor_its_events() -> None:
    obj, (children, memory) = settled(NOTIFY)
    crashing = pod(
        "web-a", restarts=3, terminated_at=NOW - 1, annotations=history(NOW - 30, NOW - 20)
    )
    first = plan(world(obj, children=children, pods=[crashing]), memory, NOW)
    assert reasons(first) == ["PodFailed", "PodFailed", "RecoveryLimitReached"]
    assert first.memory is not None
    # Woken by another object's event: the pod as the cache still has it.
    again = plan(world(obj, children=children, pods=[crashing]), first.memory, NOW + 0.1)
    assert (steps(again), reasons(again)) == ([], [])
    # The cache shows it: forgotten.
    (_, patch), *_ = first.steps
    assert isinstance(patch, Patch)
    shown = pod(
        "web-a",
        restarts=3,
        terminated_at=NOW - 1,
        annotations=patch.patch["metadata"]["annotations"],
    )
    later = plan(world(obj, children=children, pods=[shown]), first.memory, NOW + 0.2)
    assert (steps(later), reasons(later)) == ([], [])
    assert later.memory is not None
    assert later.memory.pod_writes == {}


def test_the_ban_goes_on_before_the_pod_is_deleted() -> None:
    """The executor keeps the phases' order: whatever the rule wrote first, node patches run
    before pod deletions, so a migrated pod's replacement cannot land on the same node."""
    obj, (children, memory) = settled(MIGRATE)
    crashing = pod("web-a", restarts=3, annotations=history(NOW - 30, NOW - 20, NOW - 10))
    outcome = plan(world(obj, children=children, pods=[crashing]), memory, NOW)
    assert [s[0:2] for s in steps(outcome)] == [("patch", "Node"), ("delete", "Pod")]


# -- bans ---------------------------------------------------------------------------------------


def test_expired_bans_are_lifted_whoever_they_were_for_and_our_next_one_brings_us_back() -> None:
    obj, (children, memory) = settled(MIGRATE)
    other = avoid_label("elsewhere", "db")
    nodes = {
        "node-a": node("node-a", labels={other: str(int(NOW - 1))}),
        "node-b": node("node-b", labels={BAN: str(int(NOW + 30))}),
        "node-c": node("node-c", labels={BAN: "not a time"}),
    }
    outcome = plan(world(obj, children=children, pods=[pod("web-a")], nodes=nodes), memory, NOW)
    assert steps(outcome) == [
        ("patch", "Node", "node-a", f"{other}=None"),
        ("patch", "Node", "node-c", f"{BAN}=None"),
    ]
    assert outcome.requeue_after == pytest.approx(30.0)
    patch = next(step for _, step in outcome.steps)
    assert isinstance(patch, Patch)
    assert patch.missing_ok  # a node gone meanwhile has no ban left to lift


def test_a_deleted_haservice_lifts_its_bans_and_is_forgotten() -> None:
    nodes = {
        "node-a": node("node-a", labels={BAN: str(int(NOW + 3000))}),
        "node-b": node("node-b"),
    }
    outcome = plan(world(None, nodes=nodes, deleted=True), Memory(), NOW)
    assert steps(outcome) == [("patch", "Node", "node-a", f"{BAN}=None")]
    assert outcome.memory is None
    unseen = plan(world(None, nodes=nodes, deleted=False), Memory(), NOW)
    assert steps(unseen) == []  # not seen deleted (never seen at all): nothing of ours to lift
    assert unseen.memory is None


# -- node loss ------------------------------------------------------------------------------------


def lost(since: float) -> dict[str, Any]:
    return {"node-a": node("node-a", ready=False, since=since), "node-b": node("node-b")}


@pytest.mark.parametrize(
    ("action", "lost_for", "steps_wanted", "reasons_wanted", "requeue"),
    [
        ("Wait", 10, [], [], 50.0),
        ("Wait", 61, [], ["NodeLost"], None),
        ("ForceDelete", 10, [], [], 50.0),
        (
            "ForceDelete",
            61,
            [("delete", "Pod", "web-a", "grace=0")],
            ["NodeLost", "PodForceDeleted"],
            None,
        ),
    ],
    ids=["Wait, within the grace", "Wait, past it", "ForceDelete, within", "ForceDelete, past"],
)
def test_pods_on_a_lost_node(
    action: str,
    lost_for: float,
    steps_wanted: list[tuple[str, ...]],
    reasons_wanted: list[str],
    requeue: float | None,
) -> None:
    recovery = {"nodeLoss": {"graceSeconds": 60, "action": action}}
    obj, (children, memory) = settled(recovery)
    pods = [pod("web-a", node="node-a"), pod("web-b", node="node-b")]
    outcome = plan(
        world(obj, children=children, pods=pods, nodes=lost(NOW - lost_for)), memory, NOW
    )
    assert steps(outcome) == steps_wanted
    assert [r for r in reasons(outcome) if r != "Reconciled"] == reasons_wanted
    assert outcome.requeue_after == (pytest.approx(requeue) if requeue else None)


def test_a_node_loss_is_reported_once_and_a_force_deletion_only_when_it_deleted() -> None:
    recovery = {"nodeLoss": {"graceSeconds": 60, "action": "ForceDelete"}}
    obj, (children, memory) = settled(recovery)
    pods = [pod("web-a", node="node-a", deleting=True)]  # stuck Terminating on the lost node
    first = plan(world(obj, children=children, pods=pods, nodes=lost(NOW - 100)), memory, NOW)
    assert reasons(first, results(first, Result.UNCHANGED)) == ["NodeLost"]
    assert first.memory is not None
    # The cache still shows the pod: deleted a moment ago, or the deletion failed.
    soon = plan(
        world(obj, children=children, pods=pods, nodes=lost(NOW - 100)), first.memory, NOW + 5
    )
    assert (steps(soon), reasons(soon)) == ([], [])
    assert soon.requeue_after == pytest.approx(PENDING_SECONDS - 5)
    assert soon.memory is not None
    again = plan(
        world(obj, children=children, pods=pods, nodes=lost(NOW - 100)),
        soon.memory,
        NOW + PENDING_SECONDS,
    )
    assert reasons(again) == ["PodForceDeleted"]
    back = plan(world(obj, children=children, pods=pods, nodes={}), first.memory, NOW + 5)
    assert back.memory is not None
    assert back.memory.losses_reported == frozenset()  # over: a later loss is news again


def test_the_active_pod_on_a_lost_node_is_active_no_more() -> None:
    obj = haservice(category="ActivePassive", service={"ports": [{"name": "http", "port": 80}]})
    children = made(obj)
    pods = [pod("web-a", node="node-a", role=ACTIVE)]
    outcome = plan(world(obj, children=children, pods=pods, nodes=lost(NOW - 100)), Memory(), NOW)
    assert ("patch", "Pod", "web-a", "haoperator.dev/role=standby") in steps(outcome)


def test_a_history_annotation_carries_the_restarts_seen_and_when() -> None:
    assert json.loads(History(2, (1.0, 2.5)).to_annotation()) == {"seen": 2, "times": [1.0, 2.5]}


def test_a_budget_larger_than_the_usual_history_can_still_be_reached() -> None:
    """maxRestarts 100 needs 101 restart times: the history keeps that many (not 64)."""
    obj, (children, memory) = settled(
        {"restart": {"maxRestarts": 100, "windowSeconds": 3600, "onLimit": "Notify"}}
    )
    times = [NOW - 300 + 2 * i for i in range(100)]
    crashing = pod("web-a", restarts=101, annotations=history(*times))
    outcome = plan(world(obj, children=children, pods=[crashing, pod("web-b")]), memory, NOW)
    assert "RecoveryLimitReached" in [r for r, _ in events(outcome)]
    assert condition(outcome, "Degraded")["reason"] == "RecoveryLimitReached"
