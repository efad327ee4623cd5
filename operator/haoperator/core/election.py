"""Pure: what an elector should do next, from the Lease and its own pod as last observed.

Kept apart from the I/O so the safety rules can be read and tested on their own:
- a holder's Lease is valid for leaseDurationSeconds after *this* process observed its last
  change (local monotonic time, as client-go does: immune to clock skew between nodes);
- a leader is a leader only while its last successful renew is younger than the renew deadline,
  which is shorter than the lease: it stops acting before anyone else may start, and a process
  that was frozen (SIGSTOP, a long GC, a stalled VM) finds out before it acts on resuming;
- winning the Lease is not leading yet: the winner leads only once every other pod is fenced and
  its own pod labelled active, so /leader never says 200 while the Service routes elsewhere or
  nowhere; until then it keeps the Lease and retries the whole acquisition every retry period;
- the role label is a level, not an event: a leader keeps its own pod `active` and anyone else
  keeps it `standby`, whoever removed or added the label meanwhile;
- only a Lease labelled for this service is ours: another controller's Lease of the same name
  is never written, whatever it says;
- a free Lease (released on SIGTERM) is taken at once, except that a handover named for another
  pod (preempt) is left to that pod for two retry periods;
- a pod being deleted gives the Lease up as soon as it sees its deletion, and never takes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from haoperator.core.vocabulary import OPERATOR, Label, Role


class Action(Enum):
    CREATE = "create"  # no Lease yet
    ACQUIRE = "acquire"  # free, expired, or naming us while we do not lead: take it
    RENEW = "renew"  # ours, and a retry period since the last renew: extend it
    STEP_DOWN = "step-down"  # we believed we led, but can no longer be sure
    RELEASE = "release"  # our pod is being deleted: stand down and free the Lease now
    WAIT = "wait"  # someone else holds a valid Lease, or the Lease is not ours to touch


@dataclass(frozen=True)
class Timing:
    lease_duration: float = 5.0
    renew_deadline: float = 3.0
    retry_period: float = 1.0


@dataclass(frozen=True)
class SeenLease:
    """The Lease as this process saw it, and when (monotonic seconds)."""

    holder: str | None
    lease_duration: float
    observed_at: float
    handover_to: str | None = None
    foreign: str | None = None  # why the Lease is not ours (see `foreign`); None when it is


@dataclass(frozen=True)
class Decision:
    action: Action
    wait: float  # seconds until the next look, unless an event wakes us sooner


def leading(is_leader: bool, last_renew: float, now: float, timing: Timing) -> bool:
    """True only while the last successful renew is younger than the renew deadline."""
    return is_leader and now - last_renew < timing.renew_deadline


def foreign(
    labels: Mapping[str, str], lease: str, controller: Mapping[str, str] | None = None
) -> str | None:
    """Why a Lease named `lease` is not ours to contend for, or None when it is.

    Ours carries `haoperator.dev/service=<lease>` and `app.kubernetes.io/managed-by=haoperator`
    (the operator and the electors both set them when they create it; the operator adopts an
    orphan only with both) and, if anything controls it, it is the HAService of that name. A
    Lease of that name otherwise belongs to someone else (another controller's leader election,
    say): taking it over would break them, so it is left alone and the HAService reports
    NameConflict.
    """
    for key, want in ((Label.SERVICE, lease), (Label.MANAGED_BY, OPERATOR)):
        value = labels.get(key)
        if value is None:
            return f"it lacks the label {key}={want}"
        if value != want:
            return f"its label {key} is {value!r}, not {want!r}"
    if controller is not None and (
        controller.get("kind") != "HAService" or controller.get("name") != lease
    ):
        return f"it belongs to {controller.get('kind')} {controller.get('name')}"
    return None


def decide(
    me: str,
    lease: SeenLease | None,
    *,
    is_leader: bool,
    last_renew: float,
    now: float,
    timing: Timing,
    terminating: bool = False,
) -> Decision:
    if is_leader and not leading(is_leader, last_renew, now, timing):
        return Decision(Action.STEP_DOWN, 0.0)
    if terminating:
        # Our pod is being deleted: the Service already stopped routing to it (a terminating
        # endpoint is not ready), and a native sidecar hears SIGTERM only after the application
        # has exited, which can take its whole grace period. Free the Lease now; never take it.
        named = lease is not None and not lease.foreign and lease.holder == me
        return Decision(Action.RELEASE if is_leader or named else Action.WAIT, timing.retry_period)
    if lease is None:
        return Decision(Action.CREATE, timing.retry_period)
    if lease.foreign:
        # Not ours (any more): never write it; a leader stops, the rest wait for news (it may
        # be deleted and replaced by ours).
        return Decision(Action.STEP_DOWN if is_leader else Action.WAIT, timing.retry_period)
    if lease.holder == me:
        if is_leader:
            # On schedule, whatever woke us: our own renew echoing back through the watch
            # must not trigger the next one at once.
            due = last_renew + timing.retry_period
            if now < due:
                return Decision(Action.WAIT, due - now)
            return Decision(Action.RENEW, timing.retry_period)
        # The Lease names us but we do not lead (a restart within the lease, or a win whose
        # fencing or labelling failed): take it again through a normal acquire, which renews it,
        # fences any other active pod and labels ours, every retry period until all succeed.
        return Decision(Action.ACQUIRE, timing.retry_period)
    if is_leader:
        # Someone else holds it while we think we lead: the Lease moved on without us.
        return Decision(Action.STEP_DOWN, 0.0)
    if not lease.holder:
        if (
            lease.handover_to
            and lease.handover_to != me
            and now - lease.observed_at < 2 * timing.retry_period
        ):
            return Decision(Action.WAIT, lease.observed_at + 2 * timing.retry_period - now)
        return Decision(Action.ACQUIRE, timing.retry_period)
    expires = lease.observed_at + lease.lease_duration
    if now >= expires:
        return Decision(Action.ACQUIRE, timing.retry_period)
    return Decision(Action.WAIT, min(timing.retry_period, expires - now))


@dataclass(frozen=True)
class Takeover:
    """What an acquire records on the Lease."""

    failover_from: str | None  # the other pod that held or released it: a failover to record
    transitions: int  # leaseTransitions after the acquire
    retake: bool  # the Lease still names us: the same term, so acquireTime is kept


def takeover(me: str, holder: str | None, released_by: str | None, transitions: int) -> Takeover:
    """Taking back a Lease that names us (a retried acquisition, a restart within the lease) is
    not a transition: counting it would report a failover nobody saw; client-go does the same."""
    previous = holder or released_by
    failover_from = previous if previous and previous != me else None
    return Takeover(
        failover_from=failover_from,
        transitions=transitions + (1 if failover_from else 0),
        retake=holder == me,
    )


def role_to_write(leader: bool, label: str | None, *, synced: bool) -> str | None:
    """The role label to write on our own pod, or None when it is right already.

    `label` is the role on the newest copy of our pod we have (None: no label, or no copy);
    `synced`, whether the pod watch is following it now. A leader that cannot be sure its label
    is there (watch not synced) writes it anyway: without it the Service routes to nobody. Anyone
    else writes `standby` when its copy says otherwise (removing `active` is always safe); a
    stray `active` written while its watch was down is the operator's to remove, as it removes
    `active` from any pod that does not hold the Lease.
    `leader` must be `leading(...)` at the time of the write, never a remembered value: a process
    paused past its renew deadline may have been fenced by the new leader meanwhile.
    """
    if leader:
        return Role.ACTIVE if label != Role.ACTIVE or not synced else None
    return Role.STANDBY if label != Role.STANDBY else None


def preferred(candidates: list[tuple[str, str]]) -> str | None:
    """With preempt, the pod that should lead: the oldest ready pod (creation time, then name).

    The oldest pod is the one that was there first, so when the leader that lost the role to a
    pause or a partition comes back, it takes it back, as keepalived's priority does.
    """
    return min(candidates)[1] if candidates else None
