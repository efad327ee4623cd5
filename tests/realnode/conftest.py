"""The real-node tier: tests that need containers that really run, on the local cluster's real
node (testenv/node, started by `make cluster`). A test that cannot get the node fails with the
reason; nothing is skipped.

The operator these tests use is installed in the cluster as users install it, once per session
(`installed`), and uninstalled at the end: it runs for all namespaces, so the session first waits
for any other haoperator process on this machine to stop (another tier's, a benchmark's)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from kubernetes import client

from testenv.harness.cluster import wait_until
from tests.realnode.support import (
    INSTALLATIONS,
    REAL_NODE,
    Installation,
    local_images,
    operator_pod,
    other_operators,
    restricted_namespace,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A module that sets RESTARTS_CLUSTER takes the whole cluster down and up again: its tests
    run last, after every other test of the session has had the cluster it expects."""
    last = [item for item in items if getattr(getattr(item, "module", None), "RESTARTS_CLUSTER", 0)]
    items[:] = [item for item in items if item not in last] + last


@pytest.fixture
def real_node(core: client.CoreV1Api) -> str:
    """The real node's name, once it is Ready."""
    return check_real_node(core)


def check_real_node(core: client.CoreV1Api) -> str:
    try:
        node = core.read_node(REAL_NODE)
    except client.ApiException as exc:
        if exc.status != 404:
            raise
        pytest.fail(f"no real node {REAL_NODE} in the cluster: run `make cluster`", pytrace=False)
    ready = next((c.status for c in node.status.conditions or [] if c.type == "Ready"), None)
    if ready != "True":
        pytest.fail(f"the real node {REAL_NODE} is not Ready (Ready={ready})", pytrace=False)
    return REAL_NODE


@pytest.fixture
def namespace(core: client.CoreV1Api, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace that enforces the `restricted` Pod Security Standard."""
    name = restricted_namespace(core, "rn-" + request.node.name.lower().replace("_", "-"))
    yield name
    core.delete_namespace(name, propagation_policy="Background")


OTHERS_TIMEOUT = 900


@dataclass(frozen=True)
class Operator:
    """The operator as installed in the cluster: its pod."""

    pod: str
    pod_ip: str


@pytest.fixture(scope="session")
def installed(core: client.CoreV1Api, apps: client.AppsV1Api) -> Iterator[Operator]:
    """The operator installed as users install it (`kubectl apply -k` of
    tests/realnode/overlay/operator: manifests/ with the local image, on the real node), once
    per session, and uninstalled at its end: the integration tier runs operators of its own,
    and two operators on one HAService fight over it."""
    check_real_node(core)
    # Another haoperator on this machine (another tier's, a benchmark's) is waited for: an
    # operator installed for all namespaces would reconcile its HAServices too.
    try:
        wait_until(
            lambda: not other_operators(),
            timeout=OTHERS_TIMEOUT,
            what="other operators to stop",
            interval=2,
        )
    except AssertionError:
        pytest.fail(
            "another haoperator runs on this machine; an operator installed for all namespaces "
            "would fight it over its HAServices:\n" + "\n".join(other_operators()),
            pytrace=False,
        )
    local_images()
    installation = Installation()
    INSTALLATIONS.append(installation)
    try:
        installation.install(apps)
        pod = wait_until(lambda: operator_pod(core), timeout=60, what="the operator's pod")
        yield Operator(pod.metadata.name, pod.status.pod_ip)
    finally:
        installation.uninstall()
        INSTALLATIONS.remove(installation)


@pytest.fixture(autouse=True)
def _no_operator_across_a_restart(request: pytest.FixtureRequest) -> None:
    """A module that restarts the cluster (RESTARTS_CLUSTER) finds the operator uninstalled:
    its namespace would otherwise come back without it, or not at all."""
    if getattr(request.module, "RESTARTS_CLUSTER", 0):
        for installation in INSTALLATIONS:
            installation.uninstall()
