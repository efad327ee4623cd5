"""What the shipping tests share: the built manifests, the operator's access as they install it,
how to tell fake nodes from real ones, and what puts the e2e suite's pods on one chosen node
(HAOPERATOR_E2E_NODE, see tests/e2e/conftest). (kubectl, tokens and the elector stand-ins are
testenv/harness's.)"""

from __future__ import annotations

import copy
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from testenv.harness.cluster import REAL_NODE_KEY, REPO, Kubectl

MANIFESTS = REPO / "manifests"
SYSTEM_NAMESPACE = "haoperator-system"
OPERATOR = "haoperator"  # the Deployment, ServiceAccount, ClusterRole and ClusterRoleBinding
FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
ACCESS_KINDS = {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"}
HOSTNAME_LABEL = "kubernetes.io/hostname"
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
# The local cluster's default StorageClass (testenv/provisioner.py): volumes that model network
# storage nobody serves, which no kubelet can mount.
UNSERVED_PROVISIONER = "testenv.haoperator.dev/network-volume"
HOST_VOLUMES = Path("/tmp/haoperator-e2e-volumes")


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
