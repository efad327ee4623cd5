"""Pure: the recovery policies of `spec.recovery` as decisions over observed pods and nodes.

- Restart budget (systemd StartLimitBurst/IntervalSec, pacemaker migration-threshold and
  failure-timeout): each pod's container restarts are remembered in an annotation on the pod
  itself (`haoperator.dev/restarts`: the restart count seen so far and when each restart
  happened), so the count survives an operator restart. More than `maxRestarts` within
  `windowSeconds` reaches the limit.
- Migrate keeps the service off the node for the window without touching anything else: every
  pod template carries a required node affinity "node has no label avoid.haoperator.dev/<key>";
  banning a node is labelling it (value: when the ban ends), and the crash-looping pod is then
  deleted so its replacement is scheduled elsewhere. No taint (other workloads are untouched),
  no template change (no rollout of the healthy replicas).
- Node loss (pacemaker fencing): a node NotReady/Unknown for `graceSeconds` is lost; its pods of
  this service are reported, and with ForceDelete deleted with grace 0 so their replacements
  start elsewhere (a StatefulSet pod keeps its name and claim).
- Bans end by themselves: whoever reconciles first lifts every expired one (also those of
  HAServices deleted while no operator watched), and an HAService's deletion lifts its own.

It runs inside every reconcile, on the cached pods and nodes, so a crash loop or a lost node is
acted on as soon as a watch event shows it; a window or a grace that has to run out brings the
HAService back through the plan's `requeue_after`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from haoperator.api.behaviour import NodeLossPolicy, RestartPolicy
from haoperator.core.actions import Delete, Draft, Patch
from haoperator.core.leadership import standby
from haoperator.core.memory import Failure, Loss, Memory, newest_failures
from haoperator.core.objects import (
    Object,
    ObjectRef,
    annotations_of,
    condition,
    deleting,
    labels_of,
)
from haoperator.core.times import epoch, stamp
from haoperator.core.vocabulary import (
    Action,
    Annotation,
    ConditionType,
    EventType,
    Label,
    Reason,
    Role,
)
from haoperator.core.world import World

MAX_REMEMBERED = 64
"""Restarts kept in a pod's history annotation."""
SOONEST = 0.5
"""The earliest a recovery deadline brings the HAService back (a deadline just passed, or a
clock a little off, must not spin)."""


def avoid_label(namespace: str, name: str) -> str:
    """The node label that keeps one HAService off a node (a label key's name part is <= 63)."""
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:8]
    return f"{Label.AVOID_PREFIX}{name}-{digest}"


def node_affinity_term(namespace: str, name: str) -> dict[str, Any]:
    return {"key": avoid_label(namespace, name), "operator": "DoesNotExist"}


@dataclass(frozen=True)
class Termination:
    """A container termination worth reporting (PodFailed)."""

    pod: str
    container: str
    exit_code: int
    reason: str
    finished_at: float


def terminations(pod: dict[str, Any]) -> list[Termination]:
    """Abnormal terminations the pod's status shows: the current state or the last one."""
    found = []
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        for where in ("state", "lastState"):
            terminated = (status.get(where) or {}).get("terminated")
            if terminated and terminated.get("exitCode", 0) != 0:
                found.append(
                    Termination(
                        pod=pod["metadata"]["name"],
                        container=status["name"],
                        exit_code=int(terminated["exitCode"]),
                        reason=str(terminated.get("reason") or "Error"),
                        finished_at=epoch(terminated.get("finishedAt")) or 0.0,
                    )
                )
    return found


def restart_count(pod: dict[str, Any]) -> int:
    return sum(
        int(s.get("restartCount", 0))
        for s in (pod.get("status") or {}).get("containerStatuses") or []
    )


@dataclass(frozen=True)
class History:
    seen: int
    times: tuple[float, ...]

    def to_annotation(self) -> str:
        return json.dumps(
            {"seen": self.seen, "times": [round(t, 3) for t in self.times]}, separators=(",", ":")
        )


def history(pod: dict[str, Any]) -> History:
    raw = annotations_of(pod).get(Annotation.RESTARTS)
    try:
        data = json.loads(raw) if raw else {}
        return History(int(data.get("seen", 0)), tuple(float(t) for t in data.get("times", [])))
    except (ValueError, TypeError, AttributeError):
        return History(0, ())


