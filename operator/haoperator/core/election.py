"""Pure: what an elector should do next, from the Lease and its own pod as last observed.

Kept apart from the I/O so the safety rules can be read and tested on their own:
- a holder's Lease is valid for leaseDurationSeconds after *this* process observed its last
  change (local monotonic time, as client-go does: immune to clock skew between nodes);
- a leader is a leader only while its last successful renew is younger than the renew deadline,
  which is shorter than the lease: it stops acting before anyone else may start, and a process
  that was frozen (SIGSTOP, a long GC, a stalled VM) finds out before it acts on resuming;
- winning the Lease is not leading yet: the winner leads only once every other pod is fenced and
  its own pod labelled active, so /leader never says 200 while the Service routes elsewhere or
  nowhere; until then it keeps the Lease and retries the whole acquisition every retry period;
- the role label is a level, not an event: a leader keeps its own pod `active` and anyone else
  keeps it `standby`, whoever removed or added the label meanwhile;
- only a Lease labelled for this service is ours: another controller's Lease of the same name
  is never written, whatever it says;
- a free Lease (released on SIGTERM) is taken at once, except that a handover named for another
  pod (preempt) is left to that pod for two retry periods;
- a pod being deleted gives the Lease up as soon as it sees its deletion, and never takes it;
- the role follows the application (pacemaker's monitor, keepalived's track_script): a standby
  whose application is not Ready leaves a free Lease to a ready rival, and a leader whose
  application has not been Ready for unhealthySeconds hands over to a ready standby; with no
  ready pod anywhere the leader keeps the role (moving it would only flap);
- takeover at the kubelet's speed: a holder whose elector process the kubelet reports gone (see
  `holder_gone`) can neither renew nor answer /leader, so its Lease is taken at once instead of
  after it expires. Lease expiry stays the only path when nothing is known (a lost node, a
  partition, a pod force-deleted with its containers perhaps still running);
- failsafe through a control-plane outage (Patroni's failsafe_mode): a leader that cannot reach
  the API server keeps the role only while every member it published on the Lease (see
  `failsafe_holds`) answers, within a retry period, that it cannot reach the API server either,
  is not leading and sees the Lease naming us. Each such answer is a renewal by proxy: the
  member treats the Lease as valid for a lease duration from its answer, as it would after a
  renewal, and the leader counts it as a renewal from when it asked. A member that can reach
  the API server, or does not answer, ends the failsafe at once. A pod not published as a member
  cannot have been asked, so it waits `failsafe` seconds longer than the lease before it takes
  an expired Lease, and the leader's failsafe never outlasts `failsafe` seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from haoperator.core.objects import deleting
from haoperator.core.times import epoch
from haoperator.core.vocabulary import ELECTOR, OPERATOR, FailoverReason, Label, Role


class Action(Enum):
    CREATE = "create"  # no Lease yet
    ACQUIRE = "acquire"  # free, expired, or naming us while we do not lead: take it
    RENEW = "renew"  # ours, and a retry period since the last renew: extend it
    STEP_DOWN = "step-down"  # we believed we led, but can no longer be sure
    RELEASE = "release"  # our pod is being deleted: stand down and free the Lease now
    WAIT = "wait"  # someone else holds a valid Lease, or the Lease is not ours to touch


@dataclass(frozen=True)
class Timing:
    lease_duration: float = 5.0
    renew_deadline: float = 3.0
    retry_period: float = 1.0


@dataclass(frozen=True)
class SeenLease:
    """The Lease as this process saw it, and when (monotonic seconds)."""

    holder: str | None
    lease_duration: float
    observed_at: float
    handover_to: str | None = None
    foreign: str | None = None  # why the Lease is not ours (see `foreign`); None when it is
    holder_started: float | None = None  # when the holder's elector process started (epoch)
    switch_to: str | None = None  # a switchover the operator passed on: hand over to that pod
    members: frozenset[str] | None = None  # the pods the holder asks in a failsafe (published)


@dataclass(frozen=True)
class Decision:
    action: Action
    wait: float  # seconds until the next look, unless an event wakes us sooner


def leading(is_leader: bool, last_renew: float, now: float, timing: Timing) -> bool:
    """True only while the last successful renew is younger than the renew deadline."""
    return is_leader and now - last_renew < timing.renew_deadline


def timing_problem(timing: Timing) -> str | None:
    """Why these durations are unsafe, or None. The renew deadline must end before the lease
    does (a leader stops acting before anyone may take over), with room for a renew attempt."""
    if min(timing.lease_duration, timing.renew_deadline, timing.retry_period) <= 0:
        return "every leader-election duration must be positive"
    if not timing.renew_deadline < timing.lease_duration:
        return "the renew deadline must be shorter than the lease duration"
    if not timing.retry_period < timing.renew_deadline:
        return "the retry period must be shorter than the renew deadline"
    return None


def seen_lease(
    record: dict[str, Any] | None, previous: SeenLease | None, changed: bool, now: float,
    default_duration: float,
) -> SeenLease | None:  # fmt: skip
    """The Lease as core/election.py reads it: its clock restarts when its spec changed."""
    if record is None:
        return None
    spec = record.get("spec") or {}
    observed_at = now if changed or previous is None else previous.observed_at
    return SeenLease(
        holder=spec.get("holderIdentity") or None,
        lease_duration=float(spec.get("leaseDurationSeconds") or default_duration),
        observed_at=observed_at,
    )


def renew_timeout(last_renew: float, now: float, timing: Timing) -> float:
    """How long a renew request may take: never past the renew deadline (a renew answered after
    it would not make us lead again), at least a fraction of a second."""
    return max(min(last_renew + timing.renew_deadline - now, timing.retry_period), 0.2)


def foreign(
    labels: Mapping[str, str], lease: str, controller: Mapping[str, str] | None = None
) -> str | None:
    """Why a Lease named `lease` is not ours to contend for, or None when it is.

    Ours carries `haoperator.dev/service=<lease>` and `app.kubernetes.io/managed-by=haoperator`
    (the operator and the electors both set them when they create it; the operator adopts an
    orphan only with both) and, if anything controls it, it is the HAService of that name. A
    Lease of that name otherwise belongs to someone else (another controller's leader election,
    say): taking it over would break them, so it is left alone and the HAService reports
    NameConflict.
    """
    for key, want in ((Label.SERVICE, lease), (Label.MANAGED_BY, OPERATOR)):
        value = labels.get(key)
        if value is None:
            return f"it lacks the label {key}={want}"
        if value != want:
            return f"its label {key} is {value!r}, not {want!r}"
    if controller is not None and (
        controller.get("kind") != "HAService" or controller.get("name") != lease
    ):
        return f"it belongs to {controller.get('kind')} {controller.get('name')}"
    return None


def decide(
    me: str,
    lease: SeenLease | None,
    *,
    is_leader: bool,
    last_renew: float,
    now: float,
    timing: Timing,
    terminating: bool = False,
    healthy: bool = True,
    ready_rival: bool = False,
    holder_gone: bool = False,
    failsafe: float = 0.0,
) -> Decision:
    """`healthy`: our application is Ready; `ready_rival`: another pod (not the holder) that could
    lead has its application Ready; `holder_gone`: the kubelet reports the holder's elector
    process gone (`holder_gone`); `failsafe`: how long a holder may ride out an unreachable API
    server (see `expiry`)."""
    if is_leader and not leading(is_leader, last_renew, now, timing):
        return Decision(Action.STEP_DOWN, 0.0)
    if terminating:
        # Our pod is being deleted: the Service already stopped routing to it (a terminating
        # endpoint is not ready), and a native sidecar hears SIGTERM only after the application
        # has exited, which can take its whole grace period. Free the Lease now; never take it.
        named = lease is not None and not lease.foreign and lease.holder == me
        return Decision(Action.RELEASE if is_leader or named else Action.WAIT, timing.retry_period)
    if lease is None:
        return Decision(Action.CREATE, timing.retry_period)
    if lease.foreign:
        # Not ours (any more): never write it; a leader stops, the rest wait for news (it may
        # be deleted and replaced by ours).
        return Decision(Action.STEP_DOWN if is_leader else Action.WAIT, timing.retry_period)
    if lease.holder == me:
        if is_leader:
            # On schedule, whatever woke us: our own renew echoing back through the watch
            # must not trigger the next one at once.
            due = last_renew + timing.retry_period
            if now < due:
                return Decision(Action.WAIT, due - now)
            return Decision(Action.RENEW, timing.retry_period)
        # The Lease names us but we do not lead (a restart within the lease, or a win whose
        # fencing or labelling failed): take it again through a normal acquire, which renews it,
        # fences any other active pod and labels ours, every retry period until all succeed.
        # Unless our application is down and a rival's is up: then give it up to them now.
        if not healthy and ready_rival:
            return Decision(Action.RELEASE, timing.retry_period)
        return Decision(Action.ACQUIRE, timing.retry_period)
    if is_leader:
        # Someone else holds it while we think we lead: the Lease moved on without us.
        return Decision(Action.STEP_DOWN, 0.0)
    # From here the Lease is free, expired or its holder gone: ours to take, unless a pod that
    # is fit to serve should have it first (a named handover; a rival whose application is
    # Ready while ours is not: it takes it within a step, and if it cannot, we look again).
    unfit = not healthy and ready_rival
    if not lease.holder:
        if (
            lease.handover_to
            and lease.handover_to != me
            and now - lease.observed_at < 2 * timing.retry_period
        ):
            return Decision(Action.WAIT, lease.observed_at + 2 * timing.retry_period - now)
        return Decision(Action.WAIT if unfit else Action.ACQUIRE, timing.retry_period)
    expires = expiry(me, lease, failsafe)
    if now >= expires or holder_gone:
        return Decision(Action.WAIT if unfit else Action.ACQUIRE, timing.retry_period)
    return Decision(Action.WAIT, min(timing.retry_period, expires - now))


def expiry(me: str, lease: SeenLease, failsafe: float) -> float:
    """When the holder's Lease expires for us: a lease duration after we saw it change, and
    `failsafe` later still when the holder published its failsafe members without us (it may be
    leading on their word while the API server is out of its reach)."""
    outside = lease.members is not None and me not in lease.members
    return lease.observed_at + lease.lease_duration + (failsafe if outside else 0.0)


@dataclass(frozen=True)
class Takeover:
    """What an acquire records on the Lease."""

    failover_from: str | None  # the other pod that held or released it: a failover to record
    transitions: int  # leaseTransitions after the acquire
    retake: bool  # the Lease still names us: the same term, so acquireTime is kept


def takeover(me: str, holder: str | None, released_by: str | None, transitions: int) -> Takeover:
    """Taking back a Lease that names us (a retried acquisition, a restart within the lease) is
    not a transition: counting it would report a failover nobody saw; client-go does the same."""
    previous = holder or released_by
    failover_from = previous if previous and previous != me else None
    return Takeover(
        failover_from=failover_from,
        transitions=transitions + (1 if failover_from else 0),
        retake=holder == me,
    )


def role_to_write(leader: bool, label: str | None, *, synced: bool) -> str | None:
    """The role label to write on our own pod, or None when it is right already.

    `label` is the role on the newest copy of our pod we have (None: no label, or no copy);
    `synced`, whether the pod watch is following it now. A leader that cannot be sure its label
    is there (watch not synced) writes it anyway: without it the Service routes to nobody. Anyone
    else writes `standby` when its copy says otherwise (removing `active` is always safe); a
    stray `active` written while its watch was down is the operator's to remove, as it removes
    `active` from any pod that does not hold the Lease.
    `leader` must be `leading(...)` at the time of the write, never a remembered value: a process
    paused past its renew deadline may have been fenced by the new leader meanwhile.
    """
    if leader:
        return Role.ACTIVE if label != Role.ACTIVE or not synced else None
    return Role.STANDBY if label != Role.STANDBY else None


def preferred(candidates: list[tuple[str, str]]) -> str | None:
    """With preempt, the pod that should lead: the oldest ready pod (creation time, then name).

    The oldest pod is the one that was there first, so when the leader that lost the role to a
    pause or a partition comes back, it takes it back, as keepalived's priority does.
    """
    return min(candidates)[1] if candidates else None


# -- the pods of the service, as the electors see them -------------------------------------------


@dataclass(frozen=True)
class Member:
    """One pod of the service, as far as the election cares."""

    name: str
    created: str
    app_ready: bool  # its application containers are all Ready
    elector_running: bool  # its ha-elector process runs (a pod whose elector is down cannot lead)
    terminating: bool

    @property
    def fit(self) -> bool:
        """Could lead and serve now."""
        return self.app_ready and self.elector_running and not self.terminating


def _statuses(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    status = pod.get("status") or {}
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def elector_status(pod: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ha-elector's container status (a native sidecar: among the init containers)."""
    return next((s for s in _statuses(pod) if s.get("name") == ELECTOR), None)


