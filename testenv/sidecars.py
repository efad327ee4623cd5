"""Runs the ha-elector sidecars of the local cluster's pods as local processes.

kwok pods run no containers, so on this cluster nobody would run `haoperator elect` for an
ActivePassive pod. This does what a kubelet would (testenv/harness/electors.py): for each
running pod that has the ha-elector native sidecar, start `haoperator elect` with the sidecar's
own arguments (acting for that pod), and stop it with SIGTERM when the pod is deleted, so the
elector releases its Lease as it would in a real pod. The electors use the cluster's admin
kubeconfig, not the pod's ServiceAccount token (the RBAC test covers that). Used by `make dev`,
for the namespaces its operator watches (only those: the tests run electors of their own in
theirs). Pods on the real node (testenv/node) run their sidecars themselves and are left alone.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testenv.harness.cluster import REAL_NODE
from testenv.harness.electors import LocalElectors


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
    electors = LocalElectors(
        Path(args.kubeconfig), Path(args.log_dir), log_format="console", skip_node=REAL_NODE
    )
    stopping = threading.Event()

    def stop(*_: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def follow(namespace: str) -> None:
        selector = "app.kubernetes.io/managed-by=haoperator"
        while not stopping.is_set():
            try:  # list, then watch from there: pods deleted between two watches are noticed
                listed = core.list_namespaced_pod(namespace, label_selector=selector)
                pods = {pod.metadata.name: pod for pod in listed.items}
                electors.sync(namespace, pods.values())
                stream = watch.Watch().stream(
                    core.list_namespaced_pod,
                    namespace,
                    label_selector=selector,
                    resource_version=listed.metadata.resource_version,
                    timeout_seconds=60,
                )
                for event in stream:
                    pod = event["object"]
                    if event["type"] == "DELETED":
                        pods.pop(pod.metadata.name, None)
                    else:
                        pods[pod.metadata.name] = pod
                    electors.sync(namespace, pods.values())
            except Exception:  # keep following through API hiccups
                stopping.wait(1)

    for namespace in dict.fromkeys(args.namespace):
        threading.Thread(target=follow, args=(namespace,), daemon=True).start()
    stopping.wait()
    electors.stop()


if __name__ == "__main__":
    main()
