"""The CRD is generated from the models, structural, and what is committed in crds/."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

from haoperator.crd import crd_yaml, custom_resource_definition
from tests.support import REPO

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
        else:
            assert "type" in node, path
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


def test_cross_field_rules_point_at_the_field_and_name_it() -> None:
    rules = _spec()["x-kubernetes-validations"]
    assert len(rules) >= 7
    for rule in rules:
        field = rule["fieldPath"].removeprefix(".")
        assert rule["message"].startswith(field + " ")


def test_the_name_rules_sit_at_the_root() -> None:
    rules = [rule["rule"] for rule in _root()["x-kubernetes-validations"]]
    assert rules == [
        "self.metadata.name.size() <= 52",
        "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
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
        "Replicas": ".spec.replicas",
        "Ready": ".status.readyReplicas",
        "Active": ".status.activePod",
        "Status": '.status.conditions[?(@.type=="Ready")].reason',
        "Age": ".metadata.creationTimestamp",
    }
