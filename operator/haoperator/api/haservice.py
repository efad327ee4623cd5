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

from haoperator.api.base import (
    DNS_1035_LABEL,
    MAX_REPLICAS,
    ApiModel,
    Rule,
    RuleCheck,
    as_cel_list,
    cel_rules,
)
from haoperator.api.behaviour import (
    DEFAULT_ELECTOR_PORT,
    ActivePassiveSpec,
    ClusteredSpec,
    Disruption,
    Placement,
    Recovery,
)
from haoperator.api.status import HAServiceStatus
from haoperator.api.workload import (
    ELECTOR_CONTAINER,
    PeerPort,
    PodTemplate,
    ServicePort,
    ServiceSpec,
)
from haoperator.core.vocabulary import DOMAIN

GROUP = DOMAIN
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
    detail=", got {}",
    shows="self.replicas",
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
REPLICAS_CEL = f"(has(self.replicas) ? self.replicas : {DEFAULT_CLUSTERED_REPLICAS})"
"""The Clustered replicas, default included (the rules using it apply to Clustered only)."""
QUORUM_WITHIN_REPLICAS = Rule(
    "!has(self.clustered) || !has(self.clustered.quorum) || type(self.clustered.quorum) == string"
    f" || int(self.clustered.quorum) <= {REPLICAS_CEL}",
    "must not exceed replicas",
    field="clustered.quorum",
    detail=" ({})",
    shows=REPLICAS_CEL,
)
PEER_PORT_CLASH = (
    "self.service.ports.exists(s, s.name == p.name"
    " || (s.port == p.port && s.protocol == p.protocol))"
)
PEER_PORTS_DISTINCT = Rule(
    "!has(self.clustered) || !has(self.clustered.peerPorts) || !has(self.service)"
    f" || !self.clustered.peerPorts.exists(p, {PEER_PORT_CLASH})",
    "must differ from the service ports in name and in port number",
    field="clustered.peerPorts",
    detail=" (clashing: {})",
    shows=f"self.clustered.peerPorts.filter(p, {PEER_PORT_CLASH}).map(p, p.name)",
)


def _serving_port(test: str) -> str:
    """CEL: some port `p` of the template's long-running containers (the containers and the
    sidecar init containers, as `PodSpec.serving_ports`) passes `test`."""
    pod = "self.template.spec"
    return (
        f"{pod}.containers.exists(c, has(c.ports) && c.ports.exists(p, {test}))"
        f" || (has({pod}.initContainers) && {pod}.initContainers.exists(c,"
        " has(c.restartPolicy) && c.restartPolicy == 'Always'"
        f" && has(c.ports) && c.ports.exists(p, {test})))"
    )


