"""The local cluster as the helpers reach it: its kubeconfig, its kubectl, tokens, waiting."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import yaml

REPO = Path(__file__).resolve().parents[2]
REAL_NODE = "real-node"
"""The local cluster's real node (testenv/node): its pods run real containers."""
REAL_NODE_KEY = "haoperator.dev/real-node"
"""The key of the real node's taint (NoSchedule) and of its label (value "true"): testenv/lib.sh."""
T = TypeVar("T")
Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def kubeconfig_path() -> Path:
    """$KUBECONFIG, else the local cluster's (.testenv/kubeconfig)."""
    return Path(os.environ.get("KUBECONFIG", str(REPO / ".testenv" / "kubeconfig")))


def kubectl_binary() -> str:
    """$HAOPERATOR_KUBECTL, else the local cluster's own (.testenv/env puts it first on PATH),
    else kubectl on PATH."""
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
    """kubectl for the cluster of `kubeconfig` (default: kubeconfig_path()); a call returns the
    completed process (check=False)."""
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def exists(read: Callable[[], object]) -> bool:
    """Whether `read` (a client call that reads one object) finds it: False on 404."""
    from kubernetes import client

    try:
        read()
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def wait_until(
    check: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.2
) -> T:
    """Poll until `check` returns something truthy (and return it); fail with `what` when time
    runs out.

    Tests wait on conditions, never on fixed sleeps, and never assert on elapsed time.
    """
    deadline = time.monotonic() + timeout
    last = check()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")
        time.sleep(interval)
        last = check()
    return last
