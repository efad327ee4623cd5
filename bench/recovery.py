"""Benchmark: node loss to a replacement Ready elsewhere, with the operator and without it.

A node that hosts a member of a 3-member Clustered service dies (testenv/chaos node-down: its
kubelet stops). With `nodeLoss: {action: ForceDelete, graceSeconds: 10}` the operator fences the
member by API and the StatefulSet brings it back, with its claim, on another node. Baselines in
the same run, from the same rendered children but no operator: the StatefulSet alone (Kubernetes
never replaces a pod on an unreachable node: reported as "never" past --bound seconds), and a
Deployment with the default 300 s unreachable toleration. The local cluster notices a dead node
after 10 s (--node-monitor-grace-period; real clusters: 40-50 s), which all series share.

    .venv/bin/python bench/recovery.py [--trials 3] [--bound 150] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes import client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import api, machine, new_namespace, record
from haoperator.api import HAService
from haoperator.controller.kube import Kube
from haoperator.core import render
from testenv.harness.cluster import REPO, wait_until
from testenv.harness.operator_process import OperatorProcess

CHAOS = str(REPO / "testenv" / "chaos")


def haservice(name: str, category: str, namespace: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "category": category,
        "replicas": 3,
        "placement": {"spread": "Preferred"},
        "template": {
            "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}
        },
        "recovery": {"nodeLoss": {"graceSeconds": 10, "action": "ForceDelete"}},
    }
    if category == "Clustered":
        spec["clustered"] = {
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ]
        }
    return {
        "apiVersion": "haoperator.dev/v1alpha1",
        "kind": "HAService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def ready_pods(core: client.CoreV1Api, namespace: str, name: str) -> dict[str, Any]:
    pods = core.list_namespaced_pod(
        namespace, label_selector=f"haoperator.dev/service={name}"
    ).items
    return {
        p.metadata.name: p
        for p in pods
        if p.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    }


def node_ready(core: client.CoreV1Api, node: str) -> bool:
    return any(
        c.type == "Ready" and c.status == "True" for c in core.read_node(node).status.conditions
    )


def trial(
    core: client.CoreV1Api, namespace: str, name: str, category: str, bound: float
) -> float | None:
    """Kill the node of one pod; seconds until a pod replaces it, Ready, on another node."""
    pods = wait_until(
        lambda: p if len(p := ready_pods(core, namespace, name)) == 3 else None,
        timeout=120,
        what="3 ready pods",
        interval=0.5,
    )
    victim_name = sorted(pods)[1]
    victim = pods[victim_name]
    node = victim.spec.node_name
    start = time.monotonic()
    subprocess.run([CHAOS, "node-down", node], check=True, capture_output=True)
    try:

        def replaced() -> bool:
            now = ready_pods(core, namespace, name)
            if category == "Clustered":
                return victim_name in now and now[victim_name].spec.node_name != node
            return sum(1 for p in now.values() if p.spec.node_name != node) >= 3

        wait_until(replaced, timeout=bound, what="a replacement Ready elsewhere", interval=0.2)
        return time.monotonic() - start
    except AssertionError:  # wait_until's time ran out
        return None
    finally:
        subprocess.run([CHAOS, "node-up", node], check=True, capture_output=True)
        wait_until(lambda: node_ready(core, node), timeout=60, what="node back", interval=0.5)


def series(
    api_client: client.ApiClient,
    label: str,
    category: str,
    operator: bool,
    trials: int,
    bound: float,
    tmp: Path,
) -> list[float | None]:
    core = client.CoreV1Api(api_client)
    namespace = new_namespace(core, f"bench-recovery-{label}")
    body = haservice("svc", category, namespace)
    process = None
    try:
        if operator:
            process = OperatorProcess([namespace], tmp / f"operator-{label}.log").start()
            client.CustomObjectsApi(api_client).create_namespaced_custom_object(
                "haoperator.dev", "v1alpha1", namespace, "haservices", body
            )
        else:
            kube = Kube(api_client)
            for child in render.desired(HAService.model_validate(body)):
                kube.apply(child)
        results = []
        for _ in range(trials):
            results.append(trial(core, namespace, "svc", category, bound))
            time.sleep(2)
        return results
    finally:
        if process:
            process.stop()
        core.delete_namespace(namespace)


def fmt(values: list[float | None]) -> str:
    return ", ".join("never" if v is None else f"{v:.1f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument(
        "--bound", type=float, default=150, help="give up (never) after this many seconds"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    api_client = api()
    tmp = Path(tempfile.mkdtemp(prefix="bench-recovery-"))
    results = {
        "operator_statefulset": series(
            api_client, "op-sts", "Clustered", True, args.trials, args.bound, tmp
        ),
        "baseline_statefulset": series(
            api_client, "base-sts", "Clustered", False, 1, args.bound, tmp
        ),
        "operator_deployment": series(
            api_client, "op-deploy", "QueueWorker", True, 1, args.bound, tmp
        ),
        "baseline_deployment": series(api_client, "base-deploy", "QueueWorker", False, 1, 420, tmp),
    }
    result = {
        "benchmark": "recovery",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "grace_seconds": 10,
        "node_monitor_grace_seconds": 10,
        "bound_seconds": args.bound,
        "seconds": {
            k: [None if v is None else round(v, 2) for v in vs] for k, vs in results.items()
        },
        "machine": machine(),
    }
    path = record("recovery", result)
    for name, values in results.items():
        print(f"{name:<22} {fmt(values)}")
    print(f"recorded in {path.relative_to(REPO)}")
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "machine"}))


if __name__ == "__main__":
    main()
