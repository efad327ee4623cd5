"""ActivePassive on real pods, with the real `ha-elector` native sidecar from the operator's image:
exactly one active pod; the application asks its sidecar `GET localhost:8099/leader` and reads
its role from a downward-API file, and both follow the role as it moves: a graceful handover
(`kubectl delete pod`), a SIGKILL of the active pod's elector process, found through the node's
container runtime (taken over at the kubelet's word), and a SIGKILL of its application's process
(the role follows the application's health). All along, a watcher of the Service's EndpointSlices
checks that it never lists two pods."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from testenv.harness.cluster import wait_until
from tests.integration import haservices as has
from tests.realnode.conftest import Operator
from tests.realnode.support import (
    SliceWatcher,
    assert_restricted,
    in_pod,
    kubectl_ok,
    kubelet_probes,
    make_ready,
    pod_ready,
    real_node_template,
    running_containers,
    runtime_process,
    service_pods,
    web_container,
)

pytestmark = pytest.mark.cluster
NAME = "vip"
ELECTOR = "ha-elector"
ELECTOR_PORT = 8099  # the default activePassive.electorPort
ROLE = "haoperator.dev/role"
LABELS_FILE = "/etc/podinfo/labels"
TIMEOUT = 120


def vip() -> dict[str, Any]:
    """Two copies of a web server, each reading its own labels from a downward-API volume."""
    app = web_container(
        readinessProbe={"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
        volumeMounts=[
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "podinfo", "mountPath": "/etc/podinfo", "readOnly": True},
        ],
    )
    podinfo = {
        "name": "podinfo",
        "downwardAPI": {
            "items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]
        },
    }
    template = real_node_template(app, volumes=[podinfo])
    return has.haservice(
        NAME,
        "ActivePassive",
        replicas=2,
        template=template,
        service=has.SERVICE,
        activePassive={
            "leaseDurationSeconds": 5,
            "renewDeadlineSeconds": 3,
            "retryPeriodSeconds": 1,
        },
    )


@pytest.fixture
def watcher(core: client.CoreV1Api, namespace: str) -> Iterator[SliceWatcher]:
    found = SliceWatcher(core.api_client, namespace, NAME)
    yield found
    found.stop()


# Run in the application's container: what its sidecar says on GET /leader.
LEADER = textwrap.dedent(
    f"""
    import urllib.error, urllib.request
    try:
        print(urllib.request.urlopen("http://localhost:{ELECTOR_PORT}/leader", timeout=5).status)
    except urllib.error.HTTPError as error:
        print(error.code)
    except OSError:
        print(0)
    """
)


def leader(namespace: str, pod: str) -> int:
    """GET localhost:8099/leader from inside the pod's application container."""
    return int(in_pod(namespace, pod, "app", LEADER).strip())


def role_file(namespace: str, pod: str) -> str:
    """The role the downward-API file in the application's container says ('' if none)."""
    text = in_pod(namespace, pod, "app", f"print(open({LABELS_FILE!r}).read())")
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key == ROLE:
            return value.strip('"')
    return ""


def roles(core: client.CoreV1Api, namespace: str) -> dict[str, str]:
    return {
        p.metadata.name: (p.metadata.labels or {}).get(ROLE, "")
        for p in service_pods(core, namespace, NAME)
    }


def settled(core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str) -> Any:
    """The active pod once the service has settled: two pods with every container running,
    exactly one labelled active, the one the Lease names, and Ready True."""

    def check() -> str:
        pods = service_pods(core, namespace, NAME)
        if len(pods) != 2 or not all(running_containers(p) for p in pods):
            return ""
        active = [n for n, r in roles(core, namespace).items() if r == "active"]
        obj = has.get(custom, namespace, NAME)
        status = obj.get("status") or {}
        ready = has.condition(obj, "Ready")
        ok = (
            len(active) == 1
            and status.get("activePod") == active[0]
            and ready.get("status") == "True"
            and ready.get("reason") == "ActivePodReady"
        )
        return active[0] if ok else ""

    return wait_until(check, timeout=TIMEOUT, what="one active pod, the Lease holder, Ready")


