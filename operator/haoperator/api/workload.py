"""The Kubernetes objects an HAService embeds: the pod template, the Service and its ports, volume
claims.

They are checked as far as the operator relies on them (names, ports) and as far as a mistake would
otherwise only surface when the operator applies the workload (repeated or reserved names,
malformed resource quantities); the API server judges the rest then, and a rejection is reported
on the HAService.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import (
    AfterValidator,
    Field,
    PlainValidator,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict

from haoperator.api.base import (
    DNS_1123_LABEL,
    PATTERN_MEANINGS,
    PORT_NAME,
    QUANTITY,
    ApiModel,
    IntOrString,
    Rule,
    RuleCheck,
    as_cel_list,
    cel_rules,
)
from haoperator.core.vocabulary import ELECTOR

Protocol = Literal["TCP", "UDP", "SCTP"]

ELECTOR_CONTAINER = ELECTOR
"""The ActivePassive sidecar's name, reserved in every template."""
ELECTOR_TOKEN_VOLUME = f"{ELECTOR}-token"
"""The volume holding the elector's API token, reserved in every template."""
MAX_CONTAINERS = 32
"""Per list (containers, initContainers): far beyond any real pod, and what keeps the CEL rules
that compare them within the API server's cost budget."""
MAX_CONTAINER_PORTS = 64
"""Per container: more listeners than any service declares; the rule that resolves a Service's
named targetPort looks through them all."""
MAX_VOLUMES = 256
"""Far beyond any real pod (mostly ConfigMaps and Secrets); bounds what the reserved-name rule
costs."""
NAME_LIST: JsonDict = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}
"""A list keyed by name, as Kubernetes declares containers, volumes and Service ports: the API
server refuses a repeated name itself (`Duplicate value: {"name":"app"}`)."""

RESERVED_CONTAINER_NAME = Rule(
    f"self != '{ELECTOR_CONTAINER}'",
    f"{ELECTOR_CONTAINER} is reserved: the operator adds its elector sidecar under that name",
    name="name",
)
RESERVED_VOLUME_NAME = Rule(
    f"self != '{ELECTOR_TOKEN_VOLUME}'",
    f"{ELECTOR_TOKEN_VOLUME} is reserved: the operator mounts the elector's API token under that "
    "name",
    name="name",
)
CONTAINER_NAMES_SHARED = Rule(
    "!has(self.initContainers) || self.initContainers.all(i, !self.containers.exists(c, "
    "c.name == i.name))",
    "must not reuse the name of a container: a pod's containers and init containers share one "
    "set of names",
    field="initContainers",
    detail=" (reused: {})",
    shows="self.initContainers.filter(i, self.containers.exists(c, c.name == i.name))"
    ".map(i, i.name)",
)
SERVICE_PORT_NUMBERS = Rule(
    "self.ports.all(p, self.ports.exists_one(q, q.port == p.port && q.protocol == p.protocol))",
    "must not repeat a port number with the same protocol: the Service would be refused",
    field="ports",
    detail=" (ports sharing one: {})",
    shows="self.ports.filter(p, !self.ports.exists_one(q, q.port == p.port"
    " && q.protocol == p.protocol)).map(p, p.name)",
)

TARGET_PORT_BOUNDS: JsonDict = {"minimum": 1, "maximum": 65535, "minLength": 1, "maxLength": 15}
"""Plain schema bounds rather than CEL: they apply to the number or to the name as the case may be,
at no CEL cost (CEL would cost an int-or-string as a megabyte-long string, for every port). The
Service judges the name itself when it is created."""
TARGET_PORT_REASON = (
    "must be a port number (1-65535) or the name of a container port (at most 15 characters)"
)


class TemplateMetadata(ApiModel, extra="allow"):
    """Labels and annotations of the pods. Labels under haoperator.dev/ are set by the operator."""

    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels for the pods, kept as given. The operator adds its own "
        "(app.kubernetes.io/name, app.kubernetes.io/managed-by, haoperator.dev/*), which win on a "
        "clash.",
    )
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Annotations for the pods, kept as given."
    )


def _quantity(value: object) -> int | float | str:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"must be {PATTERN_MEANINGS[QUANTITY]}")
    if isinstance(value, str) and re.fullmatch(QUANTITY, value) is None:
        raise ValueError(f'must be {PATTERN_MEANINGS[QUANTITY]} (got "{value}")')
    return value


Quantity = Annotated[
    int | float | str,
    PlainValidator(_quantity),
    WithJsonSchema({"x-kubernetes-preserve-unknown-fields": True, "pattern": QUANTITY}),
]
"""Kubernetes' resource.Quantity: a number, or a string that Kubernetes' quantity pattern checks.

Not the int-or-string controller-gen writes for it: that refuses `cpu: 0.5`, which a Deployment
takes. A schema pattern rather than CEL: no cost, and the API server's message shows the value."""


