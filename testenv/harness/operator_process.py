"""The operator as users run it: `haoperator run` in a local process, watching some namespaces;
its liveness, metrics, memory and CPU as the tests and the benchmarks read them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from testenv.harness.cluster import REPO, free_port, kubeconfig_path, wait_until


class OperatorProcess:
    def __init__(
        self,
        namespaces: list[str],
        log_path: Path,
        *,
        extra_args: list[str] | None = None,
        kubeconfig: Path | None = None,
        workers: int = 4,
        log_level: str = "info",
        leader_elect: str | None = None,
        lease_timing: tuple[float, float, float] | None = None,
    ) -> None:
        """`kubeconfig`: whose credentials the operator uses (default: kubeconfig_path()).
        `leader_elect`: run with --leader-elect, its Lease in that namespace (default: off, as
        `make dev` and testenv/dev run it); `lease_timing`: its lease duration, renew deadline
        and retry period (default: the operator's, 15/10/2 s)."""
        self.leader_elect, self.lease_timing = leader_elect, lease_timing
        self.namespaces = namespaces
        self.log_path = log_path
        self.extra_args = extra_args or []
        self.kubeconfig = kubeconfig
        self.workers, self.log_level = workers, log_level
        self.port = free_port()
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        """Start it and wait until it answers its liveness probe."""
        args = [str(Path(sys.executable).parent / "haoperator"), "run", "--log-format", "json"]
        for ns in self.namespaces:
            args += ["--namespace", ns]
        args += ["--liveness-port", str(self.port), "--metrics-port", str(self.metrics_port)]
        args += ["--workers", str(self.workers), "--log-level", self.log_level]
        if self.leader_elect is not None:
            args += ["--leader-elect", "--leader-elect-namespace", self.leader_elect]
        if self.lease_timing is not None:
            for flag, seconds in zip(
                ("lease-duration", "renew-deadline", "retry-period"), self.lease_timing, strict=True
            ):
                args += [f"--leader-elect-{flag}", str(seconds)]
        args += self.extra_args
        # As a user would run it: --kubeconfig alone, no KUBECONFIG in the environment.
        args += ["--kubeconfig", str(self.kubeconfig or kubeconfig_path())]
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO
            )
        wait_until(self._live, timeout=60, what="operator liveness endpoint")
        return self

    def _live(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"operator exited with {self.proc.returncode}:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stop it; returns the exit code (a clean SIGTERM shutdown exits 0)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"operator did not stop within 30 s:\n{self.log_tail()}") from None

    def metrics(self) -> dict[str, float]:
        """Its Prometheus samples, `name{labels}` -> value, as /metrics serves them."""
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as response:
            text = response.read().decode()
        samples: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def requests_by_method(self) -> dict[str, float]:
        """Its own API requests so far (haoperator_api_requests_total; not its watches)."""
        prefix = 'haoperator_api_requests_total{method="'
        return {
            name[len(prefix) :].split('"', 1)[0]: value
            for name, value in self.metrics().items()
            if name.startswith(prefix)
        }

    def metrics_quiet(self, seconds: float = 3.0) -> bool:
        """Whether it made no request and ran no reconcile for `seconds` (a condition to wait
        for, not a timing to assert)."""

        def activity() -> float:
            samples = self.metrics()
            return sum(
                v
                for k, v in samples.items()
                if k.startswith(("haoperator_api_requests_total{", "haoperator_reconcile_total{"))
            )

        before = activity()
        time.sleep(seconds)
        return activity() == before

    def leading(self) -> bool:
        """What its haoperator_leader gauge says (always True without --leader-elect)."""
        return any(
            name.startswith("haoperator_leader{") and value == 1.0
            for name, value in self.metrics().items()
        )

    def writes(self) -> float:
        """Requests it made that change something on the API server (all but GET)."""
        return sum(v for method, v in self.requests_by_method().items() if method != "GET")

    def peak_rss_mib(self) -> float:
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        found = re.search(r"VmHWM:\s+(\d+) kB", status)
        return int(found.group(1)) / 1024 if found else 0.0

    def cpu_seconds(self) -> float:
        """User + system CPU it has used so far."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
