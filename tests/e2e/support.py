"""What the shipping tests share: kubectl, the built manifests, ServiceAccount tokens as
kubeconfigs, ha-elector sidecars played by local processes where pods run no containers, and
what puts the e2e suite's pods on one chosen node (HAOPERATOR_E2E_NODE, see tests/e2e/conftest)."""

from __future__ import annotations

import copy
import os
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from kubernetes import client

from tests.integration.operator_process import free_port
from tests.realnode.support import REAL_NODE_KEY
from tests.support import REPO, kubeconfig_path

Kubectl = Callable[..., subprocess.CompletedProcess[str]]
MANIFESTS = REPO / "manifests"
SYSTEM_NAMESPACE = "haoperator-system"
OPERATOR = "haoperator"  # the Deployment, ServiceAccount, ClusterRole and ClusterRoleBinding
ELECTOR_CONTAINER = "ha-elector"
FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
ACCESS_KINDS = {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"}
HOSTNAME_LABEL = "kubernetes.io/hostname"
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
# The local cluster's default StorageClass (testenv/provisioner.py): volumes that model network
# storage nobody serves, which no kubelet can mount.
UNSERVED_PROVISIONER = "testenv.haoperator.dev/network-volume"
HOST_VOLUMES = Path("/tmp/haoperator-e2e-volumes")


def kubectl_binary() -> str:
    """$HAOPERATOR_KUBECTL, else kubectl on PATH, else the local cluster's own (.testenv/env)."""
    if os.environ.get("HAOPERATOR_KUBECTL"):
        return os.environ["HAOPERATOR_KUBECTL"]
    env_file = REPO / ".testenv" / "env"
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            if line.startswith("export PATH="):
                candidate = Path(line.split("=", 1)[1].strip('"').split(":", 1)[0]) / "kubectl"
                if candidate.exists():
                    return str(candidate)
    found = shutil.which("kubectl")
    if not found:
        raise AssertionError("no kubectl: put one on PATH or set HAOPERATOR_KUBECTL")
    return found


def make_kubectl(kubeconfig: Path | None = None) -> Kubectl:
    binary = kubectl_binary()

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        config = str(kubeconfig or kubeconfig_path())
        return subprocess.run(
            [binary, "--kubeconfig", config, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run


def built_manifests(kubectl: Kubectl) -> list[dict[str, Any]]:
    """`kubectl kustomize manifests/`: what `kubectl apply -k manifests/` installs."""
    result = kubectl("kustomize", str(MANIFESTS))
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def apply(kubectl: Kubectl, objects: list[dict[str, Any]], *extra: str) -> str:
    result = kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=haoperator-tests",
        *extra,
        "-f",
        "-",
        stdin=yaml.safe_dump_all(objects),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def install_access(kubectl: Kubectl) -> list[dict[str, Any]]:
    """The manifests' namespace, ServiceAccount, ClusterRole and ClusterRoleBinding, applied as
    `kubectl apply -k manifests/` applies them (not the Deployment: where pods run no
    containers it would only look installed). Returns every built object."""
    built = built_manifests(kubectl)
    access = [o for o in built if o["kind"] in ACCESS_KINDS]
    assert {o["kind"] for o in access} == ACCESS_KINDS
    apply(kubectl, access)
    return built


def token_kubeconfig(kubectl: Kubectl, namespace: str, service_account: str, path: Path) -> Path:
    """A kubeconfig for the same API server as ours, authenticated only by a token of
    `service_account` (`kubectl create token`): whatever it does is what that account may do."""
    result = kubectl("create", "token", service_account, "-n", namespace, "--duration=2h")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    admin = yaml.safe_load(kubeconfig_path().read_text())
    context_name = admin["current-context"]
    context = next(c["context"] for c in admin["contexts"] if c["name"] == context_name)
    cluster = next(c["cluster"] for c in admin["clusters"] if c["name"] == context["cluster"])
    user = f"system:serviceaccount:{namespace}:{service_account}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "cluster", "user": user}}],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def forbidden_lines(*logs: Path) -> list[str]:
    """Lines of these logs where the API server refused a request for lack of permission."""
    found = []
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if "forbidden" in line.lower():  # every 403 of the API server says "forbidden"
                found.append(f"{log.name}: {line}")
    return found


def fake_kubelets(core: client.CoreV1Api, node: str | None = None) -> bool:
    """Whether the nodes this suite's pods land on are kwok's fake kubelets (pods are reported
    Running, run nothing): `node` when the suite is pinned to one, else every node but the local
    cluster's real node (testenv/node), whose taint keeps off the pods that do not tolerate it."""
    if node is not None:
        nodes = [core.read_node(node)]
    else:
        nodes = [n for n in core.list_node().items if not is_real_test_node(n)]
    return bool(nodes) and all(
        (n.metadata.annotations or {}).get(FAKE_NODE_ANNOTATION) == "fake" for n in nodes
    )


def is_real_test_node(node: Any) -> bool:
    """The local cluster's real node, by its taint (testenv/node)."""
    return any(t.key == REAL_NODE_KEY for t in node.spec.taints or [])


def routed(discovery: client.DiscoveryV1Api, namespace: str, service: str) -> set[str]:
    """The pods the Service sends traffic to: its EndpointSlices' ready endpoints."""
    slices = discovery.list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={service}"
    ).items
    return {
        e.target_ref.name
        for s in slices
        for e in s.endpoints or []
        if e.target_ref is not None and e.conditions is not None and e.conditions.ready
    }


def image_overrides(text: str) -> dict[str, str]:
    """`OLD=NEW,OLD=NEW` (HAOPERATOR_E2E_IMAGES): images the suite's pods run instead, as
    kustomize's `images:` would rewrite them."""
    pairs = [item.strip() for item in text.split(",") if item.strip()]
    bad = [item for item in pairs if item.count("=") != 1 or "" in item.split("=")]
    if bad:
        raise AssertionError(f"HAOPERATOR_E2E_IMAGES: expected OLD=NEW[,OLD=NEW], got {bad}")
    return dict(item.split("=") for item in pairs)


class Placement:
    """What every HAService the suite creates gets: with a node (HAOPERATOR_E2E_NODE), a
    nodeSelector for it and tolerations of its NoSchedule/NoExecute taints; and the image
    overrides. Without either, the body is unchanged."""

    def __init__(self, node: Any | None, images: Mapping[str, str]) -> None:
        self.node, self.images = node, dict(images)

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(body)
        pod = body["spec"]["template"]["spec"]
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            container["image"] = self.images.get(container["image"], container["image"])
        if self.node is not None:
            hostname = (self.node.metadata.labels or {}).get(
                HOSTNAME_LABEL, self.node.metadata.name
            )
            pod["nodeSelector"] = {**pod.get("nodeSelector", {}), HOSTNAME_LABEL: hostname}
            pod["tolerations"] = [
                *pod.get("tolerations", []),
                *(
                    {"key": t.key, "operator": "Exists", "effect": t.effect}
                    for t in self.node.spec.taints or []
                    if t.effect in ("NoSchedule", "NoExecute")
                ),
            ]
        return body


class HostVolumes:
    """Volumes for the claims a test will make, where the cluster's default StorageClass cannot
    give any that mount: the local cluster's (testenv/provisioner.py) makes network volumes
    nobody serves, which kwok's pods never mount but a real kubelet does. There, each claim is
    bound in advance to a hostPath volume of its own (the real node is this machine), deleted
    with its directory afterwards; anywhere else the cluster's provisioner does the work."""

    def __init__(self, core: client.CoreV1Api, namespace: str, needed: bool) -> None:
        self.core, self.namespace = core, namespace
        self.made: list[str] = []
        self.storage_class = default_storage_class(core) if needed else None
        self.needed = needed and self.storage_class is not None
        self.directory = HOST_VOLUMES / namespace

    def __call__(self, *claims: str, size: str = "1Gi") -> None:
        if not self.needed:
            return
        for claim in claims:
            name = f"e2e-{uuid.uuid4().hex[:10]}"
            path = self.directory / claim
            self.core.create_persistent_volume(
                {
                    "metadata": {"name": name, "labels": {"haoperator.dev/test": "true"}},
                    "spec": {
                        "capacity": {"storage": size},
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": self.storage_class,
                        "persistentVolumeReclaimPolicy": "Retain",
                        "claimRef": {"namespace": self.namespace, "name": claim},
                        "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
                    },
                }
            )
            self.made.append(name)

    def delete(self) -> None:
        for name in self.made:
            try:
                self.core.delete_persistent_volume(name)
            except client.ApiException as exc:
                if exc.status != 404:
                    raise
        shutil.rmtree(self.directory, ignore_errors=True)


def default_storage_class(core: client.CoreV1Api) -> str | None:
    """The default StorageClass's name if it is the local cluster's unserved one, else None."""
    classes = client.StorageV1Api(core.api_client).list_storage_class().items
    for found in classes:
        annotations = found.metadata.annotations or {}
        if annotations.get(DEFAULT_CLASS_ANNOTATION) == "true":
            return str(found.metadata.name) if found.provisioner == UNSERVED_PROVISIONER else None
    return None


class ElectorStandIns:
    """The kubelet's part for the ha-elector sidecars of one ActivePassive HAService, on a cluster
    whose pods run no containers: for every running pod it starts `haoperator elect` with the
    arguments of the pod's own ha-elector container (the port moved to a free local one) and
    with `kubeconfig` (a token of the elector ServiceAccount); when the pod is being deleted it
    sends SIGTERM, as the kubelet does. `crash(pod)` kills one with SIGKILL and does not restart
    it, as a hung or dead sidecar."""

    def __init__(
        self,
        core: client.CoreV1Api,
        namespace: str,
        name: str,
        kubeconfig: Path,
        log_dir: Path,
    ) -> None:
        self.core, self.namespace, self.name = core, namespace, name
        self.kubeconfig, self.log_dir = kubeconfig, log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.crashed: set[str] = set()
        self.logs: list[Path] = []
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"electors-{name}", daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> ElectorStandIns:
        self.thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.done.set()
        self.thread.join(timeout=10)
        with self.lock:
            for process in self.processes.values():
                self._terminate(process)

    def crash(self, pod: str) -> None:
        with self.lock:
            self.crashed.add(pod)
            process = self.processes.get(pod)
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=10)

    def running(self) -> set[str]:
        with self.lock:
            return {pod for pod, process in self.processes.items() if process.poll() is None}

    def log_tail(self, lines: int = 20) -> str:
        parts = []
        for log in self.logs:
            text = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(parts)

    def _loop(self) -> None:
        try:
            while not self.done.is_set():
                self._sync()
                self.done.wait(0.25)
        except BaseException as exc:  # reported by the test through `error`
            self.error = exc

    def _sync(self) -> None:
        pods = self.core.list_namespaced_pod(
            self.namespace, label_selector=f"haoperator.dev/service={self.name}"
        ).items
        live = {p.metadata.name: p for p in pods if p.metadata.deletion_timestamp is None}
        with self.lock:
            for pod_name, process in list(self.processes.items()):
                if pod_name not in live and process.poll() is None:
                    self._terminate(process)  # the pod is being deleted: SIGTERM, as a kubelet
            for pod_name, pod in live.items():
                if pod_name in self.processes or pod_name in self.crashed:
                    continue
                if (pod.status.phase or "") != "Running":
                    continue
                self.processes[pod_name] = self._start(pod)

    def _start(self, pod: Any) -> subprocess.Popen[bytes]:
        sidecar = next(c for c in pod.spec.init_containers or [] if c.name == ELECTOR_CONTAINER)
        args = [
            str(Path(sys.executable).parent / "haoperator"),
            *sidecar.args,
            "--pod",
            pod.metadata.name,
            "--namespace",
            self.namespace,
            "--kubeconfig",
            str(self.kubeconfig),
            "--port",
            str(free_port()),
            "--bind",
            "127.0.0.1",
            "--log-format",
            "json",
        ]
        log = self.log_dir / f"elector-{pod.metadata.name}.log"
        self.logs.append(log)
        env = {k: v for k, v in os.environ.items() if k not in ("POD_NAME", "POD_NAMESPACE")}
        with log.open("ab") as out:
            return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)

    @staticmethod
    def _terminate(process: subprocess.Popen[bytes]) -> None:
        if process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