PORT_PROTOCOL_CEL = "(has(p.protocol) ? p.protocol : 'TCP')"
NAMED_TARGET_MISSING = (
    "has(s.targetPort) && type(s.targetPort) == string && !("
    + _serving_port(f"has(p.name) && p.name == s.targetPort && {PORT_PROTOCOL_CEL} == s.protocol")
    + ")"
)
TARGET_PORT_NAMED = Rule(
    f"!has(self.service) || !self.service.ports.exists(s, {NAMED_TARGET_MISSING})",
    "must give each targetPort as a number or as the name of a port (same protocol) of the "
    "template's containers, or the Service sends traffic nowhere",
    field="service.ports",
    detail=" (no such port: {})",
    shows=f"self.service.ports.filter(s, {NAMED_TARGET_MISSING}).map(s, s.targetPort)",
)
ELECTOR_PORT_CEL = (
    f"(has(self.activePassive) ? self.activePassive.electorPort : {DEFAULT_ELECTOR_PORT})"
)
ELECTOR_PORT_FREE = Rule(
    "self.category != 'ActivePassive' || !("
    + _serving_port(f"p.containerPort == {ELECTOR_PORT_CEL} && {PORT_PROTOCOL_CEL} == 'TCP'")
    + ")",
    f"must differ from the TCP ports of the template's containers: the {ELECTOR_CONTAINER} sidecar "
    "listens on it in every pod",
    field="activePassive.electorPort",
    detail=" ({} is taken)",
    shows=ELECTOR_PORT_CEL,
)
HEALTH_CONTAINER_MISSING = "!self.template.spec.containers.exists(c, c.name == h)"
HEALTH_CONTAINERS_KNOWN = Rule(
    "!has(self.activePassive) || !has(self.activePassive.healthContainers)"
    f" || !self.activePassive.healthContainers.exists(h, {HEALTH_CONTAINER_MISSING})",
    "must name containers of the template (their readiness is the application's health)",
    field="activePassive.healthContainers",
    detail=" (no such container: {})",
    shows=f"self.activePassive.healthContainers.filter(h, {HEALTH_CONTAINER_MISSING})",
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
    TARGET_PORT_NAMED,
    ELECTOR_PORT_FREE,
    HEALTH_CONTAINERS_KNOWN,
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
        le=MAX_REPLICAS,
        description=f"Number of pods, at most {MAX_REPLICAS}. Default {DEFAULT_REPLICAS} "
        f"({DEFAULT_CLUSTERED_REPLICAS} for Clustered); ActivePassive needs at least 2. Set it "
        "explicitly to use kubectl scale or an HPA.",
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
    def quorum_size(self) -> int:
        """Clustered: the members that must be up (clustered.quorum resolved for the replicas).
        The disruption budget's minAvailable and the QuorumLost condition both come from here."""
        return self.clustered_settings.quorum_size(self.desired_replicas)

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
        check = RuleCheck()
        check.require(
            self.category != "ActivePassive" or self.replicas is None or self.replicas >= 2,
            ACTIVE_PASSIVE_REPLICAS,
            self.replicas,
        )
        check.require(self.category != "QueueWorker" or self.service is None, QUEUE_WORKER_SERVICE)
        check.require(self.category == "Clustered" or self.clustered is None, CLUSTERED_BLOCK)
        check.require(
            self.category == "ActivePassive" or self.active_passive is None, ACTIVE_PASSIVE_BLOCK
        )
        check.require(self.category != "Clustered" or self.disruption is None, CLUSTERED_DISRUPTION)
        if self.clustered is not None:
            quorum = self.clustered.quorum
            check.require(
                not isinstance(quorum, int) or quorum <= self.desired_replicas,
                QUORUM_WITHIN_REPLICAS,
                self.desired_replicas,
            )
            if self.service is not None:
                clashes = _clashing_ports(self.clustered.peer_ports, self.service.ports)
                check.require(not clashes, PEER_PORTS_DISTINCT, as_cel_list(clashes))
        check.raise_if_any()
        return self

    @model_validator(mode="after")
    def _fits_template(self) -> Self:
        ports = list(self.template.spec.serving_ports())
        check = RuleCheck()
        if self.service is not None:
            named = {(port.name, port.effective_protocol) for port in ports if port.name}
            missing = [
                port.target_port
                for port in self.service.ports
                if isinstance(port.target_port, str)
                and (port.target_port, port.protocol) not in named
            ]
            check.require(not missing, TARGET_PORT_NAMED, as_cel_list(missing))
        if self.category == "ActivePassive":
            elector = self.active_passive_settings.elector_port
            taken = any(
                port.container_port == elector and port.effective_protocol == "TCP"
                for port in ports
            )
            check.require(not taken, ELECTOR_PORT_FREE, elector)
            names = {container.name for container in self.template.spec.containers}
            unknown = [
                name
                for name in self.active_passive_settings.health_containers or []
                if name not in names
            ]
            check.require(not unknown, HEALTH_CONTAINERS_KNOWN, as_cel_list(unknown))
        check.raise_if_any()
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
    f"self.size() <= {MAX_NAME_LENGTH}",
    f"must be at most {MAX_NAME_LENGTH} characters, so that the names of its children fit in 63",
    name="metadata.name",
    detail=" (it has {})",
    shows="self.size()",
)
NAME_DNS_1035 = Rule(
    f"self.matches('{DNS_1035_LABEL}')",
    "must be a DNS-1035 label: lowercase letters, digits and '-', starting with a letter and "
    "ending with a letter or digit",
    name="metadata.name",
)
NAME_RULES = (NAME_LENGTH, NAME_DNS_1035)
"""Rules on metadata.name, where the CRD's schema may constrain the name (and nothing else of the
metadata): the API server's message then starts with `metadata.name:`."""


class ObjectMeta(ApiModel, extra="allow"):
    """The parts of the HAService's metadata that rendering uses; the rest is kept as is."""

    name: str = Field(
        description=f"Name of the HAService, also the name of its children: a DNS-1035 label of "
        f"at most {MAX_NAME_LENGTH} characters."
    )
    namespace: str = Field("default", description="Namespace of the HAService and its children.")
    uid: str | None = Field(
        None, description="UID of the HAService: children get an owner reference."
    )

    @field_validator("name")
    @classmethod
    def _name_fits_children(cls, name: str) -> str:
        if len(name) > MAX_NAME_LENGTH:
            raise ValueError(NAME_LENGTH.explain(len(name)))
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
