"""Pure: the HAService's status from what the operator observed of its children and pods.

The rules are API.md's: `Ready` says the service can serve (LoadBalanced/QueueWorker: enough
replicas ready for the disruption budget; Clustered: a quorum ready; ActivePassive: exactly one
ready pod labelled active behind the Service), `Progressing` that children are being created or
rolled, `Degraded` that fewer replicas are ready than desired, `QuorumLost` (Clustered) that fewer
than a quorum are. A condition keeps its lastTransitionTime while its status does not change, so
recomputing an unchanged world yields an identical status, and the operator writes nothing.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from haoperator.api import DEFAULT_CLUSTERED_REPLICAS, DEFAULT_REPLICAS, HAServiceSpec

ROLE_LABEL = "haoperator.dev/role"
FAILOVER_ANNOTATION = "haoperator.dev/last-failover"
SERVICE_LABEL = "haoperator.dev/service"


@dataclass(frozen=True)
class Problem:
    """Why the operator could not make the children as asked (InvalidSpec, NameConflict)."""

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
    failing_over: bool = False
    """ActivePassive: no active pod, but for less than a lease duration (a handover)."""
    limited: list[str] = field(default_factory=list)
    """Pods past their restart limit under `recovery.restart.onLimit: Notify`."""


def desired_replicas(spec: HAServiceSpec) -> int:
    if spec.replicas is not None:
        return spec.replicas
    return DEFAULT_CLUSTERED_REPLICAS if spec.category == "Clustered" else DEFAULT_REPLICAS


def quorum(spec: HAServiceSpec) -> int:
    """Majority = floor(n/2)+1, All = n, or the integer given."""
    replicas = desired_replicas(spec)
    wanted = spec.clustered.quorum if spec.clustered else "Majority"
    if wanted == "Majority":
        return replicas // 2 + 1
    if wanted == "All":
        return replicas
    return int(wanted)


def max_unavailable(spec: HAServiceSpec) -> int:
    """The disruption budget as a count; a percentage rounds up, as the PDB controller does."""
    value = spec.disruption.max_unavailable if spec.disruption else 1
    replicas = desired_replicas(spec)
    if isinstance(value, str):
        return math.ceil(int(value.rstrip("%")) * replicas / 100)
    return value


def is_ready(pod: dict[str, Any]) -> bool:
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _condition(type_: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
    }


def _ready(observed: Observed, ready: int) -> dict[str, Any]:
    spec = observed.spec
    if observed.problem:
        return _condition("Ready", False, observed.problem.reason, observed.problem.message)
    if observed.workload is None:
        return _condition("Ready", False, "Creating", "the workload is being created")
    replicas = desired_replicas(spec)
    if spec.category == "Clustered":
        need = quorum(spec)
        if ready >= need:
            return _condition(
                "Ready", True, "QuorumReached", f"{ready}/{replicas} members ready (quorum {need})"
            )
        return _condition(
            "Ready",
            False,
            "Forming" if forming(observed) else "QuorumLost",
            f"{ready}/{replicas} members ready, quorum is {need}",
        )
    if spec.category == "ActivePassive":
        return _active_passive_ready(observed)
    need = max(replicas - max_unavailable(spec), 0)
    if replicas and ready >= max(need, 1):
        reason = "AllReplicasReady" if ready >= replicas else "MinimumReplicasReady"
        return _condition("Ready", True, reason, f"{ready}/{replicas} replicas ready (need {need})")
    return _condition(
        "Ready", False, "NotEnoughReplicas", f"{ready}/{replicas} replicas ready, need {need}"
    )


def active_pods(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        p
        for p in pods
        if (p.get("metadata", {}).get("labels") or {}).get(ROLE_LABEL) == "active"
        and not p.get("metadata", {}).get("deletionTimestamp")
    ]


def _active_passive_ready(observed: Observed) -> dict[str, Any]:
    active = [p for p in active_pods(observed.pods) if is_ready(p)]
    if len(active) > 1:
        names = ", ".join(sorted(p["metadata"]["name"] for p in active))
        return _condition("Ready", False, "SplitBrain", f"more than one active pod: {names}")
    if not active:
        if observed.failing_over:
            return _condition("Ready", True, "FailingOver", "the active role is changing hands")
        return _condition("Ready", False, "NoActivePod", "no ready pod holds the active role")
    name = active[0]["metadata"]["name"]
    if observed.spec.service is not None:
        if not observed.service_present:
            return _condition(
                "Ready", False, "ServiceMissing", f"pod {name} is active, no Service yet"
            )
        if observed.routed != {name}:
            routed = ", ".join(sorted(observed.routed or [])) or "no pod"
            return _condition(
                "Ready", False, "NotRouted", f"pod {name} is active; the Service routes to {routed}"
            )
    return _condition("Ready", True, "ActivePodReady", f"pod {name} is active and ready")


def failover_record(lease: dict[str, Any] | None) -> dict[str, Any] | None:
    """The last takeover the electors recorded on the Lease, as status.lastFailover."""
    if not lease:
        return None
    raw = (lease.get("metadata", {}).get("annotations") or {}).get(FAILOVER_ANNOTATION)
    if not raw:
        return None
    try:
        record = json.loads(raw)
        return {
            "time": str(record["time"]),
            "from": str(record["from"]),
            "to": str(record["to"]),
            "seconds": float(record["seconds"]),
        }
    except (ValueError, KeyError, TypeError):
        return None


def _progressing(observed: Observed) -> dict[str, Any]:
    if observed.problem:
        return _condition("Progressing", False, observed.problem.reason, observed.problem.message)
    workload = observed.workload
    if workload is None:
        return _condition("Progressing", True, "Creating", "the workload is being created")
    status = workload.get("status") or {}
    generation = workload.get("metadata", {}).get("generation", 0)
    replicas = desired_replicas(observed.spec)
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
            "Progressing", True, "RollingOut", f"{updated}/{replicas} replicas up to date"
        )
    return _condition("Progressing", False, "Stable", "all replicas are up to date")


def _degraded(observed: Observed, ready: int) -> dict[str, Any]:
    replicas = desired_replicas(observed.spec)
    if observed.limited:
        restart = observed.spec.recovery.restart
        return _condition(
            "Degraded",
            True,
            "RecoveryLimitReached",
            f"{', '.join(sorted(observed.limited))} restarted more than {restart.max_restarts} "
            f"times within {restart.window_seconds} s",
        )
    if ready < replicas:
        return _condition(
            "Degraded", True, "ReplicasUnavailable", f"{ready}/{replicas} replicas ready"
        )
    return _condition("Degraded", False, "AllReplicasReady", f"{ready}/{replicas} replicas ready")


def forming(observed: Observed) -> bool:
    """A cluster that has never had its quorum yet is forming, not one that lost it."""
    for condition in observed.previous.get("conditions") or []:
        if condition.get("type") == "QuorumLost":
            return bool(condition.get("reason") == "Forming")
    return True


def _quorum_lost(observed: Observed, ready: int) -> dict[str, Any]:
    need = quorum(observed.spec)
    if ready < need:
        reason = "Forming" if forming(observed) else "QuorumLost"
        return _condition("QuorumLost", True, reason, f"{ready} members ready, quorum {need}")
    return _condition("QuorumLost", False, "QuorumReached", f"{ready} members ready, quorum {need}")


def compute(observed: Observed, now: str) -> dict[str, Any]:
    """The full status for `observed`; `now` stamps conditions whose status changed."""
    workload_status = (observed.workload or {}).get("status") or {}
    ready = int(workload_status.get("readyReplicas", 0))
    conditions = [
        _ready(observed, ready),
        _progressing(observed),
        _degraded(observed, ready),
    ]
    if observed.spec.category == "Clustered":
        conditions.append(_quorum_lost(observed, ready))
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
        "selector": f"{SERVICE_LABEL}={observed.name}",
        "replicas": int(workload_status.get("replicas", 0)),
        "readyReplicas": ready,
        "conditions": conditions,
    }
    if observed.spec.category == "ActivePassive":
        active = [p for p in active_pods(observed.pods) if is_ready(p)]
        if len(active) == 1:
            status["activePod"] = active[0]["metadata"]["name"]
        lease_spec = (observed.lease or {}).get("spec") or {}
        status["failovers"] = int(lease_spec.get("leaseTransitions") or 0)
        last = failover_record(observed.lease) or observed.previous.get("lastFailover")
        if last:
            status["lastFailover"] = last
    return status