class ContainerPort(ApiModel, extra="allow"):
    """A port a container listens on: a Service's targetPort may name it."""

    name: str | None = Field(
        None,
        max_length=15,
        pattern=PORT_NAME,
        description="Name of the port (at most 15 characters), for a Service's targetPort.",
    )
    container_port: int = Field(ge=1, le=65535, description="Port number in the pod.")
    protocol: Protocol | None = Field(None, description="TCP (when omitted), UDP or SCTP.")

    @property
    def effective_protocol(self) -> Protocol:
        return self.protocol or "TCP"


class Resources(ApiModel, extra="allow"):
    """Compute resources of a container, as in a Pod."""

    requests: dict[str, Quantity] = Field(
        default_factory=dict,
        description="The resources the scheduler reserves, e.g. cpu: 250m, memory: 512Mi.",
    )
    limits: dict[str, Quantity] = Field(
        default_factory=dict, description="The most the container may use, e.g. memory: 1Gi."
    )


def _pod_name(what: str, reserved: str, rule: Rule) -> Any:
    """The field of a name unique in the pod, of which the operator reserves one."""
    return Field(
        max_length=63,
        pattern=DNS_1123_LABEL,
        description=f"Name of the {what} (a DNS label), unique in the pod; {reserved} is reserved.",
        json_schema_extra=cel_rules(rule),
    )


def _not_reserved(reserved: str, rule: Rule) -> AfterValidator:
    def check(name: str) -> str:
        if name == reserved:
            raise ValueError(rule.explain())
        return name

    return AfterValidator(check)


ContainerName = Annotated[
    str,
    _pod_name("container", ELECTOR_CONTAINER, RESERVED_CONTAINER_NAME),
    _not_reserved(ELECTOR_CONTAINER, RESERVED_CONTAINER_NAME),
]
VolumeName = Annotated[
    str,
    _pod_name("volume", ELECTOR_TOKEN_VOLUME, RESERVED_VOLUME_NAME),
    _not_reserved(ELECTOR_TOKEN_VOLUME, RESERVED_VOLUME_NAME),
]


class Container(ApiModel, extra="allow"):
    """A container of the pod, as in a Pod's spec.containers; checked in full by the API server."""

    name: ContainerName
    image: str = Field(
        min_length=1, description="Container image, e.g. docker.io/library/haproxy:2.9."
    )
    ports: list[ContainerPort] = Field(
        default_factory=list,
        max_length=MAX_CONTAINER_PORTS,
        description=f"Ports the container listens on (at most {MAX_CONTAINER_PORTS}).",
    )
    resources: Resources | None = Field(
        None, description="Requests and limits of cpu, memory and other resources."
    )


class InitContainer(Container):
    """An init container: run to completion before the containers start or, with restartPolicy
    Always, a sidecar that runs beside them."""

    restart_policy: str | None = Field(
        None,
        description="Always makes the init container a sidecar that keeps running beside the "
        "containers; its ports can then serve the Service.",
    )


class Volume(ApiModel, extra="allow"):
    """A volume of the pod, as in a Pod's spec.volumes; checked in full by the API server."""

    name: VolumeName


_AnyContainer = TypeVar("_AnyContainer", Container, InitContainer)


class PodSpec(ApiModel, extra="allow", json_schema_extra=cel_rules(CONTAINER_NAMES_SHARED)):
    """A standard pod spec. Only what the operator relies on, and mistakes the API server would
    otherwise only report when the operator creates the workload, are checked here; the API server
    checks the rest then, and a rejection is reported on the HAService as InvalidSpec."""

    containers: list[Container] = Field(
        min_length=1,
        max_length=MAX_CONTAINERS,
        description="The pod's containers; at least one, each with a name and an image.",
        json_schema_extra=NAME_LIST,
    )
    service_account_name: str | None = Field(
        None,
        description="Service account of the pods. With ActivePassive, the elector's Role is bound "
        "to it; when unset, the operator creates and uses the ServiceAccount <name>-elector.",
    )
    init_containers: list[InitContainer] = Field(
        default_factory=list,
        max_length=MAX_CONTAINERS,
        description="Containers run before the containers start, or beside them as sidecars "
        f"(restartPolicy Always). With ActivePassive the operator adds {ELECTOR_CONTAINER}.",
        json_schema_extra=NAME_LIST,
    )
    volumes: list[Volume] = Field(
        default_factory=list,
        max_length=MAX_VOLUMES,
        description="Volumes the containers can mount. With ActivePassive the operator adds "
        f"{ELECTOR_TOKEN_VOLUME}.",
        json_schema_extra=NAME_LIST,
    )

    def serving_ports(self) -> Iterator[ContainerPort]:
        """The ports of the containers that run beside the application: the containers and the
        sidecar init containers, as a Service resolves a named targetPort."""
        for container in self.containers:
            yield from container.ports
        for init in self.init_containers:
            if init.restart_policy == "Always":
                yield from init.ports

    @field_validator("containers", "init_containers")
    @classmethod
    def _container_names_unique(cls, containers: list[_AnyContainer]) -> list[_AnyContainer]:
        unique_names((container.name for container in containers), "container")
        return containers

    @field_validator("volumes")
    @classmethod
    def _volume_names_unique(cls, volumes: list[Volume]) -> list[Volume]:
        unique_names((volume.name for volume in volumes), "volume")
        return volumes

    @model_validator(mode="after")
    def _container_names_shared(self) -> Self:
        names = {container.name for container in self.containers}
        reused = [init.name for init in self.init_containers if init.name in names]
        check = RuleCheck()
        check.require(not reused, CONTAINER_NAMES_SHARED, as_cel_list(reused))
        check.raise_if_any()
        return self


