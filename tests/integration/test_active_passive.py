"""Active/passive on the real API server: electors as local processes acting for the kwok pods.

Every test watches the Service's EndpointSlices from start to end and asserts they never listed
two pods at once: the property pacemaker and keepalived exist for.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from testenv.harness.cluster import token_kubeconfig, wait_until
from testenv.harness.electors import ElectorProcess, RouteWatcher
from testenv.harness.operator_process import OperatorProcess
from tests.integration import haservices as has
from tests.integration.conftest import ready_pods

pytestmark = pytest.mark.cluster
NAME = "vip"
ROLE = "haoperator.dev/role"


class Pair:
    """An ActivePassive HAService with an elector per pod and a watcher on its Service."""

    def __init__(
        self,
        namespace: str,
        core: client.CoreV1Api,
        custom: client.CustomObjectsApi,
        tmp: Path,
        kubeconfig: Path | None = None,
        **spec: Any,
    ) -> None:
        """`kubeconfig`: whose credentials the electors use (default: the tests' own)."""
        self.namespace, self.core, self.custom, self.tmp = namespace, core, custom, tmp
        self.kubeconfig = kubeconfig
        body = has.haservice(NAME, "ActivePassive", replicas=2, service=has.SERVICE, **spec)
        has.create(custom, namespace, body)
        settings = spec.get("activePassive", {})
        self.args = [
            "--lease-duration-seconds", str(settings.get("leaseDurationSeconds", 5)),
            "--renew-deadline-seconds", str(settings.get("renewDeadlineSeconds", 3)),
            "--retry-period-seconds", str(settings.get("retryPeriodSeconds", 1)),
        ]  # fmt: skip
        if settings.get("preempt"):
            self.args.append("--preempt")
        pods = wait_until(
            lambda: (
                p
                if len(p := ready_pods(core, namespace, f"haoperator.dev/service={NAME}")) == 2
                else None
            ),
            timeout=60,
            what="2 ready pods",
        )
        self.pods = sorted(p.metadata.name for p in pods)
        self.watcher = RouteWatcher(core.api_client, namespace, NAME)
        self.electors = {pod: self.start(pod) for pod in self.pods}
        # The first elector up may win before the other one serves its probes (a CI failure).
        wait_until(
            lambda: all(e.leader() for e in self.electors.values()),
            timeout=30,
            what="every elector answering GET /leader",
        )

    def start(self, pod: str) -> ElectorProcess:
        log = self.tmp / f"elector-{pod}.log"
        args = ["elect", "--lease", NAME, *self.args]
        return ElectorProcess(self.namespace, pod, args, log, kubeconfig=self.kubeconfig)

    def role(self, pod: str) -> str | None:
        labels = self.core.read_namespaced_pod(pod, self.namespace).metadata.labels or {}
        return labels.get(ROLE)

    def active(self) -> list[str]:
        return [p for p in self.pods if self.role(p) == "active"]

    def leader(self) -> str:
        """Wait for exactly one active pod that the Service routes to; return it."""

        def settled() -> str | None:
            active = self.active()
            if len(active) == 1 and self.watcher.current() == {active[0]}:
                return active[0]
            return None

        return str(wait_until(settled, timeout=30, what="one active pod, routed"))

    def other(self, pod: str) -> str:
        return next(p for p in self.pods if p != pod)

    def lease(self) -> dict[str, Any]:
        api = client.CoordinationV1Api(self.core.api_client)
        return dict(api.read_namespaced_lease(NAME, self.namespace).to_dict())

    def close(self) -> None:
        for elector in self.electors.values():
            elector.stop()
        self.watcher.stop()


@pytest.fixture
def pair_factory(
    namespace: str, core: client.CoreV1Api, custom: client.CustomObjectsApi, tmp_path: Path
) -> Iterator[Any]:
    made: list[Pair] = []

    def make(kubeconfig: Path | None = None, **spec: Any) -> Pair:
        made.append(Pair(namespace, core, custom, tmp_path, kubeconfig, **spec))
        return made[-1]

    yield make
    for pair in made:
        assert pair.watcher.most_at_once() <= 1, (
            f"the Service routed to two pods: {pair.watcher.history}"
        )
        pair.close()


def status(custom: client.CustomObjectsApi, namespace: str) -> dict[str, Any]:
    return dict(has.get(custom, namespace, NAME).get("status") or {})


def test_one_active_pod_and_graceful_handover(
    namespace: str,
    operator: OperatorProcess,
    pair_factory: Any,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
) -> None:
    pair = pair_factory()
    first = pair.leader()
    wait_until(lambda: has.is_ready(custom, namespace, NAME), timeout=30, what="Ready")
    assert status(custom, namespace)["activePod"] == first
    assert pair.electors[first].leader() == 200
    assert pair.electors[pair.other(first)].leader() == 503
    elected = wait_until(
        lambda: has.events(core, namespace, NAME, "LeaderElected"), timeout=15, what="LeaderElected"
    )
    assert first in elected[0].message

    pair.electors[first].signal(signal.SIGTERM)  # graceful: release the Lease
    second = pair.other(first)
    wait_until(
        lambda: pair.active() == [second] and pair.watcher.current() == {second},
        timeout=10,
        what="handover",
    )
    assert pair.electors[first].proc.wait(timeout=10) == 0
    assert pair.role(first) == "standby"
    wait_until(
        lambda: (
            status(custom, namespace).get("activePod") == second
            and status(custom, namespace).get("lastFailover")
        ),
        timeout=15,
        what="status follows",
    )
    st = status(custom, namespace)
    assert st["failovers"] == 1
    assert st["lastFailover"]["from"] == first
    assert st["lastFailover"]["to"] == second
    assert st["lastFailover"]["reason"] == "ElectorStopped"
    event = wait_until(
        lambda: has.events(core, namespace, NAME, "FailoverCompleted"), timeout=15, what="event"
    )
    assert f"from {first} to {second}" in event[0].message


def test_crash_handover_waits_for_the_lease_to_expire(
    namespace: str, operator: OperatorProcess, pair_factory: Any
) -> None:
    pair = pair_factory()
    first = pair.leader()
    before = pair.lease()["spec"]
    pair.electors[first].signal(signal.SIGKILL)  # no release, no relabel
    second = pair.other(first)
    wait_until(
        lambda: pair.active() == [second] and pair.watcher.current() == {second},
        timeout=20,
        what="takeover",
    )
    after = pair.lease()["spec"]
    assert after["holder_identity"] == second
    # Taken over no earlier than the lease allowed: its last renew plus its duration.
    assert (after["acquire_time"] - before["renew_time"]).total_seconds() >= before[
        "lease_duration_seconds"
    ] - 1.0
    assert pair.role(first) == "standby"  # fenced by the new leader


def test_paused_leader_is_replaced_and_steps_down_without_reclaiming(
    namespace: str, operator: OperatorProcess, pair_factory: Any, core: client.CoreV1Api
) -> None:
    pair = pair_factory()
    first = pair.leader()
    second = pair.other(first)
    pair.electors[first].signal(signal.SIGSTOP)
    wait_until(
        lambda: pair.active() == [second],
        timeout=20,
        what="the standby takes over from the frozen leader",
    )
    pair.electors[first].signal(signal.SIGCONT)
    # Resumed past its lease, it must know at once that it is not the leader.
    wait_until(
        lambda: pair.electors[first].leader() == 503,
        timeout=5,
        what="resumed elector answers 503",
        interval=0.05,
    )
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        assert pair.role(first) != "active", "the resumed elector relabelled itself active"
        assert (
            first not in pair.watcher.current()
        )  # the standby may re-elect under load, never first
        time.sleep(0.1)
    assert pair.lease()["spec"]["holder_identity"] == second


@pytest.mark.parametrize("preempt", [False, True])
def test_preempt(
    namespace: str,
    operator: OperatorProcess,
    pair_factory: Any,
    core: client.CoreV1Api,
    preempt: bool,
) -> None:
    pair = pair_factory(activePassive={"preempt": preempt})
    pods = {
        p.metadata.name: p
        for p in core.list_namespaced_pod(
            namespace, label_selector=f"haoperator.dev/service={NAME}"
        ).items
    }
    oldest = min(pods, key=lambda n: (pods[n].metadata.creation_timestamp, n))
    if preempt:
        wait_until(lambda: pair.active() == [oldest], timeout=20, what="the preferred pod leads")
        first = oldest
    else:
        first = pair.leader()
    second = pair.other(first)
    pair.electors[first].signal(signal.SIGSTOP)
    wait_until(lambda: pair.active() == [second], timeout=20, what="takeover")
    pair.electors[first].signal(signal.SIGCONT)
    if preempt:
        # The returning, preferred pod takes the role back through a handover.
        wait_until(
            lambda: pair.active() == [first] and pair.watcher.current() == {first},
            timeout=20,
            what="reclaimed",
        )
    else:
        # keepalived's nopreempt: the healthy leader keeps the role.
        time.sleep(5)
        assert pair.active() == [second]


def test_electors_fail_over_with_the_operator_down(
    crd: None, namespace: str, pair_factory: Any, custom: client.CustomObjectsApi, tmp_path: Path
) -> None:
    op = OperatorProcess([namespace], tmp_path / "operator.log").start()
    pair = pair_factory()
    first = pair.leader()
    wait_until(lambda: has.is_ready(custom, namespace, NAME), timeout=30, what="Ready")
    assert op.stop() == 0
    pair.electors[first].signal(signal.SIGTERM)
    second = pair.other(first)
    wait_until(
        lambda: pair.active() == [second] and pair.watcher.current() == {second},
        timeout=10,
        what="handover alone",
    )
    op = OperatorProcess([namespace], tmp_path / "operator2.log").start()
    try:
        wait_until(
            lambda: status(custom, namespace).get("activePod") == second,
            timeout=30,
            what="status caught up",
        )
        assert status(custom, namespace)["lastFailover"]["to"] == second
    finally:
        assert op.stop() == 0


def test_split_brain_is_cut_by_the_operator(
    namespace: str, operator: OperatorProcess, pair_factory: Any, core: client.CoreV1Api
) -> None:
    pair = pair_factory()
    first = pair.leader()
    second = pair.other(first)
    # A rogue writer (not an elector) marks the standby active too.
    core.patch_namespaced_pod(second, namespace, {"metadata": {"labels": {ROLE: "active"}}})
    wait_until(lambda: pair.active() == [first], timeout=15, what="the non-holder loses the role")
    event = wait_until(
        lambda: has.events(core, namespace, NAME, "SplitBrainPrevented"), timeout=10, what="event"
    )
    assert event[0].type == "Warning"
    assert second in event[0].message
    # The watcher may have seen both for the instant before the cut: this test is about the net.
    pair.watcher.history = [h for h in pair.watcher.history if len(h) <= 1]


def test_a_leaders_label_removed_by_hand_is_put_back(
    namespace: str,
    operator: OperatorProcess,
    pair_factory: Any,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
) -> None:
    """`kubectl label pod <leader> haoperator.dev/role-`: the label was written once, at the
    win, and the Service routed to nobody for as long as the pod led."""
    pair = pair_factory()
    first = pair.leader()
    wait_until(lambda: has.is_ready(custom, namespace, NAME), timeout=30, what="Ready")
    core.patch_namespaced_pod(first, namespace, {"metadata": {"labels": {ROLE: None}}})
    assert pair.leader() == first  # labelled and routed again, by its own elector
    assert pair.electors[first].leader() == 200
    assert pair.lease()["spec"]["holder_identity"] == first
    wait_until(lambda: has.is_ready(custom, namespace, NAME), timeout=30, what="Ready again")
    assert not has.events(core, namespace, NAME, "FailoverCompleted")


def elector_account(
    core: client.CoreV1Api, kubectl: Any, namespace: str, tmp: Path, pod_verbs: list[str]
) -> tuple[Path, Any]:
    """A ServiceAccount for the electors with a Role this test controls (the operator restores
    its own within a second): the kubeconfig, and a function that sets the verbs on pods."""
    rbac = client.RbacAuthorizationV1Api(core.api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "electors"}})

    def role(verbs: list[str]) -> dict[str, Any]:
        return {
            "metadata": {"name": "electors"},
            "rules": [
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                 "resourceNames": [NAME], "verbs": ["get", "list", "watch", "update", "patch"]},
                {"apiGroups": [""], "resources": ["pods"], "verbs": verbs},
            ],
        }  # fmt: skip

    rbac.create_namespaced_role(namespace, role(pod_verbs))
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "electors"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "electors",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "electors", "namespace": namespace}],
        },
    )

    def set_pod_verbs(verbs: list[str]) -> None:
        rbac.replace_namespaced_role("electors", namespace, role(verbs))

    return token_kubeconfig(kubectl, namespace, "electors", tmp / "electors.kubeconfig"), (
        set_pod_verbs
    )


