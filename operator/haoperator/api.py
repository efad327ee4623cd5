"""The HAService API (haoperator.dev/v1alpha1): the single source of truth for spec, status and the
CRD.

Descriptions here are what `kubectl explain haservice.spec.<field>` prints, so they are written for
users. Cross-field rules are stated once as `Rule`s and checked on both sides: as CEL by the API
server (see `crd.py`) and in Python by the model validators below.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from haoperator.api_settings import (
    ActivePassiveSpec,
    ClusteredSpec,
    Disruption,
    Placement,
    Recovery,
)
from haoperator.api_status import Condition, Failover, HAServiceStatus
from haoperator.api_workload import PeerPort, PodTemplate, ServicePort, ServiceSpec
from haoperator.apitypes import (
    DNS_1035_LABEL,
    INT32_MAX,
    ApiModel,
    ProblemCollector,
    Rule,
    cel_rules,
)

GROUP = "haoperator.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "HAService"
MAX_NAME_LENGTH = 52
"""52 leaves room for the longest child-derived name: a StatefulSet's `<name>-<10-char hash>`
revision label (and `<name>-elector`) must stay within Kubernetes' 63."""

DEFAULT_REPLICAS = 2
DEFAULT_CLUSTERED_REPLICAS = 3

Category = Literal["LoadBalanced", "Clustered", "QueueWorker", "ActivePassive"]

CATEGORY_IMMUTABLE = Rule(
    "self == oldSelf",
    "is immutable: delete and recreate the HAService to change it",
    name="category",
)
ACTIVE_PASSIVE_REPLICAS = Rule(
    "self.category != 'ActivePassive' || !has(self.replicas) || self.replicas >= 2",
    "must be at least 2 with category ActivePassive (one active, one standby)",
    field="replicas",
)
QUEUE_WORKER_SERVICE = Rule(
    "self.category != 'QueueWorker' || !has(self.service)",
    "is not allowed with category QueueWorker: queue workers take no traffic",
    field="service",
)
CLUSTERED_BLOCK = Rule(
    "self.category == 'Clustered' || !has(self.clustered)",
    "is only allowed with category Clustered",
    field="clustered",
)
ACTIVE_PASSIVE_BLOCK = Rule(
    "self.category == 'ActivePassive' || !has(self.activePassive)",
    "is only allowed with category ActivePassive",
    field="activePassive",
)
CLUSTERED_DISRUPTION = Rule(
    "self.category != 'Clustered' || !has(self.disruption)",
    "is not allowed with category Clustered: its disruption budget follows clustered.quorum",
    field="disruption",
)
QUORUM_WITHIN_REPLICAS = Rule(
    "!has(self.clustered) || !has(self.clustered.quorum) || type(self.clustered.quorum) == string"
    " || int(self.clustered.quorum) <= (has(self.replicas) ? self.replicas : "
    f"{DEFAULT_CLUSTERED_REPLICAS})",
    "must not exceed replicas",
    field="clustered.quorum",
)
PEER_PORTS_DISTINCT = Rule(
    "!has(self.clustered) || !has(self.clustered.peerPorts) || !has(self.service)"
    " || self.clustered.peerPorts.all(p, self.service.ports.all(s,"
    " s.name != p.name && (s.port != p.port || s.protocol != p.protocol)))",
    "must differ from the service ports in name and in port number",
    field="clustered.peerPorts",
)
POD_MANAGEMENT_IMMUTABLE = Rule(
    "(has(self.clustered) ? self.clustered.podManagementPolicy : 'Parallel')"
    " == (has(oldSelf.clustered) ? oldSelf.clustered.podManagementPolicy : 'Parallel')",
    "is immutable: a StatefulSet cannot change it once created",
    field="clustered.podManagementPolicy",
)
"""A transition rule, for the API server only: the models never see the old object. It sits on the
spec so that adding or removing the clustered block cannot change the policy unnoticed either."""
SPEC_RULES = (
    ACTIVE_PASSIVE_REPLICAS,
    QUEUE_WORKER_SERVICE,
    CLUSTERED_BLOCK,
    ACTIVE_PASSIVE_BLOCK,
    CLUSTERED_DISRUPTION,
    QUORUM_WITHIN_REPLICAS,
    PEER_PORTS_DISTINCT,
    POD_MANAGEMENT_IMMUTABLE,
)


