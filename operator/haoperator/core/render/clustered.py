"""Clustered: members of an application cluster (Galera, RabbitMQ) that find each other by stable
names and need a quorum: a StatefulSet, the headless peers Service `<name>-peers`, the client
Service `<name>` when `spec.service` is given, and a PodDisruptionBudget that keeps the quorum."""

from __future__ import annotations

from haoperator.api import HAService
from haoperator.core.render import common
from haoperator.core.render.common import Manifest


def peers_service_name(haservice: HAService) -> str:
    return f"{haservice.name}-peers"


def stateful_set(haservice: HAService) -> Manifest:
    """The members. Volume claim templates go through untouched: a StatefulSet never lets them
    change, so adding anything of ours would break the update that adds it."""
    settings = haservice.spec.clustered_settings
    spec: Manifest = {
        "serviceName": peers_service_name(haservice),
        "replicas": haservice.spec.desired_replicas,
        "selector": {"matchLabels": common.selector_labels(haservice)},
        "podManagementPolicy": settings.pod_management_policy,
        "template": common.pod_template(haservice),
    }
    if settings.volume_claim_templates:
        spec["volumeClaimTemplates"] = [
            claim.model_dump(by_alias=True, exclude_unset=True)
            for claim in settings.volume_claim_templates
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": common.metadata(haservice, haservice.name),
        "spec": spec,
    }


def peers_service(haservice: HAService) -> Manifest:
    """Headless, and listing members before they are ready: a member must find its peers to
    become ready at all (Galera's state transfer, RabbitMQ's peer discovery)."""
    wanted = haservice.spec.service
    client_ports = [common.service_port(port) for port in wanted.ports] if wanted else []
    peer_ports = [
        common.service_port(port) for port in haservice.spec.clustered_settings.peer_ports
    ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": common.metadata(haservice, peers_service_name(haservice)),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": common.selector_labels(haservice),
            "ports": [*client_ports, *peer_ports],
        },
    }


def client_service(haservice: HAService) -> Manifest:
    return common.client_service(haservice, common.selector_labels(haservice))


def pod_disruption_budget(haservice: HAService) -> Manifest:
    """Drains may take members only while a quorum stays up."""
    return common.pod_disruption_budget(haservice, min_available=haservice.spec.quorum_size)


def children(haservice: HAService) -> list[Manifest]:
    client = [client_service(haservice)] if haservice.spec.service is not None else []
    return [
        peers_service(haservice),
        *client,
        stateful_set(haservice),
        pod_disruption_budget(haservice),
    ]
