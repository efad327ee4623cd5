"""The operator itself highly available (`run --leader-elect`): two operator processes on the real
API server, one Lease; only its holder writes, the standby takes over and finishes the work.

"Writes" are what each process's own request counters say (haoperator_api_requests_total, every
method but GET): the standby's stay 0 while the other leads. The Lease is in the test's
namespace; the timings are shorter than the defaults (15/10/2 s) only to keep the tests short.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from testenv.harness.cluster import wait_until
from testenv.harness.operator_process import OperatorProcess
from tests.integration import haservices as has
from tests.integration.conftest import force_deleted_and_back, node_ready, ready_pods

pytestmark = pytest.mark.cluster
TIMING = (8.0, 5.0, 1.0)  # lease duration, renew deadline, retry period
LEASE = "haoperator"
BURST = 16
NODE_LOSS_GRACE = 12
"""Longer than the lease (TIMING): the grace the killed leader began ends after the standby
leads, so the standby is the one that acts."""


def lease_holder(core: client.CoreV1Api, namespace: str) -> str | None:
    leases = client.CoordinationV1Api(core.api_client)
    try:
        lease = leases.read_namespaced_lease(LEASE, namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return lease.spec.holder_identity or None


def identity(process: OperatorProcess) -> str:
    """The instance's name, as its "operator started" log line says."""
    for line in process.log_path.read_text(errors="replace").splitlines():
        if '"operator started"' in line:
            return str(json.loads(line)["identity"])
    raise AssertionError(f"no start line:\n{process.log_tail()}")


@pytest.fixture
def pair(crd: None, namespace: str, tmp_path: Path) -> Iterator[list[OperatorProcess]]:
    """Two leader-electing operators for the test's namespace; the first leads."""

    def make(name: str) -> OperatorProcess:
        return OperatorProcess(
            [namespace], tmp_path / f"{name}.log", leader_elect=namespace, lease_timing=TIMING
        )

    first = make("first").start()
    processes = [first]
    try:
        wait_until(first.leading, timeout=30, what="the first operator leading")
        second = make("second").start()
        processes.append(second)
        yield processes
    finally:
        for process in processes:
            process.stop()


def work(process: OperatorProcess) -> float:
    """Its reconciles and its writes but the Lease's (a leader renews it every retry period)."""
    samples = process.metrics()
    reconciles = sum(v for k, v in samples.items() if k.startswith("haoperator_reconcile_total{"))
    writes = sum(v for m, v in process.requests_by_method().items() if m not in ("GET", "PUT"))
    return reconciles + writes


def idle(process: OperatorProcess, seconds: float = 3.0) -> bool:
    before = work(process)
    time.sleep(seconds)
    return work(process) == before


def burst(custom: client.CustomObjectsApi, namespace: str, names: list[str]) -> None:
    for i, name in enumerate(names):
        category = "QueueWorker" if i % 2 else "LoadBalanced"
        spec: dict[str, Any] = {"replicas": 1}
        if category == "LoadBalanced":
            spec["service"] = has.SERVICE
        has.create(custom, namespace, has.haservice(name, category, **spec))


