"""The restart budget on a container that really crashes: its command exits 1 at once, the
kubelet restarts it with its back-off (10 s, 20 s, ...) and counts the restarts; the operator
reports each failure (PodFailed), reaches the limit (RecoveryLimitReached) and migrates the pod
off the node (PodMigrated). With one real node to run on, that node is banned, so the
replacement waits, Pending, and the HAService says why (PodsUnschedulable); deleting the
HAService lifts the ban at once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, watch

from haoperator.core.recovery import avoid_label
from haoperator.core.vocabulary import Annotation
from testenv.harness.cluster import wait_until
from tests.integration import haservices as has
from tests.realnode.conftest import Operator
from tests.realnode.support import (
    REAL_NODE,
    assert_restricted,
    real_node_template,
    service_pods,
    web_container,
)

pytestmark = pytest.mark.cluster
NAME = "crasher"
MAX_RESTARTS = 1
WINDOW = 600  # long enough for every check below; deleting the HAService ends the ban
TIMEOUT = 120


class PodHistory:
    """Every version of the HAService's pods the API server sends, the last one of a deleted pod
    included (what the operator and the kubelet had written on it when it went)."""

    def __init__(self, core: client.CoreV1Api, namespace: str) -> None:
        self.core, self.namespace = core, namespace
        self.last: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()
        self.lock = threading.Lock()
        self._watch = watch.Watch()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for event in self._watch.stream(
                    self.core.list_namespaced_pod,
                    self.namespace,
                    label_selector=f"haoperator.dev/service={NAME}",
                    timeout_seconds=30,
                ):
                    pod = event["raw_object"]
                    with self.lock:
                        self.last[pod["metadata"]["name"]] = pod
                        if event["type"] == "DELETED":
                            self.deleted.add(pod["metadata"]["name"])
            except Exception:
                if not self._stop.is_set():
                    self._stop.wait(0.2)

    def final(self, pod: str) -> dict[str, Any]:
        """The pod as it was deleted, once it is ({} before)."""
        with self.lock:
            return self.last[pod] if pod in self.deleted else {}

    def stop(self) -> None:
        self._stop.set()
        self._watch.stop()


@pytest.fixture
def history(core: client.CoreV1Api, namespace: str) -> Iterator[PodHistory]:
    found = PodHistory(core, namespace)
    yield found
    found.stop()


def messages(core: client.CoreV1Api, namespace: str, reason: str) -> list[str]:
    return [e.message for e in has.events(core, namespace, NAME, reason)]


def test_a_crash_looping_container_spends_the_budget_and_is_migrated_off_its_node(
    installed: Operator,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    history: PodHistory,
) -> None:
    crashing = web_container(command=["python3", "-c", "import sys; sys.exit(1)"])
    del crashing["readinessProbe"]
    body = has.haservice(
        NAME,
        "QueueWorker",
        replicas=1,
        template=real_node_template(crashing),
        recovery={
            "restart": {"maxRestarts": MAX_RESTARTS, "windowSeconds": WINDOW, "onLimit": "Migrate"}
        },
    )
    has.create(custom, namespace, body)
    (first,) = wait_until(lambda: service_pods(core, namespace, NAME), timeout=60, what="a pod")
    first_name = first.metadata.name
    label = avoid_label(namespace, NAME)
    try:
        # Each exit is reported, once per pod and reason, with what the kubelet recorded.
        failed = wait_until(
            lambda: messages(core, namespace, "PodFailed"), timeout=TIMEOUT, what="PodFailed"
        )
        assert failed == [f"pod {first_name}: container app exited with code 1 (Error)"]

        # Past maxRestarts restarts within the window: the limit, then the migration.
        limit = wait_until(
            lambda: messages(core, namespace, "RecoveryLimitReached"),
            timeout=TIMEOUT,
            what="RecoveryLimitReached",
        )
        assert any(
            f"restarted more than {MAX_RESTARTS} times within {WINDOW} s" in m for m in limit
        ), limit
        wait_until(
            lambda: messages(core, namespace, "PodMigrated"), timeout=TIMEOUT, what="PodMigrated"
        )
        last = wait_until(
            lambda: history.final(first_name), timeout=TIMEOUT, what=f"{first_name} deleted"
        )
        # The count the operator kept on the pod is the kubelet's own restart count.
        (status,) = last["status"]["containerStatuses"]
        kept = json.loads(last["metadata"]["annotations"][Annotation.RESTARTS])
        assert kept["seen"] == status["restartCount"] > MAX_RESTARTS
        assert last["spec"]["nodeName"] == REAL_NODE
        terminated = (status.get("lastState") or {}).get("terminated") or status["state"].get(
            "terminated"
        )
        assert terminated["exitCode"] == 1
        events = has.events(core, namespace, NAME, "PodFailed")
        assert len(events) == 1
        assert events[0].count >= status["restartCount"]

        # The node is banned for the window; the replacement, which may only run there, waits.
        assert label in (core.read_node(REAL_NODE).metadata.labels or {})

        def unschedulable() -> dict[str, Any]:
            ready = has.condition(has.get(custom, namespace, NAME), "Ready")
            return ready if ready.get("reason") == "PodsUnschedulable" else {}

        ready = wait_until(unschedulable, timeout=TIMEOUT, what="Ready False, PodsUnschedulable")
        (replacement,) = service_pods(core, namespace, NAME)
        assert replacement.metadata.name != first_name
        assert replacement.spec.node_name is None
        assert ready["status"] == "False"
        assert f"pod {replacement.metadata.name}: " in ready["message"]
        assert "didn't match Pod's node affinity/selector" in ready["message"], ready
        assert_restricted(core, namespace)
    finally:
        # Deleting the HAService lifts its ban at once, long before the window ends.
        custom.delete_namespaced_custom_object(has.GROUP, has.VERSION, namespace, has.PLURAL, NAME)
        wait_until(
            lambda: label not in (core.read_node(REAL_NODE).metadata.labels or {}),
            timeout=60,
            what="the ban on the real node lifted",
        )
