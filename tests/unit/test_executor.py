"""The executor and the reconcile loop against an in-memory API server that can refuse any
request: what was done is always reported, in the fixed order, whatever failed after it."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import pytest

from haoperator.controller.executor import Executor
from haoperator.controller.kube import ApiError, Kube
from haoperator.controller.reconciler import Reconciler
from haoperator.controller.store import Store
from haoperator.core.memory import Memory
from haoperator.core.objects import ObjectRef
from haoperator.core.plan import plan
from haoperator.core.recovery import History, avoid_label
from haoperator.core.vocabulary import Annotation
from haoperator.core.world import Operator
from tests.unit.plans import NOW, SERVICE, haservice, made, node, pod, world

Obj = dict[str, Any]


class FakeKube:
    """Objects by (kind, name); `deny` makes requests fail: (verb, kind) -> ApiError."""

    def __init__(self, objects: dict[tuple[str, str], Obj] | None = None) -> None:
        self.objects = copy.deepcopy(objects or {})
        self.deny: dict[tuple[str, str], ApiError] = {}
        self.calls: list[tuple[str, str, str]] = []
        self.events: list[tuple[str, str, str, str]] = []
        self.statuses: list[Obj] = []
        self.version = 1000

    def _call(self, verb: str, kind: str, name: str) -> None:
        self.calls.append((verb, kind, name))
        refusal = self.deny.get((verb, kind))
        if refusal is not None:
            raise refusal

    def _stored(self, obj: Obj) -> Obj:
        self.version += 1
        kept = copy.deepcopy(obj)
        kept["metadata"]["resourceVersion"] = str(self.version)
        self.objects[(obj["kind"], obj["metadata"]["name"])] = kept
        return copy.deepcopy(kept)

    def create_only(self, obj: Obj) -> Obj | None:
        self._call("create", obj["kind"], obj["metadata"]["name"])
        if (obj["kind"], obj["metadata"]["name"]) in self.objects:
            return None
        return self._stored(obj)

    def apply(self, obj: Obj) -> Obj:
        self._call("apply", obj["kind"], obj["metadata"]["name"])
        return self._stored(obj)

    def get(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        self._call("get", kind, name)
        found = self.objects.get((kind, name))
        return copy.deepcopy(found) if found else None

    def delete(self, kind: str, namespace: str | None, name: str, **_: Any) -> bool:
        self._call("delete", kind, name)
        return self.objects.pop((kind, name), None) is not None

    def patch(self, kind: str, namespace: str | None, name: str, patch: Obj) -> Obj:
        self._call("patch", kind, name)
        return {"metadata": {"name": name}}

    def patch_status(self, namespace: str, name: str, status: Obj) -> Obj:
        self._call("patch", "HAService/status", name)
        self.statuses.append(status)
        self.version += 1
        return {"metadata": {"resourceVersion": str(self.version)}, "status": status}

    event_name = staticmethod(Kube.event_name)

    def record_event(
        self, about: ObjectRef, type_: str, reason: str, message: str, *, count: int | None = None
    ) -> int:
        self._call("event", reason, about.name)
        self.events.append((about.kind, type_, reason, message))
        return (count or 0) + 1


def denied(status: int = 403, message: str = "nodes is forbidden") -> ApiError:
    return ApiError(status, "Forbidden", message)


def migrating_world(**parts: Any) -> Any:
    """A settled worker whose spec just changed (3 replicas) and whose pod is past its restart
    limit: the children to update, then a ban and a migration."""
    recovery = {"restart": {"maxRestarts": 1, "windowSeconds": 60, "onLimit": "Migrate"}}
    obj = haservice(recovery=recovery)
    children = made(obj)
    obj["spec"]["replicas"] = 3
    obj["metadata"]["generation"] = 2
    restarts = {Annotation.RESTARTS: History(2, (NOW - 20, NOW - 10)).to_annotation()}
    crashing = pod("web-a", restarts=2, annotations=restarts)
    return world(obj, children=children, pods=[crashing], nodes={"node-a": node("node-a")}, **parts)


def test_a_denied_node_patch_still_reports_the_children_it_updated() -> None:
    """The node patch is refused after the Deployment was updated: the Reconciled event and
    the status are written all the same, the pod is not deleted, and the failure is raised."""
    the_world = migrating_world()
    kube = FakeKube(dict(the_world.children))
    kube.deny[("patch", "Node")] = denied()
    executor = Executor(kube)  # type: ignore[arg-type]
    current = plan(the_world, Memory(), NOW)
    progress = executor.run(current)
    memory, error = executor.report(current, progress, current.memory or Memory())
    assert isinstance(progress.failure, ApiError)
    assert progress.failure.status == 403
    assert error is None
    assert [c for c in kube.calls if c[0] != "event"] == [
        ("apply", "Deployment", "web"),
        ("patch", "Node", "node-a"),  # the ban: refused, so the pod is not deleted
        ("patch", "HAService/status", "web"),
    ]
    assert ("HAService", "Normal", "Reconciled", "Updated Deployment web") in kube.events
    assert not [e for e in kube.events if e[2] in ("PodMigrated", "RecoveryLimitReached")]
    assert kube.statuses[0]["observedGeneration"] == 2
    assert memory.written is not None


def test_a_failed_child_leaves_the_status_unwritten_but_reports_what_was_made() -> None:
    kube = FakeKube()
    kube.deny[("create", "Deployment")] = ApiError(500, "InternalError", "etcd is down")
    executor = Executor(kube)  # type: ignore[arg-type]
    current = plan(world(haservice(service=SERVICE)), Memory(), NOW)
    progress = executor.run(current)
    executor.report(current, progress, Memory())
    assert ("HAService", "Normal", "Reconciled", "Created Service web") in kube.events
    assert kube.statuses == []  # it would claim a generation whose Deployment is not there
    assert ("create", "PodDisruptionBudget", "web") not in kube.calls  # stopped at the failure


def store_with(obj: Obj, children: dict[tuple[str, str], Obj], pods: Sequence[Obj] = ()) -> Store:
    store = Store()
    store.put_haservice(obj)
    for child in children.values():
        store.put_child(child)
    for p in pods:
        store.put_pod(p)
    return store


def test_the_reconcile_raises_the_failure_after_reporting_and_remembers() -> None:
    the_world = migrating_world()
    assert the_world.haservice is not None
    kube = FakeKube(dict(the_world.children))
    kube.deny[("patch", "Node")] = denied()
    store = store_with(the_world.haservice, dict(the_world.children), list(the_world.pods))
    store.put_node(node("node-a"))
    reconciler = Reconciler(kube, store, Operator())  # type: ignore[arg-type]
    with pytest.raises(ApiError):
        reconciler.reconcile(("ns", "web"))
    assert ("HAService", "Normal", "Reconciled", "Updated Deployment web") in kube.events
    assert reconciler.memories[("ns", "web")].written is not None


def test_an_object_a_create_met_is_read_and_judged_by_a_second_plan() -> None:
    foreign = {
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "ns", "uid": "theirs", "labels": {"x": "y"}},
    }
    kube = FakeKube({("Service", "web"): foreign})
    obj = haservice(service=SERVICE)
    reconciler = Reconciler(kube, store_with(obj, {}), Operator())  # type: ignore[arg-type]
    outcome = reconciler.reconcile(("ns", "web"))
    assert outcome.backoff
    assert outcome.problem
    assert [c for c in kube.calls if c[1] == "Service"] == [
        ("create", "Service", "web"),
        ("get", "Service", "web"),
    ]
    reasons = [e[2] for e in kube.events]
    assert reasons == ["Reconciled", "NameConflict"]
    assert kube.statuses[-1]["conditions"][0]["reason"] == "NameConflict"


def test_a_refused_child_is_reported_once_and_the_rest_made() -> None:
    kube = FakeKube()
    kube.deny[("create", "Deployment")] = ApiError(
        422, "Invalid", 'Deployment.apps "web" is invalid: spec.template: Invalid value'
    )
    obj = haservice(service=SERVICE)
    reconciler = Reconciler(kube, store_with(obj, {}), Operator())  # type: ignore[arg-type]
    outcome = reconciler.reconcile(("ns", "web"))
    assert not outcome.backoff
    assert outcome.problem
    assert outcome.requeue_after == 2.0
    made_ = [c[1] for c in kube.calls if c[0] == "create"]
    assert made_ == ["Service", "Deployment", "PodDisruptionBudget"]
    assert [e[2] for e in kube.events] == ["Reconciled", "InvalidSpec"]
    assert kube.statuses[-1]["conditions"][0]["reason"] == "InvalidSpec"
    kube.calls.clear()
    reconciler.reconcile(("ns", "web"))  # woken again at once (a watch event): not retried
    assert ("create", "Deployment", "web") not in kube.calls


def test_a_deleted_haservice_is_forgotten_and_its_bans_lifted() -> None:
    obj = haservice()
    store = store_with(obj, {})
    store.put_node(node("node-a", labels={avoid_label("ns", "web"): str(int(NOW + 600))}))
    kube = FakeKube()
    reconciler = Reconciler(kube, store, Operator())  # type: ignore[arg-type]
    reconciler.reconcile(("ns", "web"))
    assert ("ns", "web") in reconciler.memories
    store.remove_haservice(obj)
    reconciler.reconcile(("ns", "web"))
    assert ("ns", "web") not in reconciler.memories
    assert ("patch", "Node", "node-a") in kube.calls
