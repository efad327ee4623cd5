"""Pure: everything one reconcile of one HAService should do, from what the operator sees of it
(the World) and remembers of it (the Memory) at the time `now` (epoch seconds).

    plan(world, memory, now) -> Plan

The rules, in the order they write into the plan:
1. gone: forget it (and, the once it was seen deleted, lift its node bans);
2. invalid, or more replicas than this operator may make: report it, touch nothing;
   paused by a user (maintenance): the status and its events only, touch nothing;
3. the children (children.py): apply, adopt, correct drift, withhold, delete;
4. ActivePassive (leadership.py): fence stray active labels, the electing grace; a planned
   switchover asked for on the HAService (switchover.py);
5. recovery (recovery.py): failures, the restart budget, bans, node loss;
6. the status (status.py) and the events its change is news for (transitions.py);
7. the memory to keep and when to look again.

The executor (controller/executor.py) carries the plan out; nothing here does I/O or reads a
clock, so every rule is tested with a World written by hand (tests/unit/test_plan_*.py).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from haoperator.core import render, status, transitions
from haoperator.core.actions import Draft, Plan
from haoperator.core.children import plan_children
from haoperator.core.leadership import Leadership, plan_leadership
from haoperator.core.memory import Memory
from haoperator.core.objects import ObjectRef, deleting, older
from haoperator.core.recovery import forget_bans, plan_recovery
from haoperator.core.status import Problem
from haoperator.core.switchover import plan_switchover
from haoperator.core.times import stamp
from haoperator.core.vocabulary import EventType, Reason
from haoperator.core.world import World

WORKLOADS = ("Deployment", "StatefulSet")
FAILED_CREATE_FRESH = 600.0
"""How long a StatefulSet's FailedCreate event explains its missing pods: its controller retries
with a backoff of minutes, and says it again each time."""


def plan(world: World, memory: Memory, now: float) -> Plan:
    obj = world.haservice
    if obj is None or deleting(obj):
        draft = Draft()
        if world.deleted:
            # Owner references take the children; the node bans are ours to lift.
            forget_bans(draft, world)
        return Plan(steps=draft.ordered_steps(), memory=None)

    ref = ObjectRef.of(obj)
    draft = Draft(about=ref)
    previous = known_status(world, memory)
    if world.spec is None:
        # Admission enforces the same rules, so this means a CRD older than this operator.
        return _unmade(
            draft, world, memory, previous, Problem(Reason.INVALID_SPEC, world.invalid or ""), now
        )
    wanted = world.spec.spec.desired_replicas
    if wanted > world.operator.max_replicas:
        limit = Problem(
            Reason.REPLICAS_ABOVE_LIMIT,
            f"spec.replicas {wanted} is above this operator's limit of "
            f"{world.operator.max_replicas} (haoperator run --max-replicas): children left as "
            "they are",
        )
        return _unmade(draft, world, memory, previous, limit, now)

    if world.paused:
        return _paused(draft, world, memory, previous, now)

    desired = render.desired(world.spec, elector_image=world.operator.elector_image)
    reconciled_before = previous.get("observedGeneration") == world.generation
    refusals = plan_children(draft, world, desired, reconciled_before, memory, now)
    children_done = draft.child_steps()
    leadership = None
    if world.spec.spec.category == "ActivePassive":
        leadership = plan_leadership(draft, world, memory.leaderless_since, now)
    plan_switchover(draft, world, now)  # any category: a request elsewhere is refused
    recovered = plan_recovery(draft, world, memory, now)

    new = status.compute(
        _observed(world, previous, draft.problem, leadership, recovered.limited, now), stamp(now)
    )
    for item in transitions.news(previous, new, memory.elected):
        draft.event(
            item.type,
            item.reason,
            item.message,
            after=children_done,
            failover_seconds=item.failover_seconds,
        )
    if draft.problem is not None and draft.problem_is_news:
        draft.event(EventType.WARNING, draft.problem.reason, draft.problem.message)
    remembered = Memory(
        written=memory.written,
        leaderless_since=leadership.leaderless_since if leadership else None,
        elected=new.get("activePod") or memory.elected,
        failures_reported=recovered.failures_reported,
        losses_reported=recovered.losses_reported,
        refusals=refusals,
        event_counts=memory.event_counts,
        counted=(world.spec.spec.category, status.is_ready_status(new)),
        pod_writes=recovered.pod_writes,
    )
    return Plan(
        steps=draft.ordered_steps(),
        events=tuple(draft.events),
        changes=tuple(draft.changes),
        about=ref,
        status=new,
        status_patch=status_patch(previous, new),
        status_after=children_done,
        memory=remembered,
        problem=draft.problem,
        backoff=draft.backoff,
        requeue_after=None if draft.backoff else draft.requeue_after,
    )


def known_status(world: World, memory: Memory) -> dict[str, Any]:
    """The HAService's status as we know it: our last write while the cache has not seen it yet.
    Without this a reconcile before the watch event would compare against the older status,
    write the same status again and repeat its events."""
    assert world.haservice is not None
    if memory.written is not None:
        version, written = memory.written
        if older(world.haservice["metadata"].get("resourceVersion"), version):
            return dict(written)
    return world.status


def status_patch(current: dict[str, Any], new: dict[str, Any]) -> dict[str, Any] | None:
    """The merge patch from `current` to `new` (fields gone are nulled); None when equal: the idle
    case, nothing written."""
    if new == current:
        return None
    patch: dict[str, Any] = dict.fromkeys((k for k in current if k not in new), None)
    patch.update(new)
    return patch


def _unmade(
    draft: Draft,
    world: World,
    memory: Memory,
    previous: dict[str, Any],
    problem: Problem,
    now: float,
) -> Plan:
    """Report why the children are left as they are; nothing else is done."""
    draft.event(EventType.WARNING, problem.reason, problem.message)
    new = status.problem_only(previous, world.generation, problem, stamp(now))
    return Plan(
        events=tuple(draft.events),
        about=draft.about,
        status=new,
        status_patch=status_patch(previous, new),
        memory=memory,
        problem=problem,
        backoff=True,
    )


def _paused(
    draft: Draft, world: World, memory: Memory, previous: dict[str, Any], now: float
) -> Plan:
    """Maintenance: no child applied or deleted, no pod or node touched, no switchover passed on;
    the status still tells the truth (and says Paused), so `kubectl get has` shows the service
    as it is. What the rules would have done is done when the pause ends."""
    leadership = None
    if world.spec is not None and world.spec.spec.category == "ActivePassive":
        # Read for the status only: its fencing steps go to a draft nobody carries out.
        leadership = plan_leadership(Draft(about=draft.about), world, memory.leaderless_since, now)
    new = status.compute(
        _observed(world, previous, None, leadership, [], now, paused=True), stamp(now)
    )
    for item in transitions.news(previous, new, memory.elected):
        draft.event(item.type, item.reason, item.message, failover_seconds=item.failover_seconds)
    return Plan(
        events=tuple(draft.events),
        about=draft.about,
        status=new,
        status_patch=status_patch(previous, new),
        memory=replace(
            memory,
            leaderless_since=leadership.leaderless_since if leadership else None,
            elected=new.get("activePod") or memory.elected,
            counted=(world.spec.spec.category, status.is_ready_status(new))
            if world.spec is not None
            else memory.counted,
        ),
    )


def _observed(
    world: World,
    previous: dict[str, Any],
    problem: Problem | None,
    leadership: Leadership | None,
    limited: list[str],
    now: float,
    paused: bool = False,
) -> status.Observed:
    assert world.spec is not None
    children = world.children  # the cache, as every status before: not this reconcile's writes
    workload = next((c for (kind, _), c in children.items() if kind in WORKLOADS), None)
    failed_create = None
    if world.failed_create is not None and now - world.failed_create[1] < FAILED_CREATE_FRESH:
        failed_create = world.failed_create[0]
    return status.Observed(
        name=world.spec.name,
        generation=world.generation,
        spec=world.spec.spec,
        workload=workload,
        pods=list(world.pods),
        service_present=("Service", world.spec.name) in children,
        problem=problem,
        previous=previous,
        lease=leadership.lease if leadership else None,
        routed=leadership.routed if leadership else None,
        electing=leadership.electing if leadership else False,
        limited=limited,
        failed_create=failed_create,
        paused=paused,
    )
