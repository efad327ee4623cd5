"""Building blocks of the HAService models: the wire conventions and the rules both validators
share.

Every rule is enforced twice — by the API server at admission (the CRD's schema and CEL rules,
generated from these models) and by the models themselves (for `haoperator render` and the
operator). Keeping each rule's words in one place is what keeps the two sides saying the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainValidator, WithJsonSchema
from pydantic.alias_generators import to_camel

INT32_MAX = 2**31 - 1

DNS_1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
DNS_1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
PERCENT = r"^(100|[1-9][0-9]?)%$"
CONDITION_TYPE = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
CONDITION_REASON = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"

PATTERN_MEANINGS = {
    DNS_1035_LABEL: "a DNS-1035 label: lowercase letters, digits and '-', "
    "starting with a letter and ending with a letter or digit",
    DNS_1123_LABEL: "a DNS-1123 label: lowercase letters, digits and '-', "
    "starting and ending with a letter or digit",
    CONDITION_TYPE: "a condition type such as Ready or example.com/Ready",
    CONDITION_REASON: "a CamelCase reason such as InvalidSpec",
}
"""The words a user reads instead of a regular expression when a value does not match."""


class ApiModel(BaseModel):
    """Base of every HAService model: camelCase on the wire, strict types, no unknown fields.

    Strict and alias-only so the models accept exactly what the API server accepts: no "5" for 5, no
    snake_case keys, no fields the schema would reject.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
        strict=True,
        extra="forbid",
    )


def _int_or_string(value: object) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be an integer or a string")
    return value


IntOrString = Annotated[
    int | str,
    PlainValidator(_int_or_string),
    WithJsonSchema(
        {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}
    ),
]
"""Kubernetes' IntOrString: what `maxUnavailable` or `targetPort` hold in every built-in API."""


@dataclass(frozen=True)
class Rule:
    """One validation rule, said once: a CEL expression for the API server and the reason users
    read.

    A rule between fields sits on the object that holds them and names, in `field`, the path of
    the field to blame (relative to that object: it becomes the CEL `fieldPath`). A rule on a
    single field sits on the field and gives its `name`. Either way the API server's message is
    `<field or name> <reason>`, so it names the field; `haoperator render` prints
    `<full path>: <reason>`.
    """

    cel: str
    reason: str
    field: str = ""
    name: str = ""

    @property
    def message(self) -> str:
        subject = self.field or self.name
        return f"{subject} {self.reason}"

    def as_cel(self) -> dict[str, Any]:
        validation: dict[str, Any] = {"rule": self.cel, "message": self.message}
        if self.field:
            validation["fieldPath"] = "." + self.field
        return validation


def cel_rules(*rules: Rule) -> dict[str, Any]:
    """The `x-kubernetes-validations` extension for a model's or a field's JSON schema."""
    return {"x-kubernetes-validations": [rule.as_cel() for rule in rules]}


class Problems(ValueError):
    """Several rule violations found at once, each with the path of the field it concerns.

    Raised from model validators so that `haoperator render` can point at `spec.replicas` rather
    than at the whole spec, and report every broken rule in one go.
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{path}: {reason}" for path, reason in problems))
        self.problems = problems


class ProblemCollector:
    """Collects broken rules in a model validator, then raises them together."""

    def __init__(self) -> None:
        self._found: list[tuple[str, str]] = []

    def require(self, holds: bool, rule: Rule, detail: str = "") -> None:
        if not holds:
            self._found.append((rule.field, f"{rule.reason}{detail}"))

    def raise_if_any(self) -> None:
        if self._found:
            raise Problems(self._found)
