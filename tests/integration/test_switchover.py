"""A planned switchover on the real API server (docs/switchover.md): the annotation
haoperator.dev/switchover-to on an ActivePassive HAService, checked by the operator, passed on
to the leader's ha-elector through the Lease, and answered on the HAService.

Electors run as local processes for the kwok pods (the Pair of test_active_passive), an operator
process for the namespace. Every test watches the Service's EndpointSlices throughout: a
switchover, refused or done, never routes to two pods at once.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from haoperator.core.vocabulary import Annotation
from testenv.harness.cluster import Kubectl, kubeconfig_path, token_kubeconfig, wait_until
from testenv.harness.operator_process import OperatorProcess
from tests.e2e.support import OPERATOR, SYSTEM_NAMESPACE, forbidden_lines, install_access
from tests.integration import haservices as has
from tests.integration.test_active_passive import NAME, Pair

pytestmark = pytest.mark.cluster
TO, REQUESTED = Annotation.SWITCHOVER_TO, Annotation.SWITCHOVER_REQUESTED


@pytest.fixture
def pair(
    namespace: str,
    operator: OperatorProcess,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    tmp_path: Path,
) -> Iterator[Pair]:
    """An ActivePassive HAService `vip` with two pods, an elector each, one of them leading and
    the HAService Ready."""
    made = Pair(namespace, core, custom, tmp_path)
    try:
        made.leader()
        wait_until(lambda: has.is_ready(custom, namespace, NAME), timeout=30, what="Ready")
        yield made
        assert made.watcher.most_at_once() <= 1, (
            f"the Service routed to two pods: {made.watcher.history}"
        )
    finally:
        made.close()


def ask(custom: client.CustomObjectsApi, namespace: str, to: str) -> None:
    """What `kubectl annotate haservice vip haoperator.dev/switchover-to=<to>` does."""
    has.patch(custom, namespace, NAME, {"metadata": {"annotations": {TO: to}}})


def annotations(custom: client.CustomObjectsApi, namespace: str) -> dict[str, str]:
    return dict(has.get(custom, namespace, NAME)["metadata"].get("annotations") or {})


def status(custom: client.CustomObjectsApi, namespace: str) -> dict[str, Any]:
    return dict(has.get(custom, namespace, NAME).get("status") or {})


def lease_annotations(pair: Pair) -> dict[str, str]:
    return dict(pair.lease()["metadata"].get("annotations") or {})


def one_event(core: client.CoreV1Api, namespace: str, reason: str) -> Any:
    """Wait for the operator's event of `reason` on the HAService; it must be said once."""
    found = wait_until(
        lambda: has.events(core, namespace, NAME, reason), timeout=30, what=f"a {reason} event"
    )
    assert len(found) == 1, [e.message for e in found]
    assert int(found[0].count or 1) == 1, found[0]
    return found[0]


def a_pod_that_is_not_ready(core: client.CoreV1Api, namespace: str) -> str:
    """A pod of the service (by our labels) that is not Ready and stays so: held by a
    scheduling gate, so no (fake) kubelet ever starts it, and controlled by a ConfigMap, so the
    Deployment's ReplicaSet does not adopt and delete it."""
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "holder"}})
    name = f"{NAME}-not-ready"
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {
                "name": name,
                "labels": {
                    "app.kubernetes.io/managed-by": "haoperator",
                    "haoperator.dev/service": NAME,
                },
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": "holder",
                     "uid": owner.metadata.uid, "controller": True},
                ],
            },
            "spec": {
                "schedulingGates": [{"name": "haoperator.dev/test-hold"}],
                "containers": [has.container()],
            },
        },
    )  # fmt: skip
    return name


@pytest.mark.parametrize("target", ["not-ready", "unknown", "active"])
def test_a_refused_request_is_said_once_removed_and_moves_nothing(
    namespace: str,
    pair: Pair,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    target: str,
) -> None:
    leader = pair.leader()
    before = pair.lease()["spec"]
    pod, why = {
        "not-ready": (a_pod_that_is_not_ready(core, namespace), "is not ready"),
        "unknown": (f"{NAME}-nosuch", f"is not a pod of {NAME}"),
        "active": (leader, "is already active"),
    }[target]
    ask(custom, namespace, pod)
    refused = one_event(core, namespace, "SwitchoverRefused")
    assert refused.type == "Warning"
    assert refused.message.startswith(f"pod {pod} {why}"), refused.message
    wait_until(
        lambda: TO not in annotations(custom, namespace), timeout=10, what="the request removed"
    )
    assert REQUESTED not in annotations(custom, namespace)
    assert TO not in lease_annotations(pair)  # never passed on
    # Nothing moved, and the refusal is not said again by later reconciles.
    assert pair.leader() == leader
    after = pair.lease()["spec"]
    assert (after["holder_identity"], after["lease_transitions"]) == (
        leader,
        before["lease_transitions"],
    )
    assert "lastFailover" not in status(custom, namespace)
    assert len(has.events(core, namespace, NAME, "SwitchoverRefused")) == 1
    assert int(has.events(core, namespace, NAME, "SwitchoverRefused")[0].count or 1) == 1


