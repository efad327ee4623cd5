"""The real node: a kubelet with containerd beside the kwok nodes, tainted so that only pods that
ask for it land there, where containers really run under the restricted securityContext and
reach the API server through the `kubernetes` Service, as in-cluster clients do."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from kubernetes import client

from testenv.harness.cluster import wait_until
from tests.realnode.support import (
    REAL_NODE_KEY,
    container_pid,
    node_paths,
    restricted_pod,
    running_pod,
)

pytestmark = pytest.mark.cluster


def test_the_real_node_is_a_tainted_labelled_kubelet_on_containerd(
    core: client.CoreV1Api, real_node: str
) -> None:
    node = core.read_node(real_node)
    assert node.metadata.labels[REAL_NODE_KEY] == "true"
    assert [(t.key, t.value, t.effect) for t in node.spec.taints or []] == [
        (REAL_NODE_KEY, "true", "NoSchedule")
    ]
    assert node.status.node_info.kubelet_version.startswith("v1.34.")
    assert node.status.node_info.container_runtime_version.startswith("containerd://")
    # No zone: spreading over zones sees the kwok nodes' three zones and nothing else.
    assert "topology.kubernetes.io/zone" not in node.metadata.labels


def test_pods_that_do_not_tolerate_the_taint_stay_off_the_real_node(
    core: client.CoreV1Api, real_node: str, namespace: str
) -> None:
    pod = restricted_pod("pinned")
    del pod["spec"]["tolerations"]
    core.create_namespaced_pod(namespace, pod)

    def unschedulable() -> str:
        status = core.read_namespaced_pod("pinned", namespace).status
        return next((c.message for c in status.conditions or [] if c.reason == "Unschedulable"), "")

    message = wait_until(unschedulable, timeout=60, what="the scheduler's verdict")
    # The selector leaves the real node; its taint keeps the pod off it.
    assert "1 node(s) had untolerated taint" in message


def test_a_restricted_pod_runs_there_and_reaches_the_api_server_through_its_service_ip(
    core: client.CoreV1Api, real_node: str, namespace: str, tmp_path: Path
) -> None:
    core.create_namespaced_pod(namespace, restricted_pod("app"))
    pod = wait_until(
        lambda: running_pod(core, namespace, "app"), timeout=90, what="pod Running on the real node"
    )
    assert pod.spec.node_name == real_node
    assert pod.status.pod_ip.startswith("10.86.")

    # The container really runs, as the restricted profile says: uid 65532, no capabilities,
    # no new privileges, seccomp filtering, a read-only root, in cgroups of the node's own.
    pid = container_pid(pod, "main")
    proc = dict(
        line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    assert proc["Uid"].split()[:2] == ["65532", "65532"]
    assert int(proc["CapEff"], 16) == 0
    assert proc["NoNewPrivs"] == "1"
    assert proc["Seccomp"] == "2"
    root = next(
        line.split() for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
        if line.split()[4] == "/"
    )  # fmt: skip
    assert "ro" in root[5].split(",")
    assert f"/{node_paths()['CGROUP']}/kubepods/" in Path(f"/proc/{pid}/cgroup").read_text()

    # In the pod's network: the kubernetes Service's ClusterIP (no cluster DNS here) leads
    # to the API server, whose certificate names that address, and the pod's own token
    # authenticates it as its ServiceAccount.
    secrets = f"/proc/{pid}/root/var/run/secrets/kubernetes.io/serviceaccount"
    env = dict(
        item.split("=", 1)
        for item in Path(f"/proc/{pid}/environ").read_text().split("\0")
        if "=" in item
    )
    host, port = env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]
    assert (host, port) == ("10.96.0.1", "443")
    script = tmp_path / "whoami.py"
    script.write_text(WHOAMI)
    result = subprocess.run(
        ["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable, str(script), host, port, secrets],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"system:serviceaccount:{namespace}:default"


# Run inside the pod's network namespace: a SelfSubjectReview through https://HOST:PORT with the
# pod's CA and token, the certificate checked against HOST as in-cluster clients check it.
WHOAMI = textwrap.dedent(
    """
    import json, ssl, sys, urllib.error, urllib.request
    host, port, secrets = sys.argv[1:]
    context = ssl.create_default_context(cafile=f"{secrets}/ca.crt")
    token = open(f"{secrets}/token").read()
    request = urllib.request.Request(
        f"https://{host}:{port}/apis/authentication.k8s.io/v1/selfsubjectreviews",
        data=b'{"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}',
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        response = urllib.request.urlopen(request, context=context, timeout=10)
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLCertVerificationError):
            sys.exit(f"{exc.reason}: recreate the cluster (kwokctl.yaml names {host} in it)")
        raise
    print(json.load(response)["status"]["userInfo"]["username"])
    """
)