def app_ready(pod: Mapping[str, Any], health_containers: Iterable[str] = ()) -> bool:
    """Whether the application of `pod` is Ready: every container the kubelet reports but the
    ha-elector (or those of `health_containers`, when named) is ready. A pod with no such status
    yet is not."""
    named = set(health_containers)
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    wanted = [
        s for s in statuses if s.get("name") != ELECTOR and (not named or s.get("name") in named)
    ]
    return bool(wanted) and all(s.get("ready") for s in wanted)


def routed_elsewhere(me: str, slices: Iterable[Mapping[str, Any]]) -> bool:
    """Whether the Service's EndpointSlices still list a pod other than `me`, ready or not.

    A new leader labels itself active only once this is false (see Elector.wait_unrouted): the
    EndpointSlice controller will not sync a Service while its cache lacks its own last write
    and retries a second later, so a label arriving just behind the fence's removal cost a
    1 s gap in about one failover in ten."""
    return any(
        ((endpoint.get("targetRef") or {}).get("name") or me) != me
        for found in slices
        for endpoint in found.get("endpoints") or []
    )


def elector_running(pod: Mapping[str, Any]) -> bool:
    found = elector_status(pod)
    return found is not None and "running" in (found.get("state") or {})


def member(pod: Mapping[str, Any], health_containers: Iterable[str] = ()) -> Member:
    meta = pod.get("metadata") or {}
    return Member(
        name=str(meta.get("name")),
        created=str(meta.get("creationTimestamp") or ""),
        app_ready=app_ready(pod, health_containers),
        elector_running=elector_running(pod),
        terminating=deleting(dict(pod)),
    )


