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

It also watches its own pod, so the role label is a level it keeps true without a request per
renew: a leader puts `active` back (after a `kubectl label pod … role-`, say) and anyone else puts
`standby` back over a stray `active`. While leading it renews every retry period; if it cannot
renew within the renew deadline it labels itself standby at once. On SIGTERM it labels itself
standby and releases the Lease so a standby takes over immediately. GET /healthz and GET /leader
(200 when leader, 503 otherwise) serve the application. Failures are logged once per change of
error, not every retry period.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

from haoperator.controller.kube import RESOURCES, ApiError, Kube
from haoperator.core.election import (
    Action,
    SeenLease,
    Timing,
    decide,
    foreign,
    leading,
    preferred,
    role_to_write,
    takeover,
)
from haoperator.core.objects import (
    annotations_of,
    controller,
    deleting,
    is_ready,
    labels_of,
    older,
)
from haoperator.core.times import epoch, micro_stamp
from haoperator.core.vocabulary import OPERATOR, Annotation, Label, Role

WATCH_SECONDS = 60
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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.namespace, self.pod, self.lease_name = namespace, pod, lease
        self.timing, self.preempt, self.clock = timing, preempt, clock
        self.is_leader = False  # only once fenced and labelled, never on the Lease write alone
        self.last_renew = float("-inf")
        self.record: dict[str, Any] | None = None
        self.observed: SeenLease | None = None
        self.own: dict[str, Any] | None = None  # newest copy of our pod: watch, GET or PATCH
        self.own_synced = False  # the pod watch follows it now, so `own` is current
        self.terminating = False  # our pod is being deleted: release, never acquire
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
        )
        return True

    # -- our pod as seen -------------------------------------------------------------------

    def observe_pod(self, pod: dict[str, Any] | None) -> None:
        """Take our own pod from the watch or from a PATCH's answer. A change of its role label
        wakes the loop, which puts the right one back (see keep_role)."""
        with self.lock:
            old = self.own
            if pod is not None and _known(pod, old):
                return
            self.own = pod
            gone = pod is not None and deleting(pod)
            news = gone and not self.terminating
            self.terminating = self.terminating or gone
        if news:
            self.log.info("this pod is being deleted: giving the Lease up")
        if news or _role(pod) != _role(old):
            self.wake.set()

    def read_pod(self) -> None:
        """Read our pod before (re)starting its watch: from then on the copy is current."""
        self.observe_pod(self.kube.get("Pod", self.namespace, self.pod))
        with self.lock:
            self.own_synced = True

    def _pod_unsynced(self) -> None:
        with self.lock:
            self.own_synced = False

    # -- one step ---------------------------------------------------------------------------

    def step(self) -> float:
        """Act once, then keep our pod's role label right; returns how long to wait before the
        next step."""
        with self.lock:
            decision = decide(
                self.pod,
                self.observed,
                is_leader=self.is_leader,
                last_renew=self.last_renew,
                now=self.clock(),
                timing=self.timing,
                terminating=self.terminating,
            )
        wait = decision.wait
        try:
            if decision.action is Action.STEP_DOWN:
                self.step_down("renew deadline passed, or the Lease moved on or is not ours")
            elif decision.action is Action.RELEASE:
                self.release()
            elif decision.action is Action.CREATE:
                self.create()
            elif decision.action is Action.ACQUIRE:
                self.acquire()
            elif decision.action is Action.RENEW:
                self.renew()
        except ApiError as exc:
            wait = self._lease_refused(decision.action, exc, decision.wait)
        self.keep_role()
        return wait

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
        annotations.pop(Annotation.HANDOVER_TO, None)
        taken = takeover(
            self.pod,
            spec.get("holderIdentity") or None,
            annotations.pop(Annotation.RELEASED_BY, None),
            int(spec.get("leaseTransitions") or 0),
        )
        lost_at = epoch(spec.get("renewTime"))
        now = micro_stamp(time.time())
        if taken.failover_from and lost_at is not None:
            annotations[Annotation.LAST_FAILOVER] = json.dumps(
                {
                    "from": taken.failover_from,
                    "to": self.pod,
                    "time": now,
                    "seconds": round(max(time.time() - lost_at, 0.0), 3),
                },
                sort_keys=True,
            )
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
        )

    def _take(self, write: Callable[[], dict[str, Any]], *, previous: str | None) -> None:
        """Write the Lease (an ApiError goes to the caller), then fence, then label: lead only
        when all three succeeded within the renew deadline of the write. Otherwise the Lease
        names us while we do not lead, so the next step acquires again (see election.decide)."""
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
        if slow:
            self._failed("slow", "labelling outlasted the renew deadline: not leading; again")
            return
        self._recovered("slow", "fenced and labelled within the renew deadline")
        self.log.info("leader elected", previous=previous)

    def _try(self, what: str, action: Callable[[], object], message: str) -> bool:
        try:
            action()
        except ApiError as exc:
            self._failed(what, message, exc)
            return False
        self._recovered(what, f"{what} works again")
        return True

    def renew(self) -> None:
        with self.lock:
            record = self.record
        if record is None:
            return
        before = self.clock()
        body = {
            **record,
            "spec": {**(record.get("spec") or {}), "renewTime": micro_stamp(time.time())},
        }
        updated = self.kube.replace(_lease(body))
        with self.lock:
            self._observe(updated)
            self.last_renew = before
        self._recovered("lease", "the Lease can be written again")
        if self.preempt:
            self._try("handover", self.maybe_hand_over, "could not look for a preferred pod")

    def maybe_hand_over(self) -> None:
        """preempt: if an older ready pod exists, release the Lease to it."""
        pods = self.kube.list("Pod", self.namespace, f"{Label.SERVICE}={self.lease_name}")
        ready = [
            (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"])
            for p in pods
            if is_ready(p)
        ]
        if self.pod not in {name for _, name in ready}:
            return
        best = preferred(ready)
        if best and best != self.pod:
            self.log.info("handing over to the preferred pod", to=best)
            self.release(handover_to=best)

    def step_down(self, why: str) -> None:
        """Stop leading; the caller's keep_role labels the pod standby."""
        with self.lock:
            was = self.is_leader
            self.is_leader = False
        if was:
            self.log.warning("stepping down", reason=why)

    def release(self, handover_to: str | None = None) -> None:
        """Stand down and give the Lease up so a standby takes it now, not when it expires."""
        self.step_down("releasing the Lease")
        self.keep_role()
        self._give_up_lease(handover_to, attempts=3)

    def _give_up_lease(self, handover_to: str | None, attempts: int) -> None:
        with self.lock:
            record, observed = self.record, self.observed
        if record is None or observed is None or observed.foreign or observed.holder != self.pod:
            return
        annotations = dict(record["metadata"].get("annotations") or {})
        annotations[Annotation.RELEASED_BY] = self.pod
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
            self._give_up_lease(handover_to, attempts - 1)

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

    # -- loops --------------------------------------------------------------------------------

    def watch_lease(self) -> None:
        """Follow the Lease so a release or an expiry is seen at once."""
        self._follow("Lease", self.lease_name, self.refresh, self.observe)

    def watch_pod(self) -> None:
        """Follow our own pod, so its role label is known without a request per renew."""
        self._follow("Pod", self.pod, self.read_pod, self.observe_pod, lost=self._pod_unsynced)

    def _follow(
        self,
        kind: str,
        name: str,
        read: Callable[[], None],
        take: Callable[[dict[str, Any] | None], None],
        *,
        lost: Callable[[], None] | None = None,
    ) -> None:
        """Read one object, then watch it, again and again: the watch must outlive API hiccups.
        The read timeout outlasts the server's own end of the watch, so a connection that died
        silently is noticed instead of leaving a copy believed current forever."""
        what = kind.lower()
        while not self.stop.is_set():
            try:
                read()
                self._recovered(f"{what} watch", f"{what} watch works again")
                events = self.kube.watch(
                    kind, self.namespace, field_selector=f"metadata.name={name}",
                    seconds=WATCH_SECONDS,
                )  # fmt: skip
                try:
                    for type_, obj in events:
                        take(None if type_ == "DELETED" else obj)
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
        self.release()


def _lease(body: dict[str, Any]) -> dict[str, Any]:
    """A Lease to write, with the kind and version that name where it goes."""
    return {**body, "apiVersion": RESOURCES["Lease"].api_version, "kind": "Lease"}
