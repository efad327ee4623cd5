"""A crash-looping pod on the real API server costs a bounded number of writes and events.

On a real node (2026-12-02) a crash-looping pod under `onLimit: Notify` cost ~6 writes a second
and 118 RecoveryLimitReached: every reconcile that found the pod past its limit said it again,
and each restart woke several. Here 30 restarts in about 45 s cost, before the fix, 255 writes
(QueueWorker: 104 RecoveryLimitReached, 60 PodFailed, 30 restart histories, 61 statuses) and
319 (ActivePassive: 111, 60, 30, 118); after it, 100 and 164, of which all but 39 are status
writes (each a change of Ready or readyReplicas a user reads).

The kubelet's part is played by hand, a known number of times: a status patch shows the
container terminated (exit code 1, Ready False), and kwok's kubelet restarts it (restartCount
+ 1, lastState.terminated, Ready True), as `testenv/chaos crashloop` does. The operator's writes
come from its own request counter, the events and the writes to the pod and the HAService from
the API server. The bounds are those of core/recovery.py's docstring.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client, watch

from haoperator.core.vocabulary import Annotation
from testenv.harness.cluster import wait_until
from testenv.harness.operator_process import OperatorProcess
from tests.integration import haservices as has
from tests.integration.conftest import ready_pods
from tests.integration.test_operator import act_as_elector

pytestmark = pytest.mark.cluster
NAME = "flappy"
RESTARTS = 30
MAX_RESTARTS = 3
WINDOW = 3600  # longer than the test: one window, one warning


def now_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def restart_count(pod: Any) -> int:
    return int(pod.status.container_statuses[0].restart_count or 0)


def crash(core: client.CoreV1Api, namespace: str, name: str) -> None:
    """The pod's first container exits with code 1; wait until the (kwok) kubelet restarted it."""
    pod = core.read_namespaced_pod(name, namespace)
    before = restart_count(pod)
    statuses = core.api_client.sanitize_for_serialization(pod.status.container_statuses)
    first = statuses[0]
    started = ((first.get("state") or {}).get("running") or {}).get("startedAt") or now_stamp()
    first.update(
        ready=False,
        started=False,
        state={
            "terminated": {
                "exitCode": 1,
                "reason": "Error",
                "startedAt": started,
                "finishedAt": now_stamp(),
            }
        },
    )
    down = [
        {"type": kind, "status": "False", "reason": "ContainersNotReady",
         "lastTransitionTime": now_stamp()}
        for kind in ("Ready", "ContainersReady")
    ]  # fmt: skip
    core.patch_namespaced_pod_status(
        name, namespace, {"status": {"conditions": down, "containerStatuses": statuses}}
    )

    def restarted() -> bool:
        pod = core.read_namespaced_pod(name, namespace)
        return restart_count(pod) > before and bool(pod.status.container_statuses[0].ready)

    wait_until(restarted, timeout=30, what=f"{name} restarted")


