"""Benchmark: how long the Service has no active pod when the active one goes away.

Measured from the signal (SIGTERM: graceful; SIGKILL: crash) to the Service's EndpointSlice
naming the new pod, for our elector and, in the same run and through the same Service, for the
`kubernetes` client's own leader election (bench/baseline_elector.py) at the same lease timing and
at client-go's defaults (15/10/2 s). Electors run as local processes acting for kwok pods; with
--real-node, also real sidecars in real pods on the local cluster's real node (bench/realnode.py).

    .venv/bin/python bench/failover.py --trials 30 [--real-node] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from kubernetes import client, watch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import KUBECONFIG, api, install_crd, machine, new_namespace, record
from bench.realnode import run_real_node_series
from testenv.harness.cluster import REPO, wait_until
from testenv.harness.electors import ElectorProcess, RouteWatcher
from testenv.harness.operator_process import OperatorProcess

ROLE = "haoperator.dev/role"


class LeaseWatcher:
    """Follows the Lease and remembers when (monotonic) each holder first appeared, so a slow
    trial can be split into the electors' share (signal -> new holder) and the routing share."""

    def __init__(self, api_client: client.ApiClient, namespace: str, lease: str) -> None:
        self.api, self.namespace, self.lease = api_client, namespace, lease
        self.changes: list[tuple[float, str | None]] = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._watch = watch.Watch()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        coordination = client.CoordinationV1Api(self.api)
        while not self._stop.is_set():
            try:
                for event in self._watch.stream(
                    coordination.list_namespaced_lease,
                    self.namespace,
                    field_selector=f"metadata.name={self.lease}",
                    timeout_seconds=30,
                ):
                    holder = (event["raw_object"].get("spec") or {}).get("holderIdentity")
                    with self.lock:
                        if not self.changes or self.changes[-1][1] != holder:
                            self.changes.append((time.monotonic(), holder))
            except Exception:
                if not self._stop.is_set():
                    self._stop.wait(0.2)

    def held_by(self, pod: str, since: float) -> float | None:
        """When the Lease was first seen naming `pod` after `since`."""
        with self.lock:
            return next((at for at, holder in self.changes if at >= since and holder == pod), None)

    def stop(self) -> None:
        self._stop.set()
        self._watch.stop()


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


def routed_only(watcher: RouteWatcher, pod: str) -> bool:
    return watcher.current() == {pod}


