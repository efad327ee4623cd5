"""The local cluster's real node (testenv/node) as the tests see it: where its state lives, its
containerd, and pods that ask to run there."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from typing import Any

from kubernetes import client

from testenv.harness.cluster import REAL_NODE, REAL_NODE_KEY, REPO, wait_until

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
    status = next(s for s in pod.status.container_statuses or [] if s.name == container)
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
