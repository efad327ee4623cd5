"""The operator on the real API server: HAServices become children, status and events."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from haoperator.api import HAService
from haoperator.core import render
from haoperator.core.diff import differences
from testenv.harness.cluster import wait_until
from testenv.harness.operator_process import OperatorProcess
from tests.integration import haservices as has
from tests.integration.conftest import ready_pods

pytestmark = pytest.mark.cluster
Kubectl = Callable[..., subprocess.CompletedProcess[str]]
CHILD_KINDS = (
    "deployments,statefulsets,services,poddisruptionbudgets,serviceaccounts,roles,rolebindings,"
    "leases"
)


def children(kubectl: Kubectl, namespace: str, name: str) -> dict[tuple[str, str], dict[str, Any]]:
    out = kubectl(
        "-n", namespace, "get", CHILD_KINDS, "-l", f"haoperator.dev/service={name}", "-o", "json"
    )
    assert out.returncode == 0, out.stderr
    return {(o["kind"], o["metadata"]["name"]): o for o in json.loads(out.stdout)["items"]}


def rendered(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return render.desired(HAService.model_validate(obj))


def assert_children_match_rendering(kubectl: Kubectl, obj: dict[str, Any]) -> None:
    namespace, name, uid = (
        obj["metadata"]["namespace"],
        obj["metadata"]["name"],
        obj["metadata"]["uid"],
    )
    want = {(c["kind"], c["metadata"]["name"]): c for c in rendered(obj)}
    have = children(kubectl, namespace, name)
    assert set(have) == set(want)
    for key, child in want.items():
        assert differences(child, have[key]) == [], key
        refs = have[key]["metadata"]["ownerReferences"]
        assert [(r["uid"], r["controller"], r["blockOwnerDeletion"]) for r in refs] == [
            (uid, True, True)
        ]


def act_as_elector(core: client.CoreV1Api, namespace: str, name: str) -> str:
    """Take the Lease the operator made for one ready pod and label it active, as the ha-elector
    sidecar does when it wins (the sidecar itself cannot run here: kwok pods run no
    containers). The Lease, not the label, names the active pod."""
    pods = wait_until(
        lambda: ready_pods(core, namespace, f"haoperator.dev/service={name}"),
        timeout=60,
        what="ready pods",
    )
    pod = sorted(p.metadata.name for p in pods)[0]
    leases = client.CoordinationV1Api(core.api_client)
    wait_until(
        lambda: _uid_or_none(lambda: leases.read_namespaced_lease(name, namespace)),
        timeout=30,
        what=f"the Lease {name} the operator makes",
    )
    leases.patch_namespaced_lease(name, namespace, {"spec": {"holderIdentity": pod}})
    core.patch_namespaced_pod(
        pod, namespace, {"metadata": {"labels": {"haoperator.dev/role": "active"}}}
    )
    return pod


def wait_ready(
    custom: client.CustomObjectsApi, namespace: str, name: str, timeout: float = 90
) -> dict[str, Any]:
    wait_until(
        lambda: has.is_ready(custom, namespace, name),
        timeout=timeout,
        what=f"HAService {name} Ready",
    )
    return has.get(custom, namespace, name)


def workload_of(apps: client.AppsV1Api, category: str, namespace: str, name: str) -> Any:
    if category == "Clustered":
        return apps.read_namespaced_stateful_set(name, namespace)
    return apps.read_namespaced_deployment(name, namespace)


@pytest.mark.parametrize("category", list(has.EXAMPLES))
def test_lifecycle(
    category: str,
    namespace: str,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    apps: client.AppsV1Api,
    kubectl: Kubectl,
) -> None:
    name = "svc"
    has.create(custom, namespace, has.haservice(name, category, **has.EXAMPLES[category]))
    if category == "ActivePassive":
        act_as_elector(core, namespace, name)
    waited = kubectl(
        "-n", namespace, "wait", "--for=condition=Ready", f"haservice/{name}", "--timeout=90s"
    )
    assert waited.returncode == 0, waited.stderr
    obj = wait_ready(custom, namespace, name)
    assert_children_match_rendering(kubectl, obj)
    assert obj["status"]["selector"] == f"haoperator.dev/service={name}"
    # The scale subresource, which kubectl scale and an HPA read.
    scale = json.loads(
        kubectl(
            "get",
            "--raw",
            f"/apis/haoperator.dev/v1alpha1/namespaces/{namespace}/haservices/{name}/scale",
        ).stdout
    )
    assert scale["spec"]["replicas"] == obj["spec"]["replicas"]
    assert scale["status"]["selector"] == f"haoperator.dev/service={name}"
    wait_until(
        lambda: (
            has.get(custom, namespace, name)["status"]["readyReplicas"] == obj["spec"]["replicas"]
        ),
        timeout=60,
        what="every replica ready",
    )
    reconciled = has.events(core, namespace, name, "Reconciled")
    assert reconciled
    assert reconciled[0].type == "Normal"
    # A new cluster reaching its quorum is forming, not recovering: no quorum news (there was a
    # QuorumRestored per member count on every creation).
    assert not has.events(core, namespace, name, "QuorumRestored")
    assert not has.events(core, namespace, name, "QuorumLost")

    # Drift: a child deleted by hand comes back, and the event says which.
    victim = "PodDisruptionBudget"
    core_policy = client.PolicyV1Api(core.api_client)
    before = core_policy.read_namespaced_pod_disruption_budget(name, namespace).metadata.uid
    core_policy.delete_namespaced_pod_disruption_budget(name, namespace)
    wait_until(
        lambda: (
            _uid_or_none(lambda: core_policy.read_namespaced_pod_disruption_budget(name, namespace))
            not in (None, before)
        ),
        timeout=30,
        what="PDB recreated",
    )
    drift = wait_until(
        lambda: has.events(core, namespace, name, "DriftCorrected"),
        timeout=15,
        what="DriftCorrected event",
    )
    assert any(f"{victim} {name} was deleted" in e.message for e in drift)

    # Drift: a field we own edited by hand is restored; fields others own are left alone.
    labels_patch = {"metadata": {"labels": {"team": "someone-else"}}}
    workload = workload_of(apps, category, namespace, name)
    want_replicas = workload.spec.replicas
    scale_body = {"spec": {"replicas": want_replicas + 2}, **labels_patch}
    if category == "Clustered":
        apps.patch_namespaced_stateful_set(name, namespace, scale_body)
    else:
        apps.patch_namespaced_deployment(name, namespace, scale_body)
    wait_until(
        lambda: workload_of(apps, category, namespace, name).spec.replicas == want_replicas,
        timeout=30,
        what="replicas restored",
    )
    wait_until(
        lambda: any(
            "spec.replicas" in e.message
            for e in has.events(core, namespace, name, "DriftCorrected")
        ),
        timeout=15,
        what="DriftCorrected naming spec.replicas",
    )
    assert workload_of(apps, category, namespace, name).metadata.labels["team"] == "someone-else"

    # Scale through the scale subresource, as `kubectl scale` and an HPA do.
    new_replicas = obj["spec"]["replicas"] + 1
    result = kubectl("-n", namespace, "scale", f"haservice/{name}", f"--replicas={new_replicas}")
    assert result.returncode == 0, result.stderr
    wait_until(
        lambda: workload_of(apps, category, namespace, name).spec.replicas == new_replicas,
        timeout=30,
        what="workload scaled",
    )
    obj = wait_ready(custom, namespace, name)
    wait_until(
        lambda: has.get(custom, namespace, name)["status"]["readyReplicas"] == new_replicas,
        timeout=60,
        what="status.readyReplicas follows the scale",
    )

    # A spec change rolls the workload.
    generation = workload_of(apps, category, namespace, name).metadata.generation
    has.patch(
        custom, namespace, name, {"spec": {"template": {"metadata": {"annotations": {"rev": "2"}}}}}
    )
    wait_until(
        lambda: (
            (w := workload_of(apps, category, namespace, name)).metadata.generation > generation
            and w.spec.template.metadata.annotations.get("rev") == "2"
        ),
        timeout=30,
        what="workload template updated",
    )
    wait_until(
        lambda: all(
            (p.metadata.annotations or {}).get("rev") == "2"
            for p in core.list_namespaced_pod(
                namespace, label_selector=f"haoperator.dev/service={name}"
            ).items
        ),
        timeout=90,
        what="pods rolled to the new template",
    )
    if category == "ActivePassive":
        act_as_elector(core, namespace, name)
    obj = wait_ready(custom, namespace, name)
    assert_children_match_rendering(kubectl, obj)

    # Deleting the HAService takes every child with it (owner references, no finalizer).
    assert not obj["metadata"].get("finalizers")
    custom.delete_namespaced_custom_object(has.GROUP, has.VERSION, namespace, has.PLURAL, name)
    wait_until(
        lambda: not children(kubectl, namespace, name),
        timeout=60,
        what="children garbage-collected",
    )


def _uid_or_none(read: Callable[[], Any]) -> str | None:
    try:
        return str(read().metadata.uid)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def test_removing_the_service_from_the_spec_deletes_it(
    namespace: str,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    kubectl: Kubectl,
) -> None:
    has.create(custom, namespace, has.haservice("web", "LoadBalanced", service=has.SERVICE))
    wait_ready(custom, namespace, "web")
    assert ("Service", "web") in children(kubectl, namespace, "web")
    has.patch(custom, namespace, "web", {"spec": {"service": None}})
    wait_until(
        lambda: ("Service", "web") not in children(kubectl, namespace, "web"),
        timeout=30,
        what="Service deleted",
    )
    assert_children_match_rendering(kubectl, wait_ready(custom, namespace, "web"))
    assert any(
        "deleted service web" in e.message.lower()
        for e in has.events(core, namespace, "web", "Reconciled")
    )


def test_a_field_dropped_from_the_template_leaves_the_workload(
    namespace: str,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    apps: client.AppsV1Api,
) -> None:
    """The operator's children are made by server-side apply (a create-only one) and owned as
    such: what it no longer applies is removed, not left behind by a manager that forgot it."""
    body = has.haservice("web", "LoadBalanced")
    body["spec"]["template"]["spec"]["containers"] = [
        has.container(env=[{"name": "MODE", "value": "old"}])
    ]
    has.create(custom, namespace, body)
    wait_ready(custom, namespace, "web")
    deployment = apps.read_namespaced_deployment("web", namespace)
    ours = [m for m in deployment.metadata.managed_fields if m.manager == "haoperator"]
    assert [m.operation for m in ours] == ["Apply"]
    assert deployment.spec.template.spec.containers[0].env[0].value == "old"

    has.patch(custom, namespace, "web", {"spec": {"template": {"spec": {
        "containers": [has.container()]}}}})  # fmt: skip
    wait_until(
        lambda: (
            not apps.read_namespaced_deployment("web", namespace)
            .spec.template.spec.containers[0]
            .env
        ),
        timeout=30,
        what="the env var gone from the Deployment",
    )


def test_name_conflict_leaves_a_foreign_object_untouched(
    namespace: str,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
) -> None:
    foreign = core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "web", "labels": {"owner": "someone"}},
            "spec": {"selector": {"x": "y"}, "ports": [{"port": 1}]},
        },
    )
    has.create(custom, namespace, has.haservice("web", "LoadBalanced", service=has.SERVICE))

    def conflicted() -> bool:
        ready = has.condition(has.get(custom, namespace, "web"), "Ready")
        return ready.get("status") == "False" and ready.get("reason") == "NameConflict"

    wait_until(conflicted, timeout=30, what="Ready=False NameConflict")
    warning = wait_until(
        lambda: has.events(core, namespace, "web", "NameConflict"), timeout=10, what="event"
    )
    assert warning[0].type == "Warning"
    assert "Service web already exists" in warning[0].message
    after = core.read_namespaced_service("web", namespace)
    assert after.metadata.resource_version == foreign.metadata.resource_version
    assert not after.metadata.owner_references


def test_invalid_template_is_reported_with_the_servers_message_and_backs_off(
    namespace: str,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    apps: client.AppsV1Api,
) -> None:
    body = has.haservice("broken", "QueueWorker")
    # Admission cannot see this (the template is validated later): the mount names no volume.
    body["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "data", "mountPath": "/data"}
    ]
    has.create(custom, namespace, body)

    ready = has.ready_because(custom, namespace, "broken", "InvalidSpec")
    assert ready["status"] == "False"
    assert "volumeMounts[0].name" in ready["message"]
    assert "Not found" in ready["message"]
    event = wait_until(
        lambda: has.events(core, namespace, "broken", "InvalidSpec"), timeout=10, what="event"
    )[0]
    assert event.type == "Warning"
    assert "volumeMounts[0].name" in event.message

    # Exponential backoff (2, 4, 8, 16 s ...): over 20 s a few retries, not a hot loop, and
    # one aggregated Event whose count says how many.
    time.sleep(20)
    events = has.events(core, namespace, "broken", "InvalidSpec")
    assert len(events) == 1
    assert 2 <= events[0].count <= 6

    # Fixing the spec clears the condition.
    has.patch(
        custom,
        namespace,
        "broken",
        {"spec": {"template": {"spec": {"volumes": [{"name": "data", "emptyDir": {}}]}}}},
    )
    wait_ready(custom, namespace, "broken", timeout=60)
    assert (
        apps.read_namespaced_deployment("broken", namespace).spec.template.spec.volumes[0].name
        == "data"
    )


def test_restart_mid_reconcile_converges_without_duplicates(
    crd: None,
    namespace: str,
    tmp_path: Any,
    custom: client.CustomObjectsApi,
    apps: client.AppsV1Api,
    kubectl: Kubectl,
) -> None:
    names = [f"svc{i}" for i in range(6)]
    for i, name in enumerate(names):
        category = ["LoadBalanced", "QueueWorker", "Clustered"][i % 3]
        has.create(custom, namespace, has.haservice(name, category, **has.EXAMPLES[category]))
    first = OperatorProcess([namespace], tmp_path / "first.log").start()
    wait_until(lambda: children(kubectl, namespace, names[0]), timeout=30, what="first children")
    first.stop(signal.SIGKILL)  # mid-reconcile: no clean shutdown
    second = OperatorProcess([namespace], tmp_path / "second.log").start()
    try:
        for name in names:
            obj = wait_ready(custom, namespace, name)
            assert_children_match_rendering(kubectl, obj)
        for deployment in apps.list_namespaced_deployment(namespace).items:
            sets = [
                rs
                for rs in apps.list_namespaced_replica_set(namespace).items
                if rs.metadata.owner_references[0].uid == deployment.metadata.uid
            ]
            assert len(sets) == 1, deployment.metadata.name  # no spurious rollout either
    finally:
        assert second.stop() == 0


def test_idle_operator_writes_nothing(
    namespace: str,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    kubectl: Kubectl,
) -> None:
    for category in ("LoadBalanced", "QueueWorker", "Clustered"):
        name = category.lower()
        has.create(custom, namespace, has.haservice(name, category, **has.EXAMPLES[category]))

    def settled(name: str) -> bool:
        obj = has.get(custom, namespace, name)
        return has.condition(obj, "Progressing").get("status") == "False"

    for name in ("loadbalanced", "queueworker", "clustered"):
        wait_ready(custom, namespace, name)
        wait_until(lambda n=name: settled(n), timeout=60, what="rollout finished")

    time.sleep(3)  # let the last status write land
    before = resource_versions(kubectl, namespace)
    time.sleep(30)
    assert resource_versions(kubectl, namespace) == before


def resource_versions(kubectl: Kubectl, namespace: str) -> dict[str, str]:
    """Every HAService, event and child of the namespace, with the version it is at."""
    out = kubectl(
        "-n", namespace, "get", f"haservices.haoperator.dev,events,{CHILD_KINDS}", "-o", "json"
    )
    assert out.returncode == 0, out.stderr
    return {
        f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"]
        for o in json.loads(out.stdout)["items"]
    }


def test_an_operator_restart_over_settled_haservices_writes_nothing(
    crd: None,
    namespace: str,
    tmp_path: Any,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    kubectl: Kubectl,
) -> None:
    """A restart lists every child afresh. Items of a list carry no apiVersion, and a cache that
    kept them so made every child of every HAService look drifted after each restart (150
    settled HAServices: 1,821 PATCH, 540 POST, 465 GET in 40 s, DriftCorrected storms); and a
    reconcile that ran before the lists were in tried to create every child again."""
    first = OperatorProcess([namespace], tmp_path / "first.log").start()
    try:
        for category, spec in has.EXAMPLES.items():
            has.create(custom, namespace, has.haservice(category.lower(), category, **spec))
        act_as_elector(core, namespace, "activepassive")
        for name in (category.lower() for category in has.EXAMPLES):
            wait_ready(custom, namespace, name)
            wait_until(
                lambda n=name: (
                    has.condition(has.get(custom, namespace, n), "Progressing").get("status")
                    == "False"
                ),
                timeout=60,
                what=f"{name} rolled out",
            )
        wait_until(lambda: first.metrics_quiet(), timeout=30, what="the first operator idle")
    finally:
        assert first.stop() == 0
    before = resource_versions(kubectl, namespace)

    second = OperatorProcess([namespace], tmp_path / "second.log").start()
    try:
        wait_until(
            lambda: (
                second.metrics().get('haoperator_reconcile_total{result="ok"}', 0)
                >= len(has.EXAMPLES)
            ),
            timeout=60,
            what="every HAService reconciled by the new operator",
        )
        wait_until(lambda: second.metrics_quiet(), timeout=30, what="the new operator idle")
        after = resource_versions(kubectl, namespace)
        changed = {k: (v, after.get(k)) for k, v in before.items() if after.get(k) != v}
        requests = {k: v for k, v in second.metrics().items() if "api_requests" in k}
        assert second.writes() == 0, (requests, changed)
        assert after == before
        assert not [
            e for e in core.list_namespaced_event(namespace).items if e.reason == "DriftCorrected"
        ]
    finally:
        assert second.stop() == 0


def test_a_horizontal_pod_autoscaler_scales_the_haservice(
    namespace: str,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    apps: client.AppsV1Api,
) -> None:
    """The kube-controller-manager's HPA controller, through the scale subresource. There is no
    metrics server here; an HPA whose minReplicas is above the current count scales up to it
    before it reads any metric, which is enough to prove the whole path."""
    has.create(custom, namespace, has.haservice("web", "LoadBalanced", replicas=2))
    wait_ready(custom, namespace, "web")
    autoscaling = client.AutoscalingV2Api(apps.api_client)
    autoscaling.create_namespaced_horizontal_pod_autoscaler(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {
                "scaleTargetRef": {
                    "apiVersion": f"{has.GROUP}/{has.VERSION}",
                    "kind": "HAService",
                    "name": "web",
                },
                "minReplicas": 3,
                "maxReplicas": 5,
            },
        },
    )
    wait_until(
        lambda: apps.read_namespaced_deployment("web", namespace).spec.replicas == 3,
        timeout=90,  # the HPA controller syncs every 15 s
        what="the Deployment scaled by the HPA",
    )
    assert has.get(custom, namespace, "web")["spec"]["replicas"] == 3
    wait_until(
        lambda: has.get(custom, namespace, "web")["status"].get("readyReplicas") == 3,
        timeout=60,
        what="status.readyReplicas 3",
    )

    def hpa_at_three() -> Any:
        hpa = autoscaling.read_namespaced_horizontal_pod_autoscaler("web", namespace)
        return hpa if hpa.status.current_replicas == 3 else None

    hpa = wait_until(hpa_at_three, timeout=60, what="the HPA seeing 3 replicas")
    able = {c.type: c for c in hpa.status.conditions or []}["AbleToScale"]
    assert able.status == "True", able.message


def test_a_field_the_api_server_does_not_know_is_reported_not_retried_in_silence(
    namespace: str,
    operator: OperatorProcess,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
) -> None:
    """Server-side apply answers an undeclared field with HTTP 500 ("failed to create typed
    patch object"), which the operator once took for an outage and retried for ever, with no
    status and no event."""
    body = has.haservice("odd", "QueueWorker")
    body["spec"]["template"]["spec"]["fooBar"] = 1
    has.create(custom, namespace, body)

    ready = has.ready_because(custom, namespace, "odd", "InvalidSpec")
    assert ".spec.template.spec.fooBar: field not declared in schema" in ready["message"]
    event = wait_until(
        lambda: has.events(core, namespace, "odd", "InvalidSpec"), timeout=10, what="event"
    )[0]
    assert event.type == "Warning"
    time.sleep(12)  # backoff 2, 4, 8 s: a few retries, one aggregated event
    events = has.events(core, namespace, "odd", "InvalidSpec")
    assert len(events) == 1
    assert events[0].count <= 5
