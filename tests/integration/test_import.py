"""What `haoperator import` prints, on the real API server: every golden output passes the server's
dry run, and imported services of each runnable category become Ready under the operator, their
pods admitted by a namespace that enforces the restricted Pod Security Standard.

ActivePassive pods need the ha-elector sidecar, which cannot run on this fake cluster: they are
only checked to be accepted and given their Deployment.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from haoperator.yamlout import dump_all
from testenv.harness.cluster import REPO, wait_until
from testenv.harness.operator_process import OperatorProcess
from tests.integration import haservices as has

pytestmark = pytest.mark.cluster
Kubectl = Callable[..., subprocess.CompletedProcess[str]]
DATA = REPO / "tests" / "data" / "import"
GOLDEN = sorted(DATA.glob("*/*.out.yaml"))
RUNNABLE = {
    "httpd": ("pacemaker/stateless-clones", "LoadBalanced"),
    "openstack-nova-conductor": ("pacemaker/stateless-clones", "QueueWorker"),
    "galera-bundle": ("pacemaker/tripleo-overcloud", "Clustered"),
    "inventory-api": ("systemd/inventory-api", "LoadBalanced"),
}
ACTIVE_PASSIVE = ("redis-bundle", "pacemaker/tripleo-overcloud")


def _documents(case: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((DATA / f"{case}.out.yaml").read_text()))


def _pick(name: str, case: str) -> dict[str, Any]:
    return next(d for d in _documents(case) if d["metadata"]["name"] == name)


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_every_imported_haservice_passes_the_servers_dry_run(
    golden: Path, crd: None, namespace: str, kubectl: Kubectl
) -> None:
    applied = kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(golden), "-o", "json")
    assert applied.returncode == 0, applied.stderr
    returned = json.loads(applied.stdout)
    items = returned["items"] if returned["kind"] == "List" else [returned]
    names = [item["metadata"]["name"] for item in items]
    assert names == [doc["metadata"]["name"] for doc in yaml.safe_load_all(golden.read_text())]


def test_imported_services_become_ready_in_a_restricted_namespace(
    namespace: str,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    apps: client.AppsV1Api,
    kubectl: Kubectl,
) -> None:
    restricted = kubectl(
        "label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted"
    )
    assert restricted.returncode == 0, restricted.stderr
    documents = [_pick(name, case) for name, (case, _) in RUNNABLE.items()]
    documents.append(_pick(*ACTIVE_PASSIVE))
    applied = kubectl("apply", "-n", namespace, "-f", "-", stdin=dump_all(documents))
    assert applied.returncode == 0, applied.stderr

    for name, (_, category) in RUNNABLE.items():
        _wait_ready(custom, namespace, name, category)
    active_passive = ACTIVE_PASSIVE[0]
    deployment = wait_until(
        lambda: _deployment(apps, namespace, active_passive),
        timeout=60,
        what=f"the Deployment of imported ActivePassive {active_passive}",
    )
    assert deployment.spec.replicas == 3


def _wait_ready(custom: client.CustomObjectsApi, namespace: str, name: str, category: str) -> None:
    """Wait for Ready; on a timeout, say what the HAService's status said last."""
    try:
        wait_until(
            lambda: has.is_ready(custom, namespace, name),
            timeout=300,
            what=f"imported {category} {name} Ready",
        )
    except AssertionError as error:
        status = has.get(custom, namespace, name).get("status")
        raise AssertionError(f"{error}; its status: {json.dumps(status)}") from None
    assert has.get(custom, namespace, name)["spec"]["category"] == category


def _deployment(apps: client.AppsV1Api, namespace: str, name: str) -> Any:
    try:
        return apps.read_namespaced_deployment(name, namespace)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise
