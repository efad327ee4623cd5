"""Worlds written by hand for the plan's table tests: an HAService, its children as the cache
holds them once the operator has made them, pods, nodes, a Lease; and readers of a plan."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from haoperator.api import HAService
from haoperator.core import render
from haoperator.core.actions import Apply, Delete, Patch, Plan, Result
from haoperator.core.children import applied_hash
from haoperator.core.memory import Memory
from haoperator.core.plan import plan
from haoperator.core.times import stamp
from haoperator.core.vocabulary import Annotation, Label, Role
from haoperator.core.world import Operator, World

NOW = 1_800_000_000.0
NS = "ns"
UID = "uid-web"
Obj = dict[str, Any]
TEMPLATE = {"spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}}
SERVICE = {"ports": [{"name": "http", "port": 80}]}


def haservice(
    name: str = "web",
    category: str = "LoadBalanced",
    *,
    generation: int = 1,
    version: str = "100",
    status: Obj | None = None,
    **spec: Any,
) -> Obj:
    obj: Obj = {
        "apiVersion": "haoperator.dev/v1alpha1",
        "kind": "HAService",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": UID,
            "generation": generation,
            "resourceVersion": version,
        },
        "spec": {"category": category, "template": copy.deepcopy(TEMPLATE), **spec},
    }
    if status is not None:
        obj["status"] = status
    return obj


def rendered(obj: Obj) -> list[Obj]:
    """The children as the plan renders them, with their applied hash."""
    children = render.desired(HAService.model_validate(obj))
    for child in children:
        digest = applied_hash(child)
        child["metadata"].setdefault("annotations", {})[Annotation.APPLIED_HASH] = digest
    return children


def made(obj: Obj, *, ready: int | None = None) -> dict[tuple[str, str], Obj]:
    """The children as the cache holds them after the operator applied them: the rendering
    with what the server adds (uid, resourceVersion), and a workload with `ready` replicas
    ready (all of them when None)."""
    children: dict[tuple[str, str], Obj] = {}
    for index, child in enumerate(rendered(obj)):
        child["metadata"]["uid"] = f"uid-{child['kind'].lower()}"
        child["metadata"]["resourceVersion"] = str(10 + index)
        if child["kind"] in ("Deployment", "StatefulSet"):
            replicas = child["spec"]["replicas"]
            up = replicas if ready is None else ready
            child["metadata"]["generation"] = 1
            child["status"] = {
                "observedGeneration": 1,
                "replicas": replicas,
                "readyReplicas": up,
                "updatedReplicas": replicas,
                "currentRevision": "r1",
                "updateRevision": "r1",
            }
        children[(child["kind"], child["metadata"]["name"])] = child
    return children


def pod(
    name: str,
    *,
    service: str = "web",
    node: str = "node-a",
    ready: bool = True,
    role: str | None = None,
    version: str = "50",
    restarts: int = 0,
    terminated_at: float | None = None,
    annotations: Mapping[str, str] | None = None,
    deleting: bool = False,
) -> Obj:
    labels = {Label.SERVICE: service}
    if role is not None:
        labels[Label.ROLE] = role
    meta: Obj = {
        "name": name,
        "namespace": NS,
        "uid": f"uid-{name}",
        "labels": labels,
        "resourceVersion": version,
        "annotations": dict(annotations or {}),
    }
    if deleting:
        meta["deletionTimestamp"] = stamp(NOW - 5)
    status: Obj = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    if restarts or terminated_at is not None:
        container: Obj = {"name": "app", "restartCount": restarts}
        if terminated_at is not None:
            container["lastState"] = {
                "terminated": {"exitCode": 1, "reason": "Error", "finishedAt": stamp(terminated_at)}
            }
        status["containerStatuses"] = [container]
    return {"kind": "Pod", "metadata": meta, "spec": {"nodeName": node}, "status": status}


def node(
    name: str, *, ready: bool = True, since: float = NOW - 3600, labels: Mapping[str, str] = {}
) -> Obj:
    return {
        "kind": "Node",
        "metadata": {"name": name, "labels": dict(labels)},
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "Unknown",
                    "lastTransitionTime": stamp(since),
                }
            ]
        },
    }


def lease(
    children: dict[tuple[str, str], Obj],
    holder: str | None,
    *,
    version: str = "60",
    failover: str | None = None,
) -> Obj:
    """The Lease the operator made, as the electors have written it since: a holder (and the
    last failover they recorded)."""
    made_lease = copy.deepcopy(children[("Lease", "web")])
    made_lease["metadata"]["resourceVersion"] = version
    if failover is not None:
        made_lease["metadata"]["annotations"][Annotation.LAST_FAILOVER] = failover
    made_lease["spec"] = {"holderIdentity": holder, "leaseTransitions": 1 if holder else 0}
    children[("Lease", "web")] = made_lease
    return made_lease


def world(obj: Obj | None, **parts: Any) -> World:
    started = parts.pop("started_at", 0.0)
    max_replicas = parts.pop("max_replicas", 1000)
    key = (NS, (obj or {}).get("metadata", {}).get("name", "web"))
    return World.of(
        key, obj, operator=Operator(started_at=started, max_replicas=max_replicas), **parts
    )


def settle(obj: Obj, memory: Memory | None = None, **parts: Any) -> tuple[Obj, Memory]:
    """The HAService with the status one plan of this world writes, and the memory after it:
    the state of a reconciled, idle HAService."""
    first = plan(world(obj, **parts), memory or Memory(), NOW)
    assert first.memory is not None
    return {**obj, "status": dict(first.status or {})}, first.memory


def results(outcome: Plan, result: Result = Result.CHANGED) -> dict[int, Result]:
    """Every step of the plan done with the same result."""
    return {step_id: result for step_id, _ in outcome.steps}


def steps(outcome: Plan) -> list[tuple[str, ...]]:
    """The plan's steps in the executor's order, shortly: (what, kind, name, detail)."""
    said: list[tuple[str, ...]] = []
    for _, step in outcome.steps:
        if isinstance(step, Apply):
            said.append(("apply", step.reason, *step.key))
        elif isinstance(step, Delete):
            grace = "" if step.grace is None else f"grace={step.grace}"
            said.append(("delete", step.kind, step.name, grace))
        elif isinstance(step, Patch):
            said.append(("patch", step.kind, step.name, _patched(step.patch)))
    return said


def _patched(patch: Obj) -> str:
    meta = patch.get("metadata", {})
    parts = [f"{k}={v}" for k, v in sorted((meta.get("labels") or {}).items())]
    parts += [f"{k}=..." for k in sorted(meta.get("annotations") or {})]
    return ",".join(parts)


def events(outcome: Plan, done: Mapping[int, Result] | None = None) -> list[tuple[str, str]]:
    """(reason, message) of the events recorded when the steps ended as `done` (default: all
    changed something)."""
    recorded = outcome.due_events(results(outcome) if done is None else done)
    return [(e.reason, e.message) for e in recorded]


def reasons(outcome: Plan, done: Mapping[int, Result] | None = None) -> list[str]:
    return [reason for reason, _ in events(outcome, done)]


def condition(outcome: Plan, type_: str) -> Obj:
    return next(c for c in (outcome.status or {}).get("conditions", []) if c["type"] == type_)


ACTIVE, STANDBY = Role.ACTIVE, Role.STANDBY
