"""What each category renders, and the rules every child follows."""

from __future__ import annotations

from typing import Any

import pytest

from haoperator import __version__
from haoperator.api import HAService
from haoperator.core.render import desired
from haoperator.core.render.common import selector_string
from haoperator.core.vocabulary import DEFAULT_IMAGE
from tests.unit.documents import document, haservice

OURS = {
    "app.kubernetes.io/name": "web",
    "app.kubernetes.io/managed-by": "haoperator",
    "haoperator.dev/service": "web",
}
PORTS = {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}


def by_kind(children: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(child["kind"], child["metadata"]["name"]): child for child in children}


def pod_spec(child: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = child["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize(
    ("category", "extra", "children"),
    [
        ("LoadBalanced", {"service": PORTS},
         [("Service", "web"), ("Deployment", "web"), ("PodDisruptionBudget", "web")]),
        ("LoadBalanced", {}, [("Deployment", "web"), ("PodDisruptionBudget", "web")]),
        ("QueueWorker", {}, [("Deployment", "web"), ("PodDisruptionBudget", "web")]),
        ("Clustered", {"service": PORTS},
         [("Service", "web-peers"), ("Service", "web"), ("StatefulSet", "web"),
          ("PodDisruptionBudget", "web")]),
        ("Clustered", {}, [("Service", "web-peers"), ("StatefulSet", "web"),
                           ("PodDisruptionBudget", "web")]),
        ("ActivePassive", {"service": PORTS},
         [("ServiceAccount", "web-elector"), ("Lease", "web"), ("Role", "web-elector"),
          ("RoleBinding", "web-elector"), ("Service", "web"), ("Deployment", "web"),
          ("PodDisruptionBudget", "web")]),
    ],
)  # fmt: skip
def test_each_category_renders_its_children_in_a_stable_order(
    category: str, extra: dict[str, Any], children: list[tuple[str, str]]
) -> None:
    rendered = desired(haservice(category, **extra))
    assert [(child["kind"], child["metadata"]["name"]) for child in rendered] == children


def test_the_lease_is_rendered_empty_the_electors_own_its_spec() -> None:
    """The operator makes the Lease so that the electors' Role can name it (and a Lease of
    the same name that is not ours is never touched); holder and renewals are the electors'."""
    lease = by_kind(desired(haservice("ActivePassive")))[("Lease", "web")]
    assert lease["apiVersion"] == "coordination.k8s.io/v1"
    assert "spec" not in lease
    assert lease["metadata"]["labels"]["haoperator.dev/service"] == "web"


@pytest.mark.parametrize("category", ["LoadBalanced", "Clustered", "QueueWorker", "ActivePassive"])
def test_children_and_pods_carry_our_labels_and_namespace(category: str) -> None:
    for child in desired(haservice(category)):
        assert child["metadata"]["labels"] == {**OURS, "haoperator.dev/category": category}
        assert child["metadata"]["namespace"] == "apps"
        if child["kind"] in ("Deployment", "StatefulSet"):
            pod_labels = child["spec"]["template"]["metadata"]["labels"]
            assert pod_labels == {"app": "web", **OURS, "haoperator.dev/category": category}


@pytest.mark.parametrize("category", ["LoadBalanced", "Clustered", "QueueWorker", "ActivePassive"])
def test_selectors_use_only_our_service_label(category: str) -> None:
    extra: dict[str, Any] = {} if category == "QueueWorker" else {"service": PORTS}
    for child in desired(haservice(category, **extra)):
        spec = child.get("spec", {})
        if child["kind"] == "Service":
            assert "app" not in spec["selector"]
            assert spec["selector"]["haoperator.dev/service"] == "web"
        elif "selector" in spec:
            assert spec["selector"] == {"matchLabels": {"haoperator.dev/service": "web"}}
    assert selector_string(haservice(category)) == "haoperator.dev/service=web"


def test_owner_references_only_when_the_owner_uid_is_known() -> None:
    assert all("ownerReferences" not in c["metadata"] for c in desired(haservice()))
    raw = document()
    raw["metadata"]["uid"] = "1f0e"
    for child in desired(HAService.model_validate(raw)):
        assert child["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "haoperator.dev/v1alpha1",
                "kind": "HAService",
                "name": "web",
                "uid": "1f0e",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]


def test_user_labels_and_annotations_on_the_template_are_kept_reserved_ones_dropped() -> None:
    raw = document()
    raw["spec"]["template"]["metadata"] = {
        "labels": {"app": "web", "tier": "web", "haoperator.dev/role": "active"},
        "annotations": {"note": "kept"},
    }
    deployment = by_kind(desired(HAService.model_validate(raw)))[("Deployment", "web")]
    meta = deployment["spec"]["template"]["metadata"]
    assert meta["labels"]["tier"] == "web"
    assert "haoperator.dev/role" not in meta["labels"]
    assert meta["annotations"] == {"note": "kept"}


@pytest.mark.parametrize(
    ("spread", "when"), [("Required", "DoNotSchedule"), ("Preferred", "ScheduleAnyway")]
)
def test_spread_maps_to_a_topology_spread_constraint(spread: str, when: str) -> None:
    service = haservice(placement={"spread": spread, "topologyKey": "topology.kubernetes.io/zone"})
    constraints = pod_spec(by_kind(desired(service))[("Deployment", "web")])[
        "topologySpreadConstraints"
    ]
    assert constraints == [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": when,
            "labelSelector": {"matchLabels": {"haoperator.dev/service": "web"}},
            "nodeTaintsPolicy": "Honor",  # a node the pods may not run on is no domain
        }
    ]


