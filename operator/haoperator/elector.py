"""`haoperator elect`: the ha-elector sidecar, pacemaker's and keepalived's job done with a Lease.

It contends for the Lease `<name>` with optimistic concurrency (resourceVersion) and watches it,
so a release or an expiry is acted on at once rather than at the next poll. On winning it first
removes the `active` role from every other pod of the service (fencing at the API), then labels
its own pod active, recording the takeover on the Lease. While leading it renews every retry
period; if it cannot renew within the renew deadline it labels itself standby at once. On
SIGTERM it labels itself standby and releases the Lease so a standby takes over immediately.
GET /healthz and GET /leader (200 when leader, 503 otherwise) serve the application.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from kubernetes import client, watch

from haoperator.election import Action, Observed, Timing, decide, leading, preferred
from haoperator.kube import ApiError, Kube

ROLE_LABEL = "haoperator.dev/role"
SERVICE_LABEL = "haoperator.dev/service"
FAILOVER_ANNOTATION = "haoperator.dev/last-failover"
HANDOVER_ANNOTATION = "haoperator.dev/handover-to"
FIELD_MANAGER = "ha-elector"
log = structlog.get_logger("haoperator.elector")


def micro_time(at: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _older(record: dict[str, Any], than: dict[str, Any]) -> bool:
    """resourceVersions are opaque, but etcd's are increasing integers; if not, assume newer."""
    try:
        return int(record["metadata"]["resourceVersion"]) < int(than["metadata"]["resourceVersion"])
    except (KeyError, ValueError):
        return False