def updated_history(pod: dict[str, Any], now: float, window: float) -> History | None:
    """The pod's restart history with restarts since it was last written; None if unchanged.

    Restarts that happened while nobody watched are dated at the last termination the status
    shows (the best the pod tells us); entries older than the window are dropped.
    """
    before = history(pod)
    total = restart_count(pod)
    if total <= before.seen:
        return None
    last = max((f.finished_at for f in terminations(pod)), default=0.0) or now
    new = before.times + (last,) * (total - before.seen)
    kept = tuple(t for t in new if t > now - window)[-MAX_REMEMBERED:]
    return History(total, kept)


def restarts_in_window(hist: History, now: float, window: float) -> int:
    return sum(1 for t in hist.times if t > now - window)


def node_ready_since(node: dict[str, Any] | None) -> tuple[bool, float | None]:
    """(ready, since when the Ready condition has had its status)."""
    ready = condition(node, ConditionType.READY)
    if ready is None:
        return False, None
    return ready.get("status") == "True", epoch(ready.get("lastTransitionTime"))


def node_lost_for(node: dict[str, Any] | None, now: float) -> float | None:
    """Seconds the node has been NotReady/Unknown; None when it is Ready (or unknown to us)."""
    if node is None:
        return None
    ready, since = node_ready_since(node)
    if ready or since is None:
        return None
    return max(now - since, 0.0)


def ban_expired(value: str, now: float) -> bool:
    try:
        return float(value) <= now
    except ValueError:
        return True


def expired_bans(labels: dict[str, str], now: float) -> list[str]:
    """A node's avoid labels whose ban has run out, whichever HAService they were for."""
    return sorted(
        key
        for key, value in labels.items()
        if key.startswith(Label.AVOID_PREFIX) and ban_expired(value, now)
    )


# -- the rules -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recovered:
    """What the status and the memory need of recovery."""

    limited: list[str]
    """Pods past their restart limit under `onLimit: Notify`."""
    failures_reported: frozenset[Failure]
    losses_reported: frozenset[Loss]


def plan_recovery(draft: Draft, world: World, memory: Memory, now: float) -> Recovered:
    assert world.spec is not None
    spec = world.spec
    lift_bans(draft, world.nodes, avoid_label(spec.namespace, spec.name), now)
    live = [p for p in world.pods if not deleting(p)]
    uids = {_uid(p) for p in world.pods}
    failures = {f for f in memory.failures_reported if f[0] in uids}
    limited: list[str] = []
    for pod in live:
        failures |= report_failures(draft, pod, memory.failures_reported, world.operator.started_at)
        if restart_budget(draft, world, pod, spec.spec.recovery.restart, now):
            limited.append(pod["metadata"]["name"])
    losses = node_loss(draft, world, spec.spec.recovery.node_loss, memory.losses_reported, now)
    return Recovered(limited, newest_failures(failures), losses)


def _uid(pod: Object) -> str:
    return str(pod["metadata"].get("uid", ""))


def report_failures(
    draft: Draft, pod: Object, reported: frozenset[Failure], started_at: float
) -> set[Failure]:
    """PodFailed, on the HAService and on the pod, once per container termination."""
    seen: set[Failure] = set()
    for failure in terminations(pod):
        key = (_uid(pod), failure.container, failure.finished_at)
        seen.add(key)
        # Before we started, it was reported by whoever ran then (or nobody is listening).
        if key in reported or failure.finished_at < started_at - 1:
            continue
        message = (
            f"pod {failure.pod}: container {failure.container} exited with code "
            f"{failure.exit_code} ({failure.reason})"
        )
        draft.event(EventType.WARNING, Reason.POD_FAILED, message, action=Action.POD_FAILED)
        draft.event(EventType.WARNING, Reason.POD_FAILED, message, about=ObjectRef.of(pod))
    return seen


