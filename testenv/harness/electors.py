"""ha-elector sidecars as local processes, for pods that run no containers (kwok's): what a
kubelet would do for them, and a watcher of where a Service routes.

One process is `haoperator elect` acting for one pod (ElectorProcess). LocalElectors starts one
for every running pod that has the ha-elector native sidecar, with the sidecar's own arguments,
and sends SIGTERM when the pod is being deleted, so the elector releases its Lease as it would
in a real pod. ElectorStandIns does that for the pods of one HAService (the tests), and
testenv/sidecars.py for whole namespaces (`make dev`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from kubernetes import client, watch

from testenv.harness.cluster import REPO, free_port, kubeconfig_path

SIDECAR = "ha-elector"


def leader_status(host: str | None, port: int, timeout: float = 1.0) -> int:
    """GET /leader of an elector: 200 when it leads, 503 when not, 0 when it does not answer."""
    if not host:
        return 0
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/leader", timeout=timeout) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


class ElectorProcess:
    """`haoperator elect <args> --pod POD --namespace NS` on a free local port."""

    def __init__(
        self,
        namespace: str,
        pod: str,
        args: list[str],
        log: Path,
        *,
        kubeconfig: Path | None = None,
        log_format: str = "json",
    ) -> None:
        """`args`: the command's own, `elect` first (as the sidecar's container has them)."""
        self.pod = pod
        self.port = free_port()
        self.log_path = log
        cmd = [
            str(Path(sys.executable).parent / "haoperator"), *args,
            "--namespace", namespace, "--pod", pod, "--port", str(self.port),
            "--bind", "127.0.0.1", "--log-format", log_format,
            "--kubeconfig", str(kubeconfig or kubeconfig_path()),
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k not in ("POD_NAME", "POD_NAMESPACE")}
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO
            )

    def leader(self) -> int:
        """GET /leader: 200 when this elector leads, 503 otherwise (0: not answering)."""
        return leader_status("127.0.0.1", self.port)

    def running(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def terminate(self) -> None:
        """The kubelet's SIGTERM: the elector releases its Lease and exits."""
        if self.running():
            self.proc.send_signal(signal.SIGCONT)  # a paused one must hear it
            self.proc.terminate()

    def stop(self) -> None:
        """SIGTERM, and wait (SIGKILL after 15 s)."""
        self.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class LocalElectors:
    """The kubelet's part for the ha-elector sidecars of pods that run no containers."""

    def __init__(
        self,
        kubeconfig: Path,
        log_dir: Path,
        *,
        log_format: str = "json",
        skip_node: str | None = None,
    ) -> None:
        """`skip_node`: a node whose pods run their sidecars themselves (a real node)."""
        self.kubeconfig, self.log_dir = kubeconfig, log_dir
        self.log_format, self.skip_node = log_format, skip_node
        self.processes: dict[tuple[str, str], ElectorProcess] = {}
        self.retired: list[ElectorProcess] = []
        """Those told to stop (their pod went): waited for by `stop`."""
        self.crashed: set[str] = set()
        self.logs: list[Path] = []
        self.lock = threading.Lock()
        self.closed = False  # once stopping, start no elector

    def sync(self, namespace: str, pods: Iterable[Any]) -> None:
        """`pods`: every pod of `namespace` that may have the sidecar, as they are now (client
        models). Pods gone or being deleted lose their elector; running ones get one."""
        live = {p.metadata.name: p for p in pods if p.metadata.deletion_timestamp is None}
        with self.lock:
            for key in [k for k in self.processes if k[0] == namespace and k[1] not in live]:
                process = self.processes.pop(key)
                process.terminate()
                self.retired.append(process)
            for name, pod in live.items():
                if (namespace, name) in self.processes or name in self.crashed or self.closed:
                    continue
                sidecar = next(
                    (c for c in pod.spec.init_containers or [] if c.name == SIDECAR), None
                )
                if sidecar is None or (pod.status.phase or "") != "Running":
                    continue
                if self.skip_node is not None and pod.spec.node_name == self.skip_node:
                    continue
                log = self.log_dir / f"elector-{namespace}-{name}.log"
                self.logs.append(log)
                self.processes[(namespace, name)] = ElectorProcess(
                    namespace, name, list(sidecar.args or []), log,
                    kubeconfig=self.kubeconfig, log_format=self.log_format,
                )  # fmt: skip

    def crash(self, pod: str) -> None:
        """SIGKILL the elector of `pod` and never restart it: a hung or dead sidecar."""
        with self.lock:
            self.crashed.add(pod)
            for (_, name), process in self.processes.items():
                if name == pod and process.running():
                    process.signal(signal.SIGKILL)
                    process.proc.wait(timeout=10)

    def running(self) -> set[str]:
        """The pods whose elector runs."""
        with self.lock:
            return {name for (_, name), p in self.processes.items() if p.running()}

    def stop(self) -> None:
        with self.lock:
            self.closed = True
            processes = [*self.processes.values(), *self.retired]
            self.processes.clear()
            self.retired.clear()
        for process in processes:
            process.terminate()
        for process in processes:
            process.stop()

    def log_tail(self, lines: int = 20) -> str:
        parts = []
        for log in self.logs:
            text = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(parts)


