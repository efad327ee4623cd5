"""ActivePassive on real pods, with the real `ha-elector` native sidecar from the operator's image:
exactly one active pod; the application asks its sidecar `GET localhost:8099/leader` and reads
its role from a downward-API file, and both follow the role as it moves: a graceful handover
(`kubectl delete pod`), a SIGKILL of the active pod's elector process, found through the node's
container runtime, and a SIGKILL of its application's process. All along, a watcher of the
Service's EndpointSlices checks that it never lists two pods."""

from __future__ import annotations

import functools
import os
import signal
import textwrap
from collections.abc import Iterator
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
    # releases nothing. The kubelet restarts the sidecar at once, and a sidecar back within
    # the lease retakes the Lease it still holds (same pod, same identity); killed again, the
    # kubelet's back-off (10 s) keeps it down past the lease (5 s), and the standby takes over
    # once the Lease has expired. The restarted sidecar comes back as standby.
    outcomes = []
    active = second
    for kill in range(1, 4):
        seen = len(watcher.history)
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
        active = settled(core, custom, namespace)
        outcomes.append(f"{active} (routed: {[sorted(h) for h in watcher.history[seen:]]})")
        if active != second:
            break
    print(f"active after each SIGKILL of {second}'s elector: {outcomes}")
    assert active == third, outcomes
    the_app_sees(namespace, third, second)
    wait_until(lambda: watcher.current() == {third}, timeout=30, what=f"routing to {third}")

    # 3. The active pod's application process killed (SIGKILL): the kubelet restarts that
    # container. The role does not follow the application's health (yet): the pod keeps it,
    # and while its application is down the pod is not ready and the Service routes to nobody.
    seen = len(watcher.history)
    container_id, pid = runtime_process(namespace, third, "app")
    os.kill(pid, signal.SIGKILL)
    wait_until(
        functools.partial(restarted, core, namespace, third, "app", 1),
        timeout=TIMEOUT,
        what=f"the kubelet restarting the application of {third}",
    )
    terminated = _status(core, namespace, third, "app").last_state.terminated
    assert (terminated.exit_code, terminated.reason) == (137, "Error")
    assert settled(core, custom, namespace) == third
    the_app_sees(namespace, third, second)
    wait_until(lambda: watcher.current() == {third}, timeout=30, what=f"routing to {third}")
    assert frozenset() in watcher.history[seen:], watcher.history[seen:]
    assert restarts(core, namespace, third, ELECTOR) == 0

    # The kubelet probed the sidecars' liveness (GET :8099/healthz) all along: the one never
    # killed never failed it.
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
    assert obj["status"]["failovers"] >= 2
    reasons = {e.reason for e in has.events(core, namespace, NAME)}
    assert {"LeaderElected", "FailoverCompleted"} <= reasons


def _status(core: client.CoreV1Api, namespace: str, pod: str, container: str) -> Any:
    status = core.read_namespaced_pod(pod, namespace).status
    statuses = [*(status.init_container_statuses or []), *(status.container_statuses or [])]
    return next(s for s in statuses if s.name == container)
