"""The models accept what the API accepts and explain, per field, what they refuse."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from pydantic import ValidationError

from haoperator.api import HAService, HAServiceStatus
from haoperator.api.behaviour import ClusteredSpec
from haoperator.api.messages import describe, field_path
from tests.unit.documents import document, haservice


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        HAService.model_validate(raw)
    return describe(caught.value)


def test_a_minimal_haservice_gets_the_documented_defaults() -> None:
    spec = haservice().spec
    assert spec.replicas is None
    assert spec.desired_replicas == 2
    assert spec.placement.spread == "Preferred"
    assert spec.placement.topology_key == "kubernetes.io/hostname"
    assert spec.disruption_settings.max_unavailable == 1
    assert spec.recovery.restart.max_restarts == 5
    assert spec.recovery.restart.window_seconds == 600
    assert spec.recovery.restart.on_limit == "Migrate"
    assert spec.recovery.node_loss.grace_seconds == 60
    assert spec.recovery.node_loss.action == "Wait"


def test_clustered_defaults_to_three_replicas_and_a_majority() -> None:
    spec = haservice("Clustered").spec
    assert spec.desired_replicas == 3
    assert spec.clustered_settings.quorum == "Majority"
    assert spec.clustered_settings.pod_management_policy == "Parallel"


def test_active_passive_timings_default_like_kubernetes_leader_election() -> None:
    settings = haservice("ActivePassive").spec.active_passive_settings
    assert (settings.lease_duration_seconds, settings.renew_deadline_seconds) == (5, 3)
    assert (settings.retry_period_seconds, settings.preempt) == (1, False)


@pytest.mark.parametrize(
    ("quorum", "replicas", "size"),
    [("Majority", 1, 1), ("Majority", 2, 2), ("Majority", 3, 2), ("Majority", 4, 3),
     ("Majority", 5, 3), ("All", 5, 5), (2, 5, 2)],
)  # fmt: skip
def test_quorum_size(quorum: int | str, replicas: int, size: int) -> None:
    assert ClusteredSpec.model_validate({"quorum": quorum}).quorum_size(replicas) == size


def test_the_wire_is_camel_case_only() -> None:
    raw = document(activePassive={"lease_duration_seconds": 10})
    raw["spec"]["category"] = "ActivePassive"
    assert problems(raw) == [
        "spec.activePassive.lease_duration_seconds: is not a field of this object "
        "(check the spelling and the nesting)"
    ]


def test_types_are_strict_like_the_api_server() -> None:
    assert problems(document(replicas="3")) == ['spec.replicas: must be an integer (got "3")']
    assert problems(document(replicas=True)) == ["spec.replicas: must be an integer (got true)"]


def test_an_unknown_category_lists_the_known_ones() -> None:
    assert problems(document("Stateful")) == [
        "spec.category: must be 'LoadBalanced', 'Clustered', 'QueueWorker' or 'ActivePassive' "
        '(got "Stateful")'
    ]


def test_the_renew_deadline_message_says_what_it_must_be_less_than() -> None:
    raw = document("ActivePassive", activePassive={"renewDeadlineSeconds": 5})
    assert problems(raw) == [
        "spec.activePassive.renewDeadlineSeconds: must be less than leaseDurationSeconds (5)"
    ]


def test_the_retry_period_must_be_less_than_the_renew_deadline() -> None:
    raw = document(
        "ActivePassive", activePassive={"renewDeadlineSeconds": 2, "retryPeriodSeconds": 2}
    )
    assert problems(raw) == [
        "spec.activePassive.retryPeriodSeconds: must be less than renewDeadlineSeconds (2)"
    ]


def test_every_broken_cross_field_rule_is_reported_at_once() -> None:
    raw = document(
        "QueueWorker",
        service={"ports": [{"name": "http", "port": 80}]},
        clustered={"quorum": 2},
        activePassive={},
    )
    assert problems(raw) == [
        "spec.service: is not allowed with category QueueWorker: queue workers take no traffic",
        "spec.clustered: is only allowed with category Clustered",
        "spec.activePassive: is only allowed with category ActivePassive",
    ]


def test_active_passive_needs_a_standby() -> None:
    assert problems(document("ActivePassive", replicas=1)) == [
        "spec.replicas: must be at least 2 with category ActivePassive (one active, one standby), "
        "got 1"
    ]


def test_an_integer_quorum_must_fit_the_replicas_default_included() -> None:
    assert problems(document("Clustered", clustered={"quorum": 4})) == [
        "spec.clustered.quorum: must not exceed replicas (3)"
    ]
    assert haservice("Clustered", replicas=5, clustered={"quorum": 4}).spec.replicas == 5


@pytest.mark.parametrize("quorum", [0, -1, "Half", "3"])
def test_a_quorum_is_majority_all_or_a_positive_integer(quorum: int | str) -> None:
    assert problems(document("Clustered", clustered={"quorum": quorum})) == [
        f"spec.clustered.quorum: must be Majority, All or an integer of at least 1 (got {quorum})"
    ]


@pytest.mark.parametrize("budget", [0, -1, "0%", "101%", "1.5%", "half"])
def test_a_budget_that_blocks_drains_is_refused(budget: int | str) -> None:
    lines = problems(document(disruption={"maxUnavailable": budget}))
    assert lines == [
        "spec.disruption.maxUnavailable: must be an integer of at least 1 or a percentage from "
        f"1% to 100%: a budget of 0 would block every node drain (got {budget})"
    ]


@pytest.mark.parametrize("budget", [1, 3, "1%", "25%", "100%"])
def test_budgets_that_leave_drains_possible_are_accepted(budget: int | str) -> None:
    spec = haservice(disruption={"maxUnavailable": budget}).spec
    assert spec.disruption_settings.max_unavailable == budget


def test_clustered_takes_no_disruption_block() -> None:
    assert problems(document("Clustered", disruption={"maxUnavailable": 1})) == [
        "spec.disruption: is not allowed with category Clustered: its disruption budget follows "
        "clustered.quorum"
    ]


def test_peer_ports_must_not_clash_with_service_ports() -> None:
    raw = document(
        "Clustered",
        service={"ports": [{"name": "mysql", "port": 3306}]},
        clustered={"peerPorts": [{"name": "mysql", "port": 4567}, {"name": "x", "port": 3306}]},
    )
    assert problems(raw) == [
        "spec.clustered.peerPorts: must differ from the service ports in name and in port number "
        '(clashing: ["mysql", "x"])'
    ]


def test_repeated_port_names_are_refused() -> None:
    raw = document(service={"ports": [{"name": "a", "port": 1}, {"name": "a", "port": 2}]})
    assert problems(raw) == ["spec.service.ports: port names must be unique: a repeated"]


@pytest.mark.parametrize("target", [0, 65536, "", "much-too-long-name"])
def test_a_target_port_is_a_port_number_or_a_short_name(target: int | str) -> None:
    raw = document(service={"ports": [{"name": "http", "port": 80, "targetPort": target}]})
    assert problems(raw) == [
        "spec.service.ports[0].targetPort: must be a port number (1-65535) or the name of a "
        "container port (at most 15 characters)"
    ]


def test_a_target_port_is_never_a_boolean() -> None:
    raw = document(service={"ports": [{"name": "http", "port": 80, "targetPort": True}]})
    assert problems(raw) == ["spec.service.ports[0].targetPort: must be an integer or a string"]


def test_the_name_must_leave_room_for_child_names() -> None:
    assert problems(document(name="a" * 53)) == [
        "metadata.name: must be at most 52 characters, so that the names of its children fit in "
        "63 (it has 53)"
    ]
    assert haservice(name="a" * 52).name == "a" * 52


@pytest.mark.parametrize("name", ["1web", "web.front", "Web", "web-", "-web"])
def test_the_name_must_be_a_dns_1035_label(name: str) -> None:
    assert problems(document(name=name)) == [
        "metadata.name: must be a DNS-1035 label: lowercase letters, digits and '-', starting "
        "with a letter and ending with a letter or digit"
    ]


def test_a_template_needs_containers_with_names_and_images() -> None:
    raw = document()
    raw["spec"]["template"]["spec"]["containers"] = [{"name": "App_1"}]
    assert problems(raw) == [
        "spec.template.spec.containers[0].name: must be a DNS-1123 label: lowercase letters, "
        "digits and '-', starting and ending with a letter or digit",
        "spec.template.spec.containers[0].image: is required",
    ]
    raw["spec"]["template"]["spec"]["containers"] = []
    assert problems(raw) == ["spec.template.spec.containers: must have at least 1 item"]


def test_missing_required_fields_are_named() -> None:
    raw = document()
    del raw["spec"]["template"]
    assert problems(raw) == ["spec.template: is required"]


def test_the_rest_of_the_pod_template_is_kept_for_the_api_server() -> None:
    raw = document()
    raw["spec"]["template"]["spec"]["nodeSelector"] = {"disk": "ssd"}
    raw["spec"]["template"]["spec"]["containers"][0]["args"] = ["--verbose"]
    dumped = HAService.model_validate(raw).spec.template.model_dump(exclude_unset=True)
    assert dumped["spec"]["nodeSelector"] == {"disk": "ssd"}
    assert dumped["spec"]["containers"][0]["args"] == ["--verbose"]


def test_a_full_spec_survives_a_round_trip() -> None:
    original = haservice(
        "Clustered",
        replicas=5,
        service={"type": "NodePort", "ports": [{"name": "amqp", "port": 5672}]},
        placement={"spread": "Required", "topologyKey": "topology.kubernetes.io/zone"},
        clustered={"quorum": 3, "peerPorts": [{"name": "epmd", "port": 4369}]},
        recovery={"nodeLoss": {"action": "ForceDelete", "graceSeconds": 10}},
    )
    again = HAService.model_validate(original.model_dump(mode="json", exclude_none=True))
    assert again == original


def test_status_reads_the_wire_shape_and_tolerates_newer_fields() -> None:
    status = HAServiceStatus.model_validate(
        {
            "observedGeneration": 4,
            "selector": "haoperator.dev/service=web",
            "replicas": 2,
            "readyReplicas": 2,
            "activePod": "web-1",
            "failovers": 3,
            "lastFailover": {"time": "2025-01-01T00:00:00Z", "from": "web-0", "to": "web-1",
                             "seconds": 0.42},
            "conditions": [{"type": "Ready", "status": "True", "reason": "Elected", "message": "",
                            "lastTransitionTime": "2025-01-01T00:00:00Z"}],
            "addedLater": True,
        }
    )  # fmt: skip
    assert status.last_failover is not None
    assert status.last_failover.from_ == "web-0"
    assert status.model_dump(exclude_none=True)["lastFailover"]["from"] == "web-0"


@pytest.mark.parametrize(
    ("location", "path"),
    [
        (("spec", "service", "ports", 0, "name"), "spec.service.ports[0].name"),
        (("spec", "template", "metadata", "labels", "app.kubernetes.io/name"),
         "spec.template.metadata.labels[app.kubernetes.io/name]"),
        ((), "(document)"),
    ],
)  # fmt: skip
def test_field_paths_read_like_kubernetes_paths(location: tuple[int | str, ...], path: str) -> None:
    assert field_path(location) == path


def test_a_document_that_is_not_a_mapping_says_so() -> None:
    with pytest.raises(ValidationError) as caught:
        HAService.model_validate(["not", "a", "mapping"])
    assert describe(caught.value) == ["(document): must be a mapping (key: value)"]


def test_an_object_from_a_client_library_is_read_through_its_mapping_views() -> None:
    class View(Mapping[str, Any]):
        """A read-only view, as kopf hands bodies over."""

        def __init__(self, data: dict[str, Any]) -> None:
            self._data = data

        def __getitem__(self, key: str) -> Any:
            value = self._data[key]
            return View(value) if isinstance(value, dict) else value

        def __iter__(self) -> Iterator[str]:
            return iter(self._data)

        def __len__(self) -> int:
            return len(self._data)

    assert HAService.from_object(View(document("Clustered"))) == haservice("Clustered")


def _pod(raw: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = raw["spec"]["template"]["spec"]
    return pod


def _app(raw: dict[str, Any]) -> dict[str, Any]:
    app: dict[str, Any] = _pod(raw)["containers"][0]
    return app


@pytest.mark.parametrize(
    ("spec", "line"),
    [
        ({"replicas": 2147483647}, "spec.replicas: must be at most 1000"),
        ({"disruption": {"maxUnavailable": 1001}},
         "spec.disruption.maxUnavailable: must be at most 1000"),
        ({"recovery": {"restart": {"maxRestarts": 1001}}},
         "spec.recovery.restart.maxRestarts: must be at most 1000"),
        ({"recovery": {"restart": {"windowSeconds": 86401}}},
         "spec.recovery.restart.windowSeconds: must be at most 86400"),
        ({"recovery": {"nodeLoss": {"graceSeconds": 3601}}},
         "spec.recovery.nodeLoss.graceSeconds: must be at most 3600"),
    ],
)  # fmt: skip
def test_counts_the_operator_passes_on_are_bounded(spec: dict[str, Any], line: str) -> None:
    assert problems(document(**spec)) == [line]


def test_the_bounds_themselves_are_accepted() -> None:
    spec = haservice(
        "Clustered",
        replicas=1000,
        clustered={"quorum": 1000},
        recovery={"restart": {"maxRestarts": 1000, "windowSeconds": 86400},
                  "nodeLoss": {"graceSeconds": 3600}},
    ).spec  # fmt: skip
    assert (spec.desired_replicas, spec.clustered_settings.quorum_size(1000)) == (1000, 1000)
    assert haservice(disruption={"maxUnavailable": 1000}).spec.replicas is None


def test_an_integer_quorum_is_bounded_like_the_replicas() -> None:
    raw = document("Clustered", replicas=1000, clustered={"quorum": 1001})
    assert problems(raw) == ["spec.clustered.quorum: must be at most 1000"]


def test_container_names_are_unique_across_containers_and_init_containers() -> None:
    raw = document()
    _pod(raw)["containers"].append({"name": "app", "image": "docker.io/library/haproxy:2.9"})
    assert problems(raw) == [
        "spec.template.spec.containers: container names must be unique: app repeated"
    ]
    raw = document()
    _pod(raw)["initContainers"] = [{"name": "app", "image": "docker.io/library/busybox:1.37"}]
    assert problems(raw) == [
        "spec.template.spec.initContainers: must not reuse the name of a container: a pod's "
        'containers and init containers share one set of names (reused: ["app"])'
    ]


def test_volume_names_are_unique() -> None:
    raw = document()
    _pod(raw)["volumes"] = [{"name": "data", "emptyDir": {}}, {"name": "data", "emptyDir": {}}]
    assert problems(raw) == [
        "spec.template.spec.volumes: volume names must be unique: data repeated"
    ]


@pytest.mark.parametrize("category", ["LoadBalanced", "Clustered", "QueueWorker", "ActivePassive"])
def test_the_elector_names_are_reserved_in_every_category(category: str) -> None:
    raw = document(category)
    _pod(raw)["initContainers"] = [{"name": "ha-elector", "image": "docker.io/library/busybox:1"}]
    _pod(raw)["containers"].append({"name": "ha-elector", "image": "docker.io/library/busybox:1"})
    _pod(raw)["volumes"] = [{"name": "ha-elector-token", "emptyDir": {}}]
    reserved_container = (
        "ha-elector is reserved: the operator adds its elector sidecar under that name"
    )
    assert problems(raw) == [
        f"spec.template.spec.containers[1].name: {reserved_container}",
        f"spec.template.spec.initContainers[0].name: {reserved_container}",
        "spec.template.spec.volumes[0].name: ha-elector-token is reserved: the operator mounts "
        "the elector's API token under that name",
    ]


@pytest.mark.parametrize("quantity", [1, 0.5, "250m", "0.5", "1Gi", "512Mi", "1e3", "+2", ".5"])
def test_resource_quantities_are_kubernetes_quantities(quantity: float | str) -> None:
    raw = document()
    _app(raw)["resources"] = {"requests": {"cpu": quantity}, "limits": {"memory": quantity}}
    container = HAService.model_validate(raw).spec.template.model_dump(exclude_unset=True)
    assert container["spec"]["containers"][0]["resources"]["requests"] == {"cpu": quantity}


@pytest.mark.parametrize(
    ("quantity", "shown"),
    [("lots", ' (got "lots")'), ("1 Gi", ' (got "1 Gi")'), (True, ""), ([1], "")],
)
def test_a_resource_that_is_not_a_quantity_is_refused(quantity: object, shown: str) -> None:
    raw = document()
    _app(raw)["resources"] = {"requests": {"cpu": quantity}}
    assert problems(raw) == [
        "spec.template.spec.containers[0].resources.requests.cpu: must be a Kubernetes quantity "
        f"such as 500m, 2, 1.5 or 512Mi{shown}"
    ]


def test_container_ports_carry_a_port_name_kubernetes_takes() -> None:
    raw = document()
    _app(raw)["ports"] = [{"name": "HTTP", "containerPort": 80}]
    assert problems(raw) == [
        "spec.template.spec.containers[0].ports[0].name: must be a port name: lowercase letters, "
        "digits and '-', with at least one letter, starting and ending with a letter or digit, "
        "no '--'"
    ]


def test_the_rest_of_a_container_port_and_its_resources_is_kept() -> None:
    raw = document()
    _app(raw)["ports"] = [{"name": "http", "containerPort": 80, "hostPort": 8080}]
    _app(raw)["resources"] = {"requests": {"cpu": 1}, "claims": [{"name": "gpu"}]}
    dumped = HAService.model_validate(raw).spec.template.model_dump(exclude_unset=True)
    assert dumped["spec"]["containers"][0]["ports"] == [
        {"name": "http", "containerPort": 80, "hostPort": 8080}
    ]
    assert dumped["spec"]["containers"][0]["resources"]["claims"] == [{"name": "gpu"}]


def test_service_port_numbers_are_unique_per_protocol() -> None:
    ports = [{"name": "http", "port": 80}, {"name": "alt", "port": 80, "targetPort": 8080}]
    assert problems(document(service={"ports": ports})) == [
        "spec.service.ports: must not repeat a port number with the same protocol: the Service "
        'would be refused (ports sharing one: ["http", "alt"])'
    ]
    dns = [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53}]
    assert len(haservice(service={"ports": dns}).spec.service.ports) == 2  # type: ignore[union-attr]


def _serving(raw: dict[str, Any], ports: list[dict[str, Any]], **init: Any) -> dict[str, Any]:
    """`raw` with `ports` on its container, or on an init container with `init`'s fields."""
    if init:
        _pod(raw)["initContainers"] = [
            {"name": "proxy", "image": "docker.io/envoyproxy/envoy:v1.31", "ports": ports, **init}
        ]
    else:
        _app(raw)["ports"] = ports
    return raw