def the_app_sees(namespace: str, active: str, standby: str) -> None:
    """Each application asks its sidecar and reads its label file: the active pod's say so, the
    standby's do not (the kubelet refreshes downward-API files on its own schedule)."""
    wait_until(
        lambda: leader(namespace, active) == 200, timeout=30, what=f"/leader 200 in {active}"
    )
    wait_until(
        lambda: leader(namespace, standby) == 503, timeout=30, what=f"/leader 503 in {standby}"
    )
    wait_until(
        lambda: role_file(namespace, active) == "active",
        timeout=TIMEOUT,
        what=f"the label file in {active} saying active",
    )
    wait_until(
        lambda: role_file(namespace, standby) != "active",
        timeout=TIMEOUT,
        what=f"the label file in {standby} no longer saying active",
    )


def restarted(core: client.CoreV1Api, namespace: str, pod: str, container: str, times: int) -> bool:
    return restarts(core, namespace, pod, container) >= times


def restarts(core: client.CoreV1Api, namespace: str, pod: str, container: str) -> int:
    status = core.read_namespaced_pod(pod, namespace).status
    statuses = [*(status.init_container_statuses or []), *(status.container_statuses or [])]
    return int(next(s.restart_count for s in statuses if s.name == container))


def test_one_active_pod_whose_role_follows_handovers_and_crashes(
    installed: Operator,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    watcher: SliceWatcher,
) -> None:
    has.create(custom, namespace, vip())
    first = settled(core, custom, namespace)
    (second,) = set(roles(core, namespace)) - {first}
    the_app_sees(namespace, first, second)
    for pod in (first, second):  # every sidecar started once and never restarted
        assert restarts(core, namespace, pod, ELECTOR) == 0
    wait_until(lambda: watcher.current() == {first}, timeout=30, what=f"routing to {first}")

    # 1. Graceful: `kubectl delete pod` of the active pod. Its elector hands the Lease over.
    kubectl_ok("-n", namespace, "delete", "pod", first, "--wait=false")
    wait_until(
        lambda: (has.get(custom, namespace, NAME).get("status") or {}).get("activePod") == second,
        timeout=TIMEOUT,
        what=f"{second} active after {first} was deleted",
    )
    active = settled(core, custom, namespace)
    assert active == second
    (third,) = set(roles(core, namespace)) - {second}
    the_app_sees(namespace, second, third)
    wait_until(lambda: watcher.current() == {second}, timeout=30, what=f"routing to {second}")

    # 2. The active pod's elector process killed (SIGKILL) on the node: it renews nothing and
    # releases nothing. The kubelet reports the sidecar terminated (and restarts it): a process
    # that exited can neither renew nor answer /leader, so the standby takes the Lease at once
    # rather than when it expires. The restarted sidecar comes back as standby. (The kubelet may
    # restart the sidecar before its report reaches the standby; the new process then takes its
    # own Lease back first, safe too: the kill is repeated until the standby wins the race.)
    outcomes = []
    for kill in range(1, 4):
        container_id, pid = runtime_process(namespace, second, ELECTOR)
        assert container_id in _status(core, namespace, second, ELECTOR).container_id
        os.kill(pid, signal.SIGKILL)
        wait_until(
            functools.partial(restarted, core, namespace, second, ELECTOR, kill),
            timeout=TIMEOUT,
            what=f"the kubelet restarting the ha-elector of {second} (kill {kill})",
        )
        terminated = _status(core, namespace, second, ELECTOR).last_state.terminated
        assert (terminated.exit_code, terminated.reason) == (137, "Error")
        outcomes.append(settled(core, custom, namespace))
        if outcomes[-1] != second:
            break
    print(f"active after each SIGKILL of {second}'s elector: {outcomes}")
    assert outcomes[-1] == third, outcomes
    assert last_failover(custom, namespace)["reason"] == "ElectorTerminated"
    the_app_sees(namespace, third, second)
    wait_until(lambda: watcher.current() == {third}, timeout=30, what=f"routing to {third}")

    # 3. The active pod's application process killed (SIGKILL): the kubelet restarts that
    # container, and reports it not ready meanwhile. The role follows the application's health:
    # it moves to the ready standby.
    container_id, pid = runtime_process(namespace, third, "app")
    os.kill(pid, signal.SIGKILL)
    wait_until(
        functools.partial(restarted, core, namespace, third, "app", 1),
        timeout=TIMEOUT,
        what=f"the kubelet restarting the application of {third}",
    )
    terminated = _status(core, namespace, third, "app").last_state.terminated
    assert (terminated.exit_code, terminated.reason) == (137, "Error")
    assert settled(core, custom, namespace) == second
    assert last_failover(custom, namespace)["reason"] == "ApplicationUnhealthy"
    the_app_sees(namespace, second, third)
    wait_until(lambda: watcher.current() == {second}, timeout=30, what=f"routing to {second}")
    assert restarts(core, namespace, third, ELECTOR) == 0

    # The kubelet probed the sidecars' liveness (GET :8099/healthz) all along: the one never
    # killed ({third}'s) never failed it.
    wait_until(
        lambda: kubelet_probes(core, namespace, third, ELECTOR, "Liveness").get("successful"),
        timeout=60,
        what=f"a liveness probe of {third}'s ha-elector",
    )
    assert kubelet_probes(core, namespace, third, ELECTOR, "Liveness").keys() == {"successful"}
    assert_restricted(core, namespace)

    # Never two pods behind the Service: neither two ready, nor two listed at all.
    assert watcher.most_at_once() == 1, watcher.history
    assert watcher.most_listed_at_once() == 1, watcher.listed
    obj = has.get(custom, namespace, NAME)
    assert obj["status"]["failovers"] >= 3
    reasons = {e.reason for e in has.events(core, namespace, NAME)}
    assert {"LeaderElected", "FailoverCompleted"} <= reasons