class PodTemplate(ApiModel):
    """A standard pod template: metadata (labels, annotations) and a spec with containers."""

    metadata: TemplateMetadata = Field(
        default_factory=TemplateMetadata, description="Labels and annotations of the pods."
    )
    spec: PodSpec = Field(description="The pod spec, as in a Deployment's template.")


class ServicePort(ApiModel):
    """A port of the Service that sends traffic to the pods."""

    name: str = Field(
        max_length=63, pattern=DNS_1123_LABEL, description="Name of the port (a DNS label); unique."
    )
    port: int = Field(ge=1, le=65535, description="Port the Service listens on.")
    target_port: IntOrString | None = Field(
        None,
        description="Port on the pods: a number or the name of a container port. Default: port.",
        json_schema_extra=TARGET_PORT_BOUNDS,
    )
    protocol: Protocol = Field("TCP", description="TCP, UDP or SCTP.")

    @field_validator("target_port")
    @classmethod
    def _target_port_is_a_port(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and not 1 <= value <= 65535:
            raise ValueError(TARGET_PORT_REASON)
        if isinstance(value, str) and not 1 <= len(value) <= 15:
            raise ValueError(TARGET_PORT_REASON)
        return value


class PeerPort(ApiModel):
    """A port the members of a cluster use to talk to each other (replication, gossip, state
    transfer)."""

    name: str = Field(
        max_length=63, pattern=DNS_1123_LABEL, description="Name of the port (a DNS label); unique."
    )
    port: int = Field(
        ge=1, le=65535, description="Port number, the same on the Service and the pods."
    )
    protocol: Protocol = Field("TCP", description="TCP, UDP or SCTP.")


class ClaimMetadata(ApiModel, extra="allow"):
    """Metadata of a volume claim template: its name names the volume in the pods."""

    name: str = Field(
        max_length=63,
        pattern=DNS_1123_LABEL,
        description="Name of the volume, as the containers' volumeMounts refer to it.",
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Labels for the claims.")
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Annotations for the claims."
    )


class VolumeClaimTemplate(ApiModel, extra="allow"):
    """A standard PersistentVolumeClaim template, as in a StatefulSet's volumeClaimTemplates."""

    metadata: ClaimMetadata = Field(description="Name (required), labels and annotations.")
    spec: dict[str, Any] = Field(
        description="A standard PersistentVolumeClaim spec (accessModes, resources, "
        "storageClassName)."
    )


class ServiceSpec(ApiModel, json_schema_extra=cel_rules(SERVICE_PORT_NUMBERS)):
    """How clients reach the service: a Service named after the HAService."""

    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field(
        "ClusterIP", description="ClusterIP, NodePort or LoadBalancer, as in a Service."
    )
    ports: list[ServicePort] = Field(
        min_length=1,
        max_length=32,
        description="Ports of the Service: names and port numbers (per protocol) unique.",
        json_schema_extra=NAME_LIST,
    )
    session_affinity: Literal["None", "ClientIP"] = Field(
        "None", description="None or ClientIP: send a client's connections to the same pod."
    )
    annotations: dict[str, str] = Field(
        default_factory=dict,
        description="Annotations copied to the Service, e.g. for a cloud load balancer.",
    )

    @field_validator("ports")
    @classmethod
    def _port_names_unique(cls, ports: list[ServicePort]) -> list[ServicePort]:
        return unique_port_names(ports)

    @model_validator(mode="after")
    def _port_numbers_unique(self) -> Self:
        numbers = [(port.port, port.protocol) for port in self.ports]
        sharing = [
            port.name for port in self.ports if numbers.count((port.port, port.protocol)) > 1
        ]
        check = RuleCheck()
        check.require(not sharing, SERVICE_PORT_NUMBERS, as_cel_list(sharing))
        check.raise_if_any()
        return self


NamedPort = TypeVar("NamedPort", ServicePort, PeerPort)


def unique_names(names: Iterable[str], kind: str) -> None:
    """Reject repeated names in a list keyed by name, as the API server does."""
    seen = list(names)
    repeated = sorted({name for name in seen if seen.count(name) > 1})
    if repeated:
        raise ValueError(f"{kind} names must be unique: {', '.join(repeated)} repeated")


def unique_port_names(ports: list[NamedPort]) -> list[NamedPort]:
    """Reject repeated port names: a Service would refuse them."""
    unique_names((port.name for port in ports), "port")
    return ports
