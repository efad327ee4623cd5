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
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from haoperator.core.objects import annotations_of, condition
from haoperator.core.times import epoch
from haoperator.core.vocabulary import Annotation, ConditionType, Label

MAX_REMEMBERED = 64


def avoid_label(namespace: str, name: str) -> str:
    """The node label that keeps one HAService off a node (a label key's name part is <= 63)."""
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:8]
    return f"{Label.AVOID_PREFIX}{name}-{digest}"


def node_affinity_term(namespace: str, name: str) -> dict[str, Any]:
    return {"key": avoid_label(namespace, name), "operator": "DoesNotExist"}


@dataclass(frozen=True)
class Failure:
    """A container termination worth reporting (PodFailed)."""

    pod: str
    container: str
    exit_code: int
    reason: str
    finished_at: float


def terminations(pod: dict[str, Any]) -> list[Failure]:
    """Abnormal terminations the pod's status shows: the current state or the last one."""
    found = []
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        for where in ("state", "lastState"):
            terminated = (status.get(where) or {}).get("terminated")
            if terminated and terminated.get("exitCode", 0) != 0:
                found.append(
                    Failure(
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