def last_failover(custom: client.CustomObjectsApi, namespace: str) -> dict[str, Any]:
    return dict(has.get(custom, namespace, NAME)["status"]["lastFailover"])


def _status(core: client.CoreV1Api, namespace: str, pod: str, container: str) -> Any:
    status = core.read_namespaced_pod(pod, namespace).status
    statuses = [*(status.init_container_statuses or []), *(status.container_statuses or [])]
    return next(s for s in statuses if s.name == container)


def lease_spec(core: client.CoreV1Api, namespace: str) -> Any:
    return client.CoordinationV1Api(core.api_client).read_namespaced_lease(NAME, namespace).spec


def test_the_role_follows_the_applications_health(
    installed: Operator,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    namespace: str,
    watcher: SliceWatcher,
) -> None:
    """Three pods whose readiness the test sets (web_container's /ready file), one never ready.
    An unready standby never takes the role while a ready one can; with no ready pod the active
    pod keeps the role, without flapping, and the HAService says so; the role moves to the first
    pod that is ready again."""
    body = has.haservice(
        NAME, "ActivePassive", replicas=3, service=has.SERVICE,
        template=real_node_template(web_container()),
    )  # fmt: skip
    has.create(custom, namespace, body)
    pods = wait_until(
        lambda: (
            sorted(p.metadata.name for p in found)
            if len(found := service_pods(core, namespace, NAME)) == 3
            and all(running_containers(p) for p in found)
            else None
        ),
        timeout=TIMEOUT,
        what="three running pods",
    )
    sick, *healthy = pods
    for pod in healthy:
        make_ready(namespace, pod)

    def holder() -> str:
        return str(lease_spec(core, namespace).holder_identity or "")

    first = wait_until(
        lambda: (
            (h := holder()) in healthy
            and [n for n, r in roles(core, namespace).items() if r == "active"] == [h]
            and watcher.current() == {h}
            and h
        ),
        timeout=TIMEOUT,
        what="a ready pod active and routed",
    )
    (second,) = set(healthy) - {first}
    transitions = int(lease_spec(core, namespace).lease_transitions or 0)

    # The active pod deleted: it frees the Lease; the ready standby takes it, the unready one
    # does not (had it taken the Lease and handed it on, the Lease would count two transitions).
    kubectl_ok("-n", namespace, "delete", "pod", first, "--wait=false")
    wait_until(lambda: holder() == second and watcher.current() == {second}, timeout=TIMEOUT,
               what=f"{second} active and routed")  # fmt: skip
    assert int(lease_spec(core, namespace).lease_transitions) == transitions + 1
    assert roles(core, namespace)[sick] != "active"
    first = wait_until(  # its replacement, running but not ready (no /ready file yet)
        lambda: next(
            (p.metadata.name for p in service_pods(core, namespace, NAME)
             if p.metadata.name not in (sick, second) and running_containers(p)),
            None,
        ),
        timeout=TIMEOUT,
        what="the deleted pod's replacement running",
    )  # fmt: skip

    # No pod ready: the active pod keeps the role for a minute, nothing flaps, one Warning.
    make_ready(namespace, second, False)
    wait_until(
        lambda: (
            has.condition(has.get(custom, namespace, NAME), "Ready").get("reason")
            == "ActivePodUnhealthy"
        ),
        timeout=TIMEOUT,
        what="Ready=False ActivePodUnhealthy",
    )
    held = int(lease_spec(core, namespace).lease_transitions)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert holder() == second
        assert roles(core, namespace)[second] == "active"
        time.sleep(2)
    assert int(lease_spec(core, namespace).lease_transitions) == held
    degraded = has.condition(has.get(custom, namespace, NAME), "Degraded")
    assert (degraded.get("status"), degraded.get("reason")) == ("True", "ActivePodUnhealthy")
    warned = has.events(core, namespace, NAME, "ActivePodUnhealthy")
    assert len(warned) == 1, warned
    assert (warned[0].count or 1) == 1, warned

    # A pod ready again: the role moves to it, and says why.
    make_ready(namespace, first)
    wait_until(lambda: holder() == first and watcher.current() == {first}, timeout=TIMEOUT,
               what=f"{first} active and routed again")  # fmt: skip
    wait_until(
        lambda: (
            (has.get(custom, namespace, NAME)["status"].get("lastFailover") or {}).get("to")
            == first
        ),
        timeout=30,
        what="status.lastFailover",
    )
    last = has.get(custom, namespace, NAME)["status"]["lastFailover"]
    assert (last["from"], last["reason"]) == (second, "ApplicationUnhealthy")

    # A planned switchover: refused to the pod that is not ready, done to the one made ready.
    refused = switchover(namespace, sick)
    assert refused.returncode == 1, refused
    assert f"pod {sick} is not ready" in refused.stderr
    assert holder() == first
    make_ready(namespace, second)
    wait_until(lambda: has.condition(has.get(custom, namespace, NAME), "Ready").get("status")
               == "True", timeout=TIMEOUT, what="Ready again")  # fmt: skip
    # The kubelet probes on its own period: the switchover is asked once it says Ready.
    wait_until(lambda: pod_ready(core, namespace, second), timeout=TIMEOUT,
               what=f"{second} Ready")  # fmt: skip
    moved = switchover(namespace, second)
    assert moved.returncode == 0, moved
    assert f"switched over from {first} to {second}" in moved.stdout
    wait_until(lambda: watcher.current() == {second}, timeout=30, what=f"routing to {second}")
    last = has.get(custom, namespace, NAME)["status"]["lastFailover"]
    assert (last["from"], last["to"], last["reason"]) == (first, second, "Switchover")
    assert has.events(core, namespace, NAME, "SwitchoverCompleted")
    assert watcher.most_at_once() == 1, watcher.history
    assert watcher.most_listed_at_once() == 1, watcher.listed


def switchover(namespace: str, to: str) -> subprocess.CompletedProcess[str]:
    """`haoperator switchover vip --to POD`, as a user runs it."""
    command = [str(Path(sys.executable).parent / "haoperator"), "switchover", NAME, "--to", to,
               "-n", namespace, "--timeout", "60"]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
