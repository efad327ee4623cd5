"""The CRD is generated from the models, structural, and what is committed in crds/."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

from haoperator.api import MAX_REPLICAS
from haoperator.api.base import QUANTITY
from haoperator.api.crd import crd_yaml, custom_resource_definition
from testenv.harness.cluster import REPO

COMMITTED = REPO / "crds" / "haservice.yaml"


def _version() -> dict[str, Any]:
    versions: list[dict[str, Any]] = custom_resource_definition()["spec"]["versions"]
    assert len(versions) == 1
    return versions[0]


def _root() -> dict[str, Any]:
    root: dict[str, Any] = _version()["schema"]["openAPIV3Schema"]
    return root


def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = _root()["properties"]["spec"]
    return spec


def _walk(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from _walk(child, f"{path}.{name}")
    if "items" in schema:
        yield from _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk(schema["additionalProperties"], f"{path}{{}}")


def test_the_committed_crd_is_what_the_generator_makes() -> None:
    assert COMMITTED.read_text() == crd_yaml(), (
        "crds/haservice.yaml drifted from the models: run `haoperator crd > crds/haservice.yaml`"
    )


def test_the_generated_yaml_parses_back_to_the_crd() -> None:
    assert yaml.safe_load(crd_yaml()) == custom_resource_definition()


def test_names_scope_and_version() -> None:
    crd = custom_resource_definition()
    assert crd["metadata"]["name"] == "haservices.haoperator.dev"
    assert crd["spec"]["group"] == "haoperator.dev"
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"] == {
        "kind": "HAService",
        "listKind": "HAServiceList",
        "plural": "haservices",
        "singular": "haservice",
        "shortNames": ["has"],
        "categories": ["ha"],
    }
    assert _version()["name"] == "v1alpha1"
    assert _version()["served"] is True
    assert _version()["storage"] is True


def test_the_schema_is_structural() -> None:
    for path, node in _walk(_root()):
        assert not {"$ref", "$defs", "title", "nullable", "oneOf", "allOf"} & node.keys(), path
        assert node.get("additionalProperties") is not False, path
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string") is True, path
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
        elif "type" not in node:
            assert node.get("x-kubernetes-preserve-unknown-fields") is True, path
        assert node.get("default", 0) is not None, path


def test_every_field_has_a_description_for_kubectl_explain() -> None:
    undescribed = [
        path
        for path, node in _walk(_root())
        if not node.get("description") and path != ".metadata" and not path.endswith("{}")
    ]
    assert not undescribed


def test_int_or_string_where_kubernetes_uses_it() -> None:
    spec = _spec()["properties"]
    int_or_string = [
        spec["disruption"]["properties"]["maxUnavailable"],
        spec["clustered"]["properties"]["quorum"],
        spec["service"]["properties"]["ports"]["items"]["properties"]["targetPort"],
    ]
    for node in int_or_string:
        assert node["x-kubernetes-int-or-string"] is True
        assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}]


def test_cel_never_runs_string_functions_on_a_listed_int_or_string() -> None:
    """The API server costs an int-or-string as a 3 MiB string; in a list of 32 ports that
    exceeds the CEL budget, so the target port is bounded by plain schema validation."""
    ports = _spec()["properties"]["service"]["properties"]["ports"]
    target_port = ports["items"]["properties"]["targetPort"]
    assert "x-kubernetes-validations" not in target_port
    assert (target_port["minimum"], target_port["maximum"]) == (1, 65535)
    assert (target_port["minLength"], target_port["maxLength"]) == (1, 15)


def test_enums_and_minimums_are_in_the_schema() -> None:
    spec = _spec()["properties"]
    assert spec["category"]["enum"] == ["LoadBalanced", "Clustered", "QueueWorker", "ActivePassive"]
    assert spec["placement"]["properties"]["spread"]["enum"] == ["Required", "Preferred", "None"]
    assert spec["replicas"]["minimum"] == 1
    assert spec["recovery"]["properties"]["restart"]["properties"]["maxRestarts"]["minimum"] == 0


def test_category_is_immutable() -> None:
    rules = _spec()["properties"]["category"]["x-kubernetes-validations"]
    assert [rule["rule"] for rule in rules] == ["self == oldSelf"]
    assert rules[0]["message"].startswith("category is immutable")


def test_the_pod_management_policy_cannot_change_even_by_dropping_the_block() -> None:
    rules = [r for r in _spec()["x-kubernetes-validations"] if "oldSelf" in r["rule"]]
    assert [rule["fieldPath"] for rule in rules] == [".clustered.podManagementPolicy"]
    assert "has(oldSelf.clustered)" in rules[0]["rule"]


def test_the_pod_template_is_kept_for_the_api_server_to_judge() -> None:
    template = _spec()["properties"]["template"]
    pod_spec = template["properties"]["spec"]
    assert "x-kubernetes-embedded-resource" not in template
    assert pod_spec["x-kubernetes-preserve-unknown-fields"] is True
    assert pod_spec["required"] == ["containers"]
    assert pod_spec["properties"]["containers"]["minItems"] == 1
    assert template["properties"]["metadata"]["x-kubernetes-preserve-unknown-fields"] is True
    assert _spec()["required"] == ["category", "template"]


def test_lists_that_cel_rules_iterate_are_bounded() -> None:
    spec = _spec()["properties"]
    assert spec["service"]["properties"]["ports"]["maxItems"] <= 32
    assert spec["clustered"]["properties"]["peerPorts"]["maxItems"] <= 32
    pod = spec["template"]["properties"]["spec"]["properties"]
    for containers in ("containers", "initContainers"):
        assert pod[containers]["maxItems"] <= 32
        assert pod[containers]["items"]["properties"]["ports"]["maxItems"] <= 64
    assert pod["volumes"]["maxItems"] <= 256


def _rules(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, node in _walk(schema):
        for rule in node.get("x-kubernetes-validations", []):
            yield path, rule


def test_every_rule_is_reported_as_forbidden_so_the_server_shows_no_type_as_the_value() -> None:
    """With the default reason the API server prints `Invalid value: "object"`."""
    rules = list(_rules(_root()))
    assert len(rules) >= 20
    for path, rule in rules:
        assert rule["reason"] == "FieldValueForbidden", path


def test_message_expressions_format_the_value_into_the_static_message() -> None:
    """format() rather than `+ string(...)`, whose cost estimate the API server refuses; the
    static message stays the fallback and starts the same way."""
    formatted = [(path, rule) for path, rule in _rules(_root()) if "messageExpression" in rule]
    assert len(formatted) >= 10
    for path, rule in formatted:
        expression = rule["messageExpression"]
        assert expression.startswith('"' + rule["message"].replace("%", "%%")), path
        assert ".format([" in expression, path
        assert "string(" not in expression, path


def test_counts_are_bounded_by_what_an_ha_service_needs() -> None:
    spec = _spec()["properties"]
    recovery = spec["recovery"]["properties"]
    bounds = {
        "replicas": spec["replicas"],
        "quorum": spec["clustered"]["properties"]["quorum"],
        "maxUnavailable": spec["disruption"]["properties"]["maxUnavailable"],
        "maxRestarts": recovery["restart"]["properties"]["maxRestarts"],
        "windowSeconds": recovery["restart"]["properties"]["windowSeconds"],
        "graceSeconds": recovery["nodeLoss"]["properties"]["graceSeconds"],
        "leaseDurationSeconds": spec["activePassive"]["properties"]["leaseDurationSeconds"],
    }
    assert {name: node["maximum"] for name, node in bounds.items()} == {
        "replicas": MAX_REPLICAS,
        "quorum": MAX_REPLICAS,
        "maxUnavailable": MAX_REPLICAS,
        "maxRestarts": 1000,
        "windowSeconds": 86400,
        "graceSeconds": 3600,
        "leaseDurationSeconds": 3600,
    }
    assert MAX_REPLICAS == 1000
    assert "at most 1000" in spec["replicas"]["description"]


def test_resource_quantities_are_checked_by_kubernetes_pattern_and_take_numbers() -> None:
    """Not int-or-string, which refuses `cpu: 0.5` that a Deployment takes."""
    container = _spec()["properties"]["template"]["properties"]["spec"]["properties"]["containers"][
        "items"
    ]
    resources = container["properties"]["resources"]["properties"]
    for kind in ("requests", "limits"):
        quantity = resources[kind]["additionalProperties"]
        assert quantity == {"x-kubernetes-preserve-unknown-fields": True, "pattern": QUANTITY}


def test_names_in_the_pod_are_keys_the_server_keeps_unique() -> None:
    pod = _spec()["properties"]["template"]["properties"]["spec"]["properties"]
    for name in ("containers", "initContainers", "volumes"):
        assert pod[name]["x-kubernetes-list-type"] == "map", name
        assert pod[name]["x-kubernetes-list-map-keys"] == ["name"], name


def test_cross_field_rules_point_at_the_field_and_name_it() -> None:
    rules = _spec()["x-kubernetes-validations"]
    assert len(rules) >= 7
    for rule in rules:
        field = rule["fieldPath"].removeprefix(".")
        assert rule["message"].startswith(field + " ")


def test_the_name_rules_sit_on_metadata_name() -> None:
    """The one place the CRD may constrain metadata; the message then names `metadata.name`
    instead of `<nil>`."""
    assert "x-kubernetes-validations" not in _root()
    name = _root()["properties"]["metadata"]["properties"]["name"]
    assert name["type"] == "string"
    assert [rule["rule"] for rule in name["x-kubernetes-validations"]] == [
        "self.size() <= 52",
        "self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
    ]


def test_status_and_scale_subresources() -> None:
    assert _version()["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }


def test_conditions_are_a_map_keyed_by_type() -> None:
    conditions = _root()["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert "type" in conditions["items"]["required"]


def test_printer_columns() -> None:
    columns = {
        column["name"]: column["jsonPath"] for column in _version()["additionalPrinterColumns"]
    }
    assert columns == {
        "Category": ".spec.category",
        "Replicas": ".status.desiredReplicas",
        "Ready": ".status.readyReplicas",
        "Active": ".status.activePod",
        "Status": '.status.conditions[?(@.type=="Ready")].reason',
        "Paused": '.status.conditions[?(@.type=="Paused")].status',
        "Age": ".metadata.creationTimestamp",
    }
