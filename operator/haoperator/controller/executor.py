"""Carries a plan out: its steps in their fixed order, then, always, the events of the steps
that succeeded and the status, then the first failure is raised for the work queue's backoff.

The executor decides nothing. Two answers of the API server stop a pass without being failures,
because the plan has to judge them: a create-only apply that meets an existing object (the
executor reads it and hands it back), and a child the API server refuses (InvalidSpec,
Forbidden). The reconciler then plans again with what was found (core/world.py: discovered,
refused). Whatever the steps did, the events they earned are recorded and the status written:
a node patch refused after the children were updated does not lose their Reconciled event.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import structlog

from haoperator.controller import metrics
from haoperator.controller.kube import ApiError, Kube
from haoperator.core.actions import (
    Apply,
    Delete,
    Event,
    Pass,
    Patch,
    Plan,
    Result,
    StepId,
    due_events,
)
from haoperator.core.memory import Memory
from haoperator.core.objects import Object
from haoperator.core.ownership import ChildKey
from haoperator.core.vocabulary import Action, EventType
from haoperator.core.world import Refused

log = structlog.get_logger("haoperator.reconcile")


@dataclass
class Progress:
    """What one pass over a plan's steps did."""

    results: dict[StepId, Result] = field(default_factory=dict)
    found: dict[ChildKey, Object | None] = field(default_factory=dict)
    """Children as the API server answered this pass: applied, read after a create met them
    (None: gone again), or deleted (None)."""
    refused: dict[ChildKey, Refused] = field(default_factory=dict)
    replan: bool = False
    """Stopped at something for the plan to judge (an existing object, a refusal)."""
    failure: Exception | None = None


class _Stop(Exception):
    """Ends a pass at a finding the plan must judge."""


class NotLeading(Exception):
    """This operator instance no longer leads (run --leader-elect): it must not write; the
    reconcile stops here and its HAService is queued again, for whoever leads."""

    def __init__(self) -> None:
        super().__init__("this operator instance no longer leads: stopped before writing")


def _always() -> bool:
    return True


class Executor:
    def __init__(self, kube: Kube, still_leading: Callable[[], bool] = _always) -> None:
        """`still_leading`: asked before every write (without leader election: always True)."""
        self.kube = kube
        self.still_leading = still_leading

    def _may_write(self) -> None:
        if not self.still_leading():
            raise NotLeading()

    # -- the steps -------------------------------------------------------------------------------

    def run(self, plan: Plan) -> Progress:
        progress = Progress()
        for step_id, step in plan.steps:
            try:
                progress.results[step_id] = self._step(step, progress)
            except _Stop:
                progress.replan = True
                return progress
            except Exception as exc:  # an outage, a conflict, a denied patch: stop here
                progress.results[step_id] = Result.FAILED
                progress.failure = exc
                return progress
        return progress

    def _step(self, step: Apply | Delete | Patch, progress: Progress) -> Result:
        self._may_write()
        if isinstance(step, Apply):
            return self._apply(step, progress)
        if isinstance(step, Delete):
            deleted = self.kube.delete(
                step.kind, step.namespace, step.name, uid=step.uid, grace=step.grace
            )
            if step.kind != "Pod":
                progress.found[step.key] = None
            return Result.CHANGED if deleted else Result.UNCHANGED
        try:
            self.kube.patch(step.kind, step.namespace, step.name, step.patch)
        except ApiError as exc:
            if exc.status == 404 and step.missing_ok:
                return Result.UNCHANGED
            raise
        return Result.CHANGED

    def _apply(self, step: Apply, progress: Progress) -> Result:
        manifest = step.manifest
        try:
            if step.create_only:
                created = self.kube.create_only(manifest)
                if created is None:
                    # Someone's object of that name (ours not cached yet, an orphan, a foreign
                    # one): read it for the plan to judge.
                    meta = manifest["metadata"]
                    progress.found[step.key] = self.kube.get(
                        manifest["kind"], meta.get("namespace"), meta["name"]
                    )
                    raise _Stop()
                progress.found[step.key] = created
                return Result.CHANGED
            applied = self.kube.apply(manifest)
        except ApiError as exc:
            reason = exc.refusal
            if reason is None:
                raise
            label = f"{step.key[0]} {step.key[1]}"
            log.warning("child refused by the API server", child=label, error=exc.message)
            progress.refused[step.key] = Refused(
                step.applied_hash, reason, f"{label}: {exc.message}"
            )
            raise _Stop() from exc
        progress.found[step.key] = applied
        version = applied.get("metadata", {}).get("resourceVersion")
        if step.reason == "update" and version == step.observed_version:
            return Result.UNCHANGED
        return Result.CHANGED

    # -- the report --------------------------------------------------------------------------------

    def report(
        self, plan: Plan, progress: Progress, memory: Memory, earlier: Sequence[Pass] = ()
    ) -> tuple[Memory, Exception | None]:
        """Record the events the steps earned (with those of `earlier` passes, cut short by a
        finding), then write the status if the steps it speaks for succeeded. The memory with
        what was written, and the first error met doing so."""
        error: Exception | None = None
        logger = (
            log.bind(namespace=plan.about.namespace, name=plan.about.name) if plan.about else log
        )
        for event in due_events([*earlier, (plan, progress.results)]):
            try:
                self._may_write()
                memory = self._record(event, memory)
            except NotLeading as exc:  # nothing more is ours to write
                return memory, error or exc
            except Exception as exc:  # the rest and the status are still worth trying
                logger.warning("could not record an event", reason=event.reason, error=str(exc))
                error = error or exc
                continue
            say = logger.warning if event.type == EventType.WARNING else logger.info
            say(event.reason, message=event.message)
        patch = plan.status_patch
        done = {i for i, r in progress.results.items() if r is not Result.FAILED}
        if patch is not None and plan.about is not None and plan.status_after <= done:
            try:
                self._may_write()
                written = self.kube.patch_status(plan.about.namespace, plan.about.name, dict(patch))
            except ApiError as exc:
                if exc.status != 404:  # deleted meanwhile: nothing to report on
                    error = error or exc
            except NotLeading as exc:
                error = error or exc
            else:
                version = written["metadata"]["resourceVersion"]
                memory = replace(memory, written=(version, written.get("status") or {}))
        return memory, error

    def _record(self, event: Event, memory: Memory) -> Memory:
        name = self.kube.event_name(event.about, event.type, event.reason, event.message)
        count = self.kube.record_event(
            event.about,
            event.type,
            event.reason,
            event.message,
            count=memory.event_counts.get(name),
        )
        if event.action is not None:
            metrics.RECOVERY_ACTIONS.labels(event.action).inc()
            if event.action == Action.RECOVERY_LIMIT:
                metrics.SERVICES.recovery_limit_reached((event.about.namespace, event.about.name))
        if event.failover_seconds is not None:
            metrics.FAILOVERS.inc()
            metrics.FAILOVER_SECONDS.observe(event.failover_seconds)
        return memory.with_event_count(name, count)
