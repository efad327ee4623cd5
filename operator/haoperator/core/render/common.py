"""What every category's children share: names, labels, owner references, the pod template,
spreading, the disruption budget, Services and the Deployment.

Pure: an HAService model in, plain dicts out, the same dicts for the same input.
"""

from __future__ import annotations

import copy
from typing import Any

from haoperator.api import API_VERSION, KIND, HAService
from haoperator.api.workload import PeerPort, ServicePort
from haoperator.core.recovery import node_affinity_term
from haoperator.core.vocabulary import OPERATOR, Label

Manifest = dict[str, Any]


def labels(haservice: HAService) -> dict[str, str]:
    """The labels of every child and every pod."""
    return {
        Label.NAME: haservice.name,
        Label.MANAGED_BY: OPERATOR,
        Label.SERVICE: haservice.name,
        Label.CATEGORY: haservice.spec.category,
    }


def selector_labels(haservice: HAService) -> dict[str, str]:
    """The pods' selector: only our own label, because a workload's selector is immutable while
    the user's labels may change; the HAService's name is unique in its namespace."""
    return {Label.SERVICE: haservice.name}


def selector_string(haservice: HAService) -> str:
    """The selector as `status.selector` carries it for the scale subresource."""
    return ",".join(f"{key}={value}" for key, value in selector_labels(haservice).items())


def owner_references(haservice: HAService) -> list[Manifest]:
    """A controller reference to the HAService, so deleting it deletes its children."""
    if haservice.metadata.uid is None:
        return []
    return [
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": haservice.name,
            "uid": haservice.metadata.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def metadata(
    haservice: HAService, name: str, *, annotations: dict[str, str] | None = None
) -> Manifest:
    meta: Manifest = {
        "name": name,
        "namespace": haservice.namespace,
        "labels": labels(haservice),
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    owners = owner_references(haservice)
    if owners:
        meta["ownerReferences"] = owners
    return meta


def pod_template(haservice: HAService) -> Manifest:
    """The user's pod template with our labels and the spread constraints added.

    Everything the user wrote is kept, except labels under haoperator.dev/: those are ours (the
    elector sets haoperator.dev/role, and a template that did so would route to every pod).
    """
    given = copy.deepcopy(haservice.spec.template.model_dump(by_alias=True, exclude_unset=True))
    meta = given.get("metadata", {})
    user_labels = {
        key: value
        for key, value in meta.get("labels", {}).items()
        if not key.startswith(Label.RESERVED_PREFIX)
    }
    meta["labels"] = {**user_labels, **labels(haservice)}
    spec = given["spec"]
    existing = spec.get("topologySpreadConstraints", [])
    added = topology_spread_constraints(haservice, existing)
    if added:
        spec["topologySpreadConstraints"] = [*existing, *added]
    if haservice.spec.recovery.restart.on_limit == "Migrate":
        avoid_banned_nodes(spec, node_affinity_term(haservice.namespace, haservice.name))
    return {"metadata": meta, "spec": spec}


def avoid_banned_nodes(spec: Manifest, term: Manifest) -> None:
    """Require nodes without this service's ban label (recovery's Migrate), keeping the user's
    own node affinity: the expression joins every term the user wrote (terms are ORed)."""
    affinity = spec.setdefault("affinity", {})
    node = affinity.setdefault("nodeAffinity", {})
    required = node.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    terms = required.setdefault("nodeSelectorTerms", [])
    if not terms:
        terms.append({"matchExpressions": [term]})
        return
    for selector in terms:
        selector.setdefault("matchExpressions", []).append(term)


def topology_spread_constraints(haservice: HAService, existing: list[Any]) -> list[Manifest]:
    """Spread replicas over `placement.topologyKey` domains, unless the template already does.

    Required refuses to schedule a pod that would unbalance the domains by more than one;
    Preferred only scores against it. Only nodes whose taints the pods tolerate count. A
    constraint the user wrote for the same key and mode wins (the API server rejects two).
    """
    placement = haservice.spec.placement
    if placement.spread == "None":
        return []
    when = "DoNotSchedule" if placement.spread == "Required" else "ScheduleAnyway"
    for constraint in existing:
        if (
            isinstance(constraint, dict)
            and constraint.get("topologyKey") == placement.topology_key
            and constraint.get("whenUnsatisfiable") == when
        ):
            return []
    return [
        {
            "maxSkew": 1,
            "topologyKey": placement.topology_key,
            "whenUnsatisfiable": when,
            "labelSelector": {"matchLabels": selector_labels(haservice)},
            # A node the pods may not run on (tainted: a control plane, a dedicated node) is
            # no domain to spread over; counted, it leaves a Required spread's last replica
            # Pending as soon as replicas exceed the untainted nodes.
            "nodeTaintsPolicy": "Honor",
        }
    ]


def pod_disruption_budget(
    haservice: HAService,
    *,
    max_unavailable: int | str | None = None,
    min_available: int | None = None,
) -> Manifest:
    """A PodDisruptionBudget named after the HAService.

    Unhealthy pods may always be evicted: they serve nobody, and a budget that counts them would
    block node drains exactly when the service is already in trouble.
    """
    spec: Manifest = {}
    if min_available is not None:
        spec["minAvailable"] = min_available
    else:
        spec["maxUnavailable"] = max_unavailable
    spec["selector"] = {"matchLabels": selector_labels(haservice)}
    spec["unhealthyPodEvictionPolicy"] = "AlwaysAllow"
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(haservice, haservice.name),
        "spec": spec,
    }


def service_port(port: ServicePort | PeerPort) -> Manifest:
    target = port.target_port if isinstance(port, ServicePort) else None
    return {
        "name": port.name,
        "port": port.port,
        "targetPort": port.port if target is None else target,
        "protocol": port.protocol,
    }


def client_service(haservice: HAService, selector: dict[str, str]) -> Manifest:
    """The Service `<name>` from `spec.service`, for the pods `selector` picks."""
    wanted = haservice.spec.service
    if wanted is None:
        raise ValueError("the HAService has no spec.service")
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(haservice, haservice.name, annotations=wanted.annotations),
        "spec": {
            "type": wanted.type,
            "selector": selector,
            "ports": [service_port(port) for port in wanted.ports],
            "sessionAffinity": wanted.session_affinity,
        },
    }


def deployment(
    haservice: HAService, template: Manifest, *, strategy: Manifest | None = None
) -> Manifest:
    spec: Manifest = {
        "replicas": haservice.spec.desired_replicas,
        "selector": {"matchLabels": selector_labels(haservice)},
    }
    if strategy is not None:
        spec["strategy"] = strategy
    spec["template"] = template
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(haservice, haservice.name),
        "spec": spec,
    }
