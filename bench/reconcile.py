"""Benchmark: N HAServices created at once, until all are Ready, against a baseline; then the
steady state of N settled HAServices.

The baseline is the same work without the operator: the same rendered children, server-side
applied directly by this script with as many threads as the operator has workers, timed until
every workload reports all replicas ready. The ratio (operator / baseline) is what the operator
adds on top of what the control plane itself must do. Categories are mixed LoadBalanced,
QueueWorker and Clustered (ActivePassive needs electors, measured by bench/failover.py).

The steady state (`--steady-count`, default the same N; 0 skips it): with N HAServices settled,
the seconds from editing one HAService (a label of its pod template) to its workload carrying
the edit, p50 and p99 over `--edits`; then the operator is restarted over them: the writes the
new one makes (target 0, the objects whose resourceVersion changed) and the seconds until it has
caught up (every HAService reconciled, then quiet).

    .venv/bin/python bench/reconcile.py --count 500 [--rounds 3] [--warmup 50] [--edits 50]
        [--steady-count N] [--no-record] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client, watch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    KUBECONFIG,
    api,
    apiserver_requests,
    cpu_by_program,
    cpu_delta,
    delete_namespace,
    install_crd,
    machine,
    machine_cpu,
    new_namespace,
    record,
)
from haoperator.api import HAService
from haoperator.api.haservice import DEFAULT_CLUSTERED_REPLICAS, DEFAULT_REPLICAS
from haoperator.controller.kube import Kube
from haoperator.core import render
from testenv.harness.cluster import REPO, kubectl_binary, wait_until
from testenv.harness.operator_process import OperatorProcess

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


def create_haservices(
    custom: client.CustomObjectsApi, namespace: str, count: int, workers: int
) -> None:
    """N HAServices at once, as fast as `workers` threads can create them."""
    with ThreadPoolExecutor(workers) as pool:
        list(
            pool.map(
                lambda i: custom.create_namespaced_custom_object(
                    "haoperator.dev", "v1alpha1", namespace, "haservices", haservice(i, namespace)
                ),
                range(count),
            )
        )


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
        clustered = obj["spec"]["category"] == "Clustered"
        desired = DEFAULT_CLUSTERED_REPLICAS if clustered else DEFAULT_REPLICAS
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
    wait_until(
        lambda: workloads_ready(client.AppsV1Api(api_client), namespace, count),
        timeout=timeout,
        what="baseline workloads ready",
        interval=1.0,
    )
    elapsed, busy = time.monotonic() - start, machine_cpu()[0] - busy_before
    programs = cpu_delta(programs_before, cpu_by_program())
    delete_namespace(core, namespace)
    return elapsed, busy, programs


def versions(namespace: str) -> dict[str, str]:
    out = subprocess.run(
        [
            kubectl_binary(),
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
    operator = start_operator(namespace, args.workers)
    try:
        start, busy_before, programs_before = time.monotonic(), machine_cpu()[0], cpu_by_program()
        cpu_before, requests_before = operator.cpu_seconds(), operator.requests_by_method()
        create_haservices(custom, namespace, args.count, args.workers)
        wait_until(
            lambda: haservices_ready(custom, namespace, args.count),
            timeout=args.timeout,
            what="HAServices ready",
            interval=1.0,
        )
        seconds, busy = time.monotonic() - start, machine_cpu()[0] - busy_before
        operator_cpu = operator.cpu_seconds() - cpu_before
        programs = cpu_delta(programs_before, cpu_by_program())
        burst_requests = {
            method: int(n - requests_before.get(method, 0))
            for method, n in operator.requests_by_method().items()
        }

        # Idle means settled: every rollout finished, then a moment for the last writes to land.
        wait_until(
            lambda: haservices_ready(custom, namespace, args.count, settled=True),
            timeout=600,
            what="settled",
            interval=1.0,
        )
        time.sleep(5)
        before_versions, before_requests = (
            versions(namespace),
            apiserver_requests(api_client, WATCHED),
        )
        before_ours = sum(operator.requests_by_method().values())
        time.sleep(args.idle_seconds)
        after_versions, after_requests = (
            versions(namespace),
            apiserver_requests(api_client, WATCHED),
        )
        after_ours = sum(operator.requests_by_method().values())
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


def start_operator(namespace: str, workers: int) -> OperatorProcess:
    log = Path(tempfile.mkstemp(prefix="bench-operator-", suffix=".log")[1])
    return OperatorProcess([namespace], log, workers=workers, log_level="warning").start()


class WorkloadWatcher:
    """Follows the namespace's Deployments and StatefulSets and remembers when (monotonic) each
    first carried each value of the pod template label EDIT_LABEL."""

    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.seen: dict[tuple[str, str], float] = {}
        self.changed = threading.Condition()
        self.watches = [watch.Watch(), watch.Watch()]
        apps = client.AppsV1Api(api_client)
        listers = (apps.list_namespaced_deployment, apps.list_namespaced_stateful_set)
        for lister, follower in zip(listers, self.watches, strict=True):
            threading.Thread(
                target=self._follow, args=(lister, follower, namespace), daemon=True
            ).start()

    def _follow(self, lister: Any, follower: watch.Watch, namespace: str) -> None:
        while True:
            try:
                for event in follower.stream(lister, namespace, timeout_seconds=60):
                    obj = event["raw_object"]
                    labels = obj["spec"]["template"]["metadata"].get("labels") or {}
                    value = labels.get(EDIT_LABEL)
                    if value is not None:
                        with self.changed:
                            self.seen.setdefault((obj["metadata"]["name"], value), time.monotonic())
                            self.changed.notify_all()
            except Exception:  # the API server restarting, a watch that expired: follow again
                time.sleep(0.2)

    def wait_for(self, name: str, value: str, timeout: float) -> float:
        """When the workload `name` first carried `value`."""
        with self.changed:
            if not self.changed.wait_for(lambda: (name, value) in self.seen, timeout):
                raise AssertionError(f"{name} never carried {EDIT_LABEL}={value}")
            return self.seen[(name, value)]

    def stop(self) -> None:
        for follower in self.watches:
            follower.stop()


EDIT_LABEL = "bench-edit"


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of them fall (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def steady_state(
    api_client: client.ApiClient,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """N settled HAServices: the edit-to-children latency, then an operator restart's writes and
    the time it takes to catch up."""
    count = args.steady_count
    namespace = new_namespace(core, "bench-steady")
    operator = start_operator(namespace, args.workers)
    watcher = WorkloadWatcher(api_client, namespace)
    try:
        create_haservices(custom, namespace, count, args.workers)
        wait_until(
            lambda: haservices_ready(custom, namespace, count, settled=True),
            timeout=args.timeout,
            what="HAServices settled",
            interval=1.0,
        )
        wait_until(operator.metrics_quiet, timeout=300, what="the operator idle", interval=0.5)
        edits = []
        for edit in range(args.edits):
            name = f"svc-{(edit * 7919) % count:04d}"  # spread over the categories and the names
            patch = {"spec": {"template": {"metadata": {"labels": {EDIT_LABEL: str(edit)}}}}}
            began = time.monotonic()
            custom.patch_namespaced_custom_object(
                "haoperator.dev", "v1alpha1", namespace, "haservices", name, patch
            )
            edits.append(watcher.wait_for(name, str(edit), timeout=120) - began)
            time.sleep(0.5)
        print(
            f"steady, {count} HAServices: edit to workload p50 {percentile(edits, 0.5):.3f} s, "
            f"p99 {percentile(edits, 0.99):.3f} s",
            flush=True,
        )

        wait_until(
            lambda: haservices_ready(custom, namespace, count, settled=True),
            timeout=args.timeout,
            what="the edits rolled out",
            interval=1.0,
        )
        wait_until(operator.metrics_quiet, timeout=300, what="the operator idle", interval=0.5)
        operator.stop()
        time.sleep(2)
        before = versions(namespace)
        began = time.monotonic()
        operator = start_operator(namespace, args.workers)
        caught_up = wait_until(
            lambda: caught_up_at(operator, count),
            timeout=args.timeout,
            what="the restarted operator caught up",
            interval=0.5,
        )
        writes = operator.writes()
        after = versions(namespace)
    finally:
        watcher.stop()
        operator.stop()
    delete_namespace(core, namespace)
    restart = {
        "writes": int(writes),
        "objects_changed": sum(1 for k, v in after.items() if before.get(k) != v),
        "catch_up_seconds": round(caught_up - began, 2),
    }
    print(
        f"restart over {count}: {restart['writes']} writes, {restart['objects_changed']} objects "
        f"changed, caught up in {restart['catch_up_seconds']} s",
        flush=True,
    )
    return {
        "count": count,
        "edits": len(edits),
        "edit_seconds_p50": round(percentile(edits, 0.5), 3),
        "edit_seconds_p99": round(percentile(edits, 0.99), 3),
        "edit_seconds": [round(s, 3) for s in edits],
        "restart": restart,
    }


def caught_up_at(operator: OperatorProcess, count: int) -> float | None:
    """When (monotonic) the operator had reconciled every HAService once and was then quiet for
    QUIET seconds; None while it has not."""
    reconciled = operator.metrics().get('haoperator_reconcile_total{result="ok"}', 0.0)
    if reconciled < count:
        return None
    at = time.monotonic()
    return at if operator.metrics_quiet(QUIET) else None


QUIET = 2.0


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
        "on a shared 2-core machine varies by 20%% (default: %(default)s; 0: none)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=50,
        help="first, one untimed baseline-then-operator round of this many HAServices (0: none): "
        "a new cluster's first custom resources and bursts cost more than later ones, which "
        "made the first timed round the slowest (default: %(default)s)",
    )
    parser.add_argument(
        "--steady-count",
        type=int,
        default=None,
        help="settled HAServices for the steady-state figures (default: --count; 0: none)",
    )
    parser.add_argument(
        "--edits", type=int, default=50, help="edits timed in the steady state (default: 50)"
    )
    parser.add_argument("--idle-seconds", type=float, default=60)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument(
        "--no-record", action="store_true", help="print the results, add nothing to bench/results"
    )
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    args = parser.parse_args()
    if args.steady_count is None:
        args.steady_count = args.count

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
    steady = steady_state(api_client, core, custom, args) if args.steady_count else None

    result: dict[str, Any] = {
        "benchmark": "reconcile",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "count": args.count,
        "workers": args.workers,
        "warmup": args.warmup,
    }
    if rounds:
        middle = sorted(rounds, key=lambda r: r["ratio"])[len(rounds) // 2]
        result |= {
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
        }
    if steady is not None:
        result["steady"] = steady
    # Where the time goes, per round: the machine's busy CPU seconds in each phase (2 cores
    # shared by the control plane, the nodes and the operator), by program, and the operator's
    # requests.
    result |= {"rounds": rounds, "machine": machine()}
    if rounds:
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
    if not args.no_record:
        print(f"recorded in {record('reconcile', result).relative_to(REPO)}")
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k not in ("rounds", "machine")}))


if __name__ == "__main__":
    main()
