"""The failover series on the local cluster's real node: real ha-elector sidecars in real pods.

Graceful: `kubectl delete pod` of the active pod (the kubelet sends SIGTERM; the elector releases
the Lease). Crash: SIGKILL of the active pod's elector process, found through the node's
containerd (the kubelet reports it dead and restarts the sidecar; the standby takes over on the
kubelet's word), then the crashed pod is replaced by a fresh one so the kubelet's crash back-off
never builds up. Unhealthy: the active pod's application turns not ready (its readiness file
removed; the kubelet's probe notices within a second); measured from the moment the API server
shows it not ready, to the Service routing to the other pod alone, answering 200. Freeze: the
API server stopped (SIGSTOP) for `freeze_seconds`, then resumed; the pods' GET /leader polled
from the node every 50 ms: a trial reports whether the active pod changed and how long no pod
answered 200 (the failsafe's whole point is 0).

A trial's seconds run from the signal until the Service routes to exactly one pod whose elector
answers 200 on GET /leader (the host reaches pod IPs): the time the service had no active,
answering pod. Per trial it also records when the API server showed the killed container dead
(the kubelet's report: the floor any takeover can build on), when the Lease named a new holder,
and which pod led afterwards.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from kubernetes import client, watch

from bench.common import new_namespace
from testenv.harness.cluster import REPO, kubeconfig_path, kubectl_binary, wait_until
from testenv.harness.electors import leader_status
from testenv.harness.operator_process import OperatorProcess

TESTENV = REPO / "testenv"
REAL_NODE = "real-node"
REAL_NODE_KEY = "haoperator.dev/real-node"
IMAGE = "localhost/haoperator:local"
ELECTOR = "ha-elector"
NAME = "vip"


READY_PATH = "/ready"
SERVE_WHILE_READY = (
    "import pathlib, runpy, sys; pathlib.Path('/tmp/ready').touch(); "
    "sys.argv = ['http.server', '8080', '--directory', '/tmp']; "
    "runpy.run_module('http.server', run_name='__main__')"
)
"""A web server over /tmp that starts ready: its readiness probe asks for /tmp/ready."""


def load_image() -> str:
    """Build (or reuse) the local image and load it into the real node's containerd."""
    archive = subprocess.run(
        [str(TESTENV / "image"), "build"], check=True, capture_output=True, text=True
    ).stdout.strip()
    subprocess.run([str(TESTENV / "node"), "load", archive], check=True, capture_output=True)
    return IMAGE


