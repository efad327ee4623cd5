"""Pure: the HAService's status from what the operator observed of its children and pods.

The rules are API.md's: `Ready` says the service can serve (LoadBalanced/QueueWorker: enough
replicas ready for the disruption budget; Clustered: a quorum ready; ActivePassive: the pod the
Lease names is ready, labelled active, alone in being so, and the Service routes to it),
`Progressing` that children are being created or rolled, `Degraded` that fewer replicas are ready
than desired or that the service lacks a leader, `QuorumLost` (Clustered) that fewer than a
quorum are. When pods are missing because they cannot be created or scheduled, the conditions
carry the controller's or the scheduler's own words. A condition keeps its lastTransitionTime
while its status does not change, so recomputing an unchanged world yields an identical status,
and the operator writes nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from haoperator.api import HAServiceSpec
from haoperator.core.objects import (
    annotations_of,
    condition_true,
    deleting,
    is_ready,
    labels_of,
    older,
)
from haoperator.core.vocabulary import Annotation, ConditionType, Label, Reason, Role


@dataclass(frozen=True)
class Problem:
    """Why the operator could not make the children as asked (InvalidSpec, NameConflict)."""

    reason: str
    message: str


@dataclass(frozen=True)
class Blocked:
    """Why pods are missing although the workload asks for them: its controller cannot create
    them (PodSecurity, a quota, a missing ServiceAccount) or the scheduler cannot place them
    (an unknown StorageClass, no node that fits). The workload and its pods say so exactly;
    without this the HAService said only `0/2 ready`."""

    reason: str
    message: str


@dataclass
class Observed:
    """What the API server holds for one HAService, as plain data."""

    name: str
    generation: int
    spec: HAServiceSpec
    workload: dict[str, Any] | None = None
    pods: list[dict[str, Any]] = field(default_factory=list)
    service_present: bool = False
    problem: Problem | None = None
    previous: dict[str, Any] = field(default_factory=dict)
    lease: dict[str, Any] | None = None
    """ActivePassive: the electors' Lease."""
    routed: set[str] | None = None
    """ActivePassive with a Service: the pods its EndpointSlices list as ready endpoints."""
    electing: bool = False
    """ActivePassive: pods are ready but none has served as leader (held the Lease, labelled
    active, ready) for less than a lease duration: a handover or the first election is under
    way, which is not news yet. A service that was Ready stays Ready (FailingOver) meanwhile."""
    limited: list[str] = field(default_factory=list)
    """Pods past their restart limit under `recovery.restart.onLimit: Notify`."""
    failed_create: str | None = None
    """The workload controller's last word on a pod it could not create (a StatefulSet says it
    only in a FailedCreate event), when pods are missing."""
    paused: bool = False
    """A user paused the operator for this HAService: the status still tells the truth, and
    says Paused."""


def max_unavailable(spec: HAServiceSpec) -> int:
    """The disruption budget as a count; a percentage rounds up, as the PDB controller does."""
    value = spec.disruption.max_unavailable if spec.disruption else 1
    replicas = spec.desired_replicas
    if isinstance(value, str):
        return math.ceil(int(value.rstrip("%")) * replicas / 100)
    return value


def _condition(type_: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
    }


