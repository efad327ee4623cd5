"""Benchmark: node loss to a replacement Ready elsewhere, with the operator and without it.

A node that hosts a member of a 3-member Clustered service dies (testenv/chaos node-down: its
kubelet stops). With `nodeLoss: {action: ForceDelete, graceSeconds: 10}` the operator fences the
member by API and the StatefulSet brings it back, with its claim, on another node. Baselines in
the same run, from the same rendered children but no operator: the StatefulSet alone (Kubernetes
never replaces a pod on an unreachable node: reported as "never" past --bound seconds), and a
Deployment with the default 300 s unreachable toleration. The local cluster notices a dead node
after 10 s (--node-monitor-grace-period; real clusters: 40-50 s), which all series share.

Two more series lose the operator with the node (see operator_lost_series): its leader of two
(`run --leader-elect`, as manifests/ runs it), and a single instance replaced as Kubernetes would.

    .venv/bin/python -m bench.recovery [--trials 3] [--bound 150] [--series NAME ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
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
REPLACED_AFTER = 10 + 30
"""Seconds from a node's loss until Kubernetes starts replacing the single operator's pod: the
local cluster's node-monitor grace, then manifests/deployment.yaml's unreachable toleration."""


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
    core: client.CoreV1Api,
    namespace: str,
    name: str,
    category: str,
    bound: float,
    with_the_node: Callable[[], None] = lambda: None,
) -> float | None:
    """Kill the node of one pod; seconds until a pod replaces it, Ready, on another node.
    `with_the_node`: what else the node takes down with it (the operator's leader)."""
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
    with_the_node()
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


def operator_lost_series(
    api_client: client.ApiClient, label: str, leader_elect: bool, trials: int, bound: float,
    tmp: Path,
) -> list[float | None]:  # fmt: skip
    """The lost node holds the operator's acting instance too: it is killed (-9: a lost node's
    process neither releases nor renews) at the moment the node goes down.

    leader_elect: two instances with `run --leader-elect` at the shipped timing (15/10/2 s), as
    `manifests/` runs them; the standby takes over once the lease expires; the killed one is
    started again after the trial (its replacement pod), as the new standby.
    Else one instance, as before `--leader-elect`: it is started again REPLACED_AFTER seconds
    later, when Kubernetes would only begin to replace its pod (node-monitor grace, then the
    Deployment's 30 s unreachable toleration; scheduling, image pull and start are not added,
    so that series is a lower bound)."""
    core = client.CoreV1Api(api_client)
    namespace = new_namespace(core, f"bench-recovery-{label}")
    body = haservice("svc", "Clustered", namespace)
    started = 0

    def start() -> OperatorProcess:
        nonlocal started
        started += 1
        log = tmp / f"operator-{label}-{started}.log"
        if leader_elect:
            return OperatorProcess([namespace], log, leader_elect=namespace).start()
        return OperatorProcess([namespace], log).start()

    processes = [start()] + ([start()] if leader_elect else [])
    try:
        wait_until(lambda: any(p.leading() for p in processes), timeout=60, what="a leader")
        client.CustomObjectsApi(api_client).create_namespaced_custom_object(
            "haoperator.dev", "v1alpha1", namespace, "haservices", body
        )
        results = []
        for _ in range(trials):
            (acting,) = [p for p in processes if p.leading()]
            replacement: threading.Timer | None = None

            def lose_the_operator(acting: OperatorProcess = acting) -> None:
                nonlocal replacement
                acting.stop(signal.SIGKILL)
                processes.remove(acting)
                if not leader_elect:
                    replacement = threading.Timer(REPLACED_AFTER, lambda: processes.append(start()))
                    replacement.start()

            results.append(
                trial(core, namespace, "svc", "Clustered", bound, with_the_node=lose_the_operator)
            )
            if replacement is not None:
                replacement.join()
            if leader_elect:
                processes.append(start())
            wait_until(
                lambda: sum(p.leading() for p in processes) == 1, timeout=60, what="one leader"
            )
            time.sleep(2)
        return results
    finally:
        for process in processes:
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
    parser.add_argument(
        "--series", action="append", help="run only this series (repeatable; default: all)"
    )
    args = parser.parse_args()
    api_client = api()
    tmp = Path(tempfile.mkdtemp(prefix="bench-recovery-"))
    runs: dict[str, Callable[[], list[float | None]]] = {
        "operator_statefulset": lambda: series(
            api_client, "op-sts", "Clustered", True, args.trials, args.bound, tmp
        ),
        "baseline_statefulset": lambda: series(
            api_client, "base-sts", "Clustered", False, 1, args.bound, tmp
        ),
        "operator_deployment": lambda: series(
            api_client, "op-deploy", "QueueWorker", True, 1, args.bound, tmp
        ),
        "baseline_deployment": lambda: series(
            api_client, "base-deploy", "QueueWorker", False, 1, 420, tmp
        ),
        "operator_ha_leader_lost_statefulset": lambda: operator_lost_series(
            api_client, "op-ha-lost", True, args.trials, args.bound, tmp
        ),
        "operator_single_lost_statefulset": lambda: operator_lost_series(
            api_client, "op-single-lost", False, args.trials, args.bound, tmp
        ),
    }
    unknown = set(args.series or []) - set(runs)
    if unknown:
        parser.error(f"unknown series {sorted(unknown)}; choose from {sorted(runs)}")
    results = {name: run() for name, run in runs.items() if name in (args.series or runs)}
    result = {
        "benchmark": "recovery",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "grace_seconds": 10,
        "node_monitor_grace_seconds": 10,
        "bound_seconds": args.bound,
        "operator_lease_seconds": 15,
        "single_operator_replaced_after_seconds": REPLACED_AFTER,
        "seconds": {
            k: [None if v is None else round(v, 2) for v in vs] for k, vs in results.items()
        },
        "machine": machine(),
    }
    path = record("recovery", result)
    for name, values in results.items():
        print(f"{name:<36} {fmt(values)}")
    print(f"recorded in {path.relative_to(REPO)}")
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "machine"}))


if __name__ == "__main__":
    main()
