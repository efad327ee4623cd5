"""The e2e tier: what a user sees, against any cluster in $KUBECONFIG.

Where the operator comes from:
- by default, the cluster must already run it, installed with `kubectl apply -k manifests/`
  (as `make kind-e2e` does); the suite fails at once, saying so, if the Deployment
  haoperator-system/haoperator is missing or not Available. It never falls back to a local
  operator by itself: a broken installation must not pass as a working one.
- with HAOPERATOR_E2E_LOCAL_OPERATOR=1, each test runs `haoperator run --namespace <its own>`
  as a local process instead, after installing the CRD: how `make test` exercises this suite
  on the local control plane, where the operator image cannot run.

Where the nodes are kwok's fake kubelets (pods run no containers), the ha-elector sidecars of
ActivePassive pods are played by local `haoperator elect` processes, each with a token of the
elector ServiceAccount the operator made, started and stopped with their pods. On a real
cluster (kind) the sidecars run in the pods, from the operator's image.

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
from tests.e2e.support import OPERATOR, SYSTEM_NAMESPACE, fake_kubelets

LOCAL_OPERATOR = os.environ.get("HAOPERATOR_E2E_LOCAL_OPERATOR") == "1"
Electors = Callable[[str], ElectorStandIns | None]


@pytest.fixture(scope="session")
def kubectl() -> Kubectl:
    return make_kubectl()


@pytest.fixture(scope="session")
def installed(api_client: ApiClient, apps: client.AppsV1Api, kubectl: Kubectl) -> None:
    """The CRD, and the operator as the mode says (see the module docstring)."""
    if LOCAL_OPERATOR:
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
def sidecars_run_in_pods(core: client.CoreV1Api) -> bool:
    return not fake_kubelets(core)


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
