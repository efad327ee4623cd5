"""The integration tier: every test talks to the real local API server (make cluster).

A test that needs the cluster and cannot reach it fails with the reason; nothing is skipped.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from testenv.harness.cluster import REPO, Kubectl, exists, make_kubectl, wait_until
from testenv.harness.operator_process import OperatorProcess
from tests.integration import haservices as has


@pytest.fixture
def namespace(core: client.CoreV1Api, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, with its default ServiceAccount ready; deleted afterwards."""
    name = f"t-{request.node.name[:40].lower().replace('_', '-').strip('-')}-{uuid.uuid4().hex[:5]}"
    name = "".join(c for c in name if c.isalnum() or c == "-")
    core.create_namespace({"metadata": {"name": name, "labels": {"haoperator.dev/test": "true"}}})
    wait_until(
        lambda: exists(lambda: core.read_namespaced_service_account("default", name)),
        timeout=30,
        what="default ServiceAccount",
    )
    yield name
    core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture(scope="session")
def kubectl() -> Kubectl:
    """Run the cluster's own kubectl; returns the completed process (check=False)."""
    return make_kubectl()


@pytest.fixture(scope="session")
def chaos() -> Callable[..., None]:
    """testenv/chaos, for failure tests."""

    def run(*args: str) -> None:
        subprocess.run([str(REPO / "testenv" / "chaos"), *args], check=True, timeout=60)

    return run


@pytest.fixture
def downed(chaos: Callable[..., None]) -> Iterator[list[str]]:
    """Nodes a test takes down come back up, whatever happens."""
    nodes: list[str] = []
    yield nodes
    for node in nodes:
        chaos("node-up", node)


def ready_pods(core: client.CoreV1Api, namespace: str, selector: str) -> list[Any]:
    pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    return [
        p
        for p in pods
        if p.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
    ]


def ready_elsewhere(
    core: client.CoreV1Api, namespace: str, service: str, member: str, lost_node: str
) -> bool:
    """The StatefulSet member is Ready again, on a node other than the lost one."""
    selector = f"haoperator.dev/service={service}"
    pods = {p.metadata.name: p for p in ready_pods(core, namespace, selector)}
    return member in pods and pods[member].spec.node_name != lost_node


def force_deleted_and_back(
    core: client.CoreV1Api, namespace: str, service: str, member: str, lost_node: str
) -> None:
    """A node-loss recovery finished: PodForceDeleted reported, the member Ready elsewhere."""
    wait_until(
        lambda: has.events(core, namespace, service, "PodForceDeleted"),
        timeout=60,
        what="PodForceDeleted",
    )
    wait_until(
        lambda: ready_elsewhere(core, namespace, service, member, lost_node),
        timeout=60,
        what=f"{member} Ready on another node",
    )


def node_ready(core: client.CoreV1Api, name: str) -> str:
    node = core.read_node(name)
    return next(c.status for c in node.status.conditions if c.type == "Ready")


@pytest.fixture(scope="session")
def crd(api_client: ApiClient, kubectl: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    """The HAService CRD, as committed, installed and established."""
    result = kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds" / "haservice.yaml")
    )
    assert result.returncode == 0, result.stderr
    result = kubectl(
        "wait", "--for=condition=Established", "crd/haservices.haoperator.dev", "--timeout=60s"
    )
    assert result.returncode == 0, result.stderr
    # This tier runs its own operators, one per test namespace; an operator installed in the
    # cluster (the real-node tier's, watching every namespace) would fight them.
    installed = kubectl("-n", "haoperator-system", "get", "deployment", "haoperator", "-o", "name")
    if installed.returncode == 0:
        pytest.fail(
            "an operator is installed in the cluster (haoperator-system/haoperator): it would "
            "reconcile this tier's HAServices too; remove it (kubectl delete -k manifests/)",
            pytrace=False,
        )


@pytest.fixture
def operator(crd: None, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    """`haoperator run` for this test's namespace; its log is printed when the test fails."""
    process = OperatorProcess([namespace], tmp_path / "operator.log").start()
    yield process
    code = process.stop()
    assert code == 0, f"operator exited {code} on SIGTERM:\n{process.log_tail()}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    process = getattr(item, "funcargs", {}).get("operator")
    if report.failed and isinstance(process, OperatorProcess):
        report.sections.append(("operator log", process.log_tail(80)))