TARGETS_NOTHING = (
    "spec.service.ports: must give each targetPort as a number or as the name of a port (same "
    "protocol) of the template's containers, or the Service sends traffic nowhere (no such port: "
    '["web"])'
)


@pytest.mark.parametrize(
    ("ports", "init", "protocol", "accepted"),
    [
        ([{"name": "web", "containerPort": 8080}], {}, "TCP", True),
        ([{"name": "web", "containerPort": 8080}], {"restartPolicy": "Always"}, "TCP", True),
        ([{"name": "web", "containerPort": 53, "protocol": "UDP"}], {}, "UDP", True),
        ([{"name": "http", "containerPort": 8080}], {}, "TCP", False),
        ([{"name": "web", "containerPort": 8080}], {"command": ["true"]}, "TCP", False),
        ([{"name": "web", "containerPort": 8080}], {}, "UDP", False),
    ],
)  # fmt: skip
def test_a_named_target_port_must_name_a_port_of_a_running_container(
    ports: list[dict[str, Any]], init: dict[str, Any], protocol: str, accepted: bool
) -> None:
    service = {"ports": [{"name": "http", "port": 80, "targetPort": "web", "protocol": protocol}]}
    raw = _serving(document(service=service), ports, **init)
    if accepted:
        HAService.model_validate(raw)
    else:
        assert problems(raw) == [TARGETS_NOTHING]


