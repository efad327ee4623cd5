"""ActivePassive through control-plane faults, on real pods: the active pod keeps its role while
the whole API server is frozen (every elector confirms it cannot reach it either), and steps down
when it alone is cut off, so a standby takes over once the lease has expired. Polled from the
node, never two electors answer 200 on GET /leader, and the Service's EndpointSlices never list
two pods."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from haoperator.core.election import parse_members
from haoperator.core.vocabulary import Annotation
from testenv.harness.cluster import wait_until
from tests.integration import haservices as has
from tests.realnode.conftest import Operator
from tests.realnode.support import (
    SliceWatcher,
    cut_from_api_server,
    frozen_api_server,
    leader_answer,
)
from tests.realnode.test_active_passive import NAME, TIMEOUT, roles, settled, vip

pytestmark = pytest.mark.cluster


@pytest.fixture
def watcher(core: client.CoreV1Api, namespace: str) -> Iterator[SliceWatcher]:
    found = SliceWatcher(core.api_client, namespace, NAME)
    yield found
    found.stop()


def lease(core: client.CoreV1Api, namespace: str) -> Any:
    return client.CoordinationV1Api(core.api_client).read_namespaced_lease(NAME, namespace)


def pod_ips(core: client.CoreV1Api, namespace: str) -> dict[str, str]:
    return {
        name: core.read_namespaced_pod(name, namespace).status.pod_ip
        for name in roles(core, namespace)
    }


def failovers_said(core: client.CoreV1Api, namespace: str) -> int:
    return sum(e.count or 1 for e in has.events(core, namespace, NAME, "FailoverCompleted"))


def started(
    core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str
) -> tuple[str, str, dict[str, str]]:
    """The two-pod service of test_active_passive, settled: (active, standby, their pod IPs)."""
    has.create(custom, namespace, vip())
    active = settled(core, custom, namespace)
    ips = pod_ips(core, namespace)
    (standby,) = set(ips) - {active}
    # The failsafe covers a service once its leader has published who to ask (on a renew after
    # its pod watch synced): a freeze before that rightly makes it step down.
    wait_until(
        lambda: members(core, namespace) == {standby},
        timeout=30,
        what=f"the Lease naming {standby} as the failsafe member",
    )
    return active, standby, ips


def members(core: client.CoreV1Api, namespace: str) -> set[str] | None:
    annotations = lease(core, namespace).metadata.annotations or {}
    published = parse_members(annotations.get(Annotation.FAILSAFE_MEMBERS))
    return None if published is None else set(published)


def elector_logs(core: client.CoreV1Api, namespace: str, pods: dict[str, str]) -> str:
    """The ha-elector logs of `pods`, for a failure message: why a leader stepped down."""
    return "\n".join(
        f"--- {pod}\n"
        + core.read_namespaced_pod_log(pod, namespace, container="ha-elector", tail_lines=60)
        for pod in sorted(pods)
    )


def answers(ips: dict[str, str], seconds: float) -> list[dict[str, int]]:
    """GET /leader of every pod, from the node, every 0.2 s for `seconds` (no API needed)."""
    seen = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        seen.append({pod: leader_answer(ip) for pod, ip in ips.items()})
        time.sleep(0.2)
    return seen


@pytest.mark.parametrize("seconds", [20, 60])
def test_a_frozen_api_server_moves_nothing(
    installed: Operator,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    watcher: SliceWatcher,
    seconds: int,
) -> None:
    active, standby, ips = started(core, custom, namespace)
    before = int(lease(core, namespace).spec.lease_transitions or 0)
    # (The first holder may have handed the role on before its application was ready.)
    moved = failovers_said(core, namespace)

    with frozen_api_server():
        seen = answers(ips, seconds)

    lost = [i for i, s in enumerate(seen) if s != {active: 200, standby: 503}]
    assert not lost, (
        f"{len(lost)} of {len(seen)} polls wrong, first at {lost[0] * 0.2:.1f} s: {seen[lost[0]]}\n"
        + elector_logs(core, namespace, ips)
    )
    after = answers(ips, 10)  # and once it answers again: the same leader renews
    assert all(s == {active: 200, standby: 503} for s in after), after
    held = lease(core, namespace)
    assert held.spec.holder_identity == active
    assert int(held.spec.lease_transitions or 0) == before
    status = wait_until(
        lambda: (has.get(custom, namespace, NAME).get("status") or {}).get("lastFailsafe"),
        timeout=TIMEOUT,
        what="status.lastFailsafe",
    )
    assert status["pod"] == active
    assert status["seconds"] >= seconds - 5
    assert status["peers"] == 1
    event = wait_until(
        lambda: has.events(core, namespace, NAME, "FailsafeHeld"), timeout=TIMEOUT, what="event"
    )
    assert f"pod {active} kept the active role" in event[0].message
    assert failovers_said(core, namespace) == moved
    assert watcher.most_listed_at_once() == 1, watcher.listed


def test_a_leader_cut_off_alone_steps_down_and_a_standby_takes_over(
    installed: Operator,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    watcher: SliceWatcher,
) -> None:
    active, standby, ips = started(core, custom, namespace)

    with cut_from_api_server(namespace, active, "app"):
        seen = []
        until = time.monotonic() + 30
        while time.monotonic() < until:
            seen.append({pod: leader_answer(ip) for pod, ip in ips.items()})
            if seen[-1] == {active: 503, standby: 200} and len(seen) > 1:
                break
            time.sleep(0.1)
        assert seen[-1] == {active: 503, standby: 200}, seen[-10:]
        assert all(list(s.values()).count(200) <= 1 for s in seen), seen
        wait_until(lambda: watcher.current() == {standby}, timeout=30, what=f"routing to {standby}")
    last = wait_until(
        lambda: (has.get(custom, namespace, NAME).get("status") or {}).get("lastFailover"),
        timeout=TIMEOUT,
        what="status.lastFailover",
    )
    assert (last["from"], last["to"], last["reason"]) == (active, standby, "LeaseExpired")
    assert lease(core, namespace).spec.holder_identity == standby
    # Back on the network, the old leader stays a standby.
    wait_until(lambda: roles(core, namespace)[active] == "standby", timeout=30, what="standby")
    assert all(s == {active: 503, standby: 200} for s in answers(ips, 5))
    assert watcher.most_listed_at_once() == 1, watcher.listed
