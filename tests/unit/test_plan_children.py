"""The child rules of the plan: what is applied, adopted, corrected, withheld or deleted, and what
is said about it. World in, plan out."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from haoperator.core.actions import Result
from haoperator.core.memory import Memory, Refusal
from haoperator.core.plan import plan
from haoperator.core.vocabulary import Annotation
from haoperator.core.world import Refused
from tests.unit.plans import (
    NOW,
    SERVICE,
    UID,
    condition,
    events,
    haservice,
    made,
    reasons,
    rendered,
    results,
    settle,
    steps,
    world,
)


def test_a_new_haservice_gets_every_child_by_a_create_only_apply() -> None:
    outcome = plan(world(haservice(service=SERVICE)), Memory(), NOW)
    assert steps(outcome) == [
        ("apply", "create", "Service", "web"),
        ("apply", "create", "Deployment", "web"),
        ("apply", "create", "PodDisruptionBudget", "web"),
    ]
    assert events(outcome) == [
        ("Reconciled", "Created Service web, Deployment web, PodDisruptionBudget web")
    ]
    assert condition(outcome, "Ready")["reason"] == "Creating"
    assert outcome.status_after == {step for step, _ in outcome.steps}
    assert not outcome.backoff


def test_a_settled_haservice_costs_nothing() -> None:
    """The idle case: the same world planned again asks for no step, no event, no write."""
    obj = haservice(service=SERVICE)
    children = made(obj)
    settled, memory = settle(obj, children=children)
    again = plan(world(settled, children=children), memory, NOW + 60)
    assert steps(again) == []
    assert events(again) == []
    assert again.status_patch is None
    assert again.requeue_after is None


CHANGES: list[tuple[str, Any, list[tuple[str, ...]], list[tuple[str, str]]]] = [
    (
        "a child deleted after it was made is recreated, and that is drift",
        lambda children, obj: children.pop(("PodDisruptionBudget", "web")),
        [("apply", "recreate", "PodDisruptionBudget", "web")],
        [("DriftCorrected", "PodDisruptionBudget web was deleted; recreated")],
    ),
    (
        "a field of ours edited by hand is applied again, and the event names it",
        lambda children, obj: children[("Deployment", "web")]["spec"].update(replicas=5),
        [("apply", "drift", "Deployment", "web")],
        [("DriftCorrected", "Deployment web: spec.replicas: 5 (want 2)")],
    ),
    (
        "a field others own (a label of theirs, the status) is none of ours",
        lambda children, obj: children[("Deployment", "web")]["metadata"]["labels"].update(x="y"),
        [],
        [],
    ),
    (
        "a spec change updates the children it renders differently",
        lambda children, obj: obj["spec"].update(replicas=3),
        [("apply", "update", "Deployment", "web")],
        [("Reconciled", "Updated Deployment web")],
    ),
    (
        "an orphan of ours (labels, no owner) is adopted",
        lambda children, obj: children[("Deployment", "web")]["metadata"].pop("ownerReferences"),
        [("apply", "adopt", "Deployment", "web")],
        [("Reconciled", "Updated Deployment web (adopted)")],
    ),
    (
        "a child the spec no longer asks for is deleted",
        lambda children, obj: obj["spec"].pop("service"),
        [("delete", "Service", "web", "")],
        [("Reconciled", "Deleted Service web")],
    ),
]


@pytest.mark.parametrize(
    ("change", "steps_wanted", "events_wanted"),
    [case[1:] for case in CHANGES],
    ids=[case[0] for case in CHANGES],
)
def test_a_change_to_a_settled_haservice(
    change: Any, steps_wanted: list[tuple[str, ...]], events_wanted: list[tuple[str, str]]
) -> None:
    obj = haservice(service=SERVICE)
    children = made(obj)
    settled, memory = settle(obj, children=children)
    change(children, settled)
    outcome = plan(world(settled, children=children), memory, NOW)
    assert steps(outcome) == steps_wanted
    assert events(outcome) == events_wanted


def test_an_update_the_server_answers_unchanged_is_not_reported() -> None:
    obj = haservice(service=SERVICE)
    children = made(obj)
    settled, memory = settle(obj, children=children)
    settled["spec"]["replicas"] = 3
    outcome = plan(world(settled, children=children), memory, NOW)
    assert reasons(outcome, results(outcome, Result.UNCHANGED)) == []


def test_a_deletion_that_found_nothing_is_not_reported() -> None:
    obj = haservice(service=SERVICE)
    children = made(obj)
    settled, memory = settle(obj, children=children)
    settled["spec"].pop("service")
    outcome = plan(world(settled, children=children), memory, NOW)
    assert reasons(outcome, results(outcome, Result.UNCHANGED)) == []


def foreign(kind: str, name: str = "web") -> dict[str, Any]:
    return {
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": "theirs",
            "ownerReferences": [{"kind": "Thing", "name": "other", "uid": "o", "controller": True}],
        },
    }


def test_someone_elses_object_of_a_childs_name_is_left_untouched() -> None:
    obj = haservice(service=SERVICE)
    outcome = plan(world(obj, children={("Service", "web"): foreign("Service")}), Memory(), NOW)
    assert ("apply", "create", "Service", "web") not in steps(outcome)
    ready = condition(outcome, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "NameConflict")
    assert "Service web already exists and it belongs to Thing other" in ready["message"]
    assert ("NameConflict", ready["message"]) in events(outcome)
    assert outcome.backoff  # looked at again when the other object may be gone
    assert outcome.requeue_after is None


FOUND: list[tuple[str, dict[str, Any] | None, list[tuple[str, ...]], str | None]] = [
    # What the executor read after a create-only apply met an object; what the plan then does.
    ("ours, as we applied it (the cache had not seen it yet)", {}, [], None),
    ("someone else's", foreign("Deployment"), [], "NameConflict"),
    ("gone again", None, [("apply", "create", "Deployment", "web")], None),
]


@pytest.mark.parametrize(
    ("found", "steps_wanted", "problem"),
    [case[1:] for case in FOUND],
    ids=[case[0] for case in FOUND],
)
def test_what_a_create_only_apply_met_is_judged_by_the_next_plan(
    found: dict[str, Any] | None, steps_wanted: list[tuple[str, ...]], problem: str | None
) -> None:
    obj = haservice()
    if found == {}:
        found = made(obj)[("Deployment", "web")]
    first = world(obj)
    again = first.with_findings({("Deployment", "web"): found}, {})
    outcome = plan(again, Memory(), NOW)
    assert [s for s in steps(outcome) if s[3] == "web" and s[2] == "Deployment"] == steps_wanted
    assert (outcome.problem.reason if outcome.problem else None) == problem


def test_a_binding_to_someone_elses_role_is_withheld_and_an_existing_one_revoked() -> None:
    obj = haservice(category="ActivePassive", service=SERVICE)
    children = made(obj)
    children[("Role", "web-elector")] = foreign("Role", "web-elector")
    outcome = plan(world(obj, children=children), Memory(), NOW)
    assert ("delete", "RoleBinding", "web-elector", "") in steps(outcome)
    assert not [s for s in steps(outcome) if s[0] == "apply" and s[2] == "RoleBinding"]
    message = condition(outcome, "Ready")["message"]
    assert "Role web-elector already exists and it belongs to Thing other" in message
    assert "RoleBinding web-elector deleted: it would refer to Role web-elector" in message
    assert ("Reconciled", "Deleted RoleBinding web-elector") in events(outcome)


def test_a_binding_of_ours_that_does_not_exist_is_only_not_applied() -> None:
    obj = haservice(category="ActivePassive", service=SERVICE)
    children = made(obj)
    children[("Role", "web-elector")] = foreign("Role", "web-elector")
    del children[("RoleBinding", "web-elector")]
    outcome = plan(world(obj, children=children), Memory(), NOW)
    assert (
        "RoleBinding web-elector not applied: it would refer to Role web-elector"
        in (condition(outcome, "Ready")["message"])
    )


def test_a_foreign_lease_is_never_granted_to_the_electors() -> None:
    obj = haservice(category="ActivePassive", service=SERVICE)
    children = {k: v for k, v in made(obj).items() if k[0] not in ("Role", "RoleBinding")}
    children[("Lease", "web")] = foreign("Lease")
    outcome = plan(world(obj, children=children), Memory(), NOW)
    applied = {s[2] for s in steps(outcome) if s[0] == "apply"}
    assert "Role" not in applied  # it would grant their Lease
    assert "RoleBinding" not in applied  # it would bind a Role we withheld


# -- children the API server refuses ------------------------------------------------------------


def refused_deployment(obj: dict[str, Any]) -> dict[tuple[str, str], Refused]:
    digest = next(c for c in rendered(obj) if c["kind"] == "Deployment")["metadata"]["annotations"][
        Annotation.APPLIED_HASH
    ]
    message = "Deployment web: spec.template.spec.containers[0].volumeMounts[0].name: Not found"
    return {("Deployment", "web"): Refused(digest, "InvalidSpec", message)}


def test_a_refused_child_is_reported_and_backs_off_on_its_own() -> None:
    obj = haservice()
    refused = world(obj).with_findings({}, refused_deployment(obj))
    outcome = plan(refused, Memory(), NOW)
    assert ("apply", "create", "Deployment", "web") not in steps(outcome)
    assert ("apply", "create", "PodDisruptionBudget", "web") in steps(outcome)  # the rest goes on
    ready = condition(outcome, "Ready")
    assert (ready["reason"], ready["message"]) == (
        "InvalidSpec",
        "Deployment web: spec.template.spec.containers[0].volumeMounts[0].name: Not found",
    )
    assert "InvalidSpec" in reasons(outcome)
    assert not outcome.backoff
    assert outcome.requeue_after == 2.0
    assert outcome.memory is not None
    assert outcome.memory.refusals[("Deployment", "web")].attempts == 1


def test_a_refused_child_is_not_applied_again_until_its_backoff_has_passed() -> None:
    obj = haservice()
    first = plan(world(obj).with_findings({}, refused_deployment(obj)), Memory(), NOW)
    assert first.memory is not None
    meanwhile = plan(world(obj), first.memory, NOW + 1)
    assert ("apply", "create", "Deployment", "web") not in steps(meanwhile)
    assert condition(meanwhile, "Ready")["reason"] == "InvalidSpec"
    assert "InvalidSpec" not in reasons(meanwhile)  # not news: said when it was refused
    assert meanwhile.requeue_after == 1.0
    later = plan(world(obj), first.memory, NOW + 2)
    assert ("apply", "create", "Deployment", "web") in steps(later)
    again = plan(world(obj).with_findings({}, refused_deployment(obj)), first.memory, NOW + 2)
    assert again.memory is not None
    assert again.memory.refusals[("Deployment", "web")].attempts == 2
    assert again.requeue_after == 4.0


def test_a_new_rendering_of_a_refused_child_is_tried_at_once() -> None:
    obj = haservice()
    first = plan(world(obj).with_findings({}, refused_deployment(obj)), Memory(), NOW)
    assert first.memory is not None
    fixed = copy.deepcopy(obj)
    fixed["spec"]["replicas"] = 3
    outcome = plan(world(fixed), first.memory, NOW + 1)
    assert ("apply", "create", "Deployment", "web") in steps(outcome)
    assert outcome.memory is not None
    assert outcome.memory.refusals == {}


def test_refusals_back_off_up_to_five_minutes() -> None:
    assert [Refusal.delay(n) for n in (1, 2, 3, 8, 9, 20)] == [2, 4, 8, 256, 300, 300]


# -- what the operator leaves as it is -----------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "reason", "words"),
    [
        (
            {**haservice(), "spec": {**haservice()["spec"], "replicas": "two"}},
            "InvalidSpec",
            "spec.replicas: must be an integer",
        ),
        (haservice(replicas=5), "ReplicasAboveLimit", "spec.replicas 5 is above this operator's"),
    ],
    ids=["invalid", "above the replica limit"],
)
def test_an_haservice_the_operator_may_not_make_is_reported_and_nothing_made(
    obj: dict[str, Any], reason: str, words: str
) -> None:
    outcome = plan(world(obj, max_replicas=3), Memory(), NOW)
    assert steps(outcome) == []
    ready = condition(outcome, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", reason)
    assert words in ready["message"]
    assert [(r, m.startswith(words[:10])) for r, m in events(outcome)] == [(reason, True)]
    assert outcome.backoff
    assert [c["type"] for c in (outcome.status or {})["conditions"]] == ["Ready"]


def test_owner_references_name_the_haservice() -> None:
    deployment = next(c for c in rendered(haservice()) if c["kind"] == "Deployment")
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == UID
