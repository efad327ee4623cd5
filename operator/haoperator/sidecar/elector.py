"""`haoperator elect`: the ha-elector sidecar, pacemaker's and keepalived's job done with a Lease.

It contends for the Lease `<name>` with optimistic concurrency (resourceVersion) and watches it,
so a release or an expiry is acted on at once rather than at the next poll. It contends only for
a Lease labelled as ours (`haoperator.dev/service=<name>`, managed by haoperator): one of that
name without those labels belongs to someone else and is never written.

Winning the Lease is not leading yet: it first removes the `active` role from every other pod of
the service (fencing at the API), then labels its own pod active, and only when both succeeded
does it lead (GET /leader 200). If either fails it keeps the Lease and retries the whole
acquisition every retry period (see election.py), so /leader never says 200 while the Service
routes elsewhere or nowhere.

It also watches the pods of its service. Its own pod's role label is a level it keeps true without
a request per renew: a leader puts `active` back (after a `kubectl label pod … role-`, say) and
anyone else puts `standby` back over a stray `active`. Its own pod's readiness is the
application's health, the others' tell which pod could take over (a leader whose application is
down hands over to a ready standby; an unhealthy standby leaves the Lease to a ready one), and the
holder's says when its elector process is gone (taken over at once, not at expiry).

Failsafe: a leader whose renewal cannot reach the API server asks the other electors (the
members it published on the Lease, on their elector port) every retry period; while every one
answers that it cannot reach the API server either, is not leading and sees the Lease naming
this pod, each answer counts as a renewal (election.py says why that is safe), for at most
`failsafe` seconds. When the API server answers again the leader renews and records the outage
on the Lease (the operator reports it as FailsafeHeld).

While leading it renews every retry period; if it cannot renew within the renew deadline it
labels itself standby at once. On SIGTERM it labels itself
standby and releases the Lease so a standby takes over immediately. GET /healthz and GET /leader
(200 when leader, 503 otherwise) serve the application. Failures are logged once per change of
error, not every retry period.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog

from haoperator.controller.kube import RESOURCES, ApiError, Kube
from haoperator.core.election import (
    Action,
    Handover,
    PeerAnswer,
    SeenLease,
    Timing,
    app_ready,
    decide,
    failover_gap_start,
    failsafe_holds,
    failsafe_lasted,
    failsafe_members,
    foreign,
    handover,
    holder_gone,
    holder_stopped_at,
    leading,
    member,
    parse_members,
    ready_rival,
    role_to_write,
    routed_elsewhere,
    takeover,
)
from haoperator.core.objects import (
    annotations_of,
    controller,
    deleting,
    labels_of,
    older,
)
from haoperator.core.times import epoch, micro_stamp
from haoperator.core.vocabulary import OPERATOR, Annotation, FailoverReason, Label, Role

WATCH_SECONDS = 60
DEPARTED_KEPT = 16
"""Deleted pods remembered, for the last word on a holder's elector (see election.holder_gone)."""
ASK_SHARE = 0.8
"""The share of a retry period a failsafe round waits for the members' answers (a member asks
the API server for at most half of that, so it can answer in time)."""
UNROUTE_WAIT = 0.5
"""The longest a new leader waits for the Service to drop the pods it fenced before labelling
itself active (see wait_unrouted); past it, it labels anyway."""
UNROUTE_POLL = 0.01
log = structlog.get_logger("haoperator.elector")


def _known(record: dict[str, Any], old: dict[str, Any] | None) -> bool:
    """Already seen, or older (a slow watch behind a fresh write or its answer)."""
    if old is None:
        return False
    version = record["metadata"].get("resourceVersion")
    seen = old["metadata"].get("resourceVersion")
    return older(version, seen) or (version is not None and version == seen)


