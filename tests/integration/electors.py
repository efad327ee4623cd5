"""ha-elector sidecars as local processes, one per kwok pod (kwok pods run no containers), and a
watcher of what the Service routes to, for the active/passive tests and the failover benchmark."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

from kubernetes import client, watch

from tests.integration.operator_process import free_port
from tests.support import REPO, kubeconfig_path


class Elector:
    def __init__(
        self,
        namespace: str,
        pod: str,
        lease: str,
        log: Path,
        *args: str,
        kubeconfig: Path | None = None,
    ) -> None:
        self.pod = pod
        self.port = free_port()
        cmd = [
            str(Path(sys.executable).parent / "haoperator"),
            "elect",
            "--namespace", namespace, "--pod", pod, "--lease", lease,
            "--port", str(self.port), "--bind", "127.0.0.1", "--log-format", "json", *args,
        ]  # fmt: skip
        env = {**os.environ, "KUBECONFIG": str(kubeconfig or kubeconfig_path())}
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=REPO
        )

    def leader(self) -> int:
        """GET /leader: 200 when this elector leads, 503 otherwise (0: not answering)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/leader", timeout=1) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class RouteWatcher:
    """Follows the Service's EndpointSlices and remembers every set of ready pods it routed to."""

    def __init__(self, api: client.ApiClient, namespace: str, service: str) -> None:
        self.api, self.namespace, self.service = api, namespace, service
        self.slices: dict[str, set[str]] = {}
        self.history: list[frozenset[str]] = []
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
            self.changed.notify_all()

    def current(self) -> frozenset[str]:
        with self.lock:
            return self.history[-1] if self.history else frozenset()

    def most_at_once(self) -> int:
        with self.lock:
            return max((len(h) for h in self.history), default=0)

    def stop(self) -> None:
        self._stop.set()
        self._watch.stop()
