"""What a plan asks for, as data: steps, the events that depend on them, the status to write,
the memory to keep and when to look again.

The executor carries the steps out in a fixed order by phase (children, pod patches, node
patches, pod deletions), stops at the first that fails, and then records every event whose
steps succeeded. Which events those are is decided here (`Plan.due_events`), not by the
executor: an event names the steps it reports on, and a summary line the step it describes.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from haoperator.core.memory import Memory
from haoperator.core.objects import Object, ObjectRef
from haoperator.core.ownership import ChildKey
from haoperator.core.status import Problem
from haoperator.core.vocabulary import Annotation, EventType, Reason

StepId = int


class Phase(enum.IntEnum):
    """The order the executor keeps: children first (what the user asked for), then pod patches
    (fencing, restart history), node patches (bans and their lifting), pod deletions last (a
    migrated pod is deleted only once its node is banned)."""

    CHILDREN = 0
    POD_PATCHES = 1
    NODE_PATCHES = 2
    POD_DELETIONS = 3


ApplyReason = Literal["create", "recreate", "update", "adopt", "drift"]


@dataclass(frozen=True)
class Apply:
    """Server-side apply a child. A child missing from the cache (`create`, or `recreate` when
    it was deleted after we made it) gets a create-only apply: it may meet an existing object,
    which the executor reads and hands back for the next plan to judge (ours, an orphan to
    adopt, or someone else's)."""

    manifest: Object
    reason: ApplyReason
    observed_version: str | None = None
    """`update`: the version we had; an answer at that version changed nothing."""

    @property
    def phase(self) -> Phase:
        return Phase.CHILDREN

    @property
    def key(self) -> ChildKey:
        return (self.manifest["kind"], self.manifest["metadata"]["name"])

    @property
    def create_only(self) -> bool:
        return self.reason in ("create", "recreate")

    @property
    def applied_hash(self) -> str:
        return str(self.manifest["metadata"]["annotations"][Annotation.APPLIED_HASH])


@dataclass(frozen=True)
class Delete:
    """Delete an object, only if it is still the one meant (uid); `grace` 0 force-deletes."""

    kind: str
    namespace: str | None
    name: str
    uid: str | None
    grace: int | None = None

    @property
    def phase(self) -> Phase:
        return Phase.POD_DELETIONS if self.kind == "Pod" else Phase.CHILDREN

    @property
    def key(self) -> ChildKey:
        return (self.kind, self.name)


@dataclass(frozen=True)
class Patch:
    """A merge patch of a pod, a node, or the metadata of a Lease or an HAService (a
    switchover's annotations); `missing_ok`: an object gone meanwhile needs none."""

    kind: Literal["Pod", "Node", "Lease", "HAService"]
    namespace: str | None
    name: str
    patch: Object
    missing_ok: bool = False

    @property
    def phase(self) -> Phase:
        return Phase.NODE_PATCHES if self.kind == "Node" else Phase.POD_PATCHES


Step = Apply | Delete | Patch


class Result(enum.Enum):
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    """Succeeded without changing anything: nothing left to delete, an apply that was a no-op."""
    FAILED = "failed"


@dataclass(frozen=True)
class Event:
    about: ObjectRef
    type: str
    reason: str
    message: str
    after: frozenset[StepId] = frozenset()
    """Recorded only when every one of these steps succeeded..."""
    changed: bool = False
    """...and, if set, changed something."""
    action: str | None = None
    """The recovery action it reports, counted in haoperator_recovery_actions_total."""
    failover_seconds: float | None = None
    """A failover it reports, counted in haoperator_failovers_total and _failover_seconds."""

    def due(self, results: Mapping[StepId, Result]) -> bool:
        for step in self.after:
            result = results.get(step)
            if result is None or result is Result.FAILED:
                return False
            if self.changed and result is not Result.CHANGED:
                return False
        return True


@dataclass(frozen=True)
class Change:
    """One part of the Reconciled event: `<verb> <what>`, said when its step succeeded (and, if
    `changed`, changed something)."""

    step: StepId
    verb: Literal["created", "updated", "deleted"]
    what: str
    changed: bool = True


@dataclass(frozen=True)
class Plan:
    steps: tuple[tuple[StepId, Step], ...] = ()
    """In the order the executor takes them."""
    events: tuple[Event, ...] = ()
    changes: tuple[Change, ...] = ()
    about: ObjectRef | None = None
    """The HAService: what the Reconciled event is about."""
    status: Mapping[str, Any] | None = None
    """The new status; None when there is none to write."""
    status_patch: Mapping[str, Any] | None = None
    """The merge patch from the status we know to the new one; None when they are equal."""
    status_after: frozenset[StepId] = frozenset()
    """The child steps the status speaks for: written only when they all succeeded (a status
    must not say a generation was observed when its children were not made)."""
    memory: Memory | None = None
    """What to remember; None: forget the HAService."""
    problem: Problem | None = None
    backoff: bool = False
    """Look again after the work queue's backoff (a problem that only time or the user fixes)."""
    requeue_after: float | None = None

    def due_events(self, results: Mapping[StepId, Result]) -> list[Event]:
        """The events to record once the steps ran with these results: the Reconciled summary
        of the changes that were made, then every event whose steps succeeded."""
        return due_events([(self, results)])


Pass = tuple[Plan, Mapping[StepId, Result]]
"""A plan and how its steps went."""


def due_events(passes: Sequence[Pass]) -> list[Event]:
    """The events earned by one reconcile's passes (a pass cut short by a finding, then the plan
    made again with it): one Reconciled summary of every change made, then each event whose
    steps succeeded."""
    made: dict[str, list[str]] = {"created": [], "updated": [], "deleted": []}
    due: list[Event] = []
    about = None
    for plan, results in passes:
        about = about or plan.about
        for change in plan.changes:
            result = results.get(change.step)
            if result is Result.CHANGED or (result is Result.UNCHANGED and not change.changed):
                made[change.verb].append(change.what)
        due += [event for event in plan.events if event.due(results)]
    text = "; ".join(f"{verb} {', '.join(items)}" for verb, items in made.items() if items)
    if not text or about is None:
        return due
    summary = Event(about, EventType.NORMAL, Reason.RECONCILED, text[:1].upper() + text[1:])
    return [summary, *due]


@dataclass
class Draft:
    """A plan being written by the rules, one after another."""

    about: ObjectRef | None = None
    steps: list[Step] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    problem: Problem | None = None
    problem_is_news: bool = False
    backoff: bool = False
    requeue_after: float | None = None

    def step(self, step: Step) -> StepId:
        self.steps.append(step)
        return len(self.steps) - 1

    def event(
        self,
        type_: str,
        reason: str,
        message: str,
        *,
        about: ObjectRef | None = None,
        after: Iterable[StepId] = (),
        changed: bool = False,
        action: str | None = None,
        failover_seconds: float | None = None,
    ) -> None:
        target = about or self.about
        assert target is not None, "an event needs an object to be about"
        self.events.append(
            Event(target, type_, reason, message, frozenset(after), changed, action,
                  failover_seconds)
        )  # fmt: skip

    def change(self, step: StepId, verb: Literal["created", "updated", "deleted"], what: str,
               *, changed: bool = True) -> None:  # fmt: skip
        self.changes.append(Change(step, verb, what, changed))

    def refuse(self, reason: str, message: str, *, news: bool = True, backoff: bool = True) -> None:
        """A child the operator could not make as asked. Several join in one problem, under
        the first one's reason; the Warning says it when any of them is news. `backoff`: only
        time or someone else can mend it, so look again after the work queue's backoff (a
        refused child keeps a backoff of its own instead)."""
        if self.problem is None:
            self.problem = Problem(reason, message)
        else:
            self.problem = Problem(self.problem.reason, f"{self.problem.message}; {message}")
        self.problem_is_news = self.problem_is_news or news
        self.backoff = self.backoff or backoff

    def look_again(self, seconds: float) -> None:
        """Come back in `seconds` at the latest."""
        if self.requeue_after is None or seconds < self.requeue_after:
            self.requeue_after = seconds

    def child_steps(self) -> frozenset[StepId]:
        return frozenset(i for i, s in enumerate(self.steps) if s.phase is Phase.CHILDREN)

    def ordered_steps(self) -> tuple[tuple[StepId, Step], ...]:
        return tuple(sorted(enumerate(self.steps), key=lambda pair: pair[1].phase))
