"""Benchmark: how long the Service has no active pod when the active one goes away.

Measured from the signal (SIGTERM: graceful; SIGKILL: crash) to the Service's EndpointSlice
naming the new pod, for our elector and, in the same run and through the same Service, for the
`kubernetes` client's own leader election (bench/baseline_elector.py) at the same lease timing and
at client-go's defaults (15/10/2 s). Electors run as local processes acting for kwok pods.

    .venv/bin/python bench/failover.py --trials 30 [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import KUBECONFIG, REPO, Operator, api, machine, new_namespace, record, wait
from tests.integration.electors import Elector, RouteWatcher

ROLE = "haoperator.dev/role"


class BaselineElector:
    def __init__(
        self, namespace: str, pod: str, lease: str, log: Path, timing: tuple[int, int, int]
    ) -> None:
        self.pod = pod
        self.log = log.open("ab")
        cmd = [
            sys.executable,
            str(REPO / "bench" / "baseline_elector.py"),
            namespace,
            pod,
            lease,
            *map(str, timing),
        ]
        self.proc = subprocess.Popen(
            cmd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "KUBECONFIG": KUBECONFIG},
        )

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def ready_pods(core: client.CoreV1Api, namespace: str) -> list[str] | None:
    """The two pods' names once both are ready."""
    pods = core.list_namespaced_pod(namespace, label_selector="haoperator.dev/service=vip").items
    ready = [
        p.metadata.name
        for p in pods
        if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    ]
    return ready if len(ready) == 2 else None


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(values), 3),
        "p95": round(percentile(values, 95), 3),
        "p99": round(percentile(values, 99), 3),
        "max": round(max(values), 3),
        "n": len(values),
    }


def run_series(
    api_client: client.ApiClient,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    label: str,
    start: Callable[[str, str, Path], Any],
    trials: int,
    tmp: Path,
) -> dict[str, list[float]]:
    namespace = new_namespace(core, f"bench-failover-{label}")
    body = {
        "apiVersion": "haoperator.dev/v1alpha1",
        "kind": "HAService",
        "metadata": {"name": "vip"},
        "spec": {
            "category": "ActivePassive",
            "replicas": 2,
            "template": {
                "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}
            },
            "service": {"ports": [{"name": "http", "port": 80}]},
        },
    }
    operator = Operator([namespace], tmp / f"operator-{label}.log", "--liveness-port", "18082")
    try:
        custom.create_namespaced_custom_object(
            "haoperator.dev", "v1alpha1", namespace, "haservices", body
        )
        pods = wait(lambda: ready_pods(core, namespace), 60, "2 ready pods")
        watcher = RouteWatcher(api_client, namespace, "vip")
        electors = {pod: start(namespace, pod, tmp) for pod in pods}
        results: dict[str, list[float]] = {"graceful": [], "crash": []}
        for mode, sig in (("graceful", signal.SIGTERM), ("crash", signal.SIGKILL)):
            for _ in range(trials):
                leader = next(
                    iter(
                        wait(
                            lambda: c if len(c := watcher.current()) == 1 else None,
                            60,
                            "one routed pod",
                            0.02,
                        )
                    )
                )
                other = next(p for p in pods if p != leader)
                time.sleep(0.5)  # a settled standby, watching
                began = time.monotonic()
                electors[leader].signal(sig)
                wait(lambda o=other: watcher.current() == {o}, 60, "the new pod routed", 0.005)
                results[mode].append(time.monotonic() - began)
                electors[leader].stop()
                electors[leader] = start(namespace, leader, tmp)
                time.sleep(1.5)  # the restarted elector joins as a standby
        assert watcher.most_at_once() <= 1, f"{label}: the Service routed to two pods"
        for elector in electors.values():
            elector.stop()
        watcher.stop()
        return results
    finally:
        operator.stop()
        core.delete_namespace(namespace)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument(
        "--baseline-trials",
        type=int,
        default=None,
        help="trials of the 5 s baseline (default: --trials)",
    )
    parser.add_argument(
        "--baseline-default-trials",
        type=int,
        default=10,
        help="trials at client-go's 15 s lease (slow)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    api_client = api()
    core, custom = client.CoreV1Api(api_client), client.CustomObjectsApi(api_client)
    tmp = Path(tempfile.mkdtemp(prefix="bench-failover-"))

    def ours(lease: int, renew: int, retry: int) -> Callable[[str, str, Path], Any]:
        timing = [
            "--lease-duration-seconds",
            str(lease),
            "--renew-deadline-seconds",
            str(renew),
            "--retry-period-seconds",
            str(retry),
        ]
        return lambda ns, pod, tmp: Elector(ns, pod, "vip", tmp / f"elector-{pod}.log", *timing)

    def baseline(lease: int, renew: int, retry: int) -> Callable[[str, str, Path], Any]:
        return lambda ns, pod, tmp: BaselineElector(
            ns, pod, "vip", tmp / f"baseline-{pod}.log", (lease, renew, retry)
        )

    series = {
        "ours_5s": run_series(api_client, core, custom, "ours5", ours(5, 3, 1), args.trials, tmp),
        "ours_2s": run_series(api_client, core, custom, "ours2", ours_fast(), args.trials, tmp),
        "baseline_5s": run_series(
            api_client,
            core,
            custom,
            "base5",
            baseline(5, 3, 1),
            args.baseline_trials or args.trials,
            tmp,
        ),
        "baseline_15s": run_series(
            api_client,
            core,
            custom,
            "base15",
            baseline(15, 10, 2),
            args.baseline_default_trials,
            tmp,
        ),
    }
    table = {
        name: {mode: summary(values) for mode, values in s.items()} for name, s in series.items()
    }
    result = {
        "benchmark": "failover",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "lease_seconds": 5,
        "graceful_p50": table["ours_5s"]["graceful"]["p50"],
        "graceful_p99": table["ours_5s"]["graceful"]["p99"],
        "crash_p50": table["ours_5s"]["crash"]["p50"],
        "crash_p99": table["ours_5s"]["crash"]["p99"],
        "lease2s_crash_p99": table["ours_2s"]["crash"]["p99"],
        "baseline_graceful_p99": table["baseline_5s"]["graceful"]["p99"],
        "baseline_crash_p99": table["baseline_5s"]["crash"]["p99"],
        "clientgo_defaults_graceful_p99": table["baseline_15s"]["graceful"]["p99"],
        "clientgo_defaults_crash_p99": table["baseline_15s"]["crash"]["p99"],
        "series": table,
        "machine": machine(),
    }
    path = record("failover", result)
    print(
        f"{'series':<14} {'mode':<9} {'n':>3} {'p50 s':>7} {'p95 s':>7} {'p99 s':>7} {'max s':>7}"
    )
    for name, modes in table.items():
        for mode, s in modes.items():
            cells = (s["p50"], s["p95"], s["p99"], s["max"])
            print(f"{name:<14} {mode:<9} {s['n']:>3} " + " ".join(f"{c:>7.3f}" for c in cells))
    print(f"recorded in {path.relative_to(REPO)}")
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k not in ("series", "machine")}))


def ours_fast() -> Callable[[str, str, Path], Any]:
    """A 2 s lease (renew 1.5 s, retry 0.5 s): against keepalived's ~3.6 s at its defaults."""
    timing = [
        "--lease-duration-seconds",
        "2",
        "--renew-deadline-seconds",
        "1.5",
        "--retry-period-seconds",
        "0.5",
    ]
    return lambda ns, pod, tmp: Elector(ns, pod, "vip", tmp / f"elector-fast-{pod}.log", *timing)


if __name__ == "__main__":
    main()
