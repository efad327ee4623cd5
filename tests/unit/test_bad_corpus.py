"""The models reject every HAService in tests/data/bad, blaming the field the API server blames.

The integration tier applies the same files to a real API server (tests/integration/
test_api_admission.py); together they keep the two validators saying the same thing.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from haoperator.api import HAService
from haoperator.api.crd import custom_resource_definition
from haoperator.api.messages import describe
from tests.unit.corpus import BadInput, bad_inputs

CORPUS = bad_inputs()


def _id(bad: BadInput) -> str:
    return bad.path.stem


def test_the_corpus_has_at_least_twenty_cases() -> None:
    assert len(CORPUS) >= 20


@pytest.mark.parametrize("bad", CORPUS, ids=_id)
def test_the_models_reject_it_at_the_field_the_server_blames(bad: BadInput) -> None:
    with pytest.raises(ValidationError) as caught:
        HAService.model_validate(yaml.safe_load(bad.text))
    problems = describe(caught.value)
    assert any(line.startswith(f"{bad.field}: ") for line in problems), problems


@pytest.mark.parametrize("bad", CORPUS, ids=_id)
def test_the_expected_message_names_the_field(bad: BadInput) -> None:
    field_name = re.sub(r"\[\d+\]$", "", bad.field.rsplit(".", 1)[-1])
    assert field_name in bad.expect


def _cel_rules(schema: dict[str, Any]) -> list[dict[str, str]]:
    found = list(schema.get("x-kubernetes-validations", []))
    children = list(schema.get("properties", {}).values())
    if "items" in schema:
        children.append(schema["items"])
    for child in children:
        found.extend(_cel_rules(child))
    return found


def test_every_creation_rule_of_the_crd_has_a_bad_example() -> None:
    schema = custom_resource_definition()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    messages = [rule["message"] for rule in _cel_rules(schema) if "oldSelf" not in rule["rule"]]
    assert len(messages) >= 12
    uncovered = [
        message for message in messages if not any(bad.expect in message for bad in CORPUS)
    ]
    assert not uncovered
