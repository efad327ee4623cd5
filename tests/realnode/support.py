"""The local cluster's real node (testenv/node) as the tests see it: where its state lives, its
containerd, and pods that ask to run there."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from haoperator.controller.operator_lease import LEADER_LABEL
from testenv.harness.cluster import REAL_NODE, REAL_NODE_KEY, REPO, make_kubectl, wait_until
from testenv.harness.electors import RouteWatcher, leader_status

TESTENV = REPO / "testenv"
__all__ = ["REAL_NODE", "REAL_NODE_KEY"]  # the tests of this tier take them from here
TEST_LABEL = "haoperator.dev/test"  # on every test namespace
PAUSE_VERSION = re.search(
    r"^PAUSE_VERSION=(\S+)$", (TESTENV / "versions.env").read_text(), re.MULTILINE
)
# Built by testenv/build from the Kubernetes source and imported by testenv/node: the one image
# every real node has (it runs forever as a non-root user and needs nothing).
PAUSE_IMAGE = f"registry.k8s.io/pause:{PAUSE_VERSION.group(1) if PAUSE_VERSION else '?'}"


def run_testenv(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a testenv script; fail with its output if it fails."""
    result = subprocess.run(
        [str(TESTENV / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"testenv/{' '.join(args)} failed:\n{result.stderr}"
    print(result.stderr, end="", file=sys.stderr)  # what it did, with timings (pytest -rP)
    return result


def node_paths() -> dict[str, str]:
    """`testenv/node paths`: where the real node's state lives."""
    lines = run_testenv("node", "paths").stdout.splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def restricted_namespace(core: client.CoreV1Api, prefix: str) -> str:
    """A new namespace that enforces the `restricted` Pod Security Standard, with its default
    ServiceAccount (pods need it)."""
    name = "".join(c for c in f"{prefix[:40]}-{uuid.uuid4().hex[:5]}" if c.isalnum() or c == "-")
    enforce = {"enforce": "restricted", "enforce-version": "latest"}
    labels = {f"pod-security.kubernetes.io/{k}": v for k, v in enforce.items()}
    core.create_namespace({"metadata": {"name": name, "labels": {**labels, TEST_LABEL: "true"}}})
    wait_until(
        lambda: (
            core.list_namespaced_service_account(name, field_selector="metadata.name=default").items
        ),
        timeout=30,
        what=f"the default ServiceAccount of {name}",
    )
    return name


def running_pod(core: client.CoreV1Api, namespace: str, name: str) -> Any:
    """The pod once it is Running, else None (for wait_until)."""
    pod = core.read_namespaced_pod(name, namespace)
    return pod if pod.status.phase == "Running" else None


def container_pid(pod: Any, container: str) -> int:
    """The host pid of a running container of `pod`, found through the node's containerd."""
    statuses = [*(pod.status.init_container_statuses or []), *(pod.status.container_statuses or [])]
    status = next(s for s in statuses if s.name == container)
    container_id = status.container_id.removeprefix("containerd://")
    for line in run_testenv("node", "ctr", "tasks", "ls").stdout.splitlines()[1:]:
        task, pid, *_ = line.split()
        if task == container_id:
            return int(pid)
    raise AssertionError(f"no task for container {container} of {pod.metadata.name}")


def restricted_pod(name: str, image: str = PAUSE_IMAGE, **container: Any) -> dict[str, Any]:
    """A pod for the real node that the `restricted` Pod Security Standard admits: non-root,
    no capabilities, no privilege escalation, RuntimeDefault seccomp, read-only root."""
    return {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "nodeSelector": {REAL_NODE_KEY: "true"},
            "tolerations": [{"key": REAL_NODE_KEY, "operator": "Exists", "effect": "NoSchedule"}],
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "runAsGroup": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    **container,
                }
            ],
        },
    }


# -- finding a container's process through the node's containerd ---------------------------------


def runtime_process(namespace: str, pod: str, container: str) -> tuple[str, int]:
    """(container id, host pid) of the running task of `container` in `pod`, found as an admin on
    the node would: containerd's containers carry the kubelet's labels (pod, namespace,
    container name); exactly one of them has a running task."""
    labels = {
        "io.kubernetes.pod.namespace": namespace,
        "io.kubernetes.pod.name": pod,
        "io.kubernetes.container.name": container,
    }
    selector = ",".join(f'labels."{key}"=={value}' for key, value in labels.items())
    ids = set(run_testenv("node", "ctr", "containers", "ls", "-q", selector).stdout.split())
    running = []
    for line in run_testenv("node", "ctr", "tasks", "ls").stdout.splitlines()[1:]:
        task, pid, status = line.split()[:3]
        if task in ids and status == "RUNNING":
            running.append((task, int(pid)))
    assert len(running) == 1, f"{len(running)} running tasks for {namespace}/{pod}/{container}"
    return running[0]


