"""Pure: the recovery policies of `spec.recovery` as decisions over observed pods and nodes.

- Restart budget (systemd StartLimitBurst/IntervalSec, pacemaker migration-threshold and
  failure-timeout): each pod's container restarts are remembered in an annotation on the pod
  itself (`haoperator.dev/restarts`: the restart count seen so far, when each restart within
  the window happened, and when RecoveryLimitReached was last said for it), so the count and
  the warning survive an operator restart. More than `maxRestarts` within `windowSeconds`
  reaches the limit.
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

What a pod that keeps failing costs (W = `windowSeconds`, M = `maxRestarts`), however many
reconciles its restarts wake (tests/unit/test_crash_loop_bounds.py checks these on simulated
crash loops, tests/integration/test_crash_loop.py on the API server):

- the restart history: at most one pod patch per restart (the warning's mark rides along, or
  costs one patch of its own once per W), never the same value twice; at most MAX_REMEMBERED
  times (under 1 KiB), or M + 1 when the budget M is larger;
- PodFailed: once per container termination while the pod is within its budget, so at most
  M + 1 per pod within any W, each on the HAService and on the pod (one aggregated Event each,
  its count bumped); past the budget, RecoveryLimitReached speaks for the rest;
- Notify: RecoveryLimitReached at most once per pod per W (the pod's annotation says when, so an
  operator restart does not repeat it); the Degraded condition changes only when a pod crosses
  the limit, either way (its message carries no count);
- Migrate: per migration one node patch (the ban), one pod deletion, RecoveryLimitReached and
  PodMigrated once; a node stays banned for W, so at most one migration per node per W;
- node loss: NodeLost once per loss (not at all when its grace ran out before this operator
  started: whoever ran then said it), the force-deletion and PodForceDeleted once per pod;
- requeues only at a deadline: the limit clearing (Notify), a ban ending, a node-loss grace
  running out, a write the cache should have shown (below); never for a restart under the
  limit leaving the window, never sooner than SOONEST.

A reconcile woken before the watch shows our own write (another object's event came first)
must neither repeat that write nor its events: a write to a pod is remembered (`Memory.pod_writes`)
until the cached pod shows it, for PENDING_SECONDS at most; a write still not shown by then is
taken as failed and made again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from haoperator.api.behaviour import NodeLossPolicy, RestartPolicy
from haoperator.core.actions import Delete, Draft, Patch, StepId
from haoperator.core.leadership import standby
from haoperator.core.memory import (
    PENDING_SECONDS,
    Failure,
    Loss,
    Memory,
    PodWrite,
    newest_failures,
)
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
    """A pod's restart history, as its annotation keeps it."""

    seen: int
    """The pod's restart count (all containers) when last written."""
    times: tuple[float, ...]
    """When each restart within the window happened, oldest first (MAX_REMEMBERED at most)."""
    warned: float | None = None
    """When RecoveryLimitReached was last said for this pod (`onLimit: Notify`)."""

    def to_annotation(self) -> str:
        data: dict[str, Any] = {"seen": self.seen, "times": [round(t, 3) for t in self.times]}
        if self.warned is not None:
            data["warned"] = round(self.warned, 3)
        return json.dumps(data, separators=(",", ":"))


def parse_history(raw: str | None) -> History:
    try:
        data = json.loads(raw) if raw else {}
        warned = data.get("warned")
        return History(
            int(data.get("seen", 0)),
            tuple(float(t) for t in data.get("times", [])),
            None if warned is None else float(warned),
        )
    except (ValueError, TypeError, AttributeError):
        return History(0, ())


def history(pod: dict[str, Any]) -> History:
    return parse_history(annotations_of(pod).get(Annotation.RESTARTS))