def switched(
    pair: Pair, custom: client.CustomObjectsApi, core: client.CoreV1Api, namespace: str, to: str
) -> dict[str, Any]:
    """Wait for the active role on `to`, routed, and the HAService saying so; its lastFailover."""
    wait_until(
        lambda: pair.active() == [to] and pair.watcher.current() == {to},
        timeout=30,
        what=f"the active role on {to}",
    )
    last = wait_until(
        lambda: (
            (status(custom, namespace).get("lastFailover") or {}).get("to") == to
            and status(custom, namespace)["lastFailover"]
        ),
        timeout=30,
        what="status.lastFailover",
    )
    return dict(last)


@pytest.mark.parametrize("how", ["named", "any"])
def test_a_switchover_moves_the_active_role_and_says_so(
    namespace: str,
    pair: Pair,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    how: str,
) -> None:
    leader = pair.leader()
    standby = pair.other(leader)
    ask(custom, namespace, standby if how == "named" else "any")
    last = switched(pair, custom, core, namespace, standby)
    assert (last["from"], last["to"], last["reason"]) == (leader, standby, "Switchover")
    assert pair.electors[standby].leader() == 200
    assert pair.electors[leader].leader() == 503
    completed = one_event(core, namespace, "SwitchoverCompleted")
    assert completed.type == "Normal"
    assert completed.message == (
        f"active pod moved from {leader} to {standby} in {float(last['seconds']):.2f} s"
    )
    assert not has.events(core, namespace, NAME, "FailoverCompleted")
    assert not has.events(core, namespace, NAME, "SwitchoverFailed")
    wait_until(
        lambda: not {TO, REQUESTED} & set(annotations(custom, namespace)),
        timeout=10,
        what="the request removed from the HAService",
    )
    assert not {TO, REQUESTED} & set(lease_annotations(pair))  # taken by the new holder
    wait_until(lambda: has.is_ready(custom, namespace, NAME), timeout=30, what="Ready again")
    assert status(custom, namespace)["activePod"] == standby


def haoperator(*args: str) -> subprocess.CompletedProcess[str]:
    command = Path(sys.executable).parent / "haoperator"
    return subprocess.run(
        [str(command), *args, "--kubeconfig", str(kubeconfig_path())],
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_the_command_line_end_to_end(
    namespace: str, pair: Pair, custom: client.CustomObjectsApi, core: client.CoreV1Api
) -> None:
    leader = pair.leader()
    standby = pair.other(leader)

    refused = haoperator("switchover", NAME, "-n", namespace, "--to", leader)
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr == (
        f"haoperator switchover: pod {leader} is already active: nothing to switch over\n"
    )
    assert TO not in annotations(custom, namespace)  # refused before asking

    done = haoperator("switchover", NAME, "-n", namespace, "--to", standby, "--timeout", "60")
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    last = status(custom, namespace)["lastFailover"]
    assert (last["to"], last["reason"]) == (standby, "Switchover")
    assert done.stdout == (
        f"switched over from {leader} to {standby} in {float(last['seconds']):.2f} s\n"
    )
    assert pair.leader() == standby
    assert one_event(core, namespace, "SwitchoverCompleted")


def test_a_switchover_with_the_manifests_service_account(
    crd: None,
    namespace: str,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    kubectl: Kubectl,
    tmp_path: Path,
) -> None:
    """The operator holding only the manifests' ClusterRole refuses a request and carries one
    out (the HAService's annotations patched, the Lease's too) without a single Forbidden."""
    install_access(kubectl)
    account = f"system:serviceaccount:{SYSTEM_NAMESPACE}:{OPERATOR}"
    wait_until(
        lambda: (
            kubectl(
                "auth",
                "can-i",
                "patch",
                "haservices.haoperator.dev",
                "-n",
                namespace,
                "--as",
                account,
            ).stdout.strip()
            == "yes"
        ),
        timeout=30,
        what="the ClusterRole in effect",
    )
    token = token_kubeconfig(kubectl, SYSTEM_NAMESPACE, OPERATOR, tmp_path / "operator.kubeconfig")
    operator = OperatorProcess([namespace], tmp_path / "operator.log", kubeconfig=token).start()
    pair = Pair(namespace, core, custom, tmp_path)
    try:
        leader = pair.leader()
        standby = pair.other(leader)
        ask(custom, namespace, leader)
        assert one_event(core, namespace, "SwitchoverRefused").message.startswith(f"pod {leader}")
        wait_until(lambda: TO not in annotations(custom, namespace), timeout=10, what="removed")
        ask(custom, namespace, standby)
        last = switched(pair, custom, core, namespace, standby)
        assert last["reason"] == "Switchover"
        one_event(core, namespace, "SwitchoverCompleted")
        wait_until(
            lambda: not {TO, REQUESTED} & set(annotations(custom, namespace)),
            timeout=10,
            what="the request removed",
        )
        assert pair.watcher.most_at_once() <= 1, pair.watcher.history
    finally:
        pair.close()
        code = operator.stop()
    assert code == 0, operator.log_tail()
    refused = forbidden_lines(operator.log_path)
    assert not refused, "the operator was refused:\n" + "\n".join(refused)