def test_the_standby_finishes_a_burst_when_the_leader_is_killed(
    pair: list[OperatorProcess],
    namespace: str,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
) -> None:
    leader, standby = pair
    leader_id = identity(leader)
    assert lease_holder(core, namespace) == leader_id
    wait_until(lambda: not standby.leading(), timeout=10, what="the second one a standby")
    names = [f"svc-{i:02d}" for i in range(BURST)]
    burst(custom, namespace, names[: BURST // 2])
    # The leader is at work on the first half: never a write by the standby meanwhile.
    wait_until(
        lambda: sum(has.is_ready(custom, namespace, n) for n in names[: BURST // 2]) >= 2,
        timeout=60,
        what="the leader at work",
    )
    assert standby.writes() == 0
    assert not standby.leading()
    assert leader.writes() > 0
    assert leader.stop(signal.SIGKILL) == -signal.SIGKILL  # no release: the lease must expire
    killed_at = time.monotonic()
    burst(custom, namespace, names[BURST // 2 :])
    assert standby.writes() == 0  # not before the lease has expired
    wait_until(standby.leading, timeout=TIMING[0] + 20, what="the standby leading")
    took = time.monotonic() - killed_at
    assert took >= TIMING[0] - TIMING[2] - 1, took  # it waited the lease out
    standby_id = identity(standby)
    assert lease_holder(core, namespace) == standby_id
    for name in names:
        wait_until(
            lambda n=name: has.is_ready(custom, namespace, n),
            timeout=120,
            what=f"HAService {name} Ready",
        )
    # The new leader's own events name it.
    instances = {
        e.reporting_instance
        for e in core.list_namespaced_event(namespace).items
        if e.reporting_component == "haoperator.dev/haoperator"
    }
    assert standby_id in instances
    assert instances <= {leader_id, standby_id}


def test_a_standby_restart_writes_nothing_and_a_released_lease_is_taken_at_once(
    pair: list[OperatorProcess],
    namespace: str,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    tmp_path: Path,
) -> None:
    leader, standby = pair
    names = [f"svc-{i:02d}" for i in range(4)]
    burst(custom, namespace, names)
    for name in names:
        wait_until(lambda n=name: has.is_ready(custom, namespace, n), timeout=90, what=name)
    wait_until(lambda: idle(leader), timeout=60, what="the leader idle")
    # A standby restarted: it lists and watches everything again, and writes nothing.
    assert standby.stop() == 0
    again = OperatorProcess(
        [namespace], tmp_path / "again.log", leader_elect=namespace, lease_timing=TIMING
    ).start()
    pair.append(again)  # the fixture stops it
    time.sleep(TIMING[0])  # a whole lease: it had every chance to misbehave
    assert again.writes() == 0, again.requests_by_method()
    assert not again.leading()
    assert leader.leading()
    assert lease_holder(core, namespace) == identity(leader)
    # The leader stopped (SIGTERM: a rollout, a drain) releases the Lease: taken at once, well
    # before it would have expired; over settled HAServices the new leader writes only the Lease.
    assert leader.stop() == 0
    stopped_at = time.monotonic()
    wait_until(again.leading, timeout=TIMING[0], what="the standby leading")
    assert time.monotonic() - stopped_at < TIMING[0] - TIMING[2], "it waited for expiry"
    assert lease_holder(core, namespace) == identity(again)
    wait_until(
        lambda: again.metrics().get('haoperator_reconcile_total{result="ok"}', 0) >= len(names),
        timeout=60,
        what="every HAService reconciled by the new leader",
    )
    time.sleep(2 * TIMING[2])
    writes = {m: v for m, v in again.requests_by_method().items() if m != "GET"}
    assert set(writes) <= {"PUT"}, writes  # the Lease's acquire and renewals, nothing else


def test_the_standby_finishes_a_node_loss_recovery_when_the_leader_is_killed(
    pair: list[OperatorProcess],
    namespace: str,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    chaos: Callable[..., None],
    downed: list[str],
) -> None:
    """A member's node is lost; the leader is killed (-9: no release) while the node-loss grace
    runs: the standby takes over after the lease, reports the loss and force-deletes the
    member itself, and the StatefulSet brings it back elsewhere."""
    leader, standby = pair
    has.create(custom, namespace, has.clustered("db", "ForceDelete", NODE_LOSS_GRACE))
    wait_until(
        lambda: len(ready_pods(core, namespace, "haoperator.dev/service=db")) == 3,
        timeout=90,
        what="3 members",
    )
    lost_node = core.read_namespaced_pod("db-1", namespace).spec.node_name
    chaos("node-down", lost_node)
    downed.append(lost_node)
    wait_until(lambda: node_ready(core, lost_node) != "True", timeout=60, what="the node NotReady")
    assert not has.events(core, namespace, "db", "NodeLost")  # the grace has begun
    assert standby.writes() == 0
    assert leader.stop(signal.SIGKILL) == -signal.SIGKILL

    wait_until(standby.leading, timeout=TIMING[0] + 20, what="the standby leading")
    force_deleted_and_back(core, namespace, "db", "db-1", lost_node)
    lost = has.events(core, namespace, "db", "NodeLost")
    deleted = has.events(core, namespace, "db", "PodForceDeleted")
    assert len(lost) == 1, lost  # reported once, by the new leader
    assert {e.reporting_instance for e in [*lost, *deleted]} == {identity(standby)}
