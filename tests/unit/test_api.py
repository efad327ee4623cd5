"""The models accept what the API accepts and explain, per field, what they refuse."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from pydantic import ValidationError

from haoperator.api import HAService, HAServiceStatus
from haoperator.api_settings import ClusteredSpec
from haoperator.problems import describe, field_path
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
        "spec.clustered.quorum: must be Majority, All or an integer of at least 1"
    ]


@pytest.mark.parametrize("budget", [0, -1, "0%", "101%", "1.5%", "half"])
def test_a_budget_that_blocks_drains_is_refused(budget: int | str) -> None:
    lines = problems(document(disruption={"maxUnavailable": budget}))
    assert lines == [
        "spec.disruption.maxUnavailable: must be an integer of at least 1 or a percentage from "
        "1% to 100%: a budget of 0 would block every node drain"
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
        "(mysql, x)"
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
