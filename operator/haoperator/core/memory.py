"""The plan's second input: what the operator remembers of one HAService between reconciles.

Everything the operator knows that the API server does not tell it again lives here, in one
object per HAService: it is created by the first reconcile, replaced by each one after it, and
dropped by the reconcile that finds the HAService gone. Every collection in it is bounded, by
what still exists (pods, lost nodes, children), by a size limit, or by time (`PodWrite`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from haoperator.core.ownership import ChildKey
from haoperator.core.vocabulary import Annotation

MAX_FAILURES = 256
"""Container failures reported, per HAService: a crash loop adds one per restart until the pod
is replaced, and the oldest are the first that can no longer show up again."""
MAX_EVENT_COUNTS = 64
"""Events whose count is known, per HAService: one forgotten costs a read when it recurs."""
PENDING_SECONDS = 10.0
"""How long a recovery write to a pod (`PodWrite`) is taken as made although the cache does not
show it yet. The watch shows our writes within milliseconds; past this, a write the cache still
does not show is taken as failed (the reconcile that made it raised) and is made again."""
REFUSAL_BASE_DELAY = 2.0
REFUSAL_MAX_DELAY = 300.0

Failure = tuple[str, str, float]
"""(pod uid, container, finishedAt epoch seconds): one container termination."""
Loss = tuple[str, float]
"""(node, epoch seconds it has been NotReady since): one loss of a node."""


@dataclass(frozen=True)
class Refusal:
    """A child the API server refused: not applied again until its rendering changes (another
    applied hash) or `retry_at`, which doubles with each refusal of the same rendering."""

    applied_hash: str
    reason: str
    message: str
    attempts: int
    retry_at: float

    @staticmethod
    def delay(attempts: int) -> float:
        return float(min(REFUSAL_BASE_DELAY * 2 ** (attempts - 1), REFUSAL_MAX_DELAY))


@dataclass(frozen=True)
class PodWrite:
    """A recovery write to one pod, remembered until the cache shows it (read-your-writes, as
    `Memory.written` for the status): a reconcile that runs before the watch brings the pod back
    must neither write it again nor say its events again."""

    at: float
    """When it was planned (the plan's `now`)."""
    restarts: str | None = None
    """The restart history annotation written on the pod (None: not written)."""
    deleted: bool = False
    """The pod was deleted (a migration): shown once the pod is being deleted."""
    forced: bool = False
    """The pod was force-deleted (a lost node): shown once it is gone."""

    def shown_by(self, pod: Mapping[str, Any] | None) -> bool:
        """Whether the cached pod (None: gone) shows everything this write did."""
        if pod is None:
            return True
        meta = pod.get("metadata") or {}
        if self.forced or (self.deleted and not meta.get("deletionTimestamp")):
            return False
        written = (meta.get("annotations") or {}).get(Annotation.RESTARTS)
        return self.restarts is None or written == self.restarts

    def pending(self, pod: Mapping[str, Any] | None, now: float) -> bool:
        """Still to be taken as made: not shown yet, and not given up on (PENDING_SECONDS)."""
        return not self.shown_by(pod) and now - self.at < PENDING_SECONDS


@dataclass(frozen=True)
class Memory:
    written: tuple[str, Mapping[str, Any]] | None = None
    """Our last status write: (the resourceVersion it made, the status). The cache sees it only
    when its watch event arrives; until then the status is what we wrote (read-your-writes)."""
    leaderless_since: float | None = None
    """ActivePassive: since when pods are ready but none serves as leader."""
    elected: str | None = None
    """ActivePassive: the last pod this operator saw active, so a pod that releases the Lease and
    takes it back (no failover) is not announced again by every cycle."""
    failures_reported: frozenset[Failure] = frozenset()
    losses_reported: frozenset[Loss] = frozenset()
    refusals: Mapping[ChildKey, Refusal] = field(default_factory=dict)
    event_counts: Mapping[str, int] = field(default_factory=dict)
    """The count of each Event we recorded (by its name), so that recording it again bumps the
    count without reading it first. Oldest first: the first to be forgotten."""
    counted: tuple[str, bool] | None = None
    """(category, ready) as haoperator_haservices counts this HAService."""
    pod_writes: Mapping[str, PodWrite] = field(default_factory=dict)
    """Recovery writes to pods (by uid) the cache does not show yet: at most one per pod, each
    for PENDING_SECONDS at most."""

    def with_event_count(self, name: str, count: int) -> Memory:
        counts = {k: v for k, v in self.event_counts.items() if k != name}
        counts[name] = count
        while len(counts) > MAX_EVENT_COUNTS:
            del counts[next(iter(counts))]
        return replace(self, event_counts=counts)

    def without_event_count(self, name: str) -> Memory:
        return replace(self, event_counts={k: v for k, v in self.event_counts.items() if k != name})


def newest_failures(failures: set[Failure]) -> frozenset[Failure]:
    """At most MAX_FAILURES of them, the most recent kept."""
    if len(failures) <= MAX_FAILURES:
        return frozenset(failures)
    return frozenset(sorted(failures, key=lambda f: f[2])[-MAX_FAILURES:])
