"""The pacemaker import's decisions, as pure functions of the parsed CIB: what a resource is (a
service, a fencing device, an address, storage or node plumbing), which category a service gets,
which service each address (IPaddr2) belongs to, what is tied to haproxy, and a report line for
every constraint with no equivalent, by id, so none is dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from haoperator.api.base import MAX_REPLICAS
from haoperator.importers.cib import Cib, Constraint, Resource
from haoperator.importers.common import Report
from haoperator.importers.known import (
    CLUSTERED_AGENTS,
    HAPROXY,
    PLUMBING_AGENTS,
    STORAGE_AGENTS,
    VIP_AGENTS,
    agent_key,
)
from haoperator.importers.workload import ContainerPlan


def kind_of(resource: Resource) -> str:
    """service, fencing, address, storage or plumbing; a group or clone is what its members are,
    a service as soon as one member is."""
    if resource.kind == "primitive":
        key = agent_key(resource.type)
        if resource.cls == "stonith":
            return "fencing"
        if key in VIP_AGENTS:
            return "address"
        if key in STORAGE_AGENTS:
            return "storage"
        return "plumbing" if key in PLUMBING_AGENTS else "service"
    if resource.kind == "bundle":
        return "service"
    kinds = {kind_of(child) for child in resource.children}
    for kind in ("service", "address", "storage"):
        if kind in kinds:
            return kind
    return "plumbing"


def number(value: str | None) -> int | None:
    """A pacemaker score or count: INFINITY is None (no limit), so is anything unreadable."""
    if value is None or "INFINITY" in value.upper():
        return None
    try:
        return int(value)
    except ValueError:
        return None


def ips(resource: Resource) -> list[str]:
    """The addresses an address resource (or a group of them) holds."""
    return [r.params["ip"] for r in resource.walk() if r.params.get("ip")] or [resource.id]


def is_haproxy(resource: Resource) -> bool:
    return HAPROXY in resource.id.lower() or any(HAPROXY in r.type.lower() for r in resource.walk())


@dataclass
class Topology:
    """The top-level resources and how the constraints tie them together."""

    top: dict[str, Resource]
    """Every resource id, nested ones included, to its top-level resource."""
    kinds: dict[str, str]
    addresses: dict[str, list[str]] = field(default_factory=dict)
    """Service id to the addresses colocated with it."""
    owner: dict[str, str] = field(default_factory=dict)
    """Address resource id to the service that took it."""
    haproxy_tied: set[str] = field(default_factory=set)
    consumed: set[str] = field(default_factory=set)
    """Constraints fully expressed (an address folded into a Service)."""


def read_topology(cib: Cib) -> Topology:
    topology = Topology(
        top={r.id: top for top in cib.resources for r in top.walk()},
        kinds={top.id: kind_of(top) for top in cib.resources},
    )
    for constraint in cib.constraints:
        if constraint.kind in ("rsc_colocation", "rsc_order") and not constraint.sets:
            _read_pair(topology, constraint)
    return topology


def _read_pair(topology: Topology, constraint: Constraint) -> None:
    pair = [constraint.attrs.get(key) for key in ("rsc", "with-rsc", "first", "then")]
    tops = [topology.top[name] for name in pair if name in topology.top]
    if len(tops) != 2 or tops[0] is tops[1]:
        return
    kinds = [topology.kinds[top.id] for top in tops]
    for first, second in ((0, 1), (1, 0)):
        if kinds[first] == "service" and is_haproxy(tops[second]):
            topology.haproxy_tied.add(tops[first].id)
    score = constraint.attrs.get("score", "INFINITY")
    if constraint.kind != "rsc_colocation" or score.startswith("-") or score == "0":
        return
    if sorted(kinds) == ["address", "service"]:
        address, service = tops if kinds[0] == "address" else tops[::-1]
        if address.id not in topology.owner:
            topology.owner[address.id] = service.id
            topology.addresses.setdefault(service.id, []).extend(ips(address))
            topology.consumed.add(constraint.id)


def report_constraints(cib: Cib, topology: Topology, report: Report) -> None:
    for constraint in cib.constraints:
        if constraint.id not in topology.consumed:
            _report(constraint, topology, report)


def _report(constraint: Constraint, topology: Topology, report: Report) -> None:
    subject = f"constraint {constraint.id}"
    names = constraint.resources()
    unknown = [name for name in names if name not in topology.top]
    if unknown:
        report.unsupported(subject, f"names unknown resources {', '.join(unknown)}")
        return
    tops = [topology.top[name] for name in names]
    imported = [top for top in tops if topology.kinds[top.id] == "service"]
    folded = [top for top in tops if top.id in topology.owner]
    storage = [top.id for top in tops if topology.kinds[top.id] == "storage"]
    if not imported:
        report.note(subject, "concerns only resources that were not imported")
    elif storage and constraint.kind in ("rsc_colocation", "rsc_order"):
        report.unsupported(
            subject,
            f"ties storage {', '.join(storage)} to {', '.join(t.id for t in imported)}: mount a "
            "PersistentVolumeClaim in its pods instead",
        )
    elif constraint.kind == "rsc_order" and folded:
        report.note(subject, "orders an address: the Service exists before its pods")
    elif constraint.kind == "rsc_order":
        report.unsupported(
            subject,
            f"order {' then '.join(names)}: Kubernetes starts everything at once; let the later "
            "service retry, or wait in an init container",
        )
    elif constraint.kind == "rsc_colocation":
        apart = constraint.attrs.get("score", "INFINITY").startswith("-")
        advice = (
            "use pod anti-affinity" if apart else "put them in one HAService or use pod affinity"
        )
        report.unsupported(subject, f"colocation {' with '.join(names)}: {advice}")
    elif constraint.kind == "rsc_location":
        how = "a rule on node attributes" if constraint.has_rule else "a node score"
        report.unsupported(
            subject,
            f"location of {', '.join(names) or '?'} by {how}: label the nodes and use a "
            "nodeSelector or node affinity",
        )
    else:
        report.unsupported(subject, f"{constraint.kind}: no equivalent")


def report_cluster(cib: Cib, report: Report) -> None:
    """The cluster options that matter to users: fencing and quorum."""
    properties = cib.properties
    if properties.get("stonith-enabled", "true").lower() in ("true", "yes", "1", "on"):
        report.note(
            "cluster",
            "stonith-enabled: fencing through the API (recovery.nodeLoss.action: ForceDelete) is "
            "the closest equivalent; opt in per HAService once you trust your node-loss detection",
        )
    if properties.get("no-quorum-policy", "").lower() == "ignore":
        report.note("cluster", "no-quorum-policy ignore: Clustered services keep quorum Majority")


def decide_category(
    top: Resource,
    services: list[Resource],
    containers: list[ContainerPlan],
    meta: dict[str, str],
    topology: Topology,
    nodes: int,
) -> tuple[str, int | None, str]:
    """The category, the replicas (None: the category's default) and why, in words."""
    agents = sorted({agent_key(p.type) for p in services} & CLUSTERED_AGENTS)
    if top.kind in ("primitive", "group"):
        return "ActivePassive", None, "ActivePassive: pacemaker ran one active copy"
    bundle = top.bundle
    promotable = top.kind == "master" or meta.get("promotable", "").lower() == "true"
    promoted = number(meta.get("promoted-max") or meta.get("master-max"))
    if bundle is not None:
        promoted = bundle.promoted_max if bundle.promoted_max is not None else promoted
        promotable = promoted is not None
        copies, source = bundle.replicas or promoted or 1, "the bundle's replicas"
    elif number(meta.get("clone-max")) is not None:
        copies, source = number(meta.get("clone-max")) or 1, "clone-max"
    elif nodes:
        copies, source = nodes, f"the {nodes} cluster nodes"
    else:
        copies, source = 2, "a default: the CIB names no nodes"
    copies = min(max(copies, 1), MAX_REPLICAS)
    replicas = f"{copies} replicas from {source}"
    if agents:
        return "Clustered", copies, f"Clustered: agent {agents[0]} forms a cluster; {replicas}"
    if promotable:
        promoted = 1 if promoted is None else max(promoted, 1)
        if promoted >= copies:
            return "Clustered", copies, f"Clustered: all {copies} copies promoted; {replicas}"
        if promoted == 1:
            return "ActivePassive", copies, f"ActivePassive: one promoted copy; {replicas}"
        return (
            "Clustered",
            copies,
            (
                f"Clustered: {promoted} of {copies} copies promoted has "
                f"no exact equivalent; {replicas}"
            ),
        )
    if copies == 1:
        return "ActivePassive", copies, f"ActivePassive: a single copy ({source} is 1)"
    ports = [p for c in containers for p in c.ports if p.service_port is not None]
    reasons = [
        "it serves a port" if ports else "",
        "an address is colocated" if topology.addresses.get(top.id) else "",
        "a constraint ties it to haproxy" if top.id in topology.haproxy_tied else "",
    ]
    if any(reasons):
        because = " and ".join(r for r in reasons if r)
        return "LoadBalanced", copies, f"LoadBalanced: stateless and {because}; {replicas}"
    return (
        "QueueWorker",
        copies,
        (
            f"QueueWorker: stateless, no port, no address; {replicas} "
            "(--category NAME=LoadBalanced if clients call it)"
        ),
    )


def chain(top: Resource) -> list[Resource]:
    """The resources whose meta attributes apply to the service, outermost first: a clone, the
    group in it, the group's first service (pacemaker hands meta attributes down)."""
    chain = [top]
    while chain[-1].children:
        inner = chain[-1]
        services = [c for c in inner.children if kind_of(c) == "service"]
        chain.append(services[0] if inner.kind == "group" and services else inner.children[0])
    return chain