def updated_history(
    pod: dict[str, Any],
    now: float,
    window: float,
    before: History | None = None,
    keep: int = MAX_REMEMBERED,
) -> History | None:
    """The pod's restart history (`before`: as its annotation has it) with the restarts since it
    was last written; None if there are none.

    Restarts that happened while nobody watched are dated at the last termination the status
    shows (the best the pod tells us); entries older than the window are dropped.
    """
    before = history(pod) if before is None else before
    total = restart_count(pod)
    if total <= before.seen:
        return None
    last = max((f.finished_at for f in terminations(pod)), default=0.0) or now
    new = before.times + (last,) * (total - before.seen)
    recent = tuple(t for t in new if t > now - window)[-keep:]
    return History(total, recent, before.warned)


def over_limit_until(hist: History, now: float, window: float, max_restarts: int) -> float | None:
    """When the pod's restarts within the window fall back to `max_restarts` (its
    (max_restarts + 1)-th newest restart leaves the window); None when they are not above it."""
    recent = sorted((t for t in hist.times if t > now - window), reverse=True)
    if len(recent) <= max_restarts:
        return None
    return recent[max_restarts] + window


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
    pod_writes: Mapping[str, PodWrite] = field(default_factory=dict)
    """This reconcile's recovery writes to pods, and the earlier ones the cache does not show
    yet."""


def plan_recovery(draft: Draft, world: World, memory: Memory, now: float) -> Recovered:
    assert world.spec is not None
    spec = world.spec
    policy = spec.spec.recovery.restart
    lift_bans(draft, world.nodes, avoid_label(spec.namespace, spec.name), now)
    live = [p for p in world.pods if not deleting(p)]
    by_uid = {_uid(p): p for p in world.pods}
    failures = {f for f in memory.failures_reported if f[0] in by_uid}
    writes = pending_writes(draft, memory, by_uid, now)
    limited: list[str] = []
    for pod in live:
        uid = _uid(pod)
        written = writes.get(uid)
        recorded, hist = pod_history(
            pod, written, now, float(policy.window_seconds), history_length(policy.max_restarts)
        )
        failures |= report_failures(
            draft, pod, memory.failures_reported, world.operator.started_at, hist, policy
        )
        over, write = restart_budget(draft, world, pod, policy, now, recorded, hist, written)
        if over:
            limited.append(pod["metadata"]["name"])
        if write is not None:
            writes[uid] = write
    losses = node_loss(draft, world, spec.spec.recovery.node_loss, memory, writes, now)
    return Recovered(limited, newest_failures(failures), losses, writes)


def _uid(pod: Object) -> str:
    return str(pod["metadata"].get("uid", ""))


def pending_writes(
    draft: Draft, memory: Memory, pods: Mapping[str, Object], now: float
) -> dict[str, PodWrite]:
    """Our recovery writes to pods that the cache does not show yet (read-your-writes); come
    back when the oldest is given up on, to make it again if it was not made."""
    kept = {
        uid: write
        for uid, write in memory.pod_writes.items()
        if uid in pods and write.pending(pods[uid], now)
    }
    for write in kept.values():
        draft.look_again(max(write.at + PENDING_SECONDS - now, SOONEST))
    return kept


def history_length(max_restarts: int) -> int:
    """Restart times a history keeps: enough to tell when more than `max_restarts` fall within
    the window (past MAX_REMEMBERED, the annotation grows by ~15 bytes a restart)."""
    return max(MAX_REMEMBERED, max_restarts + 1)


def pod_history(
    pod: Object, written: PodWrite | None, now: float, window: float, keep: int = MAX_REMEMBERED
) -> tuple[History, History]:
    """(the restart history as the pod has it, or will once the cache shows our write; the same
    with the restarts since)."""
    raw = annotations_of(pod).get(Annotation.RESTARTS)
    if written is not None and written.restarts is not None:
        raw = written.restarts
    recorded = parse_history(raw)
    return recorded, updated_history(pod, now, window, recorded, keep) or recorded


