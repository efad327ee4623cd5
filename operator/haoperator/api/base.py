"""Building blocks of the HAService models: the wire conventions and the rules both validators
share.

Every rule is enforced twice — by the API server at admission (the CRD's schema and CEL rules,
generated from these models) and by the models themselves (for `haoperator render` and the
operator). Keeping each rule's words in one place is what keeps the two sides saying the same thing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainValidator, WithJsonSchema
from pydantic.alias_generators import to_camel

INT32_MAX = 2**31 - 1

MAX_REPLICAS = 1000
"""The most pods one HAService may ask for. An HA service needs a handful; far larger counts are
a typo or an attack, and `replicas: 2147483647` for a StatefulSet once grew kube-controller-manager
to 21 GB. Quorums and disruption budgets count the same pods, so they share the bound."""
MAX_RESTARTS = 1000
"""More restarts than a day's window can hold: Kubernetes backs a crashing container off to one
restart every five minutes, so a larger limit could never be reached."""
MAX_WINDOW_SECONDS = 86400
"""One day: systemd's StartLimitIntervalSec and pacemaker's failure-timeout are minutes, and a node
avoided for longer than a day should be repaired or drained instead."""
MAX_GRACE_SECONDS = 3600
"""One hour: Kubernetes itself evicts from a NotReady node after 300 s; waiting longer than an hour
to fence is no longer high availability."""
MAX_LEASE_SECONDS = 3600
"""An hour: the lease duration is the failover time, and an hour is far beyond high availability;
it still takes keepalived's slowest advertisement interval (255 s: a 17-minute failover)."""

DNS_1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
DNS_1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
PERCENT = r"^(100|[1-9][0-9]?)%$"
QUALIFIED_NAME = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
"""A label key or a condition type: an optional DNS subdomain and '/', then a name."""
CONDITION_TYPE = QUALIFIED_NAME
CONDITION_REASON = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
PORT_NAME = r"^([a-z0-9]+-)*[0-9]*[a-z][a-z0-9]*(-[a-z0-9]+)*$"
"""Kubernetes' IANA_SVC_NAME (with a length of at most 15): a Service's targetPort finds the
container port by it."""
QUANTITY = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
"""Kubernetes' resource.Quantity, as controller-gen writes it into CRDs."""

PATTERN_MEANINGS = {
    DNS_1035_LABEL: "a DNS-1035 label: lowercase letters, digits and '-', "
    "starting with a letter and ending with a letter or digit",
    DNS_1123_LABEL: "a DNS-1123 label: lowercase letters, digits and '-', "
    "starting and ending with a letter or digit",
    CONDITION_TYPE: "a condition type such as Ready or example.com/Ready",
    CONDITION_REASON: "a CamelCase reason such as InvalidSpec",
    PORT_NAME: "a port name: lowercase letters, digits and '-', with at least one letter, "
    "starting and ending with a letter or digit, no '--'",
    QUANTITY: "a Kubernetes quantity such as 500m, 2, 1.5 or 512Mi",
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
    `<path>: Forbidden: <field or name> <reason>`, so it names the field; `haoperator render`
    prints `<full path>: <reason>`.

    `detail` shows the value at fault: words with `{}` where the value goes, filled by the models
    with the value and by the API server with `shows`, a CEL expression for it (in a
    `messageExpression` that formats it: concatenating `string(...)` instead would cost the rule
    out of the API server's budget).
    """

    cel: str
    reason: str
    field: str = ""
    name: str = ""
    detail: str = ""
    shows: str = ""

    @property
    def message(self) -> str:
        subject = self.field or self.name
        return f"{subject} {self.reason}"

    def explain(self, value: object = None) -> str:
        """The reason with the value at fault, as the models report it."""
        return self.reason + (self.detail.format(value) if self.detail else "")

    def as_cel(self) -> dict[str, Any]:
        """The rule as an entry of `x-kubernetes-validations`.

        The reason is always FieldValueForbidden: with the default, FieldValueInvalid, the API
        server prints the schema's type where the value belongs (`Invalid value: "object"`, or
        `""` for an int-or-string), which reads as if the user had written it.
        """
        validation: dict[str, Any] = {
            "rule": self.cel,
            "message": self.message,
            "reason": "FieldValueForbidden",
        }
        if self.detail:
            words = (self.message + self.detail).replace("%", "%%").replace("{}", "%s")
            validation["messageExpression"] = f"{cel_string(words)}.format([{self.shows}])"
        if self.field:
            validation["fieldPath"] = "." + self.field
        return validation


def as_cel_list(items: Iterable[str | int]) -> str:
    """A list as a CEL `messageExpression` formats it (`["a", "b"]`), for the models to say the
    same. The API server's cost estimate takes a list in `format()` but not a `join()`."""
    return json.dumps(list(items))


def cel_string(text: str) -> str:
    """`text` as a CEL string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def cel_rules(*rules: Rule) -> dict[str, Any]:
    """The `x-kubernetes-validations` extension for a model's or a field's JSON schema."""
    return {"x-kubernetes-validations": [rule.as_cel() for rule in rules]}


class RuleViolations(ValueError):
    """Several rule violations found at once, each with the path of the field it concerns.

    Raised from model validators so that `haoperator render` can point at `spec.replicas` rather
    than at the whole spec, and report every broken rule in one go.
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{path}: {reason}" for path, reason in problems))
        self.problems = problems


class RuleCheck:
    """Collects broken rules in a model validator, then raises them together."""

    def __init__(self) -> None:
        self._found: list[tuple[str, str]] = []

    def require(self, holds: bool, rule: Rule, value: object = None) -> None:
        if not holds:
            self._found.append((rule.field, rule.explain(value)))

    def raise_if_any(self) -> None:
        if self._found:
            raise RuleViolations(self._found)
