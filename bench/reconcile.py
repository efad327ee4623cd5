"""Benchmark: N HAServices created at once, until all are Ready, against a baseline.

The baseline is the same work without the operator: the same rendered children, server-side
applied directly by this script with as many threads as the operator has workers, timed until
every workload reports all replicas ready. The ratio (operator / baseline) is what the operator
adds on top of what the control plane itself must do. Categories are mixed LoadBalanced,
QueueWorker and Clustered (ActivePassive needs electors, measured by bench/failover.py).

    .venv/bin/python bench/reconcile.py --count 500 [--rounds 3] [--warmup 50] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    KUBECONFIG,
    REPO,
    Operator,
    api,
    apiserver_requests,
    cpu_by_program,
    cpu_delta,
    delete_namespace,
    free_port,
    install_crd,
    kubectl_path,
    machine,
    machine_cpu,
    new_namespace,
    record,
    wait,
)
from haoperator.api import HAService
from haoperator.controller.kube import Kube
from haoperator.core import render

CATEGORIES = ("LoadBalanced", "QueueWorker", "Clustered")
WATCHED = {
    "haservices",
    "deployments",
    "statefulsets",
    "services",
    "poddisruptionbudgets",
    "pods",
    "events",
}


def haservice(i: int, namespace: str) -> dict[str, Any]:
    category = CATEGORIES[i % len(CATEGORIES)]
    spec: dict[str, Any] = {
        "category": category,
        "template": {
            "metadata": {"labels": {"bench": "reconcile"}},
            "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]},
        },
    }
    if category != "QueueWorker":
        spec["service"] = {"ports": [{"name": "http", "port": 80}]}
    return {
        "apiVersion": "haoperator.dev/v1alpha1",
        "kind": "HAService",
        "metadata": {"name": f"svc-{i:04d}", "namespace": namespace},
        "spec": spec,
    }


def workloads_ready(apps: client.AppsV1Api, namespace: str, count: int) -> bool:
    ready = 0
    for items in (
        apps.list_namespaced_deployment(namespace).items,
        apps.list_namespaced_stateful_set(namespace).items,
    ):
        ready += sum(1 for w in items if (w.status.ready_replicas or 0) == w.spec.replicas)
    return ready >= count


def haservices_ready(
    custom: client.CustomObjectsApi, namespace: str, count: int, settled: bool = False
) -> bool:
    """Ready with every replica ready, as the baseline demands; `settled`: rollouts done too."""
    items = custom.list_namespaced_custom_object(
        "haoperator.dev", "v1alpha1", namespace, "haservices"
    )["items"]
    ready = 0
    for obj in items:
        status = obj.get("status") or {}
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        desired = 3 if obj["spec"]["category"] == "Clustered" else 2
        ok = (
            conditions.get("Ready", {}).get("status") == "True"
            and conditions["Ready"].get("observedGeneration") == obj["metadata"]["generation"]
            and status.get("readyReplicas") == desired
        )
        if settled:
            ok = ok and conditions.get("Progressing", {}).get("status") == "False"
        ready += ok
    return ready >= count


def baseline(
    api_client: client.ApiClient, core: client.CoreV1Api, count: int, workers: int, timeout: float
) -> tuple[float, float, dict[str, float]]:
    """Seconds until every workload is ready; the machine's busy CPU seconds meanwhile, and
    by program."""
    namespace = new_namespace(core, "bench-baseline")
    kube = Kube(api_client)
    children = [
        c
        for i in range(count)
        for c in render.desired(HAService.model_validate(haservice(i, namespace)))
    ]
    start, busy_before, programs_before = time.monotonic(), machine_cpu()[0], cpu_by_program()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(kube.apply, children))
    wait(
        lambda: workloads_ready(client.AppsV1Api(api_client), namespace, count),
        timeout,
        "baseline workloads ready",
        1.0,
    )
    elapsed, busy = time.monotonic() - start, machine_cpu()[0] - busy_before
    programs = cpu_delta(programs_before, cpu_by_program())
    delete_namespace(core, namespace)
    return elapsed, busy, programs


def versions(namespace: str) -> dict[str, str]:
    out = subprocess.run(
        [
            str(kubectl_path()),
            "--kubeconfig",
            KUBECONFIG,
            "-n",
            namespace,
            "get",
            "haservices,events,deployments,statefulsets,services,poddisruptionbudgets",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {
        f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"]
        for o in json.loads(out)["items"]
    }


def operator_round(
    api_client: client.ApiClient,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """The operator's side of one round: create N HAServices at once, time until all are Ready,
    then measure a settled minute of idling."""
    namespace = new_namespace(core, "bench-operator")
    log = Path(tempfile.mkstemp(prefix="bench-operator-", suffix=".log")[1])
    live_port, metrics_port = free_port(), free_port()
    operator = Operator(
        [namespace], log, "--workers", str(args.workers), "--liveness-port", str(live_port),
        "--metrics-port", str(metrics_port),
    )  # fmt: skip
    try:
        wait(lambda: _live(live_port), 60, "operator live")
        start, busy_before, programs_before = time.monotonic(), machine_cpu()[0], cpu_by_program()
        cpu_before, requests_before = operator.cpu_seconds(), own_requests_by_method(metrics_port)
        with ThreadPoolExecutor(args.workers) as pool:
            list(
                pool.map(
                    lambda i: custom.create_namespaced_custom_object(
                        "haoperator.dev",
                        "v1alpha1",
                        namespace,
                        "haservices",
                        haservice(i, namespace),
                    ),
                    range(args.count),
                )
            )
        wait(
            lambda: haservices_ready(custom, namespace, args.count),
            args.timeout,
            "HAServices ready",
            1.0,
        )
        seconds, busy = time.monotonic() - start, machine_cpu()[0] - busy_before
        operator_cpu = operator.cpu_seconds() - cpu_before
        programs = cpu_delta(programs_before, cpu_by_program())
        burst_requests = {
            method: int(n - requests_before.get(method, 0))
            for method, n in own_requests_by_method(metrics_port).items()
        }

        # Idle means settled: every rollout finished, then a moment for the last writes to land.
        wait(
            lambda: haservices_ready(custom, namespace, args.count, settled=True),
            600,
            "settled",
            1.0,
        )
        time.sleep(5)
        before_versions, before_requests = (
            versions(namespace),
            apiserver_requests(api_client, WATCHED),
        )
        before_ours = own_requests(metrics_port)
        time.sleep(args.idle_seconds)
        after_versions, after_requests = (
            versions(namespace),
            apiserver_requests(api_client, WATCHED),
        )
        after_ours = own_requests(metrics_port)
        minutes = args.idle_seconds / 60
        idle_rpm = {
            verb: round((after_requests.get(verb, 0) - before_requests.get(verb, 0)) / minutes, 2)
            for verb in after_requests
        }
        rss = operator.peak_rss_mib()
    finally:
        operator.stop()  # also when a wait timed out: a stray operator would hold the ports
    delete_namespace(core, namespace)
    return {
        "seconds": round(seconds, 2),
        "rss_mib": round(rss, 1),
        "machine_cpu_seconds": round(busy, 1),
        "process_cpu_seconds": round(operator_cpu, 1),
        "requests": burst_requests,
        "cpu_by_program": programs,
        "idle_writes": sum(1 for k, v in after_versions.items() if before_versions.get(k) != v),
        "idle_operator_requests_per_minute": round((after_ours - before_ours) / minutes, 2),
        "idle_requests_per_minute_all_clients": {k: v for k, v in idle_rpm.items() if v},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument(
        "--workers", type=int, default=8, help="operator workers, and baseline threads"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="baseline-then-operator rounds; the ratio reported is their median, as one round "
        "on a shared 2-core machine varies by 20%% (default: %(default)s)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=50,
        help="first, one untimed baseline-then-operator round of this many HAServices (0: none): "
        "a new cluster's first custom resources and bursts cost more than later ones, which "
        "made the first timed round the slowest (default: %(default)s)",
    )
    parser.add_argument("--idle-seconds", type=float, default=60)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    args = parser.parse_args()

    api_client = api()
    core = client.CoreV1Api(api_client)
    custom = client.CustomObjectsApi(api_client)
    install_crd()

    if args.warmup:
        baseline(api_client, core, args.warmup, args.workers, args.timeout)
        warm = argparse.Namespace(**{**vars(args), "count": args.warmup, "idle_seconds": 1})
        operator_round(api_client, core, custom, warm)
        print(f"warm-up: {args.warmup} HAServices, untimed", flush=True)

    rounds = []
    for number in range(1, args.rounds + 1):
        baseline_seconds, baseline_busy, baseline_programs = baseline(
            api_client, core, args.count, args.workers, args.timeout
        )
        ours = operator_round(api_client, core, custom, args)
        rounds.append(
            {
                "ratio": round(ours["seconds"] / baseline_seconds, 3),
                "baseline_seconds": round(baseline_seconds, 2),
                "baseline_machine_cpu_seconds": round(baseline_busy, 1),
                "baseline_cpu_by_program": baseline_programs,
                "operator": ours,
            }
        )
        print(
            f"round {number}: operator {ours['seconds']:.1f} s, baseline "
            f"{baseline_seconds:.1f} s, ratio {rounds[-1]['ratio']}",
            flush=True,
        )

    middle = sorted(rounds, key=lambda r: r["ratio"])[len(rounds) // 2]
    result = {
        "benchmark": "reconcile",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "count": args.count,
        "workers": args.workers,
        "warmup": args.warmup,
        # The median round's figures (the ratio is the median of the rounds' ratios).
        "operator_seconds": middle["operator"]["seconds"],
        "baseline_seconds": middle["baseline_seconds"],
        "ratio": middle["ratio"],
        "ratios": [r["ratio"] for r in rounds],
        "rss_mib": max(r["operator"]["rss_mib"] for r in rounds),
        "idle_writes": max(r["operator"]["idle_writes"] for r in rounds),
        "idle_operator_requests_per_minute": max(
            r["operator"]["idle_operator_requests_per_minute"] for r in rounds
        ),
        # Where the time goes, per round: the machine's busy CPU seconds in each phase (2 cores
        # shared by the control plane, the nodes and the operator), by program, and the
        # operator's requests.
        "rounds": rounds,
        "machine": machine(),
    }
    path = record("reconcile", result)
    header = ("count", "operator s", "baseline s", "ratio", "peak RSS MiB", "idle writes")
    row = (
        args.count,
        f"{result['operator_seconds']:.1f}",
        f"{result['baseline_seconds']:.1f}",
        f"{result['ratio']} (median of {result['ratios']})",
        f"{result['rss_mib']:.1f}",
        result["idle_writes"],
    )
    print("  ".join(f"{h:>12}" for h in header))
    print("  ".join(f"{v!s:>12}" for v in row))
    print(f"operator requests/min while idle: {result['idle_operator_requests_per_minute']}")
    print(f"recorded in {path.relative_to(REPO)}")
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k not in ("rounds", "machine")}))


def own_requests(port: int) -> float:
    """The operator's own API requests so far (haoperator_api_requests_total; not its watches)."""
    return sum(own_requests_by_method(port).values())


def own_requests_by_method(port: int) -> dict[str, float]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("haoperator_api_requests_total{"):
            method = line.split('method="', 1)[1].split('"', 1)[0]
            counts[method] = counts.get(method, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def _live(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


if __name__ == "__main__":
    main()