def _role(pod: dict[str, Any] | None) -> str | None:
    return labels_of(pod).get(Label.ROLE)


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class Elector:
    def __init__(
        self,
        kube: Kube,
        *,
        namespace: str,
        pod: str,
        lease: str,
        timing: Timing,
        preempt: bool = False,
        unhealthy_seconds: float = 0.0,
        health_containers: tuple[str, ...] = (),
        failsafe: float = 0.0,
        port: int = 8099,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.namespace, self.pod, self.lease_name = namespace, pod, lease
        self.timing, self.preempt, self.clock = timing, preempt, clock
        self.unhealthy_seconds, self.health_containers = unhealthy_seconds, health_containers
        self.started = time.time()  # recorded on the Lease we hold (see election.holder_gone)
        self.is_leader = False  # only once fenced and labelled, never on the Lease write alone
        self.last_renew = float("-inf")
        self.record: dict[str, Any] | None = None
        self.observed: SeenLease | None = None
        self.pods: dict[str, dict[str, Any]] = {}  # the service's pods: watch, list or PATCH
        self.departed: dict[str, dict[str, Any]] = {}  # their last copies once deleted
        self.own_synced = False  # the pod watch follows them now, so `pods` is current
        self.slices: dict[str, dict[str, Any]] = {}  # the Service's EndpointSlices: their watch
        self.slices_synced = False  # the slice watch follows them now
        self.slices_news = threading.Event()  # set on every slice event (see wait_unrouted)
        self.terminating = False  # our pod is being deleted: release, never acquire
        self.unhealthy_since: float | None = None  # our application not Ready since (monotonic)
        self.pending_failover: dict[str, Any] | None = None  # recorded at the first renew
        self.unrecorded: dict[str, Any] | None = None  # a takeover written, not yet leading
        self.failsafe, self.port = failsafe, port
        self.last_api_renew: float | None = None  # monotonic: the last renew the API server took
        self.unreachable_since: float | None = None  # wall clock: a leader's renew first failed
        self.failsafe_peers: int | None = None  # members who confirmed the last failsafe round
        self.pending_annotations: dict[str, str] = {}  # written with the next renew
        self.avoid: dict[str, float] = {}  # pods handed the role that did not take it: until
        self.won_by_switchover = False  # a user moved the role here: preempt does not undo it
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.log = log.bind(namespace=namespace, pod=pod, lease=lease)
        self._troubles: dict[str, str] = {}
        self._troubles_lock = threading.Lock()

    # -- what the application asks ---------------------------------------------------------

    def leader_now(self) -> bool:
        with self.lock:
            return leading(self.is_leader, self.last_renew, self.clock(), self.timing)

    @property
    def own(self) -> dict[str, Any] | None:
        """The newest copy of our pod."""
        return self.pods.get(self.pod)

    # -- failures, logged once per change ------------------------------------------------------

    def _failed(
        self, what: str, message: str, error: object = None, *, level: str = "warning"
    ) -> None:
        """Log `message` once while the same error repeats: retried every retry period, it would
        otherwise bury everything else (and a changed error is news again)."""
        text = f"{message}: {error}"
        with self._troubles_lock:
            if self._troubles.get(what) == text:
                return
            self._troubles[what] = text
        getattr(self.log, level)(message, **({} if error is None else {"error": str(error)}))

    def _recovered(self, what: str, message: str) -> None:
        with self._troubles_lock:
            was = self._troubles.pop(what, None)
        if was is not None:
            self.log.info(message)

    # -- the Lease as seen -----------------------------------------------------------------

    def observe(self, record: dict[str, Any] | None) -> None:
        """Take a Lease read from the API; its clock starts when its content last changed.
        Only news wakes the loop: our own writes echo back through the watch."""
        with self.lock:
            news = self._observe(record)
            why = self.observed.foreign if self.observed else None
        if why:
            self._failed(
                "ownership",
                f"the Lease {self.lease_name} is not ours ({why}): leaving it alone, standing by; "
                "the HAService reports NameConflict",
            )
        else:
            self._recovered("ownership", "the Lease is ours again: contending")
        if news:
            self.wake.set()

    def _observe(self, record: dict[str, Any] | None) -> bool:
        if record is None:
            news = self.record is not None
            self.record, self.observed = None, None
            return news
        old = self.record
        if _known(record, old):
            return False
        spec = record.get("spec") or {}
        changed = old is None or (old.get("spec") or {}) != spec
        observed_at = (
            self.clock() if changed or self.observed is None else self.observed.observed_at
        )
        self.record = record
        self.observed = SeenLease(
            holder=spec.get("holderIdentity") or None,
            lease_duration=float(spec.get("leaseDurationSeconds") or self.timing.lease_duration),
            observed_at=observed_at,
            handover_to=annotations_of(record).get(Annotation.HANDOVER_TO),
            foreign=foreign(labels_of(record), self.lease_name, controller(record)),
            holder_started=_float(annotations_of(record).get(Annotation.HOLDER_STARTED)),
            switch_to=annotations_of(record).get(Annotation.SWITCHOVER_TO),
            members=parse_members(annotations_of(record).get(Annotation.FAILSAFE_MEMBERS)),
        )
        return True

    # -- our pod as seen -------------------------------------------------------------------

    def observe_pod(self, pod: dict[str, Any], *, gone: bool = False) -> None:
        """Take a pod of the service from the watch (`gone`: deleted) or from a PATCH's answer.
        Any news wakes the loop: our role label to put back, a change of health, a holder whose
        elector stopped."""
        name = pod["metadata"]["name"]
        with self.lock:
            old = self.pods.get(name) or self.departed.get(name)
            if not gone and _known(pod, old):
                return
            deleted = self._take_pod(name, pod, gone)
        if deleted:
            self.log.info("this pod is being deleted: giving the Lease up")
        self.wake.set()

    def _take_pod(self, name: str, pod: dict[str, Any], gone: bool) -> bool:
        """Store a pod (lock held); True when it says our own pod is now being deleted."""
        if gone:
            self.pods.pop(name, None)
            self.departed[name] = pod
            while len(self.departed) > DEPARTED_KEPT:
                self.departed.pop(next(iter(self.departed)))
        else:
            self.pods[name] = pod
            self.departed.pop(name, None)
        if name != self.pod:
            return False
        if app_ready(pod, self.health_containers) and not gone:
            self.unhealthy_since = None
        elif self.unhealthy_since is None:
            self.unhealthy_since = self.clock()
        news = (gone or deleting(pod)) and not self.terminating
        self.terminating = self.terminating or news
        return news

    def read_pods(self) -> str | None:
        """List the service's pods before (re)starting their watch: from then on the copies are
        current. Returns the version to watch from."""
        page = self.kube.list_page(
            "Pod", self.namespace, {"labelSelector": f"{Label.SERVICE}={self.lease_name}"}
        )
        items = page.get("items") or []
        listed = {item["metadata"]["name"] for item in items}
        with self.lock:
            for name in [n for n in self.pods if n not in listed]:
                self._take_pod(name, self.pods[name], gone=True)
        for item in items:
            item.setdefault("kind", "Pod")
            self.observe_pod(item)
        with self.lock:
            self.own_synced = True
        return str((page.get("metadata") or {}).get("resourceVersion") or "") or None

    def _pod_unsynced(self) -> None:
        with self.lock:
            self.own_synced = False

    # -- one step ---------------------------------------------------------------------------

    def step(self) -> float:
        """Act once, then keep our pod's role label right; returns how long to wait before the
        next step."""
        with self.lock:
            now = self.clock()
            holder = self.observed.holder if self.observed else None
            members = {name: member(pod, self.health_containers) for name, pod in self.pods.items()}
            mine = members.get(self.pod)
            healthy = mine.app_ready if mine is not None else True
            rival = self.own_synced and ready_rival(self.pod, holder, members.values())
            gone = bool(
                self.own_synced
                and holder
                and holder != self.pod
                and self.observed
                and holder_gone(
                    self.pods.get(holder) or self.departed.get(holder),
                    self.observed.holder_started,
                )
            )
            decision = decide(
                self.pod,
                self.observed,
                is_leader=self.is_leader,
                last_renew=self.last_renew,
                now=now,
                timing=self.timing,
                terminating=self.terminating,
                healthy=healthy,
                ready_rival=rival,
                holder_gone=gone,
                failsafe=self.failsafe,
            )
            move: Handover | None = None
            if self.is_leader and decision.action in (Action.RENEW, Action.WAIT):
                move = handover(
                    self.pod,
                    members if self.own_synced else {},
                    unhealthy_for=None
                    if self.unhealthy_since is None
                    else now - self.unhealthy_since,
                    unhealthy_seconds=self.unhealthy_seconds,
                    switch_to=self.observed.switch_to if self.observed else None,
                    preempt=self.preempt and not self.won_by_switchover,
                    avoid=frozenset(n for n, until in self.avoid.items() if until > now),
                )
        wait = decision.wait
        try:
            if move is not None:
                self.log.info("handing the role over", to=move.to, reason=move.reason)
                self.release(handover_to=move.to, reason=move.reason)
                wait = self.timing.retry_period
            elif decision.action is Action.STEP_DOWN:
                self.step_down("renew deadline passed, or the Lease moved on or is not ours")
            elif decision.action is Action.RELEASE:
                self.release(reason=self._release_reason())
            elif decision.action is Action.CREATE:
                self.create()
            elif decision.action is Action.ACQUIRE:
                self.acquire()
            elif decision.action is Action.RENEW:
                self.renew_or_ride_out()
                wait = self.next_round(wait)
            elif decision.action is Action.WAIT and self.is_leader and self._members_unpublished():
                # The pods a failsafe must ask changed (our pod watch synced only after we won,
                # a pod came or went): publish them now, not at the next renew. Seen on the real
                # node: an outage a second after a first election found none published, and the
                # leader stepped down for the whole of it.
                self._try(
                    "lease",
                    lambda: self.renew(timeout=self.renew_timeout(False)),
                    "could not publish the failsafe members on the Lease",
                )
        except ApiError as exc:
            wait = self._lease_refused(decision.action, exc, decision.wait)
        self.keep_role()
        return wait

    def _release_reason(self) -> str:
        if self.terminating:
            return FailoverReason.POD_DELETED
        return FailoverReason.APPLICATION_UNHEALTHY

    def _lease_refused(self, action: Action, exc: ApiError, wait: float) -> float:
        if exc.status == 409:
            try:
                self.refresh()  # our copy was stale or someone created it first: read it
            except ApiError as again:
                self._failed("lease", "could not read the Lease", again)
        elif action is Action.CREATE and exc.status == 403:
            # The operator creates the Lease (its Role for the electors no longer grants
            # create); the watch wakes us when it appears, so do not knock every second.
            self._failed(
                "lease",
                "may not create the Lease: waiting for the operator to create it",
                exc,
                level="info",
            )
            return self.timing.lease_duration
        else:
            self._failed("lease", "could not write the Lease", exc)
        return min(wait, self.timing.retry_period) if wait else self.timing.retry_period

    def refresh(self) -> None:
        self.observe(self.kube.get("Lease", self.namespace, self.lease_name))

    def create(self) -> None:
        """A missing Lease: create it, labelled as ours (normally the operator already has)."""
        now = micro_stamp(time.time())
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.lease_name,
                "namespace": self.namespace,
                "labels": {Label.SERVICE: self.lease_name, Label.MANAGED_BY: OPERATOR},
                "annotations": {Annotation.HOLDER_STARTED: f"{self.started:.6f}"},
            },
            "spec": {
                "holderIdentity": self.pod,
                "leaseDurationSeconds": int(self.timing.lease_duration),
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
        self._take(lambda: self.kube.create(body), previous=None)

    def acquire(self) -> None:
        with self.lock:
            record = self.record
        if record is None:
            return
        spec = dict(record.get("spec") or {})
        annotations = dict(record["metadata"].get("annotations") or {})
        for done in (
            Annotation.HANDOVER_TO,
            Annotation.SWITCHOVER_TO,
            Annotation.SWITCHOVER_REQUESTED,
        ):
            annotations.pop(done, None)
        holder = spec.get("holderIdentity") or None
        named = (record["metadata"].get("annotations") or {}).get(Annotation.HANDOVER_TO)
        if holder is None and named and named != self.pod:
            # Handed to another pod, which let it lie: do not hand it to that pod again soon.
            with self.lock:
                self.avoid[named] = self.clock() + 2 * self.timing.lease_duration
        released_by = annotations.pop(Annotation.RELEASED_BY, None)
        release_reason = annotations.pop(Annotation.RELEASE_REASON, None)
        taken = takeover(self.pod, holder, released_by, int(spec.get("leaseTransitions") or 0))
        annotations[Annotation.HOLDER_STARTED] = f"{self.started:.6f}"
        annotations.pop(Annotation.FAILSAFE_MEMBERS, None)
        annotations.update(self._members_annotation())
        pending = None
        if taken.failover_from:
            with self.lock:
                holder_pod = (
                    (self.pods.get(holder) or self.departed.get(holder)) if holder else None
                )
                dead = holder_gone(holder_pod, _float(
                    (record["metadata"].get("annotations") or {}).get(Annotation.HOLDER_STARTED)
                ))  # fmt: skip
            renewed = epoch(spec.get("renewTime"))
            if holder is None:
                reason = release_reason or FailoverReason.ELECTOR_STOPPED
            else:
                reason = FailoverReason.ELECTOR_TERMINATED if dead else FailoverReason.LEASE_EXPIRED
            pending = {
                "from": taken.failover_from,
                "reason": reason,
                "since": failover_gap_start(
                    renewed if holder is None else None,
                    renewed if holder is not None else None,
                    holder_stopped_at(holder_pod) if dead else None,
                    self.timing,
                ),
            }
        with self.lock:
            # A takeover whose fencing or labelling failed is retried as a retake (the Lease names
            # us already): it is still the same failover, recorded once we lead.
            if pending is not None or not taken.retake:
                self.unrecorded = pending
            pending = self.unrecorded
        now = micro_stamp(time.time())
        body = {
            **record,
            "metadata": {**record["metadata"], "annotations": annotations},
            "spec": {
                **spec,
                "holderIdentity": self.pod,
                "leaseDurationSeconds": int(self.timing.lease_duration),
                "acquireTime": (spec.get("acquireTime") if taken.retake else None) or now,
                "renewTime": now,
                "leaseTransitions": taken.transitions,
            },
        }
        self._take(
            lambda: self.kube.replace(_lease(body)),
            previous=taken.failover_from,
            pending=pending,
        )

    def _take(
        self,
        write: Callable[[], dict[str, Any]],
        *,
        previous: str | None,
        pending: dict[str, Any] | None = None,
    ) -> None:
        """Write the Lease (an ApiError goes to the caller), then fence, then label: lead only
        when all three succeeded within the renew deadline of the write. Otherwise the Lease
        names us while we do not lead, so the next step acquires again (see election.decide).

        Fencing while the write is on its way, when the released Lease named us, was measured on
        real pods (2026-12-04, 15 handovers): p50 0.223 s against 0.188 s, and 1 at 0.675 s (the
        fence right behind the old pod's deletion met the EndpointSlice controller's stale cache,
        as unlabelling before the release did: see release). So the fence waits for the write."""
        before = self.clock()
        record = write()
        with self.lock:
            self._observe(record)
        self._recovered("lease", "the Lease can be written again")
        if not self._try(
            "fence", self.fence, "could not fence the other active pods: not leading until it can"
        ):
            return
        if not leading(True, before, self.clock(), self.timing):
            # Paused (or the API server slow) while fencing: the Lease may be another's by now.
            self._failed("slow", "fencing outlasted the renew deadline: not leading; again")
            return
        self.wait_unrouted()
        if not self._try(
            f"label {Role.ACTIVE}",
            lambda: self.label(Role.ACTIVE),
            "could not label this pod active: not leading until it can",
        ):
            return
        with self.lock:
            if not leading(True, before, self.clock(), self.timing):
                slow = True  # the label took too long: keep_role takes it back; retried
            else:
                slow = False
                self.is_leader, self.last_renew = True, before
                self.last_api_renew = before
                self.won_by_switchover = (pending or {}).get("reason") == FailoverReason.SWITCHOVER
                if pending is not None:
                    # The gap ends now that we answer /leader 200: written by the renew that
                    # follows, which the operator turns into FailoverCompleted.
                    self.pending_failover = {**pending, "led": time.time()}
                    self.unrecorded = None
        if slow:
            self._failed("slow", "labelling outlasted the renew deadline: not leading; again")
            return
        self._recovered("slow", "fenced and labelled within the renew deadline")
        self.log.info("leader elected", previous=previous)
        if pending is not None:
            # Record the failover now that we serve, with a renew: the operator reports it.
            self._try("lease", self.renew, "could not record the failover on the Lease")

    def _try(self, what: str, action: Callable[[], object], message: str) -> bool:
        try:
            action()
        except ApiError as exc:
            self._failed(what, message, exc)
            return False
        self._recovered(what, f"{what} works again")
        return True

    def renew(self, timeout: float | None = None) -> None:
        """Renew the Lease. A conflict whose fresh copy still names us is retried at once: it
        is most often our own renew, sent while the API server was out of reach and carried
        out when it came back (seen on the real node after a 60 s freeze: the leader stepped
        down on the conflict and took the Lease back 0.08 s later, 503 meanwhile). Optimistic
        concurrency makes that safe: a late write goes through only if nobody else wrote in
        between, so a Lease still naming us was taken by nobody."""
        try:
            self._renew(timeout)
        except ApiError as exc:
            if exc.status != 409:
                raise
            self.refresh()
            with self.lock:
                seen = self.observed
            if seen is None or seen.foreign or seen.holder != self.pod:
                raise
            self._renew(timeout)

    def _renew(self, timeout: float | None) -> None:
        with self.lock:
            record = self.record
        if record is None:
            return
        before = self.clock()
        with self.lock:
            pending = self.pending_failover
            extra = dict(self.pending_annotations)
        if pending is not None:
            extra[Annotation.LAST_FAILOVER] = failover_record(pending, self.pod)
        extra.update(self._members_annotation(record))
        metadata = record["metadata"]
        if extra:
            metadata = {
                **metadata,
                "annotations": {**(metadata.get("annotations") or {}), **extra},
            }
        body = {
            **record,
            "metadata": metadata,
            "spec": {**(record.get("spec") or {}), "renewTime": micro_stamp(time.time())},
        }
        updated = self.kube.replace(_lease(body), timeout=timeout)
        with self.lock:
            self._observe(updated)
            self.last_renew = before
            self.last_api_renew = before
            if self.pending_failover is pending:
                self.pending_failover = None
            for key in extra:
                self.pending_annotations.pop(key, None)
        self._recovered("lease", "the Lease can be written again")

    def _members_unpublished(self) -> bool:
        with self.lock:
            record = self.record
        return record is not None and bool(self._members_annotation(record))

    def _members_annotation(self, record: dict[str, Any] | None = None) -> dict[str, str]:
        """The failsafe members to publish, when they differ from what `record` says: every
        other pod that could take the Lease, from the pod watch (only once it is synced)."""
        if not self.failsafe:
            return {}
        with self.lock:
            if not self.own_synced:
                return {}
            members = ",".join(sorted(failsafe_members(self.pod, self.pods.values())))
        if (
            record is not None
            and annotations_of(record).get(Annotation.FAILSAFE_MEMBERS) == members
        ):
            return {}
        return {Annotation.FAILSAFE_MEMBERS: members}

    # -- failsafe ---------------------------------------------------------------------------

    def renew_or_ride_out(self) -> None:
        """Renew; if the API server cannot be reached, ride the outage out on the members' word
        (a failsafe round), or step down at once when they do not give it."""
        riding = self.unreachable_since is not None
        try:
            # A renew must not eat the time a failsafe round needs: the round (asking the
            # members, up to 0.8 of a retry period) has to end within the renew deadline of the
            # last renewal, or /leader says 503 meanwhile although nobody else can lead.
            self.renew(timeout=self.renew_timeout(riding))
        except ApiError as exc:
            if exc.status != 0 or not self.failsafe or not self.leader_now():
                raise
            if not riding:
                self.unreachable_since = time.time()
                self.log.warning("the API server is unreachable: asking the other pods")
            self.ride_out()
            return
        if riding:
            self._outage_over()

    def renew_timeout(self, riding: bool) -> float | None:
        """How long a renew may wait for the API server: the client's default without a
        failsafe; with one, short enough that a renew due a retry period after the last one,
        then a round of questions, both at their timeouts, end well before its renew deadline
        (at the default 5/3/1 s timing: 1 + 0.6 + 0.8 = 2.4 s of the 3 s)."""
        if riding:
            return self.timing.retry_period / 2
        if not self.failsafe:
            return None
        spare = self.timing.renew_deadline - self.timing.retry_period * (1 + ASK_SHARE)
        return max(min(self.timing.retry_period, spare * 0.5), self.timing.retry_period / 2)

    def next_round(self, wait: float) -> float:
        """While riding an outage out, the next round is due a retry period after the last
        proxy renewal (when its questions were sent), not after its answers came: counting from
        the answers, two slow rounds in a row let the renew deadline pass between them."""
        with self.lock:
            if self.unreachable_since is None or not self.is_leader:
                return wait
            due = self.last_renew + self.timing.retry_period
        return max(due - self.clock(), 0.0)

    def _outage_over(self) -> None:
        since, self.unreachable_since = self.unreachable_since, None
        peers, self.failsafe_peers = self.failsafe_peers, None
        if since is None or not self.leader_now():
            return
        seconds = round(max(time.time() - since, 0.0), 3)
        self.log.info("the API server answers again: kept the role", seconds=seconds, peers=peers)
        record = json.dumps(
            {"pod": self.pod, "time": micro_stamp(time.time()), "seconds": seconds,
             "peers": peers or 0},
            sort_keys=True,
        )  # fmt: skip
        with self.lock:
            self.pending_annotations[Annotation.LAST_FAILSAFE] = record
        self._try("lease", self.renew, "could not record the outage on the Lease")

    def ride_out(self) -> None:
        """One failsafe round: ask every published member; all confirm, or step down now."""
        now = self.clock()
        with self.lock:
            members = self.observed.members if self.observed else None
            last = self.last_api_renew
        if members is None:
            self.step_down("the API server is unreachable and no failsafe members are published")
            return
        if failsafe_lasted(last, now, self.failsafe):
            self.step_down(
                f"the API server has been unreachable for the failsafe's {self.failsafe:g} s"
            )
            return
        sent = self.clock()
        answers = self.ask(members)
        why = failsafe_holds(self.pod, members, answers)
        if why is not None and any(a.reachable for a in answers.values()):
            # Another pod reaches the API server: it may be back (busy with the backlog of an
            # outage, say) or the outage may be ours alone. One more renew, with the usual
            # timeout, tells which: renewed, the outage is over; not, we step down now.
            try:
                self.renew()
            except ApiError:
                pass
            else:
                self._outage_over()
                return
        if why is not None:
            self.step_down(f"the API server is unreachable and {why}")
            return
        with self.lock:
            if self.is_leader:
                self.last_renew = max(self.last_renew, sent)  # a renewal by proxy: see election
                self.failsafe_peers = len(members)
        self._failed(
            "failsafe",
            "the API server is unreachable: keeping the role, every other pod confirms",
            level="info",
        )

    def ask(self, members: frozenset[str]) -> dict[str, PeerAnswer]:
        """Ask each member at once (POST /failsafe on its elector port), within a retry period."""
        if not members:
            return {}
        with self.lock:
            ips = {
                name: ((self.pods.get(name) or {}).get("status") or {}).get("podIP")
                for name in members
            }
        timeout = self.timing.retry_period * ASK_SHARE
        with ThreadPoolExecutor(max_workers=len(members)) as pool:
            found = {
                name: pool.submit(_ask_peer, ip, self.port, self.pod, timeout)
                for name, ip in ips.items()
            }
            return {name: future.result() for name, future in found.items()}

    def answer_failsafe(self, asker: str) -> dict[str, Any]:
        """A leader asks: can we reach the API server, do we lead, whom does our Lease name? When
        we cannot reach it, do not lead and the Lease names the asker, the question is a renewal:
        our copy of its Lease is valid for a lease duration from now (so we will not take it
        sooner, even if the API server comes back to us first)."""
        reachable = self.api_reachable()
        with self.lock:
            lead = leading(self.is_leader, self.last_renew, self.clock(), self.timing)
            holder = self.observed.holder if self.observed else None
            if not reachable and not lead and holder == asker and self.observed is not None:
                self.observed = dataclasses.replace(
                    self.observed, observed_at=max(self.observed.observed_at, self.clock())
                )
        return {"pod": self.pod, "apiReachable": reachable, "leading": lead, "holder": holder}

    def api_reachable(self) -> bool:
        """Whether the API server answers us now (reading the Lease, within part of a retry
        period, so the asker hears back in time)."""
        try:
            record = self.kube.get(
                "Lease",
                self.namespace,
                self.lease_name,
                timeout=self.timing.retry_period * ASK_SHARE / 2,
            )
        except ApiError as exc:
            return exc.status != 0  # any HTTP answer is an answer
        self.observe(record)
        return True

    def state(self) -> str:
        """What /leader says beside its status code."""
        if not self.leader_now():
            return "standby"
        if self.unreachable_since is not None:
            return (
                f"leader (failsafe: the API server unreachable for "
                f"{time.time() - self.unreachable_since:.1f} s, {self.failsafe_peers or 0} "
                "other pods confirm)"
            )
        return "leader"

    def step_down(self, why: str) -> None:
        """Stop leading; the caller's keep_role labels the pod standby."""
        with self.lock:
            was = self.is_leader
            self.is_leader = False
            self.pending_failover = None
        if was:
            self.log.warning("stepping down", reason=why)

    def release(
        self, handover_to: str | None = None, reason: str = FailoverReason.ELECTOR_STOPPED
    ) -> None:
        """Stand down and give the Lease up so a standby takes it now, not when it expires.

        The Lease goes first, our label after: we stopped answering 200 the moment we stood
        down, and the next leader fences us before it labels itself. Measured on real pods
        (2026-12-04, 15 handovers each way): unlabelling first freed the Lease ~20 ms later,
        and in 2 handovers the Service kept our pod past the next leader's 0.5 s wait for
        the slices (our label change right behind our pod's deletion: the EndpointSlice
        controller's stale-cache retry), 0.7 s in all; p50 0.195 s against 0.214 s."""
        self.step_down("releasing the Lease")
        self._give_up_lease(handover_to, reason, attempts=3)
        self.keep_role()

    def _give_up_lease(self, handover_to: str | None, reason: str, attempts: int) -> None:
        with self.lock:
            record, observed = self.record, self.observed
        if record is None or observed is None or observed.foreign or observed.holder != self.pod:
            return
        annotations = dict(record["metadata"].get("annotations") or {})
        annotations[Annotation.RELEASED_BY] = self.pod
        annotations[Annotation.RELEASE_REASON] = reason
        if handover_to:
            annotations[Annotation.HANDOVER_TO] = handover_to
        body = {
            **record,
            "metadata": {**record["metadata"], "annotations": annotations},
            "spec": {
                **(record.get("spec") or {}),
                "holderIdentity": None,
                "renewTime": micro_stamp(time.time()),
            },
        }
        try:
            self.observe(self.kube.replace(_lease(body)))
        except ApiError as exc:
            if exc.status != 409 or attempts <= 1:
                self.log.warning("could not release the Lease", error=str(exc))
                return
            # Our copy was stale (a renew we did not see back yet): read it and try again, or
            # the standby waits out the whole lease.
            try:
                self.refresh()
            except ApiError as again:
                self.log.warning("could not release the Lease", error=str(again))
                return
            self._give_up_lease(handover_to, reason, attempts - 1)

    # -- pods ---------------------------------------------------------------------------------

    def keep_role(self) -> None:
        """Make our pod's role label what it should be now (election.role_to_write): `active`
        only while leading at this very moment, `standby` otherwise.

        A leader that cannot put its label back stays the leader (it holds the Lease: nobody
        else may act), warns, and the operator reports the pod as Degraded; it tries again at
        the next step.
        """
        leader = self.leader_now()
        with self.lock:
            role = role_to_write(leader, _role(self.own), synced=self.own_synced)
        if role is None:
            return
        message = (
            "could not restore this pod's active label: the Service routes to no pod until it can"
            if role == Role.ACTIVE
            else "could not label this pod standby"
        )
        self._try(f"label {role}", lambda: self.label(role), message)

    def label(self, role: str) -> None:
        self.observe_pod(self._set_role(self.pod, role))

    def _set_role(self, pod: str, role: str) -> dict[str, Any]:
        """Our writes name us (the Kube's field manager: ha-elector)."""
        return self.kube.patch(
            "Pod", self.namespace, pod, {"metadata": {"labels": {Label.ROLE: role}}}
        )

    def fence(self) -> None:
        """Remove `active` from every other pod of the service; an ApiError means not fenced.
        A pod deleted meanwhile (404) is fenced: nothing routes to it any more."""
        selector = f"{Label.SERVICE}={self.lease_name},{Label.ROLE}={Role.ACTIVE}"
        for pod in self.kube.list("Pod", self.namespace, selector):
            name = pod["metadata"]["name"]
            if name == self.pod:
                continue
            try:
                self._set_role(name, Role.STANDBY)
            except ApiError as exc:
                if exc.status != 404:
                    raise
            else:
                self.log.info("fenced the previous active pod", fenced=name)

    def wait_unrouted(self) -> None:
        """Wait (at most UNROUTE_WAIT) until the Service's EndpointSlices list no pod but ours:
        the removal of the previous active pod is then written, so our label is a change of
        its own that the EndpointSlice controller routes at once, not one it meets with a
        stale cache and retries a second later (see election.routed_elsewhere). The slices come
        from their watch, so the removal is seen the moment it is written and the API server,
        busy with the handover, is not polled; until that watch has synced, from a list every
        UNROUTE_POLL. A Service without slices, or slices we cannot read, do not hold the
        takeover up."""
        give_up = time.monotonic() + UNROUTE_WAIT
        while True:
            self.slices_news.clear()  # before reading: a change from now on wakes the wait
            with self.lock:
                watched = list(self.slices.values()) if self.slices_synced else None
            slices = self._listed_slices() if watched is None else watched
            if slices is None or not routed_elsewhere(self.pod, slices):
                return
            left = give_up - time.monotonic()
            if left <= 0:
                self.log.info("the Service still routes elsewhere: labelling without waiting")
                return
            if watched is None:
                time.sleep(min(UNROUTE_POLL, left))
            else:
                self.slices_news.wait(left)

    def _listed_slices(self) -> list[dict[str, Any]] | None:
        """The Service's EndpointSlices read now; None when they cannot be read."""
        selector = f"{Label.ENDPOINT_SLICE_SERVICE}={self.lease_name}"
        try:
            slices = self.kube.list("EndpointSlice", self.namespace, selector)
        except ApiError as exc:
            message = "could not read the Service's EndpointSlices: labelling without waiting"
            self._failed("slices", message, exc)
            return None
        self._recovered("slices", "the Service's EndpointSlices can be read again")
        return slices

    def observe_slice(self, found: dict[str, Any], *, gone: bool = False) -> None:
        name = found["metadata"]["name"]
        with self.lock:
            if gone:
                self.slices.pop(name, None)
            elif not _known(found, self.slices.get(name)):
                self.slices[name] = found
        self.slices_news.set()

    def read_slices(self) -> str | None:
        """List the Service's EndpointSlices before (re)starting their watch."""
        selector = f"{Label.ENDPOINT_SLICE_SERVICE}={self.lease_name}"
        page = self.kube.list_page("EndpointSlice", self.namespace, {"labelSelector": selector})
        with self.lock:
            self.slices = {item["metadata"]["name"]: item for item in page.get("items") or []}
            self.slices_synced = True
        self.slices_news.set()
        return str((page.get("metadata") or {}).get("resourceVersion") or "") or None

    def _slices_unsynced(self) -> None:
        with self.lock:
            self.slices_synced = False

    # -- loops --------------------------------------------------------------------------------

    def watch_lease(self) -> None:
        """Follow the Lease so a release or an expiry is seen at once."""

        def take(type_: str, obj: dict[str, Any]) -> None:
            self.observe(None if type_ == "DELETED" else obj)

        def read() -> None:
            self.refresh()

        self._follow("Lease", read, take, field_selector=f"metadata.name={self.lease_name}")

    def watch_pods(self) -> None:
        """Follow the service's pods: our role label, our health, the others' (see the module)."""

        def take(type_: str, obj: dict[str, Any]) -> None:
            self.observe_pod(obj, gone=type_ == "DELETED")

        self._follow(
            "Pod",
            self.read_pods,
            take,
            label_selector=f"{Label.SERVICE}={self.lease_name}",
            lost=self._pod_unsynced,
        )

    def watch_slices(self) -> None:
        """Follow the Service's EndpointSlices: a takeover waits on them (see wait_unrouted)."""

        def take(type_: str, obj: dict[str, Any]) -> None:
            self.observe_slice(obj, gone=type_ == "DELETED")

        self._follow(
            "EndpointSlice",
            self.read_slices,
            take,
            label_selector=f"{Label.ENDPOINT_SLICE_SERVICE}={self.lease_name}",
            lost=self._slices_unsynced,
        )

    def _follow(
        self,
        kind: str,
        read: Callable[[], str | None],
        take: Callable[[str, dict[str, Any]], None],
        *,
        field_selector: str = "",
        label_selector: str = "",
        lost: Callable[[], None] | None = None,
    ) -> None:
        """Read one object, then watch it, again and again: the watch must outlive API hiccups.
        The read timeout outlasts the server's own end of the watch, so a connection that died
        silently is noticed instead of leaving a copy believed current forever."""
        what = kind.lower()
        while not self.stop.is_set():
            try:
                version = read()
                self._recovered(f"{what} watch", f"{what} watch works again")
                events = self.kube.watch(
                    kind, self.namespace, field_selector=field_selector,
                    label_selector=label_selector, seconds=WATCH_SECONDS, version=version or "",
                )  # fmt: skip
                try:
                    for type_, obj in events:
                        if type_ in ("ADDED", "MODIFIED", "DELETED"):
                            take(type_, obj)
                        if self.stop.is_set():
                            break
                finally:
                    events.close()
            except Exception as exc:
                if lost:
                    lost()
                self._failed(f"{what} watch", f"{what} watch failed; retrying", exc)
                self.stop.wait(self.timing.retry_period)

    def read_lease_first(self) -> None:
        """Act on the Lease only once it has been read: until then no copy would mean "missing",
        and the first step would try to create a Lease that exists (refused: the electors may
        not create one)."""
        while not self.stop.is_set():
            try:
                self.refresh()
                return
            except ApiError as exc:
                self._failed("lease", "could not read the Lease", exc)
                self.stop.wait(self.timing.retry_period)

    def run(self) -> None:
        # No relabelling before the first step: a restarted elector whose Lease still names it
        # (the kubelet restarts a killed sidecar within a second) takes it back with its label
        # untouched; unlabelling first took a healthy pod out of the Service for that time. The
        # first step's keep_role labels the pod whatever the Lease makes it.
        self.read_lease_first()
        while not self.stop.is_set():
            # Clear before acting, not after: a Lease change seen while this step runs (a
            # release arriving mid-step) must wake the next step at once, not after `delay`.
            self.wake.clear()
            delay = self.step()
            self.wake.wait(max(delay, 0.01))
        # Even a leader that already stepped down may still be named on the Lease: free it.
        self.release(
            reason=FailoverReason.POD_DELETED
            if self.terminating
            else FailoverReason.ELECTOR_STOPPED
        )


def _lease(body: dict[str, Any]) -> dict[str, Any]:
    """A Lease to write, with the kind and version that name where it goes."""
    return {**body, "apiVersion": RESOURCES["Lease"].api_version, "kind": "Lease"}


def failover_record(pending: dict[str, Any], me: str) -> str:
    """The Lease's last-failover annotation: from the last moment the service had an answering
    leader (`since`) to the moment we started answering (`led`)."""
    led = float(pending["led"])
    since = pending.get("since")
    seconds = max(led - float(since), 0.0) if since is not None else 0.0
    return json.dumps(
        {
            "from": pending["from"],
            "to": me,
            "time": micro_stamp(led),
            "seconds": round(seconds, 3),
            "reason": pending["reason"],
        },
        sort_keys=True,
    )


def _ask_peer(ip: str | None, port: int, me: str, timeout: float) -> PeerAnswer:
    if not ip:
        return PeerAnswer(reachable=None)
    request = urllib.request.Request(
        f"http://{ip}:{port}/failsafe",
        data=json.dumps({"holder": me}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            said = json.loads(answer.read())
        return PeerAnswer(
            reachable=bool(said["apiReachable"]),
            leading=bool(said["leading"]),
            holder=said.get("holder"),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return PeerAnswer(reachable=None)
