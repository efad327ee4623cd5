"""The real-node tier: tests that need containers that really run, on the local cluster's real
node (testenv/node, started by `make cluster`). A test that cannot get the node fails with the
reason; nothing is skipped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from tests.realnode.support import REAL_NODE, restricted_namespace


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A module that sets RESTARTS_CLUSTER takes the whole cluster down and up again: its tests
    run last, after every other test of the session has had the cluster it expects."""
    last = [item for item in items if getattr(getattr(item, "module", None), "RESTARTS_CLUSTER", 0)]
    items[:] = [item for item in items if item not in last] + last


@pytest.fixture
def real_node(core: client.CoreV1Api) -> str:
    """The real node's name, once it is Ready."""
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
