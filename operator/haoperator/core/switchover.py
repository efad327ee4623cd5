"""Pure: a planned switchover of an ActivePassive service, as `patronictl switchover` and
`pcs resource move` do: the active role handed to a chosen ready standby at once, not taken
over when a lease expires.

The request is one-shot and lives in annotations (vocabulary.Annotation):

    on the HAService  switchover-to: <pod> | any   the user's (kubectl annotate, haoperator
                                                   switchover)
                      switchover-requested: <time> ours: checked and passed on at that time
    on the Lease      switchover-to: <pod>         ours, for the leader's elector
                      switchover-requested: <time> ours: when; the deadline runs from it

1. A new request (switchover-to, no switchover-requested on the HAService) is checked (`judge`):
   refused with a SwitchoverRefused warning and removed, or passed on: the HAService is marked,
   then the Lease annotated (a merge patch of its annotations: the electors own the rest).
2. The leader's elector hands over; the new holder removes the Lease's pair as it takes the
   Lease and records the failover, with reason Switchover, at its first renew: transitions.py
   says SwitchoverCompleted, and here the request is removed from the HAService.
3. Still on the Lease past the deadline (`timeout`): SwitchoverFailed, removed from both.
4. Gone from the Lease with no Switchover recorded by the deadline (another failover took the
   Lease first, someone removed it): SwitchoverFailed, removed from the HAService.
5. Withdrawn (the user removed switchover-to): what is left of it is removed, silently.

The HAService and the Lease reach the cache by separate watches, so one may be newer than the
other: right after a pass-on, the Lease may already show the new holder while the HAService
does not show our mark yet, and the request looks new. So every write that follows from a
judgement (the mark, a refusal's or a failure's removal) is conditional on the HAService's
resourceVersion that was judged, and comes first: a reconcile on a stale HAService gets a
conflict (retried after the work queue's backoff) and writes nothing else. Thus a request is
passed on once, and each earns one event. The writes that need no judgement (the same mark
again, a request's remains removed) are plain. Whether the cached Lease was written after our
mark is told by resourceVersions (one etcd counter, as objects.older assumes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from haoperator.core.actions import Draft, Patch
from haoperator.core.objects import Object, annotations_of, deleting, is_ready, meta, older
from haoperator.core.status import failover_record, lease_holder
from haoperator.core.times import epoch, micro_stamp
from haoperator.core.vocabulary import Annotation, EventType, FailoverReason, Reason
from haoperator.core.world import World

ANY = "any"
"""switchover-to: any: the best ready standby (`best_standby`)."""
MIN_TIMEOUT = 10.0
MARGIN = 0.05
"""Come back just after a deadline, not just before it."""
ACTIVE_PASSIVE = "ActivePassive"
REQUEST_KEYS = (Annotation.SWITCHOVER_TO, Annotation.SWITCHOVER_REQUESTED)


@dataclass(frozen=True)
class Judgement:
    """A request checked: the pod to hand over to, or why not (as users read it)."""

    to: str | None = None
    refused: str | None = None


def timeout(lease_duration: float) -> float:
    """How long the Lease may carry a request before it is given up: two lease durations (a
    leader that waits out its renew deadline first), at least MIN_TIMEOUT seconds."""
    return max(2.0 * lease_duration, MIN_TIMEOUT)


def _name(pod: Object) -> str:
    return str(meta(pod)["name"])


def best_standby(holder: str | None, pods: Sequence[Object]) -> str | None:
    """What `any` names: a ready pod (not being deleted) that does not hold the Lease, the
    oldest first, then by name (the electors' own preference)."""
    fit = [p for p in pods if is_ready(p) and _name(p) != holder]
    if not fit:
        return None
    return _name(min(fit, key=lambda p: (str(meta(p).get("creationTimestamp") or ""), _name(p))))


def judge(
    asked: str, *, name: str, category: str, lease: Object | None, pods: Sequence[Object]
) -> Judgement:
    """Whether the switchover `asked` (a pod name or `any`) of the HAService `name` can be
    passed on now, and to which pod. The operator and `haoperator switchover` say the same."""
    asked = asked.strip()
    if category != ACTIVE_PASSIVE:
        return Judgement(
            refused=f"{name} is {category}: a switchover moves the active pod of an "
            f"ActivePassive service; refusing to switch over to {asked or 'nothing'}"
        )
    holding = lease_holder(lease, list(pods))
    holder = _name(holding) if holding is not None else None
    if not asked:
        return Judgement(
            refused=f"{Annotation.SWITCHOVER_TO} is empty: name a pod of {name}, or {ANY}"
        )
    if asked == ANY:
        if holder is None:
            return Judgement(
                refused=f"no pod holds the Lease {name}: no active pod to switch over from"
            )
        best = best_standby(holder, pods)
        if best is None:
            return Judgement(
                refused=f"no ready standby to switch over to: pod {holder} stays active"
            )
        return Judgement(to=best)
    pod = next((p for p in pods if _name(p) == asked), None)
    if pod is None:
        return Judgement(
            refused=f"pod {asked} is not a pod of {name}: refusing to switch over to it"
        )
    if deleting(pod):
        return Judgement(refused=f"pod {asked} is being deleted: refusing to switch over to it")
    if asked == holder:
        return Judgement(refused=f"pod {asked} is already active: nothing to switch over")
    if not is_ready(pod):
        return Judgement(refused=f"pod {asked} is not ready: refusing to switch over to it")
    if holder is None:
        return Judgement(
            refused=f"no pod holds the Lease {name}: no active pod to switch over from to "
            f"pod {asked}"
        )
    return Judgement(to=asked)


def plan_switchover(draft: Draft, world: World, now: float) -> None:
    """The HAService's switchover request, at whatever stage it is (see the module's text)."""
    assert world.spec is not None
    assert world.haservice is not None
    name = world.spec.name
    ours = annotations_of(world.haservice)
    asked = ours.get(Annotation.SWITCHOVER_TO)
    marked = ours.get(Annotation.SWITCHOVER_REQUESTED)
    lease = world.children.get(("Lease", name))
    on_lease = annotations_of(lease).get(Annotation.SWITCHOVER_TO)
    if asked is None:
        # Withdrawn, or the rest of one we ended: nothing left of it anywhere.
        if marked is not None:
            draft.step(_clear_haservice(world, conditional=False))
        if lease is not None and _carries(lease):
            draft.step(_clear_lease(lease))
        return
    category = world.spec.spec.category
    marked_at = epoch(marked)
    if marked_at is None or category != ACTIVE_PASSIVE:
        _new_request(draft, world, asked, lease, now)
        return

    settings = world.spec.spec.active_passive_settings
    limit = timeout(float(settings.lease_duration_seconds))
    target = asked if asked != ANY else "a ready standby"
    holding = lease_holder(lease, list(world.pods))
    still = f" (pod {_name(holding)} is still active)" if holding is not None else ""
    if on_lease:
        since = epoch(annotations_of(lease).get(Annotation.SWITCHOVER_REQUESTED)) or marked_at
        if now < since + limit:
            draft.look_again(since + limit - now + MARGIN)
            return
        _fail(
            draft,
            world,
            lease,
            f"pod {on_lease} did not take the active role within {limit:g} s of the "
            f"request: switchover abandoned{still}",
        )
        return
    # The Lease does not carry it: taken by a new holder (who records the failover at its first
    # renew, a moment after it took the Lease), or our write is not in the cache yet.
    record = failover_record(lease) or {}
    if (
        _lease_newer(world.haservice, lease)
        and record.get("reason") == FailoverReason.SWITCHOVER
        and asked in (ANY, record.get("to"))
    ):
        # Done: transitions.py says SwitchoverCompleted with the status that records it.
        draft.step(_clear_haservice(world, conditional=False))
        return
    if now < marked_at + limit:
        wait = min(float(settings.retry_period_seconds), marked_at + limit - now)
        draft.look_again(wait + MARGIN)  # a renewal does not wake a reconcile
        return
    _fail(
        draft,
        world,
        None,
        f"switchover to {target} abandoned: the Lease {name} no longer asks for it{still}",
    )


def _new_request(draft: Draft, world: World, asked: str, lease: Object | None, now: float) -> None:
    assert world.spec is not None
    on_lease = annotations_of(lease).get(Annotation.SWITCHOVER_TO)
    if on_lease and asked in (ANY, on_lease) and world.spec.spec.category == ACTIVE_PASSIVE:
        # Passed on already (the Lease is annotated only after the mark): the mark is not in
        # the cache yet. The same mark again, which needs no judgement.
        since = annotations_of(lease).get(Annotation.SWITCHOVER_REQUESTED)
        stamp = since if since and epoch(since) is not None else micro_stamp(now)
        draft.step(_mark(world, stamp, conditional=False))
        return
    verdict = judge(
        asked,
        name=world.spec.name,
        category=world.spec.spec.category,
        lease=lease,
        pods=world.pods,
    )
    if verdict.refused is not None or verdict.to is None:
        cleared = draft.step(_clear_haservice(world, conditional=True))
        draft.event(
            EventType.WARNING, Reason.SWITCHOVER_REFUSED, verdict.refused or "", after=[cleared]
        )
        return
    assert lease is not None  # judge refuses without a holder
    stamp = micro_stamp(now)
    draft.step(_mark(world, stamp, conditional=True))  # first: only on the version judged
    draft.step(
        Patch(
            "Lease",
            meta(lease).get("namespace"),
            _name(lease),
            {
                "metadata": {
                    "annotations": {
                        Annotation.SWITCHOVER_TO: verdict.to,
                        Annotation.SWITCHOVER_REQUESTED: stamp,
                    }
                }
            },
        )
    )
    settings = world.spec.spec.active_passive_settings
    draft.look_again(timeout(float(settings.lease_duration_seconds)) + MARGIN)


def _fail(draft: Draft, world: World, lease: Object | None, message: str) -> None:
    cleared = draft.step(_clear_haservice(world, conditional=True))
    if lease is not None:
        draft.step(_clear_lease(lease))
    draft.event(EventType.WARNING, Reason.SWITCHOVER_FAILED, message, after=[cleared])


def _carries(lease: Object) -> bool:
    return any(key in annotations_of(lease) for key in REQUEST_KEYS)


def _lease_newer(haservice: Object, lease: Object | None) -> bool:
    """Whether the cached Lease was written after the cached HAService, and so after our mark
    (written before the Lease was annotated): its record is not of an earlier request."""
    return lease is not None and older(
        meta(haservice).get("resourceVersion"), meta(lease).get("resourceVersion")
    )


def _mark(world: World, stamp: str, *, conditional: bool) -> Patch:
    """Mark the request passed on; `conditional`: only on the version judged."""
    return _haservice_patch(world, {Annotation.SWITCHOVER_REQUESTED: stamp}, conditional)


def _clear_haservice(world: World, *, conditional: bool) -> Patch:
    """Remove the request from the HAService; `conditional`: only from the version judged, for
    a removal an event reports."""
    return _haservice_patch(world, dict.fromkeys(REQUEST_KEYS), conditional)


def _haservice_patch(world: World, annotations: Object, conditional: bool) -> Patch:
    """A merge patch of the HAService's annotations; `conditional`: with the resourceVersion
    judged, which the API server turns into a conflict if the HAService changed since."""
    assert world.haservice is not None
    data = meta(world.haservice)
    metadata: Object = {"annotations": annotations}
    if conditional and data.get("resourceVersion"):
        metadata["resourceVersion"] = data["resourceVersion"]
    return Patch(
        "HAService", data.get("namespace"), data["name"], {"metadata": metadata}, missing_ok=True
    )


def _clear_lease(lease: Object) -> Patch:
    return Patch(
        "Lease",
        meta(lease).get("namespace"),
        _name(lease),
        {"metadata": {"annotations": dict.fromkeys(REQUEST_KEYS)}},
        missing_ok=True,
    )
