"""One reconcile of one HAService: plan from the cache and the memory, carry the plan out.

Level-based: it does not matter which event woke it. The world comes from the watch cache, so
an HAService whose world has not changed costs no request; the plan (core/plan.py) says what
to do, the executor does it and reports it. When the executor meets something the cache did not
know (an object of a child's name, a child the API server refuses), the plan is made again with
it, at most twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from haoperator.controller import metrics
from haoperator.controller.executor import Executor, Progress
from haoperator.controller.kube import ApiError, Kube
from haoperator.controller.store import Key, Store
from haoperator.core import status
from haoperator.core.actions import Pass, Plan
from haoperator.core.memory import Memory
from haoperator.core.plan import plan
from haoperator.core.world import Operator, World

PASSES = 3
"""A plan, and at most two more with what the executor found on the way."""


@dataclass
class Outcome:
    """What the worker should do next with this key."""

    requeue_after: float | None = None
    backoff: bool = False
    problem: bool = False


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        store: Store,
        operator: Operator,
        still_leading: Callable[[], bool] | None = None,
    ) -> None:
        """`still_leading` (run --leader-elect): the executor asks it before every write."""
        self.store = store
        self.operator = operator
        self.executor = Executor(kube) if still_leading is None else Executor(kube, still_leading)
        self.memories: dict[Key, Memory] = {}
        """One per HAService; a worker holds one key at a time (the work queue sees to it)."""

    def forget_all(self) -> None:
        """Drop every memory and per-HAService series, as a fresh start would: on taking over
        the lead, what this instance remembers from an earlier term may be stale (another
        instance acted meanwhile), and a standby reports no HAService of its own."""
        self.memories.clear()
        metrics.SERVICES.clear()

    def reconcile(self, key: Key) -> Outcome:
        snapshot = self.store.snapshot(key)
        gone = snapshot.haservice is None
        world = World.of(
            key,
            snapshot.haservice,
            children=snapshot.children,
            pods=snapshot.pods,
            nodes=self.store.nodes(),
            failed_create=snapshot.failed_create,
            operator=self.operator,
            deleted=gone and self.store.take_deleted(key),
        )
        memory = self.memories.get(key) or Memory()
        now = time.time()
        earlier: list[Pass] = []
        for attempt in range(PASSES):
            current = plan(world, memory, now)
            progress = self.executor.run(current)
            if not progress.replan or attempt == PASSES - 1:
                break
            earlier.append((current, progress.results))
            world = world.with_findings(progress.found, progress.refused)
        remembered, error = self.executor.report(
            current, progress, current.memory or memory, earlier
        )
        self._remember(key, None if current.memory is None else remembered)
        self._observe(key, world, current)
        failure = progress.failure or error or _unsettled(progress)
        if failure is not None:
            raise failure
        return _outcome(current)

    def _remember(self, key: Key, memory: Memory | None) -> None:
        metrics.SERVICES.count(key, memory.counted if memory else None)
        if memory is None:
            self.memories.pop(key, None)
        else:
            self.memories[key] = memory

    @staticmethod
    def _observe(key: Key, world: World, current: Plan) -> None:
        """The HAService's own series, from the status just computed (gone: none)."""
        if current.memory is None or world.haservice is None:
            metrics.SERVICES.observe(key, None)
            return
        if current.status is None:
            return
        category = str((world.haservice.get("spec") or {}).get("category") or "")
        serving = None
        if category == "ActivePassive":
            lease = world.children.get(("Lease", key[1]))
            serving = status.serving_leader(lease, list(world.pods))
        metrics.SERVICES.observe(key, metrics.state_of(category, current.status, serving))


def _unsettled(progress: Progress) -> Exception | None:
    if not progress.replan:
        return None
    return ApiError(409, "Conflict", "the children kept changing during the reconcile")


def _outcome(current: Plan) -> Outcome:
    return Outcome(
        requeue_after=current.requeue_after,
        backoff=current.backoff,
        problem=current.problem is not None,
    )