def test_a_numeric_target_port_needs_no_container_port() -> None:
    service = {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    assert haservice(service=service).spec.service is not None


ELECTOR_PORT_TAKEN = (
    "spec.activePassive.electorPort: must differ from the TCP ports of the template's containers: "
    "the ha-elector sidecar listens on it in every pod ({} is taken)"
)


@pytest.mark.parametrize(
    ("settings", "ports", "init", "taken"),
    [
        ({}, [{"containerPort": 8099}], {}, 8099),
        ({"activePassive": {"electorPort": 9000}}, [{"containerPort": 9000}], {}, 9000),
        ({}, [{"containerPort": 8099}], {"restartPolicy": "Always"}, 8099),
        ({"activePassive": {"electorPort": 9000}}, [{"containerPort": 8099}], {}, None),
        ({}, [{"containerPort": 8099, "protocol": "UDP"}], {}, None),
        ({}, [{"containerPort": 8099}], {"command": ["true"]}, None),
    ],
)  # fmt: skip
def test_the_elector_port_must_not_clash_with_a_running_container(
    settings: dict[str, Any], ports: list[dict[str, Any]], init: dict[str, Any], taken: int | None
) -> None:
    raw = _serving(document("ActivePassive", **settings), ports, **init)
    if taken is None:
        HAService.model_validate(raw)
    else:
        assert problems(raw) == [ELECTOR_PORT_TAKEN.format(taken)]


def test_the_elector_port_matters_only_with_active_passive() -> None:
    raw = _serving(document("LoadBalanced"), [{"containerPort": 8099}])
    assert HAService.model_validate(raw).spec.category == "LoadBalanced"


@pytest.mark.parametrize(
    "key",
    ["kubernetes.io/hostname", "topology.kubernetes.io/zone", "rack", "Rack_1.a",
     "example.com/" + "x" * 63, "a" * 253 + "/zone"],
)  # fmt: skip
def test_label_keys_are_topology_keys(key: str) -> None:
    assert haservice(placement={"topologyKey": key}).spec.placement.topology_key == key


@pytest.mark.parametrize(
    "key", ["not a key!", "a/b/c", "/zone", "example.com/", "-rack", "x" * 64,
            "example.com/" + "x" * 64, "a" * 254 + "/zone", "Example.com/zone"],
)  # fmt: skip
def test_a_topology_key_that_is_no_label_key_is_refused(key: str) -> None:
    assert problems(document(placement={"topologyKey": key})) == [
        "spec.placement.topologyKey: must be a node label key: an optional DNS subdomain of at "
        "most 253 characters and '/', then at most 63 letters, digits, '-', '_' or '.', starting "
        f'and ending with a letter or digit (got "{key}")'
    ]


def test_status_carries_the_effective_desired_replicas() -> None:
    status = HAServiceStatus.model_validate({"desiredReplicas": 3, "replicas": 1})
    assert status.desired_replicas == 3
    assert status.model_dump(exclude_none=True)["desiredReplicas"] == 3