def report_failures(
    draft: Draft,
    pod: Object,
    reported: frozenset[Failure],
    started_at: float,
    hist: History,
    policy: RestartPolicy,
) -> set[Failure]:
    """PodFailed, on the HAService and on the pod, once per container termination, while the
    pod is within its restart budget: a termination after more than `maxRestarts` restarts
    within the window is left to RecoveryLimitReached (said once per window). Every termination
    shown, reported or not."""
    window = float(policy.window_seconds)
    seen: set[Failure] = set()
    for failure in terminations(pod):
        key = (_uid(pod), failure.container, failure.finished_at)
        seen.add(key)
        # Before we started, it was reported by whoever ran then (or nobody is listening).
        if key in reported or failure.finished_at < started_at - 1:
            continue
        earlier = sum(
            1 for t in hist.times if failure.finished_at - window < t < failure.finished_at
        )
        if earlier > policy.max_restarts:
            continue
        message = (
            f"pod {failure.pod}: container {failure.container} exited with code "
            f"{failure.exit_code} ({failure.reason})"
        )
        draft.event(EventType.WARNING, Reason.POD_FAILED, message, action=Action.POD_FAILED)
        draft.event(EventType.WARNING, Reason.POD_FAILED, message, about=ObjectRef.of(pod))
    return seen


def restart_budget(
    draft: Draft,
    world: World,
    pod: Object,
    policy: RestartPolicy,
    now: float,
    recorded: History,
    hist: History,
    written: PodWrite | None,
) -> tuple[bool, PodWrite | None]:
    """Record the pod's new restarts on it (`hist`, against `recorded`); past the limit, migrate
    it or (Notify) warn, once per window. (Whether it is past the limit and only a warning was
    asked for; the write to remember, None when there is none.)"""
    assert world.spec is not None
    if written is not None and written.deleted:
        return False, written  # migrated: the cache has not shown it deleting yet
    window = float(policy.window_seconds)
    name = pod["metadata"]["name"]
    over_until = over_limit_until(hist, now, window, policy.max_restarts)
    node = (pod.get("spec") or {}).get("nodeName")
    notify = over_until is not None and policy.on_limit == "Notify"
    warn = notify and (hist.warned is None or hist.warned <= now - window)
    if warn:
        hist = replace(hist, warned=now)
    patched: list[StepId] = []
    if hist != recorded:
        text = hist.to_annotation()
        patch = {"metadata": {"annotations": {Annotation.RESTARTS: text}}}
        patched.append(draft.step(Patch("Pod", world.spec.namespace, name, patch)))
        written = PodWrite(now, restarts=text)
    limit = f"pod {name} restarted more than {policy.max_restarts} times within {int(window)} s"
    if notify:
        assert over_until is not None
        if warn:
            draft.event(
                EventType.WARNING,
                Reason.RECOVERY_LIMIT_REACHED,
                limit,
                after=patched,
                action=Action.RECOVERY_LIMIT,
            )
        draft.look_again(max(over_until - now, SOONEST))  # Degraded clears then
        return True, written
    if over_until is None or not node:
        return False, written
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
    return False, PodWrite(now, restarts=written.restarts if written else None, deleted=True)


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
    memory: Memory,
    writes: dict[str, PodWrite],
    now: float,
) -> frozenset[Loss]:
    """Pods on a node lost for longer than the grace: reported once per loss (a loss whose
    grace ran out before this operator started was reported by whoever ran then), no longer
    active (ActivePassive), and with ForceDelete deleted at once (once: `writes` remembers it
    until the cache shows the pod gone). The losses still going on."""
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
        news = loss[1] + policy.grace_seconds >= world.operator.started_at - 1
        if loss not in memory.losses_reported and news:
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
            uid = _uid(pod)
            earlier = writes.get(uid)
            if earlier is not None and earlier.forced:
                continue  # deleted already; the cache has not shown it gone yet
            name = pod["metadata"]["name"]
            step = draft.step(
                Delete("Pod", world.spec.namespace, name, pod["metadata"].get("uid"), grace=0)
            )
            writes[uid] = PodWrite(now, deleted=True, forced=True)
            draft.event(
                EventType.WARNING,
                Reason.POD_FORCE_DELETED,
                f"force-deleted pod {name} from lost node {node}",
                after=[step],
                changed=True,
                action=Action.POD_FORCE_DELETED,
            )
    return frozenset(ongoing)
