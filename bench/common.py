"""Shared by the benchmarks: the cluster's clients, the machine and its CPU, namespaces, results.
(The operator and elector processes, kubectl and waiting are testenv/harness's.)"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client, config

from testenv.harness.cluster import REPO, exists, kubeconfig_path, kubectl_binary, wait_until

KUBECONFIG = str(kubeconfig_path())


def api() -> client.ApiClient:
    configuration = client.Configuration()
    config.load_kube_config(config_file=KUBECONFIG, client_configuration=configuration)
    configuration.connection_pool_maxsize = 32
    return client.ApiClient(configuration)


def machine() -> dict[str, Any]:
    mem = next(
        (
            int(line.split()[1]) // 1024
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpus": os.cpu_count(),
        "memory_mib": mem,
        "cpu": cpu,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def cpu_by_program() -> dict[str, float]:
    """CPU seconds used so far by every running program, by name (kube-apiserver, etcd, kwok,
    python...): the difference over a phase says which part of the machine did the work."""
    tick = os.sysconf("SC_CLK_TCK")
    totals: dict[str, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # gone meanwhile
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        totals[name] = totals.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return totals


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """The programs that used at least a CPU second between two cpu_by_program() readings."""
    delta = {k: round(v - before.get(k, 0.0), 1) for k, v in after.items()}
    return dict(sorted(((k, v) for k, v in delta.items() if v >= 1), key=lambda kv: -kv[1]))


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values) - idle) / tick, sum(values) / tick


def delete_namespace(core: client.CoreV1Api, name: str, timeout: float = 900) -> None:
    """Delete and wait until it is gone: the garbage collector's work must not be measured."""
    core.delete_namespace(name)
    wait_until(
        lambda: not exists(lambda: core.read_namespace(name)),
        timeout=timeout,
        what=f"namespace {name} deleted",
        interval=1.0,
    )


def new_namespace(core: client.CoreV1Api, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"haoperator.dev/bench": "true"}}})
    wait_until(
        lambda: exists(lambda: core.read_namespaced_service_account("default", name)),
        timeout=30,
        what="default ServiceAccount",
        interval=0.5,
    )
    return name


def apiserver_requests(api_client: client.ApiClient, resources: set[str]) -> dict[str, float]:
    """apiserver_request_total summed by verb, for the given resources (all clients)."""
    text = subprocess.run(
        [kubectl_binary(), "--kubeconfig", KUBECONFIG, "get", "--raw", "/metrics"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if labels.get("resource") in resources:
            totals[labels["verb"]] = totals.get(labels["verb"], 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


def install_crd() -> None:
    """The benchmarks run on a bare `make cluster`: install (or update) the HAService CRD."""
    kubectl = [kubectl_binary(), "--kubeconfig", KUBECONFIG]
    subprocess.run(
        [
            *kubectl,
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            str(REPO / "crds" / "haservice.yaml"),
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [*kubectl, "wait", "--for=condition=Established", "crd/haservices.haoperator.dev"],
        check=True,
        capture_output=True,
    )


def record(name: str, result: dict[str, Any]) -> Path:
    path = REPO / "bench" / "results" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    history = json.loads(path.read_text()) if path.exists() else []
    history.append(result)
    path.write_text(json.dumps(history, indent=2) + "\n")
    return path
