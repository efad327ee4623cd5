"""The status a plan writes, the news its change calls for, and the memory it keeps.
World in, plan out."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from haoperator.core.actions import Result
from haoperator.core.memory import MAX_EVENT_COUNTS, Memory
from haoperator.core.plan import plan
from tests.unit.plans import (
    NOW,
    SERVICE,
    condition,
    events,
    haservice,
    made,
    reasons,
    results,
    settle,
    world,
)


def test_a_cache_older_than_our_write_reads_as_what_we_wrote() -> None:
    """The cache learns of our status write only when its watch event arrives; a plan before
    that compares with what we wrote, so it neither writes it again nor repeats its news."""
    obj = haservice(version="9")
    children = made(obj)
    written = plan(world(obj, children=children), Memory(), NOW)
    assert written.status_patch is not None
    assert written.memory is not None
    assert written.status is not None
    memory = replace(written.memory, written=("10", written.status))
    stale = plan(world(obj, children=children), memory, NOW + 1)
    assert stale.status_patch is None
    assert reasons(stale) == []
    newer = {**obj, "metadata": {**obj["metadata"], "resourceVersion": "11"}, "status": {}}
    fresh = plan(world(newer, children=children), memory, NOW + 1)
    assert fresh.status_patch is not None  # the cache has caught up: it says what is there


def test_a_status_write_nulls_the_fields_that_went_away() -> None:
    obj = haservice(status={"observedGeneration": 1, "activePod": "gone", "conditions": []})
    outcome = plan(world(obj, children=made(obj)), Memory(), NOW)
    assert outcome.status_patch is not None
    assert outcome.status_patch["activePod"] is None
    assert "activePod" not in (outcome.status or {})


def clustered(ready: int) -> tuple[dict[str, Any], dict[tuple[str, str], Any]]:
    obj = haservice(name="web", category="Clustered", replicas=3)
    return obj, made(obj, ready=ready)


def test_quorum_news_only_once_a_cluster_has_formed() -> None:
    obj, children = clustered(1)
    forming, memory = settle(obj, children=children)
    assert (
        condition(plan(world(forming, children=children), memory, NOW), "QuorumLost")["reason"]
        == "Forming"
    )
    obj, children = clustered(3)
    formed = plan(world(forming, children=children), memory, NOW)
    assert "QuorumRestored" not in reasons(formed)  # forming, not recovering
    quorate = {**forming, "status": dict(formed.status or {})}
    obj, children = clustered(1)
    lost = plan(world(quorate, children=children), memory, NOW)
    assert ("QuorumLost", "1 members ready, quorum 2") in events(lost)
    down = {**quorate, "status": dict(lost.status or {})}
    obj, children = clustered(2)
    restored = plan(world(down, children=children), memory, NOW)
    assert ("QuorumRestored", "2 members ready, quorum 2") in events(restored)


def test_the_status_and_its_news_wait_for_the_children_it_speaks_for() -> None:
    """A status says which generation it observed: not written, and its news not said, when a
    child of that generation could not be applied (the next reconcile says it all)."""
    obj = haservice(service=SERVICE)
    outcome = plan(world(obj), Memory(), NOW)
    service, deployment, budget = (step for step, _ in outcome.steps)
    assert outcome.status_after == {service, deployment, budget}
    failed = {service: Result.CHANGED, deployment: Result.FAILED}
    assert events(outcome, failed) == [("Reconciled", "Created Service web")]


def test_a_statefulsets_failed_create_explains_missing_pods_for_ten_minutes() -> None:
    obj, children = clustered(0)
    statefulset = children[("StatefulSet", "web")]
    statefulset["status"]["replicas"] = 0
    said = 'create Pod web-0 in StatefulSet web failed: pods "web-0" is forbidden'
    fresh = plan(world(obj, children=children, failed_create=(said, NOW - 60)), Memory(), NOW)
    assert condition(fresh, "Degraded")["reason"] == "PodsCannotBeCreated"
    stale = plan(world(obj, children=children, failed_create=(said, NOW - 700)), Memory(), NOW)
    assert condition(stale, "Degraded")["reason"] != "PodsCannotBeCreated"


def test_the_memory_counts_the_haservice_for_the_gauge() -> None:
    obj = haservice()
    outcome = plan(world(obj, children=made(obj)), Memory(), NOW)
    assert outcome.memory is not None
    assert outcome.memory.counted == ("LoadBalanced", True)
    assert plan(world(None), Memory(counted=("LoadBalanced", True)), NOW).memory is None


def test_event_counts_are_bounded_and_the_oldest_go_first() -> None:
    memory = Memory()
    for index in range(MAX_EVENT_COUNTS + 5):
        memory = memory.with_event_count(f"event-{index}", index)
    assert len(memory.event_counts) == MAX_EVENT_COUNTS
    assert "event-0" not in memory.event_counts
    assert memory.with_event_count("event-5", 9).event_counts["event-5"] == 9
    assert list(memory.with_event_count("event-5", 9).event_counts)[-1] == "event-5"


def test_every_event_a_plan_records_is_about_its_haservice_or_one_of_its_pods() -> None:
    obj = haservice(service=SERVICE)
    outcome = plan(world(obj), Memory(), NOW)
    assert {e.about.name for e in outcome.due_events(results(outcome))} == {"web"}