# -- the operator, installed in the cluster as users install it ----------------------------------

OVERLAYS = REPO / "tests" / "realnode" / "overlay"
SYSTEM_NAMESPACE = "haoperator-system"
OPERATOR = "haoperator"  # its Deployment, ServiceAccount, ClusterRole and ClusterRoleBinding
OPERATOR_USER = f"system:serviceaccount:{SYSTEM_NAMESPACE}:{OPERATOR}"
OPERATOR_SELECTOR = "app.kubernetes.io/name=haoperator,app.kubernetes.io/component=operator"
LOCAL_IMAGE = "localhost/haoperator:local"  # testenv/image build
NGINX_IMAGE = "localhost/quickstart-nginx:local"  # testenv/image nginx
QUICKSTART_IMAGE = "docker.io/nginxinc/nginx-unprivileged:1.28-alpine"  # what the sample names
BUILD_TIMEOUT = 1500  # a cold build makes both bases and downloads the locked wheels


def kubectl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """kubectl on the cluster in $KUBECONFIG (the local cluster's own kubectl)."""
    return make_kubectl()(*args, stdin=stdin)


def kubectl_ok(*args: str, stdin: str | None = None) -> str:
    result = kubectl(*args, stdin=stdin)
    assert result.returncode == 0, f"kubectl {' '.join(args)}:\n{result.stderr}"
    return result.stdout


