"""Pure: what an elector should do next, from the Lease as last observed and its own state.

Kept apart from the I/O so the safety rules can be read and tested on their own:
- a holder's Lease is valid for leaseDurationSeconds after *this* process observed its last
  change (local monotonic time, as client-go does: immune to clock skew between nodes);
- a leader is a leader only while its last successful renew is younger than the renew deadline,
  which is shorter than the lease: it stops acting before anyone else may start, and a process
  that was frozen (SIGSTOP, a long GC, a stalled VM) finds out before it acts on resuming;
- a free Lease (released on SIGTERM) is taken at once, except that a handover named for another
  pod (preempt) is left to that pod for two retry periods.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Action(Enum):
    CREATE = "create"  # no Lease yet
    ACQUIRE = "acquire"  # free or expired: take it
    RENEW = "renew"  # ours, and a retry period since the last renew: extend it
    STEP_DOWN = "step-down"  # we believed we led, but can no longer be sure
    WAIT = "wait"  # someone else holds a valid Lease


@dataclass(frozen=True)
class Timing:
    lease_duration: float = 5.0
    renew_deadline: float = 3.0
    retry_period: float = 1.0


@dataclass(frozen=True)
class Observed:
    """The Lease as this process saw it, and when (monotonic seconds)."""

    holder: str | None
    lease_duration: float
    observed_at: float
    handover_to: str | None = None


@dataclass(frozen=True)
class Decision:
    action: Action
    wait: float  # seconds until the next look, unless an event wakes us sooner


def leading(is_leader: bool, last_renew: float, now: float, timing: Timing) -> bool:
    """True only while the last successful renew is younger than the renew deadline."""
    return is_leader and now - last_renew < timing.renew_deadline


def decide(
    me: str,
    lease: Observed | None,
    *,
    is_leader: bool,
    last_renew: float,
    now: float,
    timing: Timing,
) -> Decision:
    if is_leader and not leading(is_leader, last_renew, now, timing):
        return Decision(Action.STEP_DOWN, 0.0)
    if lease is None:
        return Decision(Action.CREATE, timing.retry_period)
    if lease.holder == me:
        if is_leader:
            # On schedule, whatever woke us: our own renew echoing back through the watch
            # must not trigger the next one at once.
            due = last_renew + timing.retry_period
            if now < due:
                return Decision(Action.WAIT, due - now)
            return Decision(Action.RENEW, timing.retry_period)
        # The Lease names us but we do not lead (a restart within the lease): take it back
        # through a normal acquire, which fences any other active pod first.
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


def preferred(candidates: list[tuple[str, str]]) -> str | None:
    """With preempt, the pod that should lead: the oldest ready pod (creation time, then name).

    The oldest pod is the one that was there first, so when the leader that lost the role to a
    pause or a partition comes back, it takes it back, as keepalived's priority does.
    """
    return min(candidates)[1] if candidates else None
