"""Runs the ha-elector sidecars of the local cluster's pods as local processes.

kwok pods run no containers, so on this cluster nobody would run `haoperator elect` for an
ActivePassive pod. This does what a kubelet would: for each running pod that has the ha-elector
native sidecar, start `haoperator elect` with the sidecar's own arguments (acting for that pod),
and stop it with SIGTERM when the pod is deleted, so the elector releases its Lease as it would
in a real pod. The electors use the cluster's admin kubeconfig, not the pod's ServiceAccount
token (the RBAC test covers that). Used by `make dev`, for the namespaces its operator watches
(only those: the tests run electors of their own in theirs). Pods on the real node
(testenv/node) run their sidecars themselves and are left alone.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

SIDECAR = "ha-elector"
REAL_NODE = "real-node"  # testenv/lib.sh: its pods run real containers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sidecars:
    def __init__(self, kubeconfig: str, log_dir: Path) -> None:
        self.kubeconfig = kubeconfig
        self.log_dir = log_dir
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.lock = threading.Lock()
        self.closed = False  # once stopping, start no elector

    def sync(self, pod: Any, deleted: bool) -> None:
        key = f"{pod.metadata.namespace}/{pod.metadata.name}"
        sidecar = next((c for c in pod.spec.init_containers or [] if c.name == SIDECAR), None)
        alive = (
            not deleted
            and pod.metadata.deletion_timestamp is None
            and pod.status.phase == "Running"
            and pod.spec.node_name != REAL_NODE
        )
        with self.lock:
            process = self.running.get(key)
            if process is not None and (not alive or process.poll() is not None):
                self.running.pop(key)
                if process.poll() is None:
                    process.terminate()  # the kubelet's SIGTERM: the elector releases its Lease
                return
            if process is None and alive and sidecar is not None and not self.closed:
                args = [a for a in sidecar.args or [] if a != "elect"]
                cmd = [
                    str(Path(sys.executable).parent / "haoperator"), "elect", *args,
                    "--pod", pod.metadata.name, "--namespace", pod.metadata.namespace,
                    "--port", str(free_port()), "--bind", "127.0.0.1", "--log-format", "console",
                ]  # fmt: skip
                log = (
                    self.log_dir / f"elector-{pod.metadata.namespace}-{pod.metadata.name}.log"
                ).open("ab")
                env = {**os.environ, "KUBECONFIG": self.kubeconfig}
                self.running[key] = subprocess.Popen(
                    cmd, stdout=log, stderr=subprocess.STDOUT, env=env
                )

    def prune(self, namespace: str, pods: set[str]) -> None:
        """Stop the electors of pods of `namespace` that are gone (deleted between two watches)."""
        with self.lock:
            present = {f"{namespace}/{name}" for name in pods}
            for key in [k for k in self.running if k.startswith(f"{namespace}/")]:
                if key not in present:
                    process = self.running.pop(key)
                    if process.poll() is None:
                        process.terminate()

    def stop(self) -> None:
        with self.lock:
            self.closed = True
            for process in self.running.values():
                process.terminate()
            for process in self.running.values():
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:  # never leave an elector behind
                    process.kill()
                    process.wait()
            self.running.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument(
        "--namespace",
        action="append",
        required=True,
        help="the pods of this namespace (repeatable; other namespaces are left alone, their "
        "HAServices may have electors of their own, such as the tests')",
    )
    parser.add_argument("--log-dir", default=".testenv/logs")
    args = parser.parse_args()
    config.load_kube_config(args.kubeconfig)
    core = client.CoreV1Api()
    sidecars = Sidecars(args.kubeconfig, Path(args.log_dir))
    stopping = threading.Event()

    def stop(*_: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def follow(namespace: str) -> None:
        selector = "app.kubernetes.io/managed-by=haoperator"
        while not stopping.is_set():
            try:  # list, then watch from there: pods deleted between two watches are noticed
                pods = core.list_namespaced_pod(namespace, label_selector=selector)
                sidecars.prune(namespace, {pod.metadata.name for pod in pods.items})
                for pod in pods.items:
                    sidecars.sync(pod, False)
                stream = watch.Watch().stream(
                    core.list_namespaced_pod,
                    namespace,
                    label_selector=selector,
                    resource_version=pods.metadata.resource_version,
                    timeout_seconds=60,
                )
                for event in stream:
                    sidecars.sync(event["object"], event["type"] == "DELETED")
            except Exception:  # keep following through API hiccups
                stopping.wait(1)

    for namespace in dict.fromkeys(args.namespace):
        threading.Thread(target=follow, args=(namespace,), daemon=True).start()
    stopping.wait()
    sidecars.stop()


if __name__ == "__main__":
    main()