class Versions:
    """Every version of some objects the API server serves, from a watch started now."""

    def __init__(self, list_call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.seen: list[dict[str, Any]] = []
        self._watch = watch.Watch()
        self._thread = threading.Thread(
            target=self._run, args=(list_call, args, kwargs), daemon=True
        )
        self._thread.start()

    def _run(self, list_call: Callable[..., Any], args: Any, kwargs: Any) -> None:
        try:
            for event in self._watch.stream(list_call, *args, timeout_seconds=600, **kwargs):
                obj = event["object"]
                if not isinstance(obj, dict):  # a typed API's model
                    obj = list_call.__self__.api_client.sanitize_for_serialization(obj)
                self.seen.append(obj)
        except Exception:  # stopped: the connection is cut under the stream
            return

    def stop(self) -> None:
        self._watch.stop()

    def changes(self, part: Callable[[dict[str, Any]], Any]) -> int:
        """How many times `part` of the objects changed (each change is one write)."""
        values = [part(obj) for obj in self.seen]
        return sum(1 for a, b in itertools.pairwise(values) if a != b)


def recorded(core: client.CoreV1Api, namespace: str) -> Counter[str]:
    """How many times the operator recorded each reason in the namespace: an aggregated Event
    counts as often as its count says, each recording being one write (its POST or a PATCH of
    its count)."""
    counts: Counter[str] = Counter()
    for event in core.list_namespaced_event(namespace).items:
        if event.source and event.source.component == "haoperator":
            counts[event.reason] += int(event.count or 1)
    return counts


def crash_loop(
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    operator: OperatorProcess,
    namespace: str,
    pod: str,
) -> dict[str, Any]:
    """Crash the pod RESTARTS times; what the operator wrote meanwhile, until it is idle."""

    def idle() -> None:
        wait_until(lambda: operator.metrics_quiet(3.0), timeout=120, what="the operator idle")

    idle()
    requests_before, events_before = operator.requests_by_method(), recorded(core, namespace)
    pods = Versions(core.list_namespaced_pod, namespace, field_selector=f"metadata.name={pod}")
    haservices = Versions(
        custom.list_namespaced_custom_object, has.GROUP, has.VERSION, namespace, has.PLURAL,
        field_selector=f"metadata.name={NAME}",
    )  # fmt: skip
    try:
        wait_until(lambda: pods.seen and haservices.seen, timeout=30, what="the watches started")
        for _ in range(RESTARTS):
            crash(core, namespace, pod)
        idle()  # and stays so: nothing requeues it in a loop
    finally:
        pods.stop()
        haservices.stop()
    requests = operator.requests_by_method()
    writes = sum(v - requests_before.get(m, 0) for m, v in requests.items() if m != "GET")
    return {
        "writes": writes,
        "events": dict(recorded(core, namespace) - events_before),
        "history writes": pods.changes(
            lambda p: (p["metadata"].get("annotations") or {}).get(Annotation.RESTARTS)
        ),
        "status writes": haservices.changes(lambda h: h.get("status")),
        "restarts": restart_count(core.read_namespaced_pod(pod, namespace)),
    }


def assert_bounded(cost: dict[str, Any]) -> None:
    assert cost["restarts"] == RESTARTS, cost
    events = cost["events"]
    # One warning per pod per window; PodFailed for the terminations within the budget, on the
    # HAService and on the pod; nothing else from recovery.
    assert events.get("RecoveryLimitReached") == 1, cost
    assert events.get("PodFailed") == 2 * (MAX_RESTARTS + 1), cost
    assert not {"PodMigrated", "NodeLost", "PodForceDeleted"} & set(events), cost
    # The restart history: one write per restart, the warning's mark riding along.
    assert cost["history writes"] <= RESTARTS, cost
    # Every write but the status's is one of those.
    recovery = RESTARTS + sum(events.get(r, 0) for r in ("RecoveryLimitReached", "PodFailed"))
    assert cost["writes"] - cost["status writes"] <= recovery, cost
    # The status changes with what users read (Ready, readyReplicas) as the pod goes down and
    # up again: a few writes per restart, never one per reconcile.
    assert cost["status writes"] <= 6 * RESTARTS, cost


def notify(category: str, **spec: Any) -> dict[str, Any]:
    return has.haservice(
        NAME, category,
        recovery={"restart": {"maxRestarts": MAX_RESTARTS, "windowSeconds": WINDOW,
                              "onLimit": "Notify"}},
        **spec,
    )  # fmt: skip


def test_a_crash_looping_queue_worker_costs_a_bounded_number_of_writes(
    namespace: str,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
) -> None:
    has.create(custom, namespace, notify("QueueWorker", replicas=1))
    pod = wait_until(
        lambda: ready_pods(core, namespace, f"haoperator.dev/service={NAME}"),
        timeout=60,
        what="pod",
    )[0].metadata.name
    wait_until(lambda: has.is_ready(custom, namespace, NAME), timeout=60, what="Ready")
    assert_bounded(crash_loop(core, custom, operator, namespace, pod))
    degraded = has.condition(has.get(custom, namespace, NAME), "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "RecoveryLimitReached")


def test_a_crash_looping_active_pod_costs_a_bounded_number_of_writes(
    namespace: str,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
) -> None:
    """The active pod crash-loops while it holds the Lease (no elector here moves it): the
    operator says no LeaderElected of its own accord."""
    has.create(custom, namespace, notify("ActivePassive", replicas=2, service=has.SERVICE))
    pod = act_as_elector(core, namespace, NAME)
    wait_until(lambda: has.is_ready(custom, namespace, NAME), timeout=60, what="Ready")
    cost = crash_loop(core, custom, operator, namespace, pod)
    assert_bounded(cost)
    assert "LeaderElected" not in cost["events"], cost
