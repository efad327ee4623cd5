"""`haoperator run --leader-elect`: one operator instance acts, the others stand by warm.

The instances contend for the Lease `haoperator` in the operator's own namespace, with the rules
the ha-elector follows (core/election.py: `decide`, `leading`, `Timing`), minus what only a
workload's pods need (fencing, role labels, health, failsafe):

- a holder's Lease is valid for leaseDurationSeconds after *this* process saw it change (its own
  monotonic clock), so a standby takes it only once it expired, or at once when released;
- the leader leads only while its last successful renew is younger than the renew deadline,
  shorter than the lease: `still_leading()` turns False by the clock alone, before any standby
  may take the Lease, whether or not this loop is running (a frozen process, a slow API server);
- the executor asks `still_leading()` before every write, so a reconcile that finds it no longer
  leads stops before its next write and is queued again;
- on SIGTERM the leader stops acting, lets the reconciles in flight end, then releases the Lease
  (holderIdentity emptied), so a standby takes over within a watch event, not a lease later.

Standbys keep the Lease watched (a watch is no request: a standby makes no write, and reads the
Lease once a minute, when its watch is renewed) and their informers and kopf watches running, so
a takeover starts working at once: `on_started` queues every known HAService.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

from haoperator.controller import metrics
from haoperator.controller.kube import RESOURCES, ApiError, Kube
from haoperator.core.election import (
    Action,
    SeenLease,
    Timing,
    decide,
    leading,
    renew_timeout,
    seen_lease,
)
from haoperator.core.objects import older
from haoperator.core.times import micro_stamp

LEASE_NAME = "haoperator"
LEADER_LABEL = "haoperator.dev/leader"
"""On the operator's own pods: "true" on the leader's (`kubectl get pods -L haoperator.dev/leader`),
"false" on one that stepped down or was fenced by a new leader."""
WATCH_SECONDS = 60
DEFAULT_TIMING = Timing(lease_duration=15.0, renew_deadline=10.0, retry_period=2.0)
"""controller-runtime's defaults. The operator is not in any workload's data path (failover is
the ha-elector's), so a takeover within 15 s after a leader vanishes without releasing (kill -9,
a lost node) costs only delayed reconciles, while a 10 s renew deadline rides out API-server
latency spikes and pauses without both instances flapping. A SIGTERM'd leader releases: the
standby takes over at once."""
log = structlog.get_logger("haoperator.operator_lease")


class Leadership:
    """Contends for the operator's Lease in a thread; `still_leading()` is safe from any thread."""

    def __init__(
        self,
        kube: Kube,
        *,
        namespace: str,
        identity: str,
        timing: Timing = DEFAULT_TIMING,
        name: str = LEASE_NAME,
        pod: str | None = None,
        on_started: Callable[[], None] = lambda: None,
        on_stopped: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube, self.namespace, self.name, self.identity = kube, namespace, name, identity
        self.timing, self.clock, self.pod = timing, clock, pod
        self.on_started, self.on_stopped = on_started, on_stopped
        self.is_leader = False
        self.last_renew = float("-inf")
        self.record: dict[str, Any] | None = None
        self.observed: SeenLease | None = None
        self.read_once = False
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.log = log.bind(lease=f"{namespace}/{name}", identity=identity)
        self._trouble: str | None = None
        self._watch_trouble: str | None = None
        metrics.LEADER.labels(identity).set(0)

    # -- what the rest of the operator asks ------------------------------------------------------

    def still_leading(self) -> bool:
        """Whether this instance may write now: it holds the Lease and renewed it within the
        renew deadline (by the clock: a stalled loop does not keep it leading)."""
        with self.lock:
            return leading(self.is_leader, self.last_renew, self.clock(), self.timing)

    # -- the Lease as seen -----------------------------------------------------------------------

    def observe(self, record: dict[str, Any] | None) -> None:
        with self.lock:
            news = self._observe(record)
        if news:
            self.wake.set()

    def _observe(self, record: dict[str, Any] | None) -> bool:
        """Take a copy of the Lease (lock held); an older copy than ours (a slow watch behind our
        own write) is ignored. True when it is news."""
        self.read_once = True
        if record is None:
            news = self.record is not None
            self.record, self.observed = None, None
            return news
        old = self.record
        if old is not None:
            version = record["metadata"].get("resourceVersion")
            seen = old["metadata"].get("resourceVersion")
            if older(version, seen) or (version is not None and version == seen):
                return False
        changed = old is None or (old.get("spec") or {}) != (record.get("spec") or {})
        self.record = record
        self.observed = seen_lease(
            record, self.observed, changed, self.clock(), self.timing.lease_duration
        )
        return True

    # -- one step --------------------------------------------------------------------------------

    def step(self) -> float:
        """Act once on the Lease; how long to wait before the next step (unless news comes)."""
        with self.lock:
            was_leader = self.is_leader
            decision = decide(
                self.identity,
                self.observed,
                is_leader=self.is_leader,
                last_renew=self.last_renew,
                now=self.clock(),
                timing=self.timing,
            )
        wait = decision.wait
        try:
            if decision.action is Action.STEP_DOWN:
                self._step_down("the renew deadline passed, or the Lease moved on")
            elif decision.action is Action.CREATE:
                self._take(self._create)
            elif decision.action is Action.ACQUIRE:
                self._take(self._acquire)
            elif decision.action is Action.RENEW:
                self._renew()
        except ApiError as exc:
            self._failed(decision.action, exc)
            wait = self.timing.retry_period
        else:
            self._recovered()
        if was_leader and not self.still_leading():
            self._step_down("could not renew the Lease within the renew deadline")
        return max(wait, 0.0)

    def _take(self, write: Callable[[], dict[str, Any]]) -> None:
        before = self.clock()
        record = write()
        with self.lock:
            self._observe(record)
            won = leading(True, before, self.clock(), self.timing)
            if won:
                self.is_leader, self.last_renew = True, before
        if won:
            self._started()

    def _create(self) -> dict[str, Any]:
        now = micro_stamp(time.time())
        return self.kube.create(
            _lease(
                {
                    "metadata": {
                        "name": self.name,
                        "namespace": self.namespace,
                        "labels": {"app.kubernetes.io/name": "haoperator"},
                    },
                    "spec": {
                        "holderIdentity": self.identity,
                        "leaseDurationSeconds": int(self.timing.lease_duration),
                        "acquireTime": now,
                        "renewTime": now,
                        "leaseTransitions": 0,
                    },
                }
            )
        )

    def _acquire(self) -> dict[str, Any]:
        with self.lock:
            record = self.record
        assert record is not None  # decide() says ACQUIRE only for a Lease seen
        spec = dict(record.get("spec") or {})
        retake = spec.get("holderIdentity") == self.identity
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if retake else 1)
        now = micro_stamp(time.time())
        body = {
            **record,
            "spec": {
                **spec,
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(self.timing.lease_duration),
                "acquireTime": (spec.get("acquireTime") if retake else None) or now,
                "renewTime": now,
                "leaseTransitions": transitions,
            },
        }
        return self.kube.replace(_lease(body), timeout=self.timing.renew_deadline / 2)

    def _renew(self) -> None:
        with self.lock:
            record, last = self.record, self.last_renew
        if record is None:
            return
        before = self.clock()
        body = {
            **record,
            "spec": {**(record.get("spec") or {}), "renewTime": micro_stamp(time.time())},
        }
        updated = self.kube.replace(_lease(body), timeout=renew_timeout(last, before, self.timing))
        with self.lock:
            self._observe(updated)
            if self.is_leader and leading(True, before, self.clock(), self.timing):
                self.last_renew = before

    def _started(self) -> None:
        metrics.LEADER.labels(self.identity).set(1)
        self.log.info("leading: this instance reconciles now")
        self.on_started()
        self._label_pods()

    def _step_down(self, why: str) -> None:
        with self.lock:
            was, self.is_leader = self.is_leader, False
        if was:
            metrics.LEADER.labels(self.identity).set(0)
            self.log.warning("stopped leading: standing by", reason=why)
            self.on_stopped()
            self._label(str(self.pod), "false")

    def _label_pods(self) -> None:
        """In a pod (`pod`): say who leads on the operator's pods, ours "true", and "false" on
        any other that still says "true" (a leader that vanished without stepping down). Only
        informative (nothing routes by it): a failure is logged, never fatal."""
        if not self.pod:
            return
        try:
            stale = self.kube.list("Pod", self.namespace, f"{LEADER_LABEL}=true")
        except ApiError as exc:
            self.log.warning("could not list the operator's pods", error=str(exc))
            stale = []
        for other in stale:
            if other["metadata"]["name"] != self.pod:
                self._label(other["metadata"]["name"], "false")
        self._label(self.pod, "true")

    def _label(self, pod: str, value: str) -> None:
        if not self.pod:
            return
        try:
            self.kube.patch(
                "Pod", self.namespace, pod, {"metadata": {"labels": {LEADER_LABEL: value}}}
            )
        except ApiError as exc:
            if exc.status != 404:
                self.log.warning("could not label an operator pod", pod=pod, error=str(exc))

    def release(self) -> None:
        """Stop leading, then free the Lease if it still names us, so a standby takes it now.
        The caller first lets the reconciles in flight end: none may write after the release."""
        self._step_down("releasing the Lease")
        with self.lock:
            record = self.record
        if record is None or (record.get("spec") or {}).get("holderIdentity") != self.identity:
            return
        body = {
            **record,
            "spec": {
                **(record.get("spec") or {}),
                "holderIdentity": None,
                "renewTime": micro_stamp(time.time()),
            },
        }
        try:
            self.observe(self.kube.replace(_lease(body), timeout=self.timing.retry_period * 2))
            self.log.info("released the Lease")
        except ApiError as exc:  # a standby then waits the lease out
            self.log.warning("could not release the Lease", error=str(exc))

    # -- failures, logged once per change --------------------------------------------------------

    def _failed(self, action: Action, exc: ApiError) -> None:
        if exc.status == 409:  # our copy was stale, or someone else won: read it
            try:
                self.observe(self.kube.get("Lease", self.namespace, self.name))
            except ApiError as again:
                exc = again
            else:
                return
        text = f"{action.value}: {exc}"
        if text != self._trouble:
            self._trouble = text
            self.log.warning("could not write the Lease", action=action.value, error=str(exc))

    def _recovered(self) -> None:
        if self._trouble is not None:
            self._trouble = None
            self.log.info("the Lease can be written again")

    # -- loops -----------------------------------------------------------------------------------

    def start(self) -> None:
        for target, name in ((self._watch, "lease-watch"), (self._run, "lease-elect")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self.threads.append(thread)

    def shutdown(self) -> None:
        """Stop contending and acting: from now on `still_leading()` is False, so the reconciles
        in flight stop before their next write. The caller waits for them, then calls
        `release`."""
        self.stop.set()
        self.wake.set()
        for thread in self.threads:
            thread.join(timeout=self.timing.retry_period * 2)
        self._step_down("shutting down")

    def _run(self) -> None:
        while not self.stop.is_set():
            if not self.read_once:  # no copy yet must not read as "missing": no create yet
                self.stop.wait(0.05)
                continue
            self.wake.clear()
            delay = self.step()
            self.wake.wait(max(delay, 0.01))

    def _watch(self) -> None:
        """Read the Lease, then watch it (by name), again and again: a release or a renewal is
        seen at once, at no request."""
        while not self.stop.is_set():
            try:
                record = self.kube.get("Lease", self.namespace, self.name)
                self.observe(record)
                version = (record or {}).get("metadata", {}).get("resourceVersion") or ""
                events = self.kube.watch(
                    "Lease", self.namespace, field_selector=f"metadata.name={self.name}",
                    seconds=WATCH_SECONDS, version=version,
                )  # fmt: skip
                try:
                    for type_, obj in events:
                        if type_ in ("ADDED", "MODIFIED"):
                            self.observe(obj)
                        elif type_ == "DELETED":
                            self.observe(None)
                        if self.stop.is_set():
                            break
                finally:
                    events.close()
            except Exception as exc:  # the watch must outlive API hiccups
                if str(exc) != self._watch_trouble:  # once per change, not every retry
                    self._watch_trouble = str(exc)
                    self.log.warning("lease watch failed; retrying", error=str(exc))
                self.stop.wait(self.timing.retry_period)


def _lease(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "apiVersion": RESOURCES["Lease"].api_version, "kind": "Lease"}