def test_spread_none_adds_no_constraint() -> None:
    deployment = by_kind(desired(haservice(placement={"spread": "None"})))[("Deployment", "web")]
    assert "topologySpreadConstraints" not in pod_spec(deployment)


def test_a_constraint_the_user_wrote_for_the_same_key_wins() -> None:
    raw = document()
    own = {
        "maxSkew": 2,
        "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": {"app": "web"}},
    }
    raw["spec"]["template"]["spec"]["topologySpreadConstraints"] = [own]
    deployment = by_kind(desired(HAService.model_validate(raw)))[("Deployment", "web")]
    assert pod_spec(deployment)["topologySpreadConstraints"] == [own]


def test_the_disruption_budget_follows_max_unavailable() -> None:
    budget = by_kind(desired(haservice(disruption={"maxUnavailable": "50%"})))[
        ("PodDisruptionBudget", "web")
    ]
    assert budget["spec"] == {
        "maxUnavailable": "50%",
        "selector": {"matchLabels": {"haoperator.dev/service": "web"}},
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
    }


@pytest.mark.parametrize(
    ("replicas", "quorum", "min_available"),
    [(3, "Majority", 2), (4, "Majority", 3), (5, "Majority", 3), (5, "All", 5), (5, 4, 4)],
)
def test_a_clustered_budget_keeps_the_quorum(
    replicas: int, quorum: int | str, min_available: int
) -> None:
    service = haservice("Clustered", replicas=replicas, clustered={"quorum": quorum})
    budget = by_kind(desired(service))[("PodDisruptionBudget", "web")]
    assert budget["spec"]["minAvailable"] == min_available
    assert "maxUnavailable" not in budget["spec"]


def test_clustered_members_find_each_other_through_the_headless_peers_service() -> None:
    service = haservice(
        "Clustered",
        service={"ports": [{"name": "mysql", "port": 3306}]},
        clustered={
            "podManagementPolicy": "OrderedReady",
            "peerPorts": [{"name": "gcomm", "port": 4567}, {"name": "sst", "port": 4444}],
            "volumeClaimTemplates": [
                {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}
            ],
        },
    )
    children = by_kind(desired(service))
    stateful_set = children[("StatefulSet", "web")]["spec"]
    peers = children[("Service", "web-peers")]["spec"]
    assert stateful_set["serviceName"] == "web-peers"
    assert stateful_set["replicas"] == 3
    assert stateful_set["podManagementPolicy"] == "OrderedReady"
    assert stateful_set["volumeClaimTemplates"] == [
        {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}
    ]
    assert peers["clusterIP"] == "None"
    assert peers["publishNotReadyAddresses"] is True
    assert [(port["name"], port["port"]) for port in peers["ports"]] == [
        ("mysql", 3306), ("gcomm", 4567), ("sst", 4444),
    ]  # fmt: skip
    assert children[("Service", "web")]["spec"]["selector"] == {"haoperator.dev/service": "web"}


