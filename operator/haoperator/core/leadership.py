"""Pure: the operator's part in ActivePassive, beside the electors'.

- Split-brain prevention: the electors fence before they label, but an elector that died or was
  partitioned cannot unlabel its own pod. The Lease says who leads; every other pod labelled
  active loses the label (status.to_fence says which), with a SplitBrainPrevented warning.
- The electing grace: pods ready but none serving as leader is a handover or the first election
  under way for up to a lease duration, not news yet; the status says FailingOver (or nothing
  new) meanwhile, and the plan comes back when the grace ends.
- Where the Service routes: the ready endpoints of its EndpointSlices, for the Ready condition.
"""

from __future__ import annotations

from dataclasses import dataclass

from haoperator.core import status
from haoperator.core.actions import Draft, Patch
from haoperator.core.objects import Object, is_ready, labels_of
from haoperator.core.vocabulary import Action, EventType, Label, Reason, Role
from haoperator.core.world import World

GRACE_MARGIN = 0.05
"""Come back just after the grace ends, not just before it."""


@dataclass(frozen=True)
class Leadership:
    """What the status needs to know of the election."""

    lease: Object | None
    routed: set[str] | None
    electing: bool
    leaderless_since: float | None


def standby(pod: Object) -> Patch:
    """The patch that takes the active role from a pod."""
    meta = pod["metadata"]
    return Patch(
        "Pod",
        meta.get("namespace"),
        meta["name"],
        {"metadata": {"labels": {Label.ROLE: Role.STANDBY}}},
    )


def plan_leadership(
    draft: Draft, world: World, leaderless_since: float | None, now: float
) -> Leadership:
    assert world.spec is not None
    name = world.spec.name
    lease = world.children.get(("Lease", name))
    fenced = status.to_fence(lease, list(world.pods))
    if fenced:
        pods = {p["metadata"]["name"]: p for p in world.pods}
        steps = [draft.step(standby(pods[pod])) for pod in fenced]
        holder = ((lease or {}).get("spec") or {}).get("holderIdentity")
        draft.event(
            EventType.WARNING,
            Reason.SPLIT_BRAIN_PREVENTED,
            f"removed the active role from {', '.join(fenced)}: the Lease {name} names "
            f"{holder or 'nobody'}",
            after=steps,
            action=Action.SPLIT_BRAIN_PREVENTED,
        )
    routed: set[str] | None = None
    if world.spec.spec.service is not None:
        routed = {
            endpoint["targetRef"]["name"]
            for (kind, _), slice_ in world.children.items()
            if kind == "EndpointSlice"
            and labels_of(slice_).get(Label.ENDPOINT_SLICE_SERVICE) == name
            for endpoint in slice_.get("endpoints") or []
            if (endpoint.get("conditions") or {}).get("ready") and endpoint.get("targetRef")
        }
    leaderless = status.serving_leader(lease, list(world.pods)) is None and any(
        is_ready(p) for p in world.pods
    )
    if not leaderless:
        return Leadership(lease, routed, electing=False, leaderless_since=None)
    since = now if leaderless_since is None else leaderless_since
    lease_duration = float(world.spec.spec.active_passive_settings.lease_duration_seconds)
    remaining = since + lease_duration - now
    if remaining > 0:
        draft.look_again(remaining + GRACE_MARGIN)
    return Leadership(lease, routed, electing=remaining > 0, leaderless_since=since)