def _last_change(found: Mapping[str, Any]) -> float | None:
    """When the kubelet last saw this container start or stop (whole seconds, the node's clock):
    started for one running now, finished for one terminated or waiting after a termination."""
    state = found.get("state") or {}
    if "running" in state:
        return epoch((state["running"] or {}).get("startedAt"))
    if "terminated" in state:
        return epoch((state["terminated"] or {}).get("finishedAt"))
    last = (found.get("lastState") or {}).get("terminated") or {}
    return epoch(last.get("finishedAt"))


def holder_gone(pod: Mapping[str, Any] | None, holder_started: float | None) -> bool:
    """Whether the holder's pod shows that the elector process that last wrote the Lease is gone.

    The Lease records when its writer started (`holder_started`, the writer's own clock); the
    kubelet's container status says when the ha-elector last started or stopped, on the same
    node's clock. A stop, or a later start, after the writer started means that process has
    exited: it can no longer renew nor answer /leader 200, and a restarted process leads again
    only through a fresh acquire, which the optimistic concurrency of the Lease serialises with
    ours. A status that is stale, or a writer that started within the same second as the status
    change, reads as not gone: we then wait for the lease to expire, as before. A pod with no
    status (force-deleted, its node lost) tells nothing.
    """
    if pod is None or holder_started is None:
        return False
    found = elector_status(pod)
    if found is None:
        return False
    changed = _last_change(found)
    if changed is None:
        return False
    # A container that started after the writer did is a newer process; one that stopped after
    # the writer started is the writer, dead. The status has whole seconds: the change counts only
    # from the second after the writer's start, so a status about an older process never does.
    return holder_started < changed


