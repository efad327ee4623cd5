"""The plan's second input: what the operator remembers of one HAService between reconciles.

Everything the operator knows that the API server does not tell it again lives here, in one
object per HAService: it is created by the first reconcile, replaced by each one after it, and
dropped by the reconcile that finds the HAService gone. Every collection in it is bounded, by
what still exists (pods, lost nodes, children) and by a size limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from haoperator.core.ownership import ChildKey

MAX_FAILURES = 256
"""Container failures reported, per HAService: a crash loop adds one per restart until the pod
is replaced, and the oldest are the first that can no longer show up again."""
MAX_EVENT_COUNTS = 64
"""Events whose count is known, per HAService: one forgotten costs a read when it recurs."""
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
class Memory:
    written: tuple[str, Mapping[str, Any]] | None = None
    """Our last status write: (the resourceVersion it made, the status). The cache sees it only
    when its watch event arrives; until then the status is what we wrote (read-your-writes)."""
    leaderless_since: float | None = None
    """ActivePassive: since when pods are ready but none serves as leader."""
    failures_reported: frozenset[Failure] = frozenset()
    losses_reported: frozenset[Loss] = frozenset()
    refusals: Mapping[ChildKey, Refusal] = field(default_factory=dict)
    event_counts: Mapping[str, int] = field(default_factory=dict)
    """The count of each Event we recorded (by its name), so that recording it again bumps the
    count without reading it first. Oldest first: the first to be forgotten."""
    counted: tuple[str, bool] | None = None
    """(category, ready) as haoperator_haservices counts this HAService."""

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