def test_the_active_passive_service_selects_only_the_active_pod() -> None:
    service = by_kind(desired(haservice("ActivePassive", service=PORTS)))[("Service", "web")]
    assert service["spec"]["selector"] == {
        "haoperator.dev/service": "web",
        "haoperator.dev/role": "active",
    }


def test_a_standby_exists_throughout_an_active_passive_rollout() -> None:
    deployment = by_kind(desired(haservice("ActivePassive")))[("Deployment", "web")]
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }


def _elector(
    service_spec: dict[str, Any] | None = None, image: str | None = None
) -> dict[str, Any]:
    service = haservice("ActivePassive", activePassive=service_spec or {})
    rendered = desired(service) if image is None else desired(service, elector_image=image)
    deployment = by_kind(rendered)[("Deployment", "web")]
    containers: list[dict[str, Any]] = pod_spec(deployment)["initContainers"]
    assert [container["name"] for container in containers] == ["ha-elector"]
    return containers[0]


def test_the_elector_is_a_native_sidecar_running_haoperator_elect() -> None:
    elector = _elector({"leaseDurationSeconds": 8, "renewDeadlineSeconds": 6,
                        "retryPeriodSeconds": 2, "electorPort": 9000, "preempt": True,
                        "unhealthySeconds": 4, "healthContainers": ["app"]})  # fmt: skip
    assert elector["restartPolicy"] == "Always"
    assert elector["command"] == ["haoperator"]
    assert elector["args"] == [
        "elect", "--lease", "web", "--lease-duration-seconds", "8",
        "--renew-deadline-seconds", "6", "--retry-period-seconds", "2", "--port", "9000",
        "--preempt", "--failsafe-seconds", "120", "--unhealthy-seconds", "4",
        "--health-container", "app",
    ]  # fmt: skip
    assert [env["name"] for env in elector["env"]] == ["POD_NAME", "POD_NAMESPACE"]
    assert elector["env"][0]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert elector["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 9000}
    assert elector["resources"]["requests"] == {"cpu": "10m", "memory": "64Mi"}


def test_the_elector_is_restricted_pod_security_compliant() -> None:
    assert _elector()["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def test_the_elector_image_defaults_to_this_version_and_can_be_overridden() -> None:
    assert _elector()["image"] == DEFAULT_IMAGE
    assert DEFAULT_IMAGE.endswith(f":{__version__}")
    assert (
        _elector(image="registry.local/haoperator:dev")["image"] == "registry.local/haoperator:dev"
    )


def test_only_the_elector_gets_the_api_token_of_the_account_we_create() -> None:
    deployment = by_kind(desired(haservice("ActivePassive")))[("Deployment", "web")]
    spec = pod_spec(deployment)
    assert spec["serviceAccountName"] == "web-elector"
    assert spec["automountServiceAccountToken"] is False
    assert spec["initContainers"][0]["volumeMounts"] == [
        {"name": "ha-elector-token", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
         "readOnly": True}
    ]  # fmt: skip
    assert [volume["name"] for volume in spec["volumes"]] == ["ha-elector-token"]
    assert "volumeMounts" not in spec["containers"][0]


def test_the_elector_role_grants_exactly_what_it_needs() -> None:
    role = by_kind(desired(haservice("ActivePassive")))[("Role", "web-elector")]
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["web"],
         "verbs": ["get", "list", "watch", "update", "patch"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "patch"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
         "verbs": ["list", "watch"]},
    ]  # fmt: skip
    assert not any("*" in values for rule in role["rules"] for values in rule.values())


def test_a_service_account_named_by_the_template_is_bound_not_created() -> None:
    raw = document("ActivePassive")
    raw["spec"]["template"]["spec"]["serviceAccountName"] = "cinder"
    children = by_kind(desired(HAService.model_validate(raw)))
    assert ("ServiceAccount", "web-elector") not in children
    binding = children[("RoleBinding", "web-elector")]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "cinder", "namespace": "apps"}
    ]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "web-elector",
    }
    spec = pod_spec(children[("Deployment", "web")])
    assert spec["serviceAccountName"] == "cinder"
    assert "automountServiceAccountToken" not in spec


def test_rendering_does_not_change_the_haservice() -> None:
    service = haservice("ActivePassive", service=PORTS)
    before = service.model_dump()
    desired(service)
    assert service.model_dump() == before