def ready_rival(me: str, holder: str | None, members: Iterable[Member]) -> bool:
    """Another pod, not the holder, that could take the role and serve now."""
    return any(m.fit for m in members if m.name not in (me, holder))


@dataclass(frozen=True)
class Handover:
    to: str
    reason: str


def handover(
    me: str,
    members: Mapping[str, Member],
    *,
    unhealthy_for: float | None,
    unhealthy_seconds: float,
    switch_to: str | None,
    preempt: bool,
    avoid: frozenset[str] = frozenset(),
) -> Handover | None:
    """Whether a leader should hand the role over now, to whom and why.

    - A switchover the operator passed on (the Lease's switchover-to): to that pod, if it is fit
      (the operator checked it; it may have changed since): otherwise not now.
    - Our application not Ready for `unhealthy_seconds` (`unhealthy_for`: seconds since we saw
      it go, None while Ready): to the best fit standby; none fit: keep the role (no flapping).
    - preempt: to the oldest ready pod, when that is not us.

    A pod in `avoid` was handed the role lately and did not take it (its elector frozen, say):
    handing it over again would only leave the service without a leader once more.
    """
    fit = [m for m in members.values() if m.fit and m.name != me and m.name not in avoid]
    if switch_to and switch_to != me:
        target = members.get(switch_to)
        good = target is not None and target.fit and switch_to not in avoid
        return Handover(switch_to, FailoverReason.SWITCHOVER) if good else None
    if unhealthy_for is not None and unhealthy_for >= unhealthy_seconds:
        best = preferred([(m.created, m.name) for m in fit])
        return Handover(best, FailoverReason.APPLICATION_UNHEALTHY) if best else None
    if preempt:
        mine = members.get(me)
        if mine is None or not mine.app_ready:
            return None
        best = preferred([(m.created, m.name) for m in fit if m.app_ready] + [(mine.created, me)])
        if best and best != me:
            return Handover(best, FailoverReason.PREEMPTED)
    return None