def haservice(lease: int, renew: int, retry: int) -> dict[str, Any]:
    """Two pods on the real node: a Python web server behind the Service, the elector beside."""
    restricted = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    app = {
        "name": "app",
        "image": IMAGE,
        "command": ["/venv/bin/python", "-c", SERVE_WHILE_READY],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {
            "httpGet": {"path": READY_PATH, "port": "http"},
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
        "securityContext": restricted,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
    }
    return {
        "apiVersion": "haoperator.dev/v1alpha1",
        "kind": "HAService",
        "metadata": {"name": NAME},
        "spec": {
            "category": "ActivePassive",
            "replicas": 2,
            "placement": {"spread": "None"},
            "template": {
                "spec": {
                    "nodeSelector": {REAL_NODE_KEY: "true"},
                    "tolerations": [
                        {"key": REAL_NODE_KEY, "operator": "Exists", "effect": "NoSchedule"}
                    ],
                    "terminationGracePeriodSeconds": 10,
                    "containers": [app],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
                }
            },
            "service": {"ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
            "activePassive": {
                "leaseDurationSeconds": lease,
                "renewDeadlineSeconds": renew,
                "retryPeriodSeconds": retry,
            },
        },
    }


class PodWatcher:
    """Follows the pods: their IPs and readiness, and the state of their electors."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api, self.namespace = api, namespace
        self.pods: dict[str, dict[str, Any]] = {}
        self.history: list[tuple[float, str, int, bool]] = []
        """Every update: (when, pod, elector restart count, elector terminated)."""
        self.unready: list[tuple[float, str]] = []
        """Every update showing a pod's application not ready: (when, pod)."""
        self.marks: list[tuple[float, str, str, bool]] = []
        """Every update: (when, pod, its role label, being deleted)."""
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._watch = watch.Watch()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        core = client.CoreV1Api(self.api)
        while not self._stop.is_set():
            try:
                for event in self._watch.stream(
                    core.list_namespaced_pod,
                    self.namespace,
                    label_selector=f"haoperator.dev/service={NAME}",
                    timeout_seconds=30,
                ):
                    self._take(event["type"], event["raw_object"])
            except Exception:
                if not self._stop.is_set():
                    self._stop.wait(0.2)

    def _take(self, kind: str, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        now = time.monotonic()
        with self.lock:
            if kind == "DELETED":
                self.pods.pop(name, None)
                return
            self.pods[name] = pod
            status = elector_status(pod) or {}
            terminated = bool((status.get("state") or {}).get("terminated"))
            self.history.append((now, name, int(status.get("restartCount") or 0), terminated))
            if not app_ready(pod):
                self.unready.append((now, name))
            role = (pod["metadata"].get("labels") or {}).get("haoperator.dev/role") or ""
            self.marks.append((now, name, role, bool(pod["metadata"].get("deletionTimestamp"))))

    def first(self, since: float, pod: str, role: str | None = None) -> float | None:
        """When the pod was first seen after `since` labelled `role` (None: being deleted)."""
        with self.lock:
            return next(
                (
                    at
                    for at, name, labelled, deleting in self.marks
                    if at >= since
                    and name == pod
                    and (deleting if role is None else labelled == role)
                ),
                None,
            )

    def elector_dead(self, name: str, restarts: int, since: float) -> float | None:
        """When the API server first showed the pod's elector dead after `since`: terminated,
        or restarted past `restarts` (a quick restart can skip the terminated state)."""
        with self.lock:
            return next(
                (
                    at
                    for at, pod, count, terminated in self.history
                    if pod == name and at >= since and (terminated or count > restarts)
                ),
                None,
            )

    def app_unready(self, name: str, since: float) -> float | None:
        """When the API server first showed the pod's application not ready after `since`."""
        with self.lock:
            return next((at for at, pod in self.unready if pod == name and at >= since), None)

    def ip(self, name: str) -> str | None:
        with self.lock:
            pod = self.pods.get(name)
        return ((pod or {}).get("status") or {}).get("podIP")

    def ready(self) -> list[str]:
        with self.lock:
            pods = list(self.pods.values())
        return sorted(
            p["metadata"]["name"]
            for p in pods
            if not p["metadata"].get("deletionTimestamp")
            and any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (p.get("status") or {}).get("conditions") or []
            )
        )

    def stop(self) -> None:
        self._stop.set()
        self._watch.stop()


def app_ready(pod: dict[str, Any]) -> bool:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return any(s.get("name") == "app" and s.get("ready") for s in statuses)


def set_ready(namespace: str, pod: str, ready: bool) -> None:
    """Create or remove the application's readiness file (`kubectl exec`)."""
    code = (
        "import pathlib; pathlib.Path('/tmp/ready').touch()"
        if ready
        else "import pathlib; pathlib.Path('/tmp/ready').unlink()"
    )
    subprocess.run(
        [kubectl_binary(), "--kubeconfig", str(kubeconfig_path()), "-n", namespace, "exec", pod,
         "-c", "app", "--",
         "/venv/bin/python", "-c", code],
        check=True, capture_output=True,
    )  # fmt: skip


def elector_status(pod: dict[str, Any]) -> dict[str, Any] | None:
    statuses = (pod.get("status") or {}).get("initContainerStatuses") or []
    return next((s for s in statuses if s.get("name") == ELECTOR), None)


def leader_answer(ip: str | None, port: int = 8099) -> int:
    """GET /leader of the pod's elector from the host: 200, 503, or 0 (not answering)."""
    return leader_status(ip, port, timeout=0.5)


def elector_pid(pod: dict[str, Any]) -> int:
    """The host pid of the pod's ha-elector process, through the node's containerd."""
    status = elector_status(pod)
    if status is None or not status.get("containerID"):
        raise RuntimeError(f"{pod['metadata']['name']}: no running {ELECTOR} container")
    container = status["containerID"].removeprefix("containerd://")
    tasks = subprocess.run(
        [str(TESTENV / "node"), "ctr", "tasks", "ls"], check=True, capture_output=True, text=True
    ).stdout
    for line in tasks.splitlines()[1:]:
        task, pid, *_ = line.split()
        if task == container:
            return int(pid)
    raise RuntimeError(f"no containerd task for {ELECTOR} of {pod['metadata']['name']}")


API_SERVER_PID = (
    REPO / ".testenv" / "kwok" / "clusters" / "haoperator" / "pids" / "kube-apiserver.pid"
)


def freeze_trial(
    ips: dict[str, str | None], leader: str, seconds: float
) -> tuple[float, bool, bool, list[dict[str, Any]]]:
    """Freeze the API server for `seconds` and 20 s after it resumed, poll /leader of each pod:
    (seconds no pod answered 200, whether two ever did at once, whether the leader changed,
    each poll where none did: when, and what every elector said)."""
    pid = int(API_SERVER_PID.read_text().split()[0])
    dark, both, last = 0.0, False, leader
    polls: list[dict[str, Any]] = []
    os.kill(pid, signal.SIGSTOP)
    began = time.monotonic()
    resumed = False
    try:
        previous = began
        while time.monotonic() < began + seconds + 20:
            if not resumed and time.monotonic() >= began + seconds:
                os.kill(pid, signal.SIGCONT)
                resumed = True
            leading = [name for name, ip in ips.items() if leader_answer(ip) == 200]
            now = time.monotonic()
            if not leading:
                dark += now - previous
                said = {name: leader_said(ip) for name, ip in ips.items()}
                polls.append({"at": round(now - began, 3), "resumed": resumed, "said": said})
            both = both or len(leading) > 1
            if len(leading) == 1:
                last = leading[0]
            previous = now
            time.sleep(0.05)
    finally:
        if not resumed:
            os.kill(pid, signal.SIGCONT)
    return dark, both, last != leader, polls


def leader_said(ip: str | None, port: int = 8099) -> str:
    """/leader's status and body, for the record of a poll where no pod led."""
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}/leader", timeout=0.5) as answer:
            return f"{answer.status} {answer.read(300).decode(errors='replace')}"
    except urllib.error.HTTPError as exc:
        return f"{exc.code} {exc.read(300).decode(errors='replace')}"
    except OSError as exc:
        return f"no answer: {exc}"


def timeline(
    pods: PodWatcher, routes: Any, leases: Any, began: float, old: str, new: str
) -> dict[str, float | None]:
    """Where a graceful handover's time went, each step seen by a watch, seconds after the
    delete was sent: the old pod seen deleted, the Lease released and taken, the old pod's
    `active` gone, the Service routing to nobody, the new pod labelled, the Service routing it."""

    def since(at: float | None) -> float | None:
        return None if at is None else round(at - began, 3)

    released = next((at for at, holder in leases.changes if at >= began and holder is None), None)
    return {
        "deleted_seen": since(pods.first(began, old)),
        "lease_released": since(released),
        "lease_taken": since(leases.held_by(new, began)),
        "old_unlabelled": since(pods.first(began, old, "standby")),
        "routed_none": since(routes.first(began, lambda routed: old not in routed)),
        "new_labelled": since(pods.first(began, new, "active")),
        "routed_new": since(routes.first(began, lambda routed: routed == {new})),
    }


def serving_other(serving: Callable[[], str | None], not_: str | None) -> str | None:
    pod = serving()
    return pod if pod and pod != not_ else None


def gone(pods: PodWatcher, name: str) -> bool:
    return name not in pods.ready()


def run_real_node_series(
    api_client: client.ApiClient,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    trials: int,
    tmp: Path,
    timing: tuple[int, int, int] = (5, 3, 1),
    route_watcher: Any = None,
    lease_watcher: Any = None,
    freeze_trials: int = 0,
    freeze_seconds: float = 60.0,
) -> dict[str, Any]:
    """Graceful and crash series on real pods; `route_watcher`/`lease_watcher` are the
    classes failover.py measures the local series with."""
    load_image()
    namespace = new_namespace(core, "bench-failover-real")
    core.patch_namespace(
        namespace,
        {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}},
    )
    operator = OperatorProcess(
        [namespace], tmp / "operator-real.log", extra_args=["--elector-image", IMAGE]
    ).start()
    pods = PodWatcher(api_client, namespace)
    routes = route_watcher(api_client, namespace, NAME)
    leases = lease_watcher(api_client, namespace, NAME)
    results: dict[str, list[float]] = {"graceful": [], "crash": [], "unhealthy": []}
    if freeze_trials:
        results["freeze"] = []
    log: list[dict[str, Any]] = []
    try:
        custom.create_namespaced_custom_object(
            "haoperator.dev", "v1alpha1", namespace, "haservices", haservice(*timing)
        )

        def serving() -> str | None:
            """The pod the Service routes to alone, when its elector answers 200."""
            routed = routes.current()
            if len(routed) != 1:
                return None
            (pod,) = routed
            return pod if leader_answer(pods.ip(pod)) == 200 else None

        for mode in ("graceful", "crash", "unhealthy"):
            for _ in range(trials):
                wait_until(
                    lambda: len(pods.ready()) == 2, timeout=180, what="two ready pods", interval=0.2
                )
                leader = wait_until(
                    serving, timeout=120, what="one routed, answering leader", interval=0.05
                )
                with pods.lock:
                    pod = pods.pods[leader]
                restarts = int((elector_status(pod) or {}).get("restartCount") or 0)
                time.sleep(0.5 + random.uniform(0, timing[2]))  # a random point of the cycle
                began = time.monotonic()
                if mode == "graceful":
                    core.delete_namespaced_pod(leader, namespace)
                elif mode == "crash":
                    subprocess.run(["kill", "-KILL", str(elector_pid(pod))], check=True)
                else:
                    set_ready(namespace, leader, False)
                new = wait_until(
                    partial(serving_other, serving, None if mode == "crash" else leader),
                    timeout=120,
                    what="a serving leader again",
                    interval=0.005,
                )
                ended = time.monotonic()
                if mode == "unhealthy":  # from the kubelet's report, not from our exec
                    began = pods.app_unready(leader, began) or began
                seconds = ended - began
                results[mode].append(seconds)
                dead = pods.elector_dead(leader, restarts, began)
                taken = leases.held_by(new, began) if new != leader else None
                split = None
                if mode == "graceful":
                    split = timeline(pods, routes, leases, began, leader, new)
                log.append(
                    {
                        "mode": mode,
                        "seconds": round(seconds, 3),
                        "kubelet_reported_dead": None
                        if mode == "graceful" or dead is None
                        else round(dead - began, 3),
                        "lease_taken": None if taken is None else round(taken - began, 3),
                        "leader_after": "same pod" if new == leader else "the standby",
                        **({"split": split} if split else {}),
                    }
                )
                if mode == "unhealthy":
                    set_ready(namespace, leader, True)  # a ready standby for the next
                if mode == "crash":
                    core.delete_namespaced_pod(leader, namespace)  # a fresh pod for the next
                    wait_until(
                        partial(gone, pods, leader),
                        timeout=60,
                        what="the crashed pod going",
                        interval=0.2,
                    )
        for _ in range(freeze_trials):
            wait_until(
                lambda: len(pods.ready()) == 2, timeout=300, what="two ready pods", interval=0.2
            )
            leader = wait_until(
                serving, timeout=300, what="one routed, answering leader", interval=0.05
            )
            ips = {name: pods.ip(name) for name in pods.ready()}
            dark, both, changed, polls = freeze_trial(ips, leader, freeze_seconds)
            results["freeze"].append(dark)
            log.append(
                {
                    "mode": "freeze",
                    "freeze_seconds": freeze_seconds,
                    "seconds_without_a_leader": round(dark, 3),
                    "two_leaders_seen": both,
                    "leader_after": "the standby" if changed else "same pod",
                    "dark_polls": polls,
                }
            )
        assert routes.most_at_once() <= 1, "real node: the Service routed to two pods"
        return {**results, "trials": log}
    finally:
        routes.stop()
        leases.stop()
        pods.stop()
        operator.stop()
        core.delete_namespace(namespace)
