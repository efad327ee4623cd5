"""What the shipping tests share: the built manifests, the operator's access as they install it,
and how to tell fake nodes from real ones. (kubectl, tokens and the elector stand-ins are
testenv/harness's.)"""

from __future__ import annotations

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


def fake_kubelets(core: client.CoreV1Api) -> bool:
    """Whether the nodes this suite's pods land on are kwok's fake kubelets (pods are reported
    Running, run nothing). The local cluster's real node (testenv/node) does not count: its
    taint keeps off every pod that does not tolerate it, as this suite's pods do not."""
    nodes = [n for n in core.list_node().items if not is_real_test_node(n)]
    return bool(nodes) and all(
        (n.metadata.annotations or {}).get(FAKE_NODE_ANNOTATION) == "fake" for n in nodes
    )


def is_real_test_node(node: Any) -> bool:
    """The local cluster's real node, by its taint (testenv/node)."""
    return any(t.key == REAL_NODE_KEY for t in node.spec.taints or [])
