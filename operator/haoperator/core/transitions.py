"""Pure: the events a change of status is news for, from the status before and after.

Said once per change, not on every reconcile that finds the same state: a cluster that loses
its quorum (QuorumLost) and gets it back (QuorumRestored), but not one still forming; a new
active pod (FailoverCompleted with the seconds the electors measured, or LeaderElected for the
first); Degraded turning to a reason that needs someone to look (WARNED_REASONS).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from haoperator.core.objects import condition
from haoperator.core.vocabulary import ConditionType, EventType, FailoverReason, Reason

WARNED_REASONS = (
    Reason.PODS_CANNOT_BE_CREATED,
    Reason.PODS_UNSCHEDULABLE,
    Reason.NO_ACTIVE_POD,
    Reason.LEADER_NOT_LABELLED,
    Reason.ACTIVE_POD_UNHEALTHY,
)
"""Degraded reasons that are news the moment they appear: a Warning event says so, once."""

Status = dict[str, Any]


@dataclass(frozen=True)
class News:
    type: str
    reason: str
    message: str
    failover_seconds: float | None = None


def news(before: Status, after: Status, elected: str | None = None) -> list[News]:
    """Every event the change from `before` to `after` calls for; `elected`: the last pod seen
    active (see leadership)."""
    return [
        *leadership(before, after, elected),
        *failsafe(before, after),
        *quorum(before, after),
        *warnings(before, after),
        *pause(before, after),
    ]


def pause(before: Status, after: Status) -> list[News]:
    """A user paused the operator for this HAService, or resumed it: one event each."""
    was = bool(_condition(before, ConditionType.PAUSED))
    now = _condition(after, ConditionType.PAUSED)
    if now and not was:
        return [News(EventType.NORMAL, Reason.PAUSED, str(now.get("message", "")))]
    if was and not now:
        return [
            News(
                EventType.NORMAL,
                Reason.RESUMED,
                "the pause is over: the operator manages the children, pods and nodes again "
                "(any drift is corrected and reported)",
            )
        ]
    return []


def failsafe(before: Status, after: Status) -> list[News]:
    """The active pod kept its role through an outage of the API server (its elector's record)."""
    last = after.get("lastFailsafe")
    if not last or last == before.get("lastFailsafe"):
        return []
    return [
        News(
            EventType.NORMAL,
            Reason.FAILSAFE_HELD,
            f"pod {last['pod']} kept the active role through {float(last['seconds']):.1f} s "
            f"without the API server, confirmed by {last['peers']} other pod(s) every retry period",
        )
    ]


def _condition(status: Status, type_: str) -> dict[str, Any]:
    return condition({"status": status}, type_) or {}


def warnings(before: Status, after: Status) -> list[News]:
    """Degraded turning to a reason of WARNED_REASONS."""
    was, now = _condition(before, ConditionType.DEGRADED), _condition(after, ConditionType.DEGRADED)
    if now.get("status") != "True" or now.get("reason") not in WARNED_REASONS:
        return []
    if was.get("status") == "True" and was.get("reason") == now.get("reason"):
        return []
    return [News(EventType.WARNING, str(now["reason"]), str(now["message"]))]


def _lost(status: Status) -> bool | None:
    """True: quorum lost (after having had it); False: quorate; None: unknown or forming."""
    found = _condition(status, ConditionType.QUORUM_LOST)
    if not found or found.get("reason") == Reason.FORMING:
        return None
    return bool(found.get("status") == "True")


def quorum(before: Status, after: Status) -> list[News]:
    was, now = _lost(before), _lost(after)
    message = str(_condition(after, ConditionType.QUORUM_LOST).get("message", ""))
    if now and was is False:  # had quorum and lost it (not: still forming)
        return [News(EventType.WARNING, Reason.QUORUM_LOST, message)]
    if was and now is False:
        return [News(EventType.NORMAL, Reason.QUORUM_RESTORED, message)]
    return []


def leadership(before: Status, after: Status, elected: str | None = None) -> list[News]:
    """FailoverCompleted (or SwitchoverCompleted) for each new failover record; LeaderElected
    when a pod becomes active with no failover recorded, unless it is the pod last seen active
    (`elected`): a pod that released the Lease and took it back, again and again (an elector
    restarted by its liveness probe, say), is one election, not one per cycle."""
    last = after.get("lastFailover")
    if last and last != before.get("lastFailover"):
        seconds = float(last["seconds"])
        message = f"active pod moved from {last['from']} to {last['to']} in {seconds:.2f} s"
        why = last.get("reason")
        if why == FailoverReason.SWITCHOVER:  # planned: a user asked (core/switchover.py)
            return [News(EventType.NORMAL, Reason.SWITCHOVER_COMPLETED, message, seconds)]
        if why:
            message += f" ({why})"
        return [News(EventType.NORMAL, Reason.FAILOVER_COMPLETED, message, seconds)]
    active = after.get("activePod")
    if (
        active
        and not before.get("activePod")
        and not before.get("lastFailover")
        and active != elected
    ):
        return [
            News(EventType.NORMAL, Reason.LEADER_ELECTED, f"pod {after['activePod']} is active")
        ]
    return []