class ElectorStandIns(LocalElectors):
    """LocalElectors for the pods of one ActivePassive HAService, following them every quarter
    second, with `kubeconfig` (a token of the elector ServiceAccount, say). `error` holds what
    stopped the following, for the test to report."""

    def __init__(
        self, core: client.CoreV1Api, namespace: str, name: str, kubeconfig: Path, log_dir: Path
    ) -> None:
        super().__init__(kubeconfig, log_dir)
        self.core, self.namespace, self.name = core, namespace, name
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"electors-{name}", daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> ElectorStandIns:
        self.thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.done.set()
        self.thread.join(timeout=10)
        self.stop()

    def _loop(self) -> None:
        try:
            while not self.done.is_set():
                pods = self.core.list_namespaced_pod(
                    self.namespace, label_selector=f"haoperator.dev/service={self.name}"
                ).items
                self.sync(self.namespace, pods)
                self.done.wait(0.25)
        except BaseException as exc:  # reported by the test through `error`
            self.error = exc


class RouteWatcher:
    """Follows the Service's EndpointSlices and remembers every set of ready pods it routed to."""

    def __init__(self, api: client.ApiClient, namespace: str, service: str) -> None:
        self.api, self.namespace, self.service = api, namespace, service
        self.slices: dict[str, set[str]] = {}
        self.history: list[frozenset[str]] = []
        self.timeline: list[tuple[float, frozenset[str]]] = []
        """(when, the pods routed) at every change: where a benchmark's trial spent its time."""
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self._stop = threading.Event()
        self._watch = watch.Watch()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        discovery = client.DiscoveryV1Api(self.api)
        while not self._stop.is_set():
            try:
                for event in self._watch.stream(
                    discovery.list_namespaced_endpoint_slice,
                    self.namespace,
                    label_selector=f"kubernetes.io/service-name={self.service}",
                    timeout_seconds=30,
                ):
                    self._take(event["type"], event["raw_object"])
            except Exception:
                if not self._stop.is_set():
                    self._stop.wait(0.2)

    def _take(self, kind: str, obj: dict[str, Any]) -> None:
        ready = {
            e["targetRef"]["name"]
            for e in obj.get("endpoints") or []
            if (e.get("conditions") or {}).get("ready") and e.get("targetRef")
        }
        with self.changed:
            if kind == "DELETED":
                self.slices.pop(obj["metadata"]["name"], None)
            else:
                self.slices[obj["metadata"]["name"]] = ready
            routed = frozenset().union(*self.slices.values()) if self.slices else frozenset()
            if not self.history or self.history[-1] != routed:
                self.history.append(routed)
                self.timeline.append((time.monotonic(), routed))
            self.changed.notify_all()

    def current(self) -> frozenset[str]:
        with self.lock:
            return self.history[-1] if self.history else frozenset()

    def first(self, since: float, routed: Callable[[frozenset[str]], bool]) -> float | None:
        """When the routed pods first satisfied `routed` after `since`."""
        with self.lock:
            return next((at for at, pods in self.timeline if at >= since and routed(pods)), None)

    def most_at_once(self) -> int:
        with self.lock:
            return max((len(h) for h in self.history), default=0)

    def stop(self) -> None:
        self._stop.set()
        self._watch.stop()