def wait_quiet(core: client.CoreV1Api) -> None:
    """Start on a quiet control plane: namespaces still being deleted (an earlier benchmark's
    thousands of pods) keep the endpoint controllers busy and would be measured as failover."""
    wait_until(
        lambda: not [ns for ns in core.list_namespace().items if ns.status.phase == "Terminating"],
        timeout=900,
        what="terminating namespaces to go",
        interval=2,
    )


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
) -> dict[str, Any]:
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
    operator = OperatorProcess([namespace], tmp / f"operator-{label}.log").start()
    try:
        custom.create_namespaced_custom_object(
            "haoperator.dev", "v1alpha1", namespace, "haservices", body
        )
        pods = wait_until(
            lambda: ready_pods(core, namespace), timeout=60, what="2 ready pods", interval=0.5
        )
        watcher = RouteWatcher(api_client, namespace, "vip")
        leases = LeaseWatcher(api_client, namespace, "vip")
        electors = {pod: start(namespace, pod, tmp) for pod in pods}
        results: dict[str, list[float]] = {"graceful": [], "crash": []}
        trials_log: list[dict[str, Any]] = []
        for mode, sig in (("graceful", signal.SIGTERM), ("crash", signal.SIGKILL)):
            for _ in range(trials):
                leader = next(
                    iter(
                        wait_until(
                            lambda: c if len(c := watcher.current()) == 1 else None,
                            timeout=60,
                            what="one routed pod",
                            interval=0.02,
                        )
                    )
                )
                other = next(p for p in pods if p != leader)
                # A settled standby, watching; then a random point in the renew cycle, or every
                # crash would land at the same phase (just after a renew: the worst case).
                time.sleep(0.5 + random.uniform(0, 1))
                began = time.monotonic()
                electors[leader].signal(sig)
                wait_until(
                    partial(routed_only, watcher, other),
                    timeout=60,
                    what="the new pod routed",
                    interval=0.005,
                )
                seconds = time.monotonic() - began
                results[mode].append(seconds)
                acquired = leases.held_by(other, began)
                trials_log.append(
                    {
                        "mode": mode,
                        "seconds": round(seconds, 3),
                        "lease_taken": None if acquired is None else round(acquired - began, 3),
                    }
                )
                electors[leader].stop()
                electors[leader] = start(namespace, leader, tmp)
                time.sleep(1.5)  # the restarted elector joins as a standby
        assert watcher.most_at_once() <= 1, f"{label}: the Service routed to two pods"
        for elector in electors.values():
            elector.stop()
        watcher.stop()
        leases.stop()
        return {**results, "trials": trials_log}
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
    parser.add_argument(
        "--series",
        default="",
        help="comma-separated subset of ours_5s,ours_2s,baseline_5s,baseline_15s (default: all; "
        "none: only --real-node)",
    )
    parser.add_argument(
        "--real-node",
        action="store_true",
        help="add the series on the local cluster's real node: real ha-elector sidecars in real "
        "pods (graceful: kubectl delete pod; crash: SIGKILL of the elector process; unhealthy: the "
        "active application not ready), --trials each",
    )
    parser.add_argument(
        "--freeze-trials",
        type=int,
        default=0,
        help="with --real-node: trials that freeze the API server (SIGSTOP) for --freeze-seconds",
    )
    parser.add_argument("--freeze-seconds", type=float, default=60.0)
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
        return lambda ns, pod, tmp: ElectorProcess(
            ns, pod, ["elect", "--lease", "vip", *timing], tmp / f"elector-{pod}.log"
        )

    def baseline(lease: int, renew: int, retry: int) -> Callable[[str, str, Path], Any]:
        return lambda ns, pod, tmp: BaselineElector(
            ns, pod, "vip", tmp / f"baseline-{pod}.log", (lease, renew, retry)
        )

    plans: dict[str, tuple[str, Callable[[str, str, Path], Any], int]] = {
        "ours_5s": ("ours5", ours(5, 3, 1), args.trials),
        "ours_2s": ("ours2", ours_fast(), args.trials),
        "baseline_5s": ("base5", baseline(5, 3, 1), args.baseline_trials or args.trials),
        "baseline_15s": ("base15", baseline(15, 10, 2), args.baseline_default_trials),
    }
    chosen = [] if args.series == "none" else args.series.split(",") if args.series else list(plans)
    if unknown := set(chosen) - set(plans):
        parser.error(f"unknown series {sorted(unknown)}; choose from {sorted(plans)}")
    install_crd()
    wait_quiet(core)
    series = {
        name: run_series(api_client, core, custom, label, start, trials, tmp)
        for name, (label, start, trials) in plans.items()
        if name in chosen
    }
    if args.real_node:
        series["real_node_5s"] = run_real_node_series(
            api_client, core, custom, args.trials, tmp,
            route_watcher=RouteWatcher, lease_watcher=LeaseWatcher,
            freeze_trials=args.freeze_trials, freeze_seconds=args.freeze_seconds,
        )  # fmt: skip
    table = {
        name: {mode: summary(values) for mode, values in s.items() if mode != "trials" and values}
        for name, s in series.items()
    }

    def cell(name: str, mode: str, stat: str) -> float | None:
        return (table.get(name) or {}).get(mode, {}).get(stat)

    result = {
        "benchmark": "failover",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "lease_seconds": 5,
        "graceful_p50": cell("ours_5s", "graceful", "p50"),
        "graceful_p99": cell("ours_5s", "graceful", "p99"),
        "crash_p50": cell("ours_5s", "crash", "p50"),
        "crash_p99": cell("ours_5s", "crash", "p99"),
        "lease2s_graceful_p99": cell("ours_2s", "graceful", "p99"),
        "lease2s_crash_p99": cell("ours_2s", "crash", "p99"),
        "baseline_graceful_p99": cell("baseline_5s", "graceful", "p99"),
        "baseline_crash_p99": cell("baseline_5s", "crash", "p99"),
        "clientgo_defaults_graceful_p99": cell("baseline_15s", "graceful", "p99"),
        "clientgo_defaults_crash_p99": cell("baseline_15s", "crash", "p99"),
        "real_node_graceful_p99": cell("real_node_5s", "graceful", "p99"),
        "real_node_crash_p99": cell("real_node_5s", "crash", "p99"),
        "real_node_unhealthy_p99": cell("real_node_5s", "unhealthy", "p99"),
        "real_node_freeze_seconds_without_a_leader_max": cell("real_node_5s", "freeze", "max"),
        "real_node_kubelet_reported_dead": kubelet_floor(series.get("real_node_5s")),
        "series": table,
        "trials": {name: s["trials"] for name, s in series.items()},
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
        skip = ("series", "trials", "machine")
        print(json.dumps({k: v for k, v in result.items() if k not in skip}))


def kubelet_floor(real: dict[str, Any] | None) -> dict[str, float] | None:
    """When the API server showed a killed elector dead, over the crash trials: the floor a
    takeover at the kubelet's speed can build on."""
    seen = [
        t["kubelet_reported_dead"]
        for t in (real or {}).get("trials", [])
        if t["mode"] == "crash" and t["kubelet_reported_dead"] is not None
    ]
    return summary(seen) if seen else None


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
    return lambda ns, pod, tmp: ElectorProcess(
        ns, pod, ["elect", "--lease", "vip", *timing], tmp / f"elector-fast-{pod}.log"
    )


if __name__ == "__main__":
    main()
