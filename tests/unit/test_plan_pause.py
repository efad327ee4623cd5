"""The maintenance pause in the plan: a paused HAService's children, pods and nodes are left as
they are, its status still tells the truth and says Paused, and pause and resume are one event
each. World in, plan out."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from haoperator.core.memory import Memory
from haoperator.core.plan import plan
from haoperator.core.vocabulary import Annotation, Label
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
    node,
    pod,
    settle,
    steps,
    world,
)


def paused(obj: dict[str, Any], value: str = "true") -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    obj["metadata"].setdefault("annotations", {})[Annotation.PAUSED] = value
    return obj


def resumed(obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    obj["metadata"]["annotations"].pop(Annotation.PAUSED)
    return obj


def test_a_paused_haservice_gets_no_child_and_says_paused_once() -> None:
    outcome = plan(world(paused(haservice(service=SERVICE))), Memory(), NOW)
    assert steps(outcome) == []
    assert condition(outcome, "Paused")["status"] == "True"
    assert [reason for reason, _ in events(outcome)] == ["Paused"]
    assert outcome.requeue_after is None
    assert not outcome.backoff
    # Planned again in the same state: nothing new to say or write.
    again_obj = {**paused(haservice(service=SERVICE)), "status": outcome.status}
    assert outcome.memory is not None
    again = plan(world(again_obj), outcome.memory, NOW + 30)
    assert events(again) == []
    assert again.status_patch is None


@pytest.mark.parametrize(
    "drift",
    [
        lambda children: children.pop(("Service", "web")),
        lambda children: children[("Deployment", "web")]["spec"].update(replicas=5),
    ],
    ids=["a child deleted", "a field edited by hand"],
)
def test_drift_made_during_a_pause_is_left_and_corrected_when_it_ends(drift: Any) -> None:
    obj = haservice(service=SERVICE)
    children = made(obj)
    obj, memory = settle(obj, children=children)
    during = plan(world(paused(obj), children=children), memory, NOW)
    assert during.memory is not None
    obj = {**paused(obj), "status": during.status}
    drift(children)
    still = plan(world(obj, children=children), during.memory, NOW + 10)
    assert steps(still) == []
    assert [reason for reason, _ in events(still)] == []

    after = plan(world(resumed(obj), children=children), during.memory, NOW + 20)
    assert steps(after)  # the drift is corrected
    said = [reason for reason, _ in events(after)]
    assert "DriftCorrected" in said
    assert "Resumed" in said
    assert "Paused" not in {c["type"] for c in (after.status or {})["conditions"]}


def test_a_value_other_than_true_is_not_a_pause() -> None:
    outcome = plan(world(paused(haservice(service=SERVICE), "false")), Memory(), NOW)
    assert steps(outcome)
    assert "Paused" not in {c["type"] for c in (outcome.status or {})["conditions"]}
    upper = plan(world(paused(haservice(service=SERVICE), "True")), Memory(), NOW)
    assert steps(upper) == []


def test_a_paused_service_does_not_recover_pods_or_fence_nodes() -> None:
    """Node loss and a restart budget past its limit would act on pods and nodes; paused, the
    plan only reports."""
    recovery = {"restart": {"maxRestarts": 1, "windowSeconds": 600, "onLimit": "Migrate"}}
    obj = haservice(recovery=recovery)
    children = made(obj)
    crashing = pod("web-a", restarts=5, terminated_at=NOW - 1)
    lost = pod("web-b", node="node-b")
    nodes = {"node-b": node("node-b", ready=False, since=NOW - 3600)}
    parts: dict[str, Any] = {"children": children, "pods": [crashing, lost], "nodes": nodes}
    acting = plan(world(obj, **parts), Memory(), NOW)
    assert {step[0] for step in steps(acting)} & {"patch", "delete"}  # what a pause holds back
    outcome = plan(world(paused(obj), **parts), Memory(), NOW)
    assert steps(outcome) == []
    assert [reason for reason, _ in events(outcome)] == ["Paused"]


def test_a_paused_active_passive_service_reports_its_leader_but_fences_nothing() -> None:
    obj = haservice(category="ActivePassive", service=SERVICE, replicas=2)
    children = made(obj)
    lease(children, "web-b", version="60")
    pods = [pod("web-a", role=ACTIVE), pod("web-b", role=ACTIVE)]  # web-a's label is stray
    outcome = plan(world(paused(obj), children=children, pods=pods), Memory(), NOW)
    assert steps(outcome) == []
    assert (outcome.status or {})["activePod"] == "web-b"
    resumed_plan = plan(world(obj, children=children, pods=pods), Memory(), NOW)
    assert ("patch", "Pod", "web-a", f"{Label.ROLE}={STANDBY}") in steps(resumed_plan)