def restart_budget(
    draft: Draft, world: World, pod: Object, policy: RestartPolicy, now: float
) -> bool:
    """Record the pod's new restarts on it; past the limit, migrate it or (Notify) warn. True
    when it is past the limit and only a warning was asked for."""
    assert world.spec is not None
    window = float(policy.window_seconds)
    name = pod["metadata"]["name"]
    updated = updated_history(pod, now, window)
    if updated is not None:
        draft.step(
            Patch(
                "Pod",
                world.spec.namespace,
                name,
                {"metadata": {"annotations": {Annotation.RESTARTS: updated.to_annotation()}}},
            )
        )
    hist = updated or history(pod)
    count = restarts_in_window(hist, now, window)
    if count <= policy.max_restarts:
        if hist.times:
            draft.look_again(max(min(hist.times) + window - now, SOONEST))  # the oldest ages out
        return False
    limit = f"pod {name} restarted more than {policy.max_restarts} times within {int(window)} s"
    if policy.on_limit == "Notify":
        draft.event(
            EventType.WARNING, Reason.RECOVERY_LIMIT_REACHED, limit, action=Action.RECOVERY_LIMIT
        )
        draft.look_again(max(min(hist.times) + window - now, SOONEST))
        return True
    node = (pod.get("spec") or {}).get("nodeName")
    if not node:
        return False
    until = now + window
    ban = draft.step(
        Patch(
            "Node",
            None,
            node,
            {
                "metadata": {
                    "labels": {avoid_label(world.spec.namespace, world.spec.name): str(int(until))}
                }
            },
        )
    )
    delete = draft.step(Delete("Pod", world.spec.namespace, name, pod["metadata"].get("uid")))
    draft.event(
        EventType.WARNING,
        Reason.RECOVERY_LIMIT_REACHED,
        f"{limit}: migrating it",
        after=[ban, delete],
        action=Action.RECOVERY_LIMIT,
    )
    draft.event(
        EventType.NORMAL,
        Reason.POD_MIGRATED,
        f"deleted pod {name} from node {node}; node {node} avoided until {stamp(until)}",
        after=[ban, delete],
        action=Action.POD_MIGRATED,
    )
    draft.look_again(max(window, SOONEST))
    return False


def lift_bans(draft: Draft, nodes: Mapping[str, Object], own: str, now: float) -> None:
    """Lift every ban that has run out — this HAService's, and those of HAServices deleted
    while no operator watched (whoever reconciles first sweeps them) — and come back when
    this one's next ban ends."""
    for name, node in sorted(nodes.items()):
        labels = labels_of(node)
        expired = expired_bans(labels, now)
        if expired:
            draft.step(unlabel(name, expired))
        value = labels.get(own)
        if value is not None and own not in expired:
            draft.look_again(max(float(value) - now, SOONEST))


def forget_bans(draft: Draft, world: World) -> None:
    """The HAService is gone: lift its bans now rather than leave its labels on the nodes."""
    own = avoid_label(*world.key)
    for name, node in sorted(world.nodes.items()):
        if own in labels_of(node):
            draft.step(unlabel(name, [own]))


def unlabel(node: str, keys: list[str]) -> Patch:
    """Remove labels from a node; one gone meanwhile has nothing left to lift."""
    return Patch("Node", None, node, {"metadata": {"labels": dict.fromkeys(keys)}}, missing_ok=True)


def node_loss(
    draft: Draft,
    world: World,
    policy: NodeLossPolicy,
    reported: frozenset[Loss],
    now: float,
) -> frozenset[Loss]:
    """Pods on a node lost for longer than the grace: reported once per loss, no longer
    active (ActivePassive), and with ForceDelete deleted at once. The losses still going on."""
    assert world.spec is not None
    by_node: dict[str, list[Object]] = {}
    for pod in world.pods:  # those being deleted too: on a lost node they are stuck so
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            by_node.setdefault(node, []).append(pod)
    ongoing: set[Loss] = set()
    for node, on_it in sorted(by_node.items()):
        lost_for = node_lost_for(world.nodes.get(node), now)
        if lost_for is None:
            continue  # Ready (again): never act
        if lost_for < policy.grace_seconds:
            draft.look_again(max(policy.grace_seconds - lost_for, SOONEST))
            continue
        loss = (node, round(now - lost_for, 3))
        ongoing.add(loss)
        names = sorted(p["metadata"]["name"] for p in on_it)
        if loss not in reported:
            draft.event(
                EventType.WARNING,
                Reason.NODE_LOST,
                f"node {node} has been NotReady for more than {policy.grace_seconds} s; "
                f"it runs pods {', '.join(names)}",
                action=Action.NODE_LOST,
            )
        for pod in on_it:
            if (
                world.spec.spec.category == "ActivePassive"
                and labels_of(pod).get(Label.ROLE) == Role.ACTIVE
            ):
                draft.step(standby(pod))
            if policy.action != "ForceDelete":
                continue
            name = pod["metadata"]["name"]
            step = draft.step(
                Delete("Pod", world.spec.namespace, name, pod["metadata"].get("uid"), grace=0)
            )
            draft.event(
                EventType.WARNING,
                Reason.POD_FORCE_DELETED,
                f"force-deleted pod {name} from lost node {node}",
                after=[step],
                changed=True,
                action=Action.POD_FORCE_DELETED,
            )
    return frozenset(ongoing)
