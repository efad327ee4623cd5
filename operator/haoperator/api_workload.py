"""The Kubernetes objects an HAService embeds: the pod template, the Service and its ports, volume
claims.

They are checked only as far as the operator relies on them (names, ports); the API server judges
the rest when the operator creates the children, and a rejection is reported on the HAService.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import Field, field_validator
from pydantic.config import JsonDict

from haoperator.apitypes import (
    DNS_1123_LABEL,
    ApiModel,
    IntOrString,
)

Protocol = Literal["TCP", "UDP", "SCTP"]

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


class Container(ApiModel, extra="allow"):
    """A container of the pod, as in a Pod's spec.containers; checked in full by the API server."""

    name: str = Field(
        max_length=63, pattern=DNS_1123_LABEL, description="Name of the container (a DNS label)."
    )
    image: str = Field(
        min_length=1, description="Container image, e.g. docker.io/library/haproxy:2.9."
    )


class PodSpec(ApiModel, extra="allow"):
    """A standard pod spec. Only what the operator relies on is checked here; the API server checks
    the rest when it creates the workload, and a rejection is reported on the HAService as
    InvalidSpec."""

    containers: list[Container] = Field(
        min_length=1,
        description="The pod's containers; at least one, each with a name and an image.",
    )
    service_account_name: str | None = Field(
        None,
        description="Service account of the pods. With ActivePassive, the elector's Role is bound "
        "to it; when unset, the operator creates and uses the ServiceAccount <name>-elector.",
    )


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


class ServiceSpec(ApiModel):
    """How clients reach the service: a Service named after the HAService."""

    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field(
        "ClusterIP", description="ClusterIP, NodePort or LoadBalancer, as in a Service."
    )
    ports: list[ServicePort] = Field(
        min_length=1,
        max_length=32,
        description="Ports of the Service.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
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


NamedPort = TypeVar("NamedPort", ServicePort, PeerPort)


def unique_port_names(ports: list[NamedPort]) -> list[NamedPort]:
    """Reject repeated port names: a Service would refuse them."""
    names = [port.name for port in ports]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"port names must be unique: {', '.join(repeated)} repeated")
    return ports
