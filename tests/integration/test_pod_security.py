"""Pod Security admission on the real API server: in a namespace that enforces `restricted`,
HAServices whose templates comply get every pod admitted, whatever the operator adds (the
ActivePassive ha-elector sidecar included); a template that does not comply is refused, which
shows the namespace really enforces; and the operator's own pod is admitted in its namespace."""

from __future__ import annotations

import copy
from functools import partial
from typing import Any

import pytest
import yaml
from kubernetes import client

from testenv.harness.cluster import REPO, Kubectl, wait_until
from testenv.harness.operator_process import OperatorProcess
from tests.e2e.support import install_access
from tests.integration import haservices as has

pytestmark = pytest.mark.cluster
ENFORCE = "pod-security.kubernetes.io/enforce"


def enforce_restricted(core: client.CoreV1Api, namespace: str) -> None:
    core.patch_namespace(
        namespace,
        {"metadata": {"labels": {ENFORCE: "restricted", f"{ENFORCE}-version": "latest"}}},
    )


def refusals(core: client.CoreV1Api, namespace: str) -> list[str]:
    """What the ReplicaSet and StatefulSet controllers could not create, in their own words."""
    events = core.list_namespaced_event(namespace, field_selector="reason=FailedCreate").items
    return [f"{e.involved_object.kind}/{e.involved_object.name}: {e.message}" for e in events]


def live_pods(core: client.CoreV1Api, namespace: str, name: str) -> list[Any]:
    pods = core.list_namespaced_pod(namespace, label_selector=f"haoperator.dev/service={name}")
    return [p for p in pods.items if p.metadata.deletion_timestamp is None]


def all_admitted(core: client.CoreV1Api, namespace: str, want: dict[str, int]) -> bool:
    refused = refusals(core, namespace)
    assert not refused, "pods refused:\n" + "\n".join(refused)
    return all(len(live_pods(core, namespace, name)) == n for name, n in want.items())


def rolled_out(custom: client.CustomObjectsApi, namespace: str, name: str) -> bool:
    progressing = has.condition(has.get(custom, namespace, name), "Progressing")
    return progressing.get("status") == "False"


def test_every_category_is_admitted_under_restricted(
    namespace: str,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
) -> None:
    enforce_restricted(core, namespace)
    want = {}
    for category, spec in has.EXAMPLES.items():
        name = category.lower()
        has.create(custom, namespace, has.haservice(name, category, **spec))
        want[name] = spec["replicas"]
    wait_until(lambda: all_admitted(core, namespace, want), timeout=90, what="every pod admitted")
    for pod in live_pods(core, namespace, "activepassive"):
        sidecars = [c.name for c in pod.spec.init_containers or []]
        assert sidecars == ["ha-elector"], pod.metadata.name
    # Nothing refused later either (a rollout, a second ReplicaSet).
    for name in want:
        wait_until(partial(rolled_out, custom, namespace, name), timeout=60, what=f"{name} out")
    assert refusals(core, namespace) == []


def test_the_quickstart_sample_is_admitted_under_restricted(
    namespace: str,
    operator: OperatorProcess,
    core: client.CoreV1Api,
    kubectl: Kubectl,
) -> None:
    enforce_restricted(core, namespace)
    path = REPO / "manifests" / "samples" / "quickstart" / "hello.yaml"
    objects = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    result = kubectl("-n", namespace, "apply", "-f", "-", stdin=yaml.safe_dump_all(objects))
    assert result.returncode == 0, result.stderr
    wait_until(
        lambda: all_admitted(core, namespace, {"hello": 2}), timeout=90, what="pods admitted"
    )


def test_a_template_that_is_not_restricted_is_refused(
    namespace: str,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
) -> None:
    """The control: the same check sees a refusal when there is one."""
    enforce_restricted(core, namespace)
    body = has.haservice("rooted", "QueueWorker", replicas=1)
    del body["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    has.create(custom, namespace, body)
    refused = wait_until(lambda: refusals(core, namespace), timeout=60, what="a refusal")
    assert any('violates PodSecurity "restricted:latest"' in r for r in refused), refused
    assert live_pods(core, namespace, "rooted") == []


def test_the_operator_pod_is_admitted_in_its_namespace(
    kubectl: Kubectl, core: client.CoreV1Api
) -> None:
    """The operator's Deployment, and a pod made from its template, pass the API server's
    admission (PodSecurity `restricted` in haoperator-system) without a warning: a server-side
    dry run, since the image cannot run here."""
    built = install_access(kubectl)
    (deployment,) = [o for o in built if o["kind"] == "Deployment"]
    namespace = deployment["metadata"]["namespace"]
    labels = core.read_namespace(namespace).metadata.labels
    assert labels[ENFORCE] == "restricted"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "haoperator-admission-",
            "namespace": namespace,
            "labels": deployment["spec"]["template"]["metadata"]["labels"],
        },
        "spec": copy.deepcopy(deployment["spec"]["template"]["spec"]),
    }
    for objects, verb in (([pod], "create"), (built, "apply")):
        extra = ["--server-side", "--force-conflicts"] if verb == "apply" else []
        result = kubectl(
            verb, *extra, "--dry-run=server", "-f", "-", stdin=yaml.safe_dump_all(objects)
        )
        assert result.returncode == 0, result.stderr
        assert "Warning" not in result.stderr, result.stderr


@pytest.mark.parametrize("category", ["QueueWorker", "Clustered"])
def test_pods_that_cannot_be_created_say_why_on_the_haservice(
    category: str,
    namespace: str,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
) -> None:
    """The workload knows why (a Deployment's ReplicaFailure condition, a StatefulSet's
    FailedCreate event); the HAService once said only `0/1 ready`."""
    enforce_restricted(core, namespace)
    body = has.haservice("rooted", category, replicas=1)
    del body["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    has.create(custom, namespace, body)

    ready = has.ready_because(custom, namespace, "rooted", "PodsCannotBeCreated", timeout=60)
    assert 'violates PodSecurity "restricted:latest"' in ready["message"]
    degraded = has.condition(has.get(custom, namespace, "rooted"), "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "PodsCannotBeCreated")
    event = wait_until(
        lambda: has.events(core, namespace, "rooted", "PodsCannotBeCreated"),
        timeout=15,
        what="a Warning event",
    )[0]
    assert event.type == "Warning"
    assert "violates PodSecurity" in event.message


def test_pods_the_scheduler_cannot_place_say_why_on_the_haservice(
    namespace: str,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
) -> None:
    claim = {
        "metadata": {"name": "data"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "no-such-class",
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    body = has.haservice("db", "Clustered", replicas=1, clustered={"volumeClaimTemplates": [claim]})
    has.create(custom, namespace, body)

    ready = has.ready_because(custom, namespace, "db", "PodsUnschedulable", timeout=60)
    assert "pod db-0:" in ready["message"]
    assert "PersistentVolumeClaims" in ready["message"]
    assert (
        wait_until(
            lambda: has.events(core, namespace, "db", "PodsUnschedulable"), timeout=15, what="event"
        )[0].type
        == "Warning"
    )