def _workload_condition(workload: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for condition in ((workload or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == type_ and condition.get("status") == "True":
            return dict(condition)
    return None


def blocked(observed: Observed) -> Blocked | None:
    """Why pods are missing or cannot start, as the workload's controller or the scheduler
    said it; None when nothing is stuck."""
    failure = _workload_condition(observed.workload, "ReplicaFailure")
    if failure is not None:
        return Blocked(
            Reason.PODS_CANNOT_BE_CREATED, str(failure.get("message") or failure["reason"])
        )
    workload_status = (observed.workload or {}).get("status") or {}
    missing = int(workload_status.get("replicas", 0)) < observed.spec.desired_replicas
    if observed.failed_create and missing:
        return Blocked(Reason.PODS_CANNOT_BE_CREATED, observed.failed_create)
    for pod in sorted(observed.pods, key=lambda p: p["metadata"]["name"]):
        if pod["metadata"].get("deletionTimestamp"):
            continue
        for condition in (pod.get("status") or {}).get("conditions") or []:
            if (
                condition.get("type") == "PodScheduled"
                and condition.get("status") == "False"
                and condition.get("reason") == "Unschedulable"
            ):
                message = condition.get("message") or "no node fits it"
                return Blocked(
                    Reason.PODS_UNSCHEDULABLE, f"pod {pod['metadata']['name']}: {message}"
                )
    return None


def _ready(observed: Observed, ready: int, stuck: Blocked | None) -> dict[str, Any]:
    condition = _ready_verdict(observed, ready)
    if condition["status"] == "False" and stuck is not None and not observed.problem:
        replicas = observed.spec.desired_replicas
        return _condition(
            ConditionType.READY, False, stuck.reason, f"{ready}/{replicas} ready: {stuck.message}"
        )
    return condition


def _ready_verdict(observed: Observed, ready: int) -> dict[str, Any]:
    spec = observed.spec
    if observed.problem:
        return _condition(
            ConditionType.READY, False, observed.problem.reason, observed.problem.message
        )
    if observed.workload is None:
        return _condition(
            ConditionType.READY, False, Reason.CREATING, "the workload is being created"
        )
    replicas = spec.desired_replicas
    if spec.category == "Clustered":
        need = spec.quorum_size
        if ready >= need:
            return _condition(
                ConditionType.READY,
                True,
                Reason.QUORUM_REACHED,
                f"{ready}/{replicas} members ready (quorum {need})",
            )
        return _condition(
            ConditionType.READY,
            False,
            Reason.FORMING if forming(observed) else Reason.QUORUM_LOST,
            f"{ready}/{replicas} members ready, quorum is {need}",
        )
    if spec.category == "ActivePassive":
        return _active_passive_ready(observed)
    # At least one: a service with no ready replica serves nothing, whatever the budget allows.
    need = max(replicas - max_unavailable(spec), 1) if replicas else 0
    if replicas and ready >= need:
        reason = Reason.ALL_REPLICAS_READY if ready >= replicas else Reason.MINIMUM_REPLICAS_READY
        return _condition(
            ConditionType.READY, True, reason, f"{ready}/{replicas} replicas ready (need {need})"
        )
    return _condition(
        ConditionType.READY,
        False,
        Reason.NOT_ENOUGH_REPLICAS,
        f"{ready}/{replicas} replicas ready, need {need}",
    )


def active_pods(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pods labelled active (and not being deleted): where the Service sends traffic."""
    return [p for p in pods if labels_of(p).get(Label.ROLE) == Role.ACTIVE and not deleting(p)]


def lease_holder(lease: dict[str, Any] | None, pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The pod the Lease names, if it is a live pod of the service: the active pod. The Lease,
    not a label, says who leads; the label is what the elector makes of it for the Service."""
    holder = ((lease or {}).get("spec") or {}).get("holderIdentity")
    if not holder:
        return None
    return next(
        (
            p
            for p in pods
            if p["metadata"]["name"] == holder and not p["metadata"].get("deletionTimestamp")
        ),
        None,
    )


def serving_leader(lease: dict[str, Any] | None, pods: list[dict[str, Any]]) -> str | None:
    """The Lease holder when it is labelled active and ready: a leader that can serve."""
    holder = lease_holder(lease, pods)
    if holder is None or not is_ready(holder):
        return None
    active = labels_of(holder).get(Label.ROLE) == Role.ACTIVE
    return holder["metadata"]["name"] if active else None


def to_fence(lease: dict[str, Any] | None, pods: list[dict[str, Any]]) -> list[str]:
    """The pods to take the active label from, as a net under the electors (who fence before
    they label): every labelled pod but the Lease holder when more than one is labelled, and a
    lone labelled pod that is not the holder when its label is older than what the Lease says
    (its elector died, or could not unlabel it). A label newer than the Lease we know of may
    belong to a leader whose Lease write we have not seen yet: left alone until we have. Nor is
    the pod that has just released a free Lease: its elector frees the Lease first and relabels
    its pod a moment later, and the next leader removes the label before it labels itself."""
    holder = ((lease or {}).get("spec") or {}).get("holderIdentity")
    labelled = active_pods(pods)
    if len(labelled) > 1:
        return sorted(p["metadata"]["name"] for p in labelled if p["metadata"]["name"] != holder)
    releasing = not holder and annotations_of(lease).get(Annotation.RELEASED_BY)
    if (
        len(labelled) == 1
        and lease is not None
        and labelled[0]["metadata"]["name"] != holder
        and labelled[0]["metadata"]["name"] != releasing
        and older(
            labelled[0]["metadata"].get("resourceVersion"), lease["metadata"].get("resourceVersion")
        )
    ):
        return [labelled[0]["metadata"]["name"]]
    return []


def _active_passive_ready(observed: Observed) -> dict[str, Any]:
    labelled = [p for p in active_pods(observed.pods) if is_ready(p)]
    if len(labelled) > 1:
        names = ", ".join(sorted(p["metadata"]["name"] for p in labelled))
        return _condition(
            ConditionType.READY, False, Reason.SPLIT_BRAIN, f"more than one active pod: {names}"
        )
    holder = lease_holder(observed.lease, observed.pods)
    name = serving_leader(observed.lease, observed.pods)
    if name is None:
        if observed.electing and was_ready(observed):
            return _condition(
                ConditionType.READY, True, Reason.FAILING_OVER, "the active role is changing hands"
            )
        return _condition(ConditionType.READY, False, *_why_no_leader(observed, holder))
    if observed.spec.service is not None:
        if not observed.service_present:
            return _condition(
                ConditionType.READY,
                False,
                Reason.SERVICE_MISSING,
                f"pod {name} is active, no Service yet",
            )
        if observed.routed != {name}:
            routed = ", ".join(sorted(observed.routed or [])) or "no pod"
            return _condition(
                ConditionType.READY,
                False,
                Reason.NOT_ROUTED,
                f"pod {name} is active; the Service routes to {routed}",
            )
    return _condition(
        ConditionType.READY, True, Reason.ACTIVE_POD_READY, f"pod {name} is active and ready"
    )


def previous_condition(observed: Observed, type_: str) -> dict[str, Any]:
    return next(
        (c for c in observed.previous.get("conditions") or [] if c.get("type") == type_), {}
    )


def _was_unhealthy(observed: Observed) -> bool:
    before = previous_condition(observed, ConditionType.READY)
    return before.get("reason") == Reason.ACTIVE_POD_UNHEALTHY


def was_ready(observed: Observed) -> bool:
    return condition_true({"status": observed.previous}, ConditionType.READY)


def _why_no_leader(observed: Observed, holder: dict[str, Any] | None) -> tuple[str, str]:
    lease = observed.name
    if holder is None:
        if not any(is_ready(p) for p in observed.pods):
            return Reason.NO_ACTIVE_POD, "no pod is ready to take the active role"
        stray = [p["metadata"]["name"] for p in active_pods(observed.pods)]
        held = f" (pod {', '.join(stray)} is labelled active without it)" if stray else ""
        return Reason.NO_ACTIVE_POD, f"no pod holds the Lease {lease}{held}"
    name = holder["metadata"]["name"]
    if labels_of(holder).get(Label.ROLE) != Role.ACTIVE:
        return (
            Reason.LEADER_NOT_LABELLED,
            f"pod {name} holds the Lease {lease} but is not labelled {Label.ROLE}={Role.ACTIVE}, "
            "so the Service routes to no pod: its ha-elector cannot label it (see the ha-elector "
            f"log and the Role {lease}-elector)",
        )
    if not any(is_ready(p) for p in observed.pods) and (
        was_ready(observed) or _was_unhealthy(observed)
    ):
        # It served, and nothing can take over: news (a service still starting up is not).
        return (
            Reason.ACTIVE_POD_UNHEALTHY,
            f"pod {name} is active but not ready, and no standby is ready to take over: it keeps "
            "the role until one is",
        )
    return Reason.NO_ACTIVE_POD, f"pod {name} holds the Lease {lease} but is not ready"


def _lease_record(
    lease: dict[str, Any] | None, annotation: str, read: Callable[[dict[str, Any]], dict[str, Any]]
) -> dict[str, Any] | None:
    """A record the electors keep on the Lease (JSON in `annotation`), as `read` puts it for the
    status; None when there is none or it does not read."""
    raw = annotations_of(lease).get(annotation) if lease else None
    if not raw:
        return None
    try:
        return read(json.loads(raw))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def failover_record(lease: dict[str, Any] | None) -> dict[str, Any] | None:
    """The last takeover the electors recorded on the Lease, as status.lastFailover."""
    return _lease_record(
        lease,
        Annotation.LAST_FAILOVER,
        lambda record: {
            "time": str(record["time"]),
            "from": str(record["from"]),
            "to": str(record["to"]),
            "seconds": float(record["seconds"]),
            **({"reason": str(record["reason"])} if record.get("reason") else {}),
        },
    )


def failsafe_record(lease: dict[str, Any] | None) -> dict[str, Any] | None:
    """The last outage of the API server the active pod rode out, as status.lastFailsafe."""
    return _lease_record(
        lease,
        Annotation.LAST_FAILSAFE,
        lambda record: {
            "time": str(record["time"]),
            "pod": str(record["pod"]),
            "seconds": max(float(record["seconds"]), 0.0),
            "peers": max(int(record["peers"]), 0),
        },
    )


def _progressing(observed: Observed) -> dict[str, Any]:
    if observed.problem:
        return _condition(
            ConditionType.PROGRESSING, False, observed.problem.reason, observed.problem.message
        )
    workload = observed.workload
    if workload is None:
        return _condition(
            ConditionType.PROGRESSING, True, Reason.CREATING, "the workload is being created"
        )
    status = workload.get("status") or {}
    generation = workload.get("metadata", {}).get("generation", 0)
    replicas = observed.spec.desired_replicas
    updated = status.get("updatedReplicas", 0)
    rolling = (
        status.get("observedGeneration", 0) < generation
        or updated < replicas
        or status.get("replicas", 0) > replicas
        or (
            workload.get("kind") == "StatefulSet"
            and status.get("updateRevision") != status.get("currentRevision")
        )
    )
    if rolling:
        return _condition(
            ConditionType.PROGRESSING,
            True,
            Reason.ROLLING_OUT,
            f"{updated}/{replicas} replicas up to date",
        )
    return _condition(
        ConditionType.PROGRESSING, False, Reason.STABLE, "all replicas are up to date"
    )


LEADERSHIP_PROBLEMS = (Reason.NO_ACTIVE_POD, Reason.LEADER_NOT_LABELLED, Reason.SPLIT_BRAIN)


def _degraded(
    observed: Observed, ready: int, stuck: Blocked | None, verdict: dict[str, Any]
) -> dict[str, Any]:
    replicas = observed.spec.desired_replicas
    if observed.limited:
        restart = observed.spec.recovery.restart
        return _condition(
            ConditionType.DEGRADED,
            True,
            Reason.RECOVERY_LIMIT_REACHED,
            f"{', '.join(sorted(observed.limited))} restarted more than {restart.max_restarts} "
            f"times within {restart.window_seconds} s",
        )
    if stuck is not None:
        return _condition(ConditionType.DEGRADED, True, stuck.reason, stuck.message)
    if verdict["status"] == "False" and verdict["reason"] == Reason.ACTIVE_POD_UNHEALTHY:
        return _condition(ConditionType.DEGRADED, True, verdict["reason"], verdict["message"])
    if (
        verdict["status"] == "False"
        and verdict["reason"] in LEADERSHIP_PROBLEMS
        and not observed.electing
        and any(is_ready(p) for p in observed.pods)
    ):
        return _condition(ConditionType.DEGRADED, True, verdict["reason"], verdict["message"])
    if ready < replicas:
        return _condition(
            ConditionType.DEGRADED,
            True,
            Reason.REPLICAS_UNAVAILABLE,
            f"{ready}/{replicas} replicas ready",
        )
    return _condition(
        ConditionType.DEGRADED,
        False,
        Reason.ALL_REPLICAS_READY,
        f"{ready}/{replicas} replicas ready",
    )


def forming(observed: Observed) -> bool:
    """A cluster that has never had its quorum yet is forming, not one that lost it."""
    for condition in observed.previous.get("conditions") or []:
        if condition.get("type") == ConditionType.QUORUM_LOST:
            return bool(condition.get("reason") == Reason.FORMING)
    return True


def _quorum_lost(observed: Observed, ready: int) -> dict[str, Any]:
    need = observed.spec.quorum_size
    if ready < need:
        reason = Reason.FORMING if forming(observed) else Reason.QUORUM_LOST
        return _condition(
            ConditionType.QUORUM_LOST, True, reason, f"{ready} members ready, quorum {need}"
        )
    return _condition(
        ConditionType.QUORUM_LOST,
        False,
        Reason.QUORUM_REACHED,
        f"{ready} members ready, quorum {need}",
    )


def paused_condition() -> dict[str, Any]:
    return _condition(
        ConditionType.PAUSED,
        True,
        Reason.PAUSED,
        f'{Annotation.PAUSED} is "true": the operator leaves the children, pods and nodes as '
        "they are (the electors keep electing); remove it to resume",
    )


def compute(observed: Observed, now: str) -> dict[str, Any]:
    """The full status for `observed`; `now` stamps conditions whose status changed."""
    workload_status = (observed.workload or {}).get("status") or {}
    ready = int(workload_status.get("readyReplicas", 0))
    stuck = None if observed.problem else blocked(observed)
    verdict = _ready(observed, ready, stuck)
    conditions = [verdict, _progressing(observed), _degraded(observed, ready, stuck, verdict)]
    if observed.spec.category == "Clustered":
        conditions.append(_quorum_lost(observed, ready))
    if observed.paused:
        conditions.append(paused_condition())
    previous = {c.get("type"): c for c in observed.previous.get("conditions") or []}
    for condition in conditions:
        before = previous.get(condition["type"])
        if before is not None and before.get("status") == condition["status"]:
            condition["lastTransitionTime"] = before.get("lastTransitionTime", now)
        else:
            condition["lastTransitionTime"] = now
        condition["observedGeneration"] = observed.generation

    status: dict[str, Any] = {
        "observedGeneration": observed.generation,
        "selector": f"{Label.SERVICE}={observed.name}",
        "desiredReplicas": observed.spec.desired_replicas,
        "replicas": int(workload_status.get("replicas", 0)),
        "readyReplicas": ready,
        "conditions": conditions,
    }
    if observed.spec.category == "ActivePassive":
        holder = lease_holder(observed.lease, observed.pods)
        if holder is not None:
            status["activePod"] = holder["metadata"]["name"]
        lease_spec = (observed.lease or {}).get("spec") or {}
        status["failovers"] = int(lease_spec.get("leaseTransitions") or 0)
        last = failover_record(observed.lease) or observed.previous.get("lastFailover")
        if last:
            status["lastFailover"] = last
        outage = failsafe_record(observed.lease) or observed.previous.get("lastFailsafe")
        if outage:
            status["lastFailsafe"] = outage
    return status


def problem_only(
    previous: dict[str, Any], generation: int, problem: Problem, now: str
) -> dict[str, Any]:
    """The status of an HAService whose children the operator leaves as they are (its spec is
    invalid, or asks for more than this operator may make): Ready=False with the problem, the
    rest as it was."""
    before: dict[str, Any] = next(
        (c for c in previous.get("conditions") or [] if c.get("type") == ConditionType.READY), {}
    )
    unchanged = before.get("status") == "False" and before.get("reason") == problem.reason
    return {
        **previous,
        "observedGeneration": generation,
        "conditions": [
            {
                "type": ConditionType.READY,
                "status": "False",
                "reason": problem.reason,
                "message": problem.message,
                "lastTransitionTime": before.get("lastTransitionTime") if unchanged else now,
                "observedGeneration": generation,
            }
        ],
    }


def is_ready_status(status: dict[str, Any]) -> bool:
    """Whether a status says Ready=True."""
    return condition_true({"status": status}, ConditionType.READY)