def test_a_new_leader_that_may_not_label_itself_does_not_lead_and_the_haservice_says_so(
    namespace: str,
    operator: OperatorProcess,
    pair_factory: Any,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    kubectl: Any,
    tmp_path: Path,
) -> None:
    """The electors' Role cut to get/list/watch on pods, the leader's elector killed: the standby
    took the Lease, its PATCH got 403, it counted itself leader anyway (/leader 200) and the
    operator reported Ready for the pod whose elector was dead."""
    full = ["get", "list", "watch", "patch"]
    kubeconfig, set_pod_verbs = elector_account(core, kubectl, namespace, tmp_path, full)
    pair = pair_factory(kubeconfig=kubeconfig)
    first = pair.leader()
    second = pair.other(first)
    wait_until(lambda: has.is_ready(custom, namespace, NAME), timeout=30, what="Ready")

    set_pod_verbs(["get", "list", "watch"])
    pair.electors[first].signal(signal.SIGKILL)
    wait_until(
        lambda: pair.lease()["spec"]["holder_identity"] == second,
        timeout=30,
        what="the standby takes the Lease once it expires",
    )

    def says_why() -> dict[str, Any]:
        ready = has.condition(has.get(custom, namespace, NAME), "Ready")
        return ready if ready.get("reason") == "LeaderNotLabelled" else {}

    ready = wait_until(says_why, timeout=30, what="Ready=False LeaderNotLabelled")
    assert f"pod {second} holds the Lease {NAME}" in ready["message"]
    st = status(custom, namespace)
    assert st["activePod"] == second  # the Lease, not a label, names it
    degraded = has.condition(has.get(custom, namespace, NAME), "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "LeaderNotLabelled")
    warning = wait_until(
        lambda: has.events(core, namespace, NAME, "LeaderNotLabelled"), timeout=15, what="event"
    )[0]
    assert warning.type == "Warning"
    assert pair.electors[second].leader() == 503  # not leading while the Service cannot route
    # The dead elector's pod lost the label the Lease contradicts (the operator's net).
    wait_until(lambda: pair.role(first) != "active", timeout=15, what="the stale label removed")

    set_pod_verbs(full)
    wait_until(
        lambda: pair.active() == [second] and pair.watcher.current() == {second},
        timeout=30,
        what="the Lease holder labels itself once it may",
    )
    assert pair.electors[second].leader() == 200
    wait_until(lambda: has.is_ready(custom, namespace, NAME), timeout=30, what="Ready again")
    assert status(custom, namespace)["activePod"] == second
