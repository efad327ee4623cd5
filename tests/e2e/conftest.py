"""The e2e tier: what a user sees, against any cluster in $KUBECONFIG.

Where the operator comes from:
- by default, the cluster must already run it, installed with `kubectl apply -k manifests/`
  (as `make kind-e2e` does, and the real-node tier with an overlay of it); the suite fails at
  once, saying so, if the Deployment haoperator-system/haoperator is missing or not Available.
  It never falls back to a local operator by itself: a broken installation must not pass as a
  working one.
- with HAOPERATOR_E2E_LOCAL_OPERATOR=1, each test runs `haoperator run --namespace <its own>`
  as a local process instead, after installing the CRD: how `make test` exercises this suite
  on the local control plane's kwok nodes, where no container runs.

Where the pods run:
- by default, wherever the scheduler puts them;
- with HAOPERATOR_E2E_NODE=<node>, on that node only: every HAService the suite creates gets a
  nodeSelector for it and tolerates its taints. tests/realnode/test_e2e.py runs the suite so on
  the local cluster's real node (testenv/node), with the operator installed in the cluster;
- HAOPERATOR_E2E_IMAGES=OLD=NEW[,OLD=NEW] replaces images in those HAServices, as a kustomize
  `images:` would, for a node that cannot pull the public ones (the real node has no registry).

Where the nodes are kwok's fake kubelets (pods run no containers), the ha-elector sidecars of
ActivePassive pods are played by local `haoperator elect` processes, each with a token of the
elector ServiceAccount the operator made, started and stopped with their pods. On nodes that run
containers (kind, the real node) the sidecars run in the pods, from the operator's image, and
nothing is played. Where pods really run and the cluster's default StorageClass makes volumes no
kubelet can mount (the local cluster's: network volumes nobody serves), the claims a test makes
are bound to hostPath volumes of the suite's own (`volumes`, HostVolumes).

Each test gets a fresh namespace that enforces the `restricted` Pod Security Standard.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from testenv.harness.cluster import (
    REPO,
    Kubectl,
    exists,
    make_kubectl,
    token_kubeconfig,
    wait_until,
)
from testenv.harness.electors import ElectorStandIns
from testenv.harness.operator_process import OperatorProcess
from tests.e2e.support import (
    OPERATOR,
    SYSTEM_NAMESPACE,
    HostVolumes,
    Placement,
    fake_kubelets,
    image_overrides,
)

LOCAL_OPERATOR = os.environ.get("HAOPERATOR_E2E_LOCAL_OPERATOR") == "1"
NODE = os.environ.get("HAOPERATOR_E2E_NODE") or None
Electors = Callable[[str], ElectorStandIns | None]


@pytest.fixture(scope="session")
def kubectl() -> Kubectl:
    return make_kubectl()


@pytest.fixture(scope="session")
def installed(api_client: ApiClient, apps: client.AppsV1Api, kubectl: Kubectl) -> None:
    """The CRD, and the operator as the mode says (see the module docstring)."""
    if LOCAL_OPERATOR:
        if exists(lambda: apps.read_namespaced_deployment(OPERATOR, SYSTEM_NAMESPACE)):
            pytest.fail(
                "HAOPERATOR_E2E_LOCAL_OPERATOR=1, but the cluster runs an operator too "
                f"(Deployment {SYSTEM_NAMESPACE}/{OPERATOR}, for all namespaces): it would fight "
                "the local ones over this suite's HAServices. Remove it first: "
                f"`kubectl -n {SYSTEM_NAMESPACE} delete deployment {OPERATOR}`.",
                pytrace=False,
            )
        result = kubectl("apply", "--server-side", "--force-conflicts", "-k", str(REPO / "crds"))
        assert result.returncode == 0, result.stderr
    else:
        if not exists(lambda: apps.read_namespaced_deployment(OPERATOR, SYSTEM_NAMESPACE)):
            pytest.fail(
                f"haoperator is not installed: no Deployment {SYSTEM_NAMESPACE}/{OPERATOR}. "
                "Install it with `kubectl apply -k manifests/`, or set "
                "HAOPERATOR_E2E_LOCAL_OPERATOR=1 to run the operator as a local process.",
                pytrace=False,
            )
        wait_until(lambda: _available(apps), timeout=180, what="the installed operator Available")
    result = kubectl(
        "wait", "--for=condition=Established", "crd/haservices.haoperator.dev", "--timeout=60s"
    )
    assert result.returncode == 0, result.stderr


def _available(apps: client.AppsV1Api) -> bool:
    status = apps.read_namespaced_deployment(OPERATOR, SYSTEM_NAMESPACE).status
    return any(c.type == "Available" and c.status == "True" for c in status.conditions or [])


@pytest.fixture
def namespace(
    installed: None, core: client.CoreV1Api, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A fresh namespace that enforces `restricted`, as a production namespace would."""
    base = request.node.name[:36].lower().replace("_", "-").strip("-")
    name = "".join(c for c in f"e2e-{base}-{uuid.uuid4().hex[:5]}" if c.isalnum() or c == "-")
    labels = {
        "haoperator.dev/test": "true",
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    core.create_namespace({"metadata": {"name": name, "labels": labels}})
    wait_until(
        lambda: exists(lambda: core.read_namespaced_service_account("default", name)),
        timeout=30,
        what="default ServiceAccount",
    )
    yield name
    core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def operator(installed: None, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess | None]:
    """The local operator for this namespace, or None where the cluster runs one."""
    if not LOCAL_OPERATOR:
        yield None
        return
    process = OperatorProcess([namespace], tmp_path / "operator.log").start()
    yield process
    code = process.stop()
    assert code == 0, f"operator exited {code} on SIGTERM:\n{process.log_tail()}"


@pytest.fixture(scope="session")
def place(core: client.CoreV1Api) -> Placement:
    """`place(body)`: the HAService body as the suite creates it (see the module docstring)."""
    node = None
    if NODE is not None:
        try:
            node = core.read_node(NODE)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            pytest.fail(f"HAOPERATOR_E2E_NODE={NODE}: no such node in the cluster", pytrace=False)
    return Placement(node, image_overrides(os.environ.get("HAOPERATOR_E2E_IMAGES", "")))


@pytest.fixture(scope="session")
def sidecars_run_in_pods(core: client.CoreV1Api) -> bool:
    return not fake_kubelets(core, NODE)


@pytest.fixture
def volumes(
    sidecars_run_in_pods: bool, core: client.CoreV1Api, namespace: str
) -> Iterator[HostVolumes]:
    """`volumes(claim, ...)`: before a test makes these claims, volumes its pods can mount where
    the cluster's own cannot be (see HostVolumes); elsewhere nothing."""
    made = HostVolumes(core, namespace, needed=sidecars_run_in_pods)
    yield made
    made.delete()


@pytest.fixture
def electors(
    sidecars_run_in_pods: bool,
    core: client.CoreV1Api,
    kubectl: Kubectl,
    namespace: str,
    tmp_path: Path,
) -> Iterator[Electors]:
    """`electors(name)`: where pods run no containers, start stand-ins for the ha-elector
    sidecars of HAService `name` (returned, for their logs); elsewhere nothing (None)."""
    started: list[ElectorStandIns] = []

    def start(name: str) -> ElectorStandIns | None:
        if sidecars_run_in_pods:
            return None
        wait_until(
            lambda: exists(
                lambda: core.read_namespaced_service_account(f"{name}-elector", namespace)
            ),
            timeout=60,
            what=f"ServiceAccount {name}-elector",
        )
        path = token_kubeconfig(kubectl, namespace, f"{name}-elector", tmp_path / f"{name}.kc")
        stand_ins = ElectorStandIns(core, namespace, name, path, tmp_path).__enter__()
        started.append(stand_ins)
        return stand_ins

    yield start
    for stand_ins in started:
        stand_ins.__exit__(None, None, None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not report.failed:
        return
    process = getattr(item, "funcargs", {}).get("operator")
    if isinstance(process, OperatorProcess):
        report.sections.append(("operator log", process.log_tail(80)))
    elif "operator" in getattr(item, "funcargs", {}):
        logs = make_kubectl()("-n", SYSTEM_NAMESPACE, "logs", f"deployment/{OPERATOR}", "--tail=80")
        report.sections.append(("operator log", logs.stdout or logs.stderr))