def failover_gap_start(
    released_at: float | None, renewed_at: float | None, holder_stopped: float | None,
    timing: Timing,
) -> float | None:  # fmt: skip
    """When the service last had an answering leader, as the new leader can tell (epoch s).

    A release is stamped when the old leader stood down. Otherwise the old leader answered
    /leader 200 at most until its last renew plus the renew deadline (it leads only while its
    last renew is younger than that), or until its elector process stopped if the kubelet says
    so first. A renew the old leader believed failed but the API server carried out late starts
    the gap at most a retry period too late: the figure errs short, never long.
    """
    if released_at is not None:
        return released_at
    if renewed_at is None:
        return holder_stopped
    deadline = renewed_at + timing.renew_deadline
    return min(deadline, holder_stopped) if holder_stopped is not None else deadline


def holder_stopped_at(pod: Mapping[str, Any] | None) -> float | None:
    """When the kubelet saw the ha-elector of `pod` stop, if it is not running now."""
    found = elector_status(pod) if pod is not None else None
    if found is None or "running" in (found.get("state") or {}):
        return None
    return _last_change(found)


# -- failsafe -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerAnswer:
    """What a member said when the leader asked in a failsafe (None fields: no answer)."""

    reachable: bool | None  # it can reach the API server
    leading: bool = False
    holder: str | None = None  # whom its copy of the Lease names


def failsafe_members(me: str, pods: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """The pods a leader must ask in a failsafe: every pod of the service but itself that could
    ever take the Lease (not being deleted, not finished)."""
    return frozenset(
        str(p["metadata"]["name"])
        for p in pods
        if p["metadata"]["name"] != me
        and not deleting(dict(p))
        and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    )


def failsafe_holds(
    me: str, members: Iterable[str], answers: Mapping[str, PeerAnswer]
) -> str | None:
    """None when every member confirmed the failsafe; otherwise why not (the leader steps down).

    Confirmed: it answered, cannot reach the API server, is not leading, and its Lease names us.
    """
    for name in sorted(members):
        answer = answers.get(name)
        if answer is None or answer.reachable is None:
            return f"{name} did not answer"
        if answer.reachable:
            return f"{name} can reach the API server"
        if answer.leading:
            return f"{name} says it leads"
        if answer.holder != me:
            return f"{name} sees the Lease held by {answer.holder or 'nobody'}"
    return None


def failsafe_lasted(since: float | None, now: float, limit: float) -> bool:
    """Whether a failsafe that began at `since` (the last renew the API server took) has run out."""
    return since is not None and now - since >= limit


def parse_members(value: str | None) -> frozenset[str] | None:
    """The failsafe members annotation: comma-separated pod names ('' for none); None if absent."""
    if value is None:
        return None
    return frozenset(name for name in value.split(",") if name)