def built(overlay: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize`: what `kubectl apply -k` of that directory applies."""
    return [doc for doc in yaml.safe_load_all(kubectl_ok("kustomize", str(overlay))) if doc]


def local_images() -> None:
    """The operator's image and the quickstart's web server, in the real node's containerd as
    they are now (imported again if the code changed since the node started); both are no-ops
    when nothing changed."""
    run_testenv("image", "import", timeout=BUILD_TIMEOUT)
    archive = run_testenv("image", "nginx", timeout=BUILD_TIMEOUT).stdout.strip()
    run_testenv("node", "load", archive)


def other_operators() -> list[str]:
    """`haoperator run` processes on this machine outside any pod (a local operator of the
    integration tier, `make dev`, a benchmark): an operator installed for all namespaces would
    reconcile their HAServices too, and two operators on one HAService fight."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
            cgroup = (proc / "cgroup").read_text()
        except OSError:
            continue
        names = [Path(arg.decode(errors="replace")).name for arg in args]
        running = any(a == "haoperator" and b == "run" for a, b in itertools.pairwise(names))
        if running and "kubepods" not in cgroup:
            found.append(f"pid {proc.name}: {b' '.join(args).decode(errors='replace')[:160]}")
    return found


@dataclass
class Installation:
    """`kubectl apply -k tests/realnode/overlay/operator`, and its undoing."""

    overlay: Path = OVERLAYS / "operator"
    active: bool = False

    def install(self, apps: client.AppsV1Api) -> None:
        wait_until(
            lambda: not _terminating(apps),
            timeout=180,
            what=f"namespace {SYSTEM_NAMESPACE}, being deleted, to be gone",
        )
        self.active = True
        kubectl_ok("apply", "-k", str(self.overlay))
        wait_until(lambda: available(apps), timeout=180, what="the operator's Deployment Available")

    def uninstall(self) -> None:
        """Everything the overlay made but the CRD: deleting the CRD deletes every HAService in
        the cluster, other sessions' and tiers' included (the integration tier applies it
        itself). The Deployment goes first, its pod waited for, so that no operator is left
        running without its permissions."""
        if not self.active:
            return
        kubectl_ok(
            "-n", SYSTEM_NAMESPACE, "delete", "deployment", OPERATOR,
            "--ignore-not-found", "--cascade=foreground", "--wait=true", "--timeout=120s",
        )  # fmt: skip
        rest = [o for o in built(self.overlay) if o["kind"] != "CustomResourceDefinition"]
        kubectl_ok(
            "delete", "--ignore-not-found", "--wait=true", "--timeout=180s", "-f", "-",
            stdin=yaml.safe_dump_all(rest),
        )  # fmt: skip
        self.active = False


INSTALLATIONS: list[Installation] = []  # what conftest uninstalls before the cluster restarts


def _terminating(apps: client.AppsV1Api) -> bool:
    core = client.CoreV1Api(apps.api_client)
    try:
        return bool(core.read_namespace(SYSTEM_NAMESPACE).status.phase == "Terminating")
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise


def operator_pod(core: client.CoreV1Api) -> Any:
    """The installed operator's acting pod, once it has an address; else None. The Deployment
    runs leader-elected replicas: the acting one is the pod labelled leader (or the only one)."""
    pods = core.list_namespaced_pod(SYSTEM_NAMESPACE, label_selector=OPERATOR_SELECTOR).items
    live = [p for p in pods if p.metadata.deletion_timestamp is None and p.status.pod_ip]
    if len(live) == 1:
        return live[0]
    leaders = [p for p in live if (p.metadata.labels or {}).get(LEADER_LABEL) == "true"]
    return leaders[0] if len(leaders) == 1 else None


def available(apps: client.AppsV1Api) -> bool:
    status = apps.read_namespaced_deployment(OPERATOR, SYSTEM_NAMESPACE).status
    return any(c.type == "Available" and c.status == "True" for c in status.conditions or [])


# -- workloads on the real node -------------------------------------------------------------------

# What a pod template needs to run on the real node only (the kwok nodes run no containers).
ON_REAL_NODE: dict[str, Any] = {
    "nodeSelector": {REAL_NODE_KEY: "true"},
    "tolerations": [{"key": REAL_NODE_KEY, "operator": "Exists", "effect": "NoSchedule"}],
}
RESTRICTED_POD = {
    "runAsNonRoot": True,
    "runAsUser": 65532,  # the image's user
    "runAsGroup": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
READY_FILE = "/tmp/ready"


def web_container(name: str = "app", **extra: Any) -> dict[str, Any]:
    """A real web server from the operator's image (it has Python): `python3 -m http.server`
    on port 8080 serving /tmp (an emptyDir, the root is read-only). Its readiness probe asks for
    /ready, which exists only once someone writes READY_FILE (`make_ready`): the kubelet's own
    probe, not a test, decides whether the container is ready."""
    return {
        "name": name,
        "image": LOCAL_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "-m", "http.server", "8080", "--directory", "/tmp"],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": "http"},
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
        "resources": {"requests": {"cpu": "5m", "memory": "24Mi"}, "limits": {"memory": "64Mi"}},
        "securityContext": RESTRICTED_CONTAINER,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        **extra,
    }


def real_node_template(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    """A restricted pod template for the real node with these containers and a /tmp emptyDir."""
    volumes = [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}, *spec.pop("volumes", [])]
    return {
        "metadata": {"labels": {"app.kubernetes.io/part-of": "realnode-tests"}},
        "spec": {
            **ON_REAL_NODE,
            "securityContext": RESTRICTED_POD,
            "terminationGracePeriodSeconds": 5,
            "containers": list(containers),
            "volumes": volumes,
            **spec,
        },
    }


def in_pod(namespace: str, pod: str, container: str, code: str, *args: str) -> str:
    """Run Python code inside a running container (`kubectl exec`; the image has no shell)."""
    return kubectl_ok(
        "-n", namespace, "exec", pod, "-c", container, "--", "python3", "-c", code, *args
    )  # fmt: skip


def make_ready(namespace: str, pod: str, ready: bool = True, container: str = "app") -> None:
    """Write or remove READY_FILE in a web_container: its readiness probe follows."""
    if ready:
        in_pod(namespace, pod, container, f"open({READY_FILE!r}, 'w').close()")
    else:
        in_pod(namespace, pod, container, f"import os; os.remove({READY_FILE!r})")


def service_pods(core: client.CoreV1Api, namespace: str, name: str) -> list[Any]:
    """The HAService's live pods (not being deleted), by name."""
    found = core.list_namespaced_pod(namespace, label_selector=f"haoperator.dev/service={name}")
    live = [p for p in found.items if p.metadata.deletion_timestamp is None]
    return sorted(live, key=lambda p: p.metadata.name)


def running_containers(pod: Any) -> bool:
    """Every container of the pod, its sidecars included, has started and runs."""
    statuses = [*(pod.status.init_container_statuses or []), *(pod.status.container_statuses or [])]
    return bool(statuses) and all(s.state.running is not None and s.started for s in statuses)


class SliceWatcher(RouteWatcher):
    """RouteWatcher (every set of ready pods the Service's EndpointSlices routed to), also
    remembering every set of pods they listed at all: ready, not ready or terminating."""

    def __init__(self, api: client.ApiClient, namespace: str, service: str) -> None:
        self.listed_slices: dict[str, set[str]] = {}
        self.listed: list[frozenset[str]] = []
        super().__init__(api, namespace, service)

    def _take(self, kind: str, obj: dict[str, Any]) -> None:
        pods = {e["targetRef"]["name"] for e in obj.get("endpoints") or [] if e.get("targetRef")}
        with self.lock:
            if kind == "DELETED":
                self.listed_slices.pop(obj["metadata"]["name"], None)
            else:
                self.listed_slices[obj["metadata"]["name"]] = pods
            now = frozenset().union(*self.listed_slices.values())
            if not self.listed or self.listed[-1] != now:
                self.listed.append(now)
        super()._take(kind, obj)

    def most_listed_at_once(self) -> int:
        with self.lock:
            return max((len(pods) for pods in self.listed), default=0)


def kubelet_probes(
    core: client.CoreV1Api, namespace: str, pod: str, container: str, probe_type: str
) -> dict[str, float]:
    """The real node's kubelet's own count of a container's probe results (prober_probe_total on
    its /metrics/probes): {"successful": n, "failed": n, ...}. The node's name resolves to this
    machine, where the kubelet serves (testenv/node)."""
    port = core.read_node(REAL_NODE).status.daemon_endpoints.kubelet_endpoint.port
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the kubelet's self-signed serving certificate
    url = f"https://{REAL_NODE}:{port}/metrics/probes"
    with urllib.request.urlopen(url, timeout=10, context=context) as answer:
        text = answer.read().decode()
    counts: dict[str, float] = {}
    prefix = "prober_probe_total{"
    for line in text.splitlines():
        if not line.startswith(prefix):
            continue
        labels_text, value = line[len(prefix) :].rsplit("} ", 1)
        labels = dict(item.replace('"', "").split("=", 1) for item in labels_text.split(","))
        if (labels["namespace"], labels["pod"], labels["container"], labels["probe_type"]) == (
            namespace,
            pod,
            container,
            probe_type,
        ):
            counts[labels["result"]] = counts.get(labels["result"], 0) + float(value)
    return counts


def assert_restricted(core: client.CoreV1Api, namespace: str) -> None:
    """The namespace enforces `restricted` for real: the API server refuses a pod that asks for
    nothing (no runAsNonRoot, capabilities kept, no seccomp profile); and none of the pods the
    controllers made for the operator's workloads was refused (no FailedCreate)."""
    labels = core.read_namespace(namespace).metadata.labels or {}
    assert labels.get("pod-security.kubernetes.io/enforce") == "restricted"
    loose = {
        "metadata": {"name": "loose"},
        "spec": {**ON_REAL_NODE, "containers": [{"name": "main", "image": PAUSE_IMAGE}]},
    }
    try:
        core.create_namespaced_pod(namespace, loose, dry_run="All")
        refusal = None
    except client.ApiException as exc:
        refusal = exc
    assert refusal is not None, f"{namespace} admitted a pod the restricted level forbids"
    assert refusal.status == 403, refusal
    assert "violates PodSecurity" in str(refusal.body), refusal.body
    refused = core.list_namespaced_event(namespace, field_selector="reason=FailedCreate").items
    assert [e.message for e in refused] == []


# -- the API server, as a fault -------------------------------------------------------------------

API_SERVER_PID = (
    REPO / ".testenv" / "kwok" / "clusters" / "haoperator" / "pids" / "kube-apiserver.pid"
)


@contextlib.contextmanager
def frozen_api_server() -> Iterator[None]:
    """The local cluster's kube-apiserver stopped (SIGSTOP) for the block, then resumed: its
    connections stay open and answer nothing, as a hung control plane's do."""
    pid = int(API_SERVER_PID.read_text().split()[0])
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


@contextlib.contextmanager
def cut_from_api_server(namespace: str, pod: str, container: str) -> Iterator[None]:
    """`pod` alone cannot reach the API server for the block: a firewall rule in its network
    namespace (entered through `container`'s process on the node) drops what it sends to the
    `kubernetes` Service; everything else, its peers included, still reaches it."""
    _, pid = runtime_process(namespace, pod, container)
    rule = ["-d", KUBERNETES_SERVICE_IP, "-p", "tcp", "--dport", "443", "-j", "DROP"]
    netns = ["nsenter", "-t", str(pid), "-n", "iptables"]
    subprocess.run([*netns, "-I", "OUTPUT", *rule], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run([*netns, "-D", "OUTPUT", *rule], check=False, capture_output=True)


KUBERNETES_SERVICE_IP = "10.96.0.1"  # the local cluster's `kubernetes` Service (first of its range)


def leader_answer(ip: str, port: int = 8099) -> int:
    """GET /leader of a pod's elector, from the node: 200, 503, or 0 (no answer in a second)."""
    return leader_status(ip, port)


def pod_ready(core: client.CoreV1Api, namespace: str, name: str) -> bool:
    """Whether the kubelet reports the pod Ready (all its containers' readiness probes pass)."""
    conditions = core.read_namespaced_pod(name, namespace).status.conditions or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)
