"""Properties of rendering that hold for every valid HAService, checked with hypothesis.

Example counts stay modest so the unit suite runs in seconds; raise HYPOTHESIS_MAX_EXAMPLES to
search harder.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings

from haoperator.api import HAService
from haoperator.core.render import desired
from tests.unit.kubernetes_schemas import assert_valid
from tests.unit.strategies import haservices

PROPERTIES = settings(
    max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
DNS_1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
ACTIVE = {"haoperator.dev/role": "active"}


def _pod_labels(children: list[dict[str, Any]]) -> dict[str, str]:
    workloads = [c for c in children if c["kind"] in ("Deployment", "StatefulSet")]
    assert len(workloads) == 1
    labels: dict[str, str] = workloads[0]["spec"]["template"]["metadata"]["labels"]
    return labels


def _selectors(child: dict[str, Any]) -> list[dict[str, str]]:
    spec = child.get("spec", {})
    if child["kind"] == "Service":
        return [spec["selector"]]
    found = [spec["selector"]["matchLabels"]] if "selector" in spec else []
    pod_spec = spec.get("template", {}).get("spec", {})
    for constraint in pod_spec.get("topologySpreadConstraints", []):
        found.append(constraint["labelSelector"]["matchLabels"])
    return found


@PROPERTIES
@given(haservices())
def test_every_valid_haservice_renders_to_valid_kubernetes(document: dict[str, Any]) -> None:
    for child in desired(HAService.model_validate(document)):
        assert_valid(child)


@PROPERTIES
@given(haservices())
def test_every_selector_picks_the_pods(document: dict[str, Any]) -> None:
    """The active pod carries the role label its elector sets; every selector matches it."""
    haservice = HAService.model_validate(document)
    children = desired(haservice)
    pod_labels = _pod_labels(children)
    if haservice.spec.category == "ActivePassive":
        pod_labels = {**pod_labels, **ACTIVE}
    for child in children:
        for selector in _selectors(child):
            assert selector.items() <= pod_labels.items(), (child["kind"], selector)


@PROPERTIES
@given(haservices())
def test_every_name_is_a_dns_label_of_at_most_63_characters(document: dict[str, Any]) -> None:
    for child in desired(HAService.model_validate(document)):
        name = child["metadata"]["name"]
        assert len(name) <= 63
        assert DNS_1123_LABEL.fullmatch(name)


def _voluntary_evictions_allowed(budget: dict[str, Any], replicas: int) -> int:
    spec = budget["spec"]
    if "minAvailable" in spec:
        return replicas - int(spec["minAvailable"])
    value = spec["maxUnavailable"]
    if isinstance(value, str):
        return math.ceil(int(value.rstrip("%")) * replicas / 100)
    return int(value)


@PROPERTIES
@given(haservices())
def test_the_budget_leaves_drains_possible_unless_the_quorum_is_everyone(
    document: dict[str, Any],
) -> None:
    """Only a Clustered quorum of all members (All, or Majority/an integer that equals the
    replicas) may forbid every voluntary eviction: losing any member would lose the quorum."""
    haservice = HAService.model_validate(document)
    replicas = haservice.spec.desired_replicas
    budget = next(c for c in desired(haservice) if c["kind"] == "PodDisruptionBudget")
    allowed = _voluntary_evictions_allowed(budget, replicas)
    quorum_is_everyone = (
        haservice.spec.category == "Clustered"
        and haservice.spec.clustered_settings.quorum_size(replicas) == replicas
    )
    if replicas > 1 and not quorum_is_everyone:
        assert allowed >= 1


@PROPERTIES
@given(haservices())
def test_rendering_is_deterministic(document: dict[str, Any]) -> None:
    first = desired(HAService.model_validate(document))
    second = desired(HAService.model_validate(document))
    assert yaml.safe_dump_all(first, sort_keys=False) == yaml.safe_dump_all(second, sort_keys=False)
