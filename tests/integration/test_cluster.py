"""The local cluster is a real Kubernetes: these tests hold it to the API server's own behaviour."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

from testenv.harness.cluster import wait_until
from tests.integration.conftest import node_ready, ready_pods

# The fake nodes. The cluster also has a real node (testenv/node), tainted so that none of these
# tests' pods land there; it has no zone, so zone spreading sees these three zones only.
NODES = ("kwok-node-a", "kwok-node-b", "kwok-node-c")
pytestmark = pytest.mark.cluster


def deployment(name: str, replicas: int, spread: bool = True) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}
    if spread:
        spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": name}},
            }
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }


def test_three_ready_nodes_in_three_zones_on_1_34(
    core: client.CoreV1Api, api_client: ApiClient
) -> None:
    version = client.VersionApi(api_client).get_code()
    assert (version.major, version.minor) == ("1", "34")
    nodes = {n.metadata.name: n for n in core.list_node().items}
    assert set(NODES) <= set(nodes)
    zones = {nodes[n].metadata.labels["topology.kubernetes.io/zone"] for n in NODES}
    assert zones == {"a", "b", "c"}
    for name in NODES:
        assert nodes[name].status.node_info.kubelet_version.startswith("v1.34.")
        assert node_ready(core, name) == "True"


def test_deployment_spreads_ready_pods_and_service_lists_them(
    core: client.CoreV1Api, apps: client.AppsV1Api, api_client: ApiClient, namespace: str
) -> None:
    apps.create_namespaced_deployment(namespace, deployment("web", 3))
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    pods = wait_until(
        lambda: p if len(p := ready_pods(core, namespace, "app=web")) == 3 else None,
        timeout=60,
        what="3 ready pods",
    )
    assert {p.spec.node_name for p in pods} == set(NODES)

    discovery = client.DiscoveryV1Api(api_client)

    def endpoint_ips() -> set[str]:
        slices = discovery.list_namespaced_endpoint_slice(
            namespace, label_selector="kubernetes.io/service-name=web"
        ).items
        return {
            address
            for s in slices
            for e in s.endpoints or []
            if e.conditions.ready
            for address in e.addresses
        }

    pod_ips = {p.status.pod_ip for p in pods}
    assert len(pod_ips) == 3
    wait_until(lambda: endpoint_ips() == pod_ips, timeout=30, what="EndpointSlice with the 3 pods")


def test_deleting_a_deployment_garbage_collects_replicasets_and_pods(
    core: client.CoreV1Api, apps: client.AppsV1Api, namespace: str
) -> None:
    apps.create_namespaced_deployment(namespace, deployment("gc", 2, spread=False))
    wait_until(lambda: len(ready_pods(core, namespace, "app=gc")) == 2, timeout=60, what="2 pods")
    assert apps.list_namespaced_replica_set(namespace).items
    apps.delete_namespaced_deployment("gc", namespace, propagation_policy="Background")
    wait_until(
        lambda: (
            not apps.list_namespaced_replica_set(namespace).items
            and not core.list_namespaced_pod(namespace).items
        ),
        timeout=60,
        what="ReplicaSet and pods garbage-collected",
    )


CEL_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.testenv.haoperator.dev"},
    "spec": {
        "group": "testenv.haoperator.dev",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "min": {"type": "integer"},
                                    "max": {"type": "integer"},
                                },
                                "x-kubernetes-validations": [
                                    {
                                        "rule": "self.min <= self.max",
                                        "message": "spec.min must not exceed spec.max",
                                    }
                                ],
                            }
                        },
                    }
                },
            }
        ],
    },
}


def test_crd_cel_rule_rejects_a_bad_object_with_its_message(
    api_client: ApiClient, namespace: str
) -> None:
    ext = client.ApiextensionsV1Api(api_client)
    try:
        ext.create_custom_resource_definition(CEL_CRD)
    except client.ApiException as exc:
        if exc.status != 409:
            raise
    wait_until(
        lambda: any(
            c.type == "Established" and c.status == "True"
            for c in ext.read_custom_resource_definition(
                CEL_CRD["metadata"]["name"]
            ).status.conditions
            or []
        ),
        timeout=30,
        what="CRD established",
    )
    custom = client.CustomObjectsApi(api_client)

    def create(lo: int, hi: int) -> Any:
        body = {
            "apiVersion": "testenv.haoperator.dev/v1",
            "kind": "Widget",
            "metadata": {"generateName": "w-"},
            "spec": {"min": lo, "max": hi},
        }
        return custom.create_namespaced_custom_object(
            "testenv.haoperator.dev", "v1", namespace, "widgets", body
        )

    # The API server may need a moment after Established before it serves the new type.
    wait_until(lambda: _created(create, 1, 2), timeout=30, what="a valid Widget accepted")
    with pytest.raises(client.ApiException) as rejected:
        create(5, 1)
    assert rejected.value.status == 422
    assert "spec.min must not exceed spec.max" in rejected.value.body


def _created(create: Callable[[int, int], Any], lo: int, hi: int) -> bool:
    try:
        create(lo, hi)
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def test_restricted_namespace_rejects_a_privileged_pod(
    core: client.CoreV1Api, namespace: str
) -> None:
    core.patch_namespace(
        namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    privileged = {
        "metadata": {"name": "root"},
        "spec": {
            "containers": [
                {"name": "c", "image": "busybox", "securityContext": {"privileged": True}}
            ]
        },
    }
    with pytest.raises(client.ApiException) as rejected:
        core.create_namespaced_pod(namespace, privileged)
    assert rejected.value.status == 403
    assert "violates PodSecurity" in rejected.value.body
    assert "restricted:latest" in rejected.value.body


def test_unprivileged_service_account_may_not_list_secrets(
    core: client.CoreV1Api, api_client: ApiClient, namespace: str
) -> None:
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
    token = core.create_namespaced_service_account_token(
        "nobody", namespace, {"spec": {"expirationSeconds": 600}}
    ).status.token
    as_nobody = client.ApiClient(_config_with_token(api_client.configuration, token))
    with pytest.raises(client.ApiException) as forbidden:
        client.CoreV1Api(as_nobody).list_namespaced_secret(namespace)
    assert forbidden.value.status == 403
    assert f"system:serviceaccount:{namespace}:nobody" in forbidden.value.body
    # The same token is accepted for what everyone may do: the 403 is RBAC, not a bad token.
    assert client.VersionApi(as_nobody).get_code().major == "1"


def _config_with_token(base: client.Configuration, token: str) -> client.Configuration:
    cfg = client.Configuration()
    cfg.host = base.host
    cfg.ssl_ca_cert = base.ssl_ca_cert
    cfg.verify_ssl = base.verify_ssl
    cfg.api_key = {"authorization": f"Bearer {token}"}
    return cfg


def test_statefulset_with_volume_claims_gets_running_pods(
    core: client.CoreV1Api, apps: client.AppsV1Api, namespace: str
) -> None:
    core.create_namespaced_service(
        namespace,
        {"metadata": {"name": "db"}, "spec": {"clusterIP": "None", "selector": {"app": "db"}}},
    )
    apps.create_namespaced_stateful_set(
        namespace,
        {
            "metadata": {"name": "db"},
            "spec": {
                "serviceName": "db",
                "replicas": 2,
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": {"app": "db"}},
                "template": {
                    "metadata": {"labels": {"app": "db"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "db",
                                "image": "mariadb:11",
                                "volumeMounts": [{"name": "data", "mountPath": "/var/lib/mysql"}],
                            }
                        ]
                    },
                },
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data"},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": "1Gi"}},
                        },
                    }
                ],
            },
        },
    )
    wait_until(
        lambda: len(ready_pods(core, namespace, "app=db")) == 2, timeout=90, what="2 ready db pods"
    )
    claims = core.list_namespaced_persistent_volume_claim(namespace).items
    assert sorted(c.metadata.name for c in claims) == ["data-db-0", "data-db-1"]
    assert all(
        c.status.phase == "Bound" and c.spec.storage_class_name == "standard" for c in claims
    )
    volume = core.read_persistent_volume(claims[0].spec.volume_name)
    assert volume.spec.node_affinity is None  # network storage: not tied to a node


def test_chaos_node_down_makes_node_not_ready_and_node_up_restores_it(
    core: client.CoreV1Api, chaos: Callable[..., None]
) -> None:
    node = "kwok-node-c"
    assert node_ready(core, node) == "True"
    chaos("node-down", node)
    try:
        # 10 s grace + 2 s monitor period, with room for a loaded machine.
        wait_until(lambda: node_ready(core, node) != "True", timeout=40, what=f"{node} NotReady")
        # The node lifecycle controller taints in a pass of its own, just after the condition.
        wait_until(lambda: unreachable(core, node), timeout=15, what="unreachable taint")
    finally:
        chaos("node-up", node)
    wait_until(lambda: node_ready(core, node) == "True", timeout=40, what=f"{node} Ready again")
    wait_until(lambda: not unreachable(core, node), timeout=40, what="unreachable taint removed")


def unreachable(core: client.CoreV1Api, node: str) -> bool:
    taints = core.read_node(node).spec.taints or []
    return any(t.key == "node.kubernetes.io/unreachable" for t in taints)


def test_chaos_crashloop_raises_restart_count_and_heal_stops_it(
    core: client.CoreV1Api, chaos: Callable[..., None], namespace: str
) -> None:
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "flaky"},
            "spec": {
                "containers": [
                    {"name": "app", "image": "busybox"},
                    {"name": "side", "image": "busybox"},
                ]
            },
        },
    )
    wait_until(lambda: ready_pods(core, namespace, ""), timeout=60, what="pod ready")
    chaos("crashloop", namespace, "flaky")

    def status() -> Any:
        return core.read_namespaced_pod_status("flaky", namespace).status

    def seen_down() -> bool:
        s = status()
        app = s.container_statuses[0]
        ready = next(c.status for c in s.conditions if c.type == "Ready")
        return (
            app.state.terminated is not None
            and app.state.terminated.exit_code == 1
            and ready == "False"
        )

    wait_until(
        seen_down,
        timeout=30,
        what="container terminated with exit code 1, pod not Ready",
        interval=0.05,
    )
    wait_until(
        lambda: status().container_statuses[0].restart_count >= 2,
        timeout=30,
        what="restartCount >= 2",
    )
    app = status().container_statuses[0]
    assert app.last_state.terminated is not None
    assert app.last_state.terminated.exit_code == 1
    assert status().container_statuses[1].restart_count == 0  # only the first container crashes

    chaos("heal", namespace, "flaky")

    def healthy() -> bool:
        s = status()
        return s.container_statuses[0].state.running is not None and any(
            c.type == "Ready" and c.status == "True" for c in s.conditions
        )

    # A crash already under way when the annotation went may still play out (one more restart).
    wait_until(healthy, timeout=30, what="container running and pod Ready after heal")
    time.sleep(2.5)
    wait_until(healthy, timeout=30, what="container running and pod Ready after heal")
    settled = status().container_statuses[0].restart_count
    time.sleep(3)  # three crash periods: a still-crashing container would have restarted
    assert healthy()
    assert status().container_statuses[0].restart_count == settled