def _same_version(record: dict[str, Any], than: dict[str, Any]) -> bool:
    version = record["metadata"].get("resourceVersion")
    return version is not None and version == than["metadata"].get("resourceVersion")


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
        self.is_leader = False
        self.last_renew = float("-inf")
        self.record: dict[str, Any] | None = None
        self.observed: Observed | None = None
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.log = log.bind(namespace=namespace, pod=pod, lease=lease)

    # -- what the application asks ---------------------------------------------------------

    def leader_now(self) -> bool:
        with self.lock:
            return leading(self.is_leader, self.last_renew, self.clock(), self.timing)

    # -- the Lease as seen -----------------------------------------------------------------

    def observe(self, record: dict[str, Any] | None) -> None:
        """Take a Lease read from the API; its clock starts when its content last changed.
        Only news wakes the loop: our own writes echo back through the watch."""
        with self.lock:
            news = self._observe(record)
        if news:
            self.wake.set()

    def _observe(self, record: dict[str, Any] | None) -> bool:
        if record is None:
            news = self.record is not None
            self.record, self.observed = None, None
            return news
        old = self.record
        if old is not None and (_older(record, old) or _same_version(record, old)):
            return False  # already known, or older (a slow watch behind a fresh write)
        spec = record.get("spec") or {}
        changed = old is None or (old.get("spec") or {}) != spec
        observed_at = (
            self.clock() if changed or self.observed is None else self.observed.observed_at
        )
        self.record = record
        self.observed = Observed(
            holder=spec.get("holderIdentity") or None,
            lease_duration=float(spec.get("leaseDurationSeconds") or self.timing.lease_duration),
            observed_at=observed_at,
            handover_to=(record["metadata"].get("annotations") or {}).get(HANDOVER_ANNOTATION),
        )
        return True

    # -- one step ---------------------------------------------------------------------------

    def step(self) -> float:
        """Act once; returns how long to wait before the next step."""
        with self.lock:
            decision = decide(
                self.pod,
                self.observed,
                is_leader=self.is_leader,
                last_renew=self.last_renew,
                now=self.clock(),
                timing=self.timing,
            )
        try:
            if decision.action is Action.STEP_DOWN:
                self.step_down("renew deadline passed or the Lease moved on")
            elif decision.action is Action.CREATE:
                self.create()
            elif decision.action is Action.ACQUIRE:
                self.acquire()
            elif decision.action is Action.RENEW:
                self.renew()
        except ApiError as exc:
            if exc.status == 409:
                self.refresh()
            else:
                self.log.warning("API call failed", error=str(exc))
            return (
                min(decision.wait, self.timing.retry_period)
                if decision.wait
                else self.timing.retry_period
            )
        return decision.wait

    def refresh(self) -> None:
        self.observe(self.kube.get("Lease", self.namespace, self.lease_name))

    def create(self) -> None:
        before = self.clock()
        now = micro_time()
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.lease_name,
                "namespace": self.namespace,
                "labels": {
                    SERVICE_LABEL: self.lease_name,
                    "app.kubernetes.io/managed-by": "haoperator",
                },
            },
            "spec": {
                "holderIdentity": self.pod,
                "leaseDurationSeconds": int(self.timing.lease_duration),
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
        created = self.kube.request(
            "POST", f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases", body
        )
        self._won(created, before, previous=None, lost_at=None)

    def acquire(self) -> None:
        with self.lock:
            record = self.record
        if record is None:
            return
        before = self.clock()
        spec = dict(record.get("spec") or {})
        previous = spec.get("holderIdentity") or (record["metadata"].get("annotations") or {}).get(
            "haoperator.dev/released-by"
        )
        lost_at = parse_time(spec.get("renewTime"))
        now = micro_time()
        transitions = int(spec.get("leaseTransitions") or 0) + (
            1 if previous and previous != self.pod else 0
        )
        annotations = dict(record["metadata"].get("annotations") or {})
        annotations.pop(HANDOVER_ANNOTATION, None)
        annotations.pop("haoperator.dev/released-by", None)
        if previous and previous != self.pod and lost_at is not None:
            annotations[FAILOVER_ANNOTATION] = json.dumps(
                {
                    "from": previous,
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
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": transitions,
            },
        }
        updated = self.kube.request("PUT", self._lease_path(), body)
        self._won(updated, before, previous=previous, lost_at=lost_at)

    def _won(
        self, record: dict[str, Any], before: float, *, previous: str | None, lost_at: float | None
    ) -> None:
        with self.lock:
            self._observe(record)
            self.is_leader = True
            self.last_renew = before
        # Fence first: no other pod may keep the active role, then take it.
        self.fence()
        if not self.leader_now():
            return  # paused while fencing: the next step steps down
        self.label("active")
        self.log.info("leader elected", previous=previous)

    def renew(self) -> None:
        with self.lock:
            record = self.record
        if record is None:
            return
        before = self.clock()
        body = {**record, "spec": {**(record.get("spec") or {}), "renewTime": micro_time()}}
        updated = self.kube.request("PUT", self._lease_path(), body)
        with self.lock:
            self._observe(updated)
            self.last_renew = before
        if self.preempt:
            self.maybe_hand_over()

    def maybe_hand_over(self) -> None:
        """preempt: if an older ready pod exists, release the Lease to it."""
        pods = self.kube.list("Pod", self.namespace, f"{SERVICE_LABEL}={self.lease_name}")
        ready = [
            (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"])
            for p in pods
            if not p["metadata"].get("deletionTimestamp")
            and any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (p.get("status") or {}).get("conditions") or []
            )
        ]
        if self.pod not in {name for _, name in ready}:
            return
        best = preferred(ready)
        if best and best != self.pod:
            self.log.info("handing over to the preferred pod", to=best)
            self.release(handover_to=best)

    def step_down(self, why: str) -> None:
        with self.lock:
            was = self.is_leader
            self.is_leader = False
        if was:
            self.log.warning("stepping down", reason=why)
        self.label("standby")

    def release(self, handover_to: str | None = None) -> None:
        """Stand down and give the Lease up so a standby takes it now, not when it expires."""
        self.step_down("releasing the Lease")
        self._give_up_lease(handover_to, attempts=3)

    def _give_up_lease(self, handover_to: str | None, attempts: int) -> None:
        with self.lock:
            record = self.record
        if record is None or (record.get("spec") or {}).get("holderIdentity") != self.pod:
            return
        annotations = dict(record["metadata"].get("annotations") or {})
        annotations["haoperator.dev/released-by"] = self.pod
        if handover_to:
            annotations[HANDOVER_ANNOTATION] = handover_to
        body = {
            **record,
            "metadata": {**record["metadata"], "annotations": annotations},
            "spec": {
                **(record.get("spec") or {}),
                "holderIdentity": None,
                "renewTime": micro_time(),
            },
        }
        try:
            self.observe(self.kube.request("PUT", self._lease_path(), body))
        except ApiError as exc:
            if exc.status == 409 and attempts > 1:
                # Our copy was stale (a renew we did not see back yet): read it and try again,
                # or the standby waits out the whole lease.
                self.refresh()
                self._give_up_lease(handover_to, attempts - 1)
            else:
                self.log.warning("could not release the Lease", error=str(exc))

    # -- pods ---------------------------------------------------------------------------------

    def label(self, role: str) -> None:
        patch = {"metadata": {"labels": {ROLE_LABEL: role}}}
        try:
            self.kube.request(
                "PATCH",
                f"/api/v1/namespaces/{self.namespace}/pods/{self.pod}",
                patch,
                content_type="application/merge-patch+json",
                query={"fieldManager": FIELD_MANAGER},
            )
        except ApiError as exc:
            self.log.warning("could not label the pod", role=role, error=str(exc))

    def fence(self) -> None:
        selector = f"{SERVICE_LABEL}={self.lease_name},{ROLE_LABEL}=active"
        for pod in self.kube.list("Pod", self.namespace, selector):
            name = pod["metadata"]["name"]
            if name == self.pod:
                continue
            self.kube.request(
                "PATCH",
                f"/api/v1/namespaces/{self.namespace}/pods/{name}",
                {"metadata": {"labels": {ROLE_LABEL: "standby"}}},
                content_type="application/merge-patch+json",
                query={"fieldManager": FIELD_MANAGER},
            )
            self.log.info("fenced the previous active pod", fenced=name)

    def _lease_path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{self.lease_name}"

    # -- loops --------------------------------------------------------------------------------

    def watch_lease(self, api: client.ApiClient) -> None:
        """Follow the Lease so a release or an expiry is seen at once."""
        coordination = client.CoordinationV1Api(api)
        while not self.stop.is_set():
            try:
                self.refresh()
                stream = watch.Watch().stream(
                    coordination.list_namespaced_lease,
                    self.namespace,
                    field_selector=f"metadata.name={self.lease_name}",
                    timeout_seconds=60,
                )
                for event in stream:
                    self.observe(None if event["type"] == "DELETED" else event["raw_object"])
                    if self.stop.is_set():
                        break
            except Exception as exc:  # the watch must outlive API hiccups
                self.log.warning("lease watch failed; retrying", error=str(exc))
                self.stop.wait(self.timing.retry_period)

    def run(self) -> None:
        self.label("standby")
        while not self.stop.is_set():
            # Clear before acting, not after: a Lease change seen while this step runs (a
            # release arriving mid-step) must wake the next step at once, not after `delay`.
            self.wake.clear()
            delay = self.step()
            self.wake.wait(max(delay, 0.01))
        # Even a leader that already stepped down may still be named on the Lease: free it.
        self.release()