class HAServiceSpec(ApiModel, json_schema_extra=cel_rules(*SPEC_RULES)):
    """The desired state: which HA pattern, how many replicas, and the pods to run."""

    category: Category = Field(
        description="The HA pattern. LoadBalanced: N copies behind a Service. Clustered: members "
        "of a cluster with stable names, a peers Service and a quorum. QueueWorker: N workers, no "
        "Service. ActivePassive: one active pod elected through a Lease, standbys take over. "
        "Immutable.",
        json_schema_extra=cel_rules(CATEGORY_IMMUTABLE),
    )
    replicas: int | None = Field(
        None,
        ge=1,
        le=INT32_MAX,
        description=f"Number of pods. Default {DEFAULT_REPLICAS} ({DEFAULT_CLUSTERED_REPLICAS} "
        "for Clustered); ActivePassive needs at least 2. Set it explicitly to use kubectl scale "
        "or an HPA.",
    )
    template: PodTemplate = Field(
        description="The pods to run: a standard pod template. With ActivePassive the operator "
        "adds the init container ha-elector and the volume ha-elector-token: those names are "
        "reserved.",
    )
    service: ServiceSpec | None = Field(
        None,
        description="The Service <name> clients use; none when omitted. Not allowed for "
        "QueueWorker. With ActivePassive it sends traffic to the active pod only.",
    )
    placement: Placement = Field(
        default_factory=Placement, description="How replicas are spread over the nodes."
    )
    disruption: Disruption | None = Field(
        None,
        description="The PodDisruptionBudget (maxUnavailable 1 when omitted). Not for Clustered, "
        "whose budget keeps the quorum.",
    )
    clustered: ClusteredSpec | None = Field(
        None, description="Settings for category Clustered (only allowed with it)."
    )
    active_passive: ActivePassiveSpec | None = Field(
        None, description="Settings for category ActivePassive (only allowed with it)."
    )
    recovery: Recovery = Field(
        default_factory=Recovery, description="How failed pods and lost nodes are handled."
    )

    @property
    def desired_replicas(self) -> int:
        """Replicas with the category's default applied."""
        if self.replicas is not None:
            return self.replicas
        return DEFAULT_CLUSTERED_REPLICAS if self.category == "Clustered" else DEFAULT_REPLICAS

    @property
    def clustered_settings(self) -> ClusteredSpec:
        return self.clustered or ClusteredSpec()

    @property
    def active_passive_settings(self) -> ActivePassiveSpec:
        return self.active_passive or ActivePassiveSpec()

    @property
    def disruption_settings(self) -> Disruption:
        return self.disruption or Disruption()

    @model_validator(mode="after")
    def _fits_category(self) -> Self:
        problems = ProblemCollector()
        problems.require(
            self.category != "ActivePassive" or self.replicas is None or self.replicas >= 2,
            ACTIVE_PASSIVE_REPLICAS,
            f", got {self.replicas}",
        )
        problems.require(
            self.category != "QueueWorker" or self.service is None, QUEUE_WORKER_SERVICE
        )
        problems.require(self.category == "Clustered" or self.clustered is None, CLUSTERED_BLOCK)
        problems.require(
            self.category == "ActivePassive" or self.active_passive is None, ACTIVE_PASSIVE_BLOCK
        )
        problems.require(
            self.category != "Clustered" or self.disruption is None, CLUSTERED_DISRUPTION
        )
        if self.clustered is not None:
            quorum = self.clustered.quorum
            problems.require(
                not isinstance(quorum, int) or quorum <= self.desired_replicas,
                QUORUM_WITHIN_REPLICAS,
                f" ({self.desired_replicas})",
            )
            if self.service is not None:
                clashes = _clashing_ports(self.clustered.peer_ports, self.service.ports)
                problems.require(not clashes, PEER_PORTS_DISTINCT, f" ({', '.join(clashes)})")
        problems.raise_if_any()
        return self


def _clashing_ports(peer_ports: list[PeerPort], service_ports: list[ServicePort]) -> list[str]:
    return [
        peer.name
        for peer in peer_ports
        if any(
            peer.name == port.name or (peer.port == port.port and peer.protocol == port.protocol)
            for port in service_ports
        )
    ]


NAME_LENGTH = Rule(
    f"self.metadata.name.size() <= {MAX_NAME_LENGTH}",
    f"must be at most {MAX_NAME_LENGTH} characters, so that the names of its children fit in 63",
    name="metadata.name",
)
NAME_DNS_1035 = Rule(
    f"self.metadata.name.matches('{DNS_1035_LABEL}')",
    "must be a DNS-1035 label: lowercase letters, digits and '-', starting with a letter and "
    "ending with a letter or digit",
    name="metadata.name",
)
ROOT_RULES = (NAME_LENGTH, NAME_DNS_1035)


class ObjectMeta(ApiModel, extra="allow"):
    """The parts of the HAService's metadata that rendering uses; the rest is kept as is."""

    name: str = Field(description="Name of the HAService, also the name of its children.")
    namespace: str = Field("default", description="Namespace of the HAService and its children.")
    uid: str | None = Field(
        None, description="UID of the HAService: children get an owner reference."
    )

    @field_validator("name")
    @classmethod
    def _name_fits_children(cls, name: str) -> str:
        if len(name) > MAX_NAME_LENGTH:
            raise ValueError(f"{NAME_LENGTH.reason} (it has {len(name)})")
        if re.fullmatch(DNS_1035_LABEL[1:-1], name) is None:
            raise ValueError(NAME_DNS_1035.reason)
        return name


class HAService(ApiModel):
    """An HAService: one workload run with a high-availability pattern (see spec.category)."""

    api_version: Literal["haoperator.dev/v1alpha1"] = Field(description="haoperator.dev/v1alpha1")
    kind: Literal["HAService"] = Field(description="HAService")
    metadata: ObjectMeta = Field(description="Standard object metadata.")
    spec: HAServiceSpec = Field(description="The desired state.")
    status: HAServiceStatus | None = Field(None, description="The observed state.")

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> HAService:
        """From an object as a client library hands it over: kopf passes read-only mapping views,
        which strict validation (rightly) does not take for the plain dicts of the wire."""
        return cls.model_validate(_plain(obj))

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


__all__ = [
    "API_VERSION",
    "KIND",
    "ActivePassiveSpec",
    "ClusteredSpec",
    "Condition",
    "Disruption",
    "Failover",
    "HAService",
    "HAServiceSpec",
    "HAServiceStatus",
    "ObjectMeta",
    "Placement",
    "PodTemplate",
    "Recovery",
    "ServiceSpec",
]
