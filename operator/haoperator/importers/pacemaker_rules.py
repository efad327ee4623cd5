"""The pacemaker import's decisions, as pure functions of the parsed CIB: what a resource is (a
service, a fencing device, an address, storage or infrastructure such as virtual machines, lock
daemons and node health agents), which category a service gets, which service each address
(IPaddr2, a cloud address mover) belongs to and with which role, what is tied to haproxy, and a
report line for every constraint with no equivalent, by id, so none is dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from haoperator.api.base import MAX_REPLICAS
from haoperator.importers.cib import Cib, Constraint, Resource, is_secret
from haoperator.importers.common import Report
from haoperator.importers.known import (
    ADDRESS_PARAMETERS,
    CLOUD_ADDRESS_AGENTS,
    CLUSTERED_AGENTS,
    HAPROXY,
    INFRASTRUCTURE_AGENTS,
    STORAGE_AGENTS,
    VIP_AGENTS,
    agent_key,
)
from haoperator.importers.workload import ContainerPlan


def kind_of(resource: Resource) -> str:
    """service, fencing, address, storage or infrastructure; a group or clone is what its members
    are, a service as soon as one member is."""
    if resource.kind == "primitive":
        key = agent_key(resource.type)
        if resource.cls == "stonith":
            return "fencing"
        if key in VIP_AGENTS or key in CLOUD_ADDRESS_AGENTS:
            return "address"
        if key in STORAGE_AGENTS:
            return "storage"
        return "infrastructure" if key in INFRASTRUCTURE_AGENTS else "service"
    if resource.kind == "bundle":
        return "service"
    kinds = {kind_of(child) for child in resource.children}
    for kind in ("service", "address", "storage", "infrastructure"):
        if kind in kinds:
            return kind
    return "fencing"


def number(value: str | None) -> int | None:
    """A pacemaker score or count: INFINITY is None (no limit), so is anything unreadable."""
    if value is None or "INFINITY" in value.upper():
        return None
    try:
        return int(value)
    except ValueError:
        return None


def ips(resource: Resource) -> list[str]:
    """The addresses an address resource (or a group of them) holds; its id when none is given,
    or none that may be printed (a value carrying credentials)."""
    found = []
    for member in resource.walk():
        given = [(p, member.params.get(p) or "") for p in ADDRESS_PARAMETERS]
        found += [value for p, value in given if value and not is_secret(p, value)][:1]
    return found or [resource.id]


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
    address_roles: dict[str, str] = field(default_factory=dict)
    """Address resource id to the role (Promoted, Unpromoted) of the service it followed, when
    the colocation named one."""
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
        first_is_address = kinds[0] == "address"
        address, service = tops if first_is_address else tops[::-1]
        role = role_name(constraint.attrs.get("with-rsc-role" if first_is_address else "rsc-role"))
        if address.id not in topology.owner:
            topology.owner[address.id] = service.id
            topology.addresses.setdefault(service.id, []).extend(ips(address))
            topology.consumed.add(constraint.id)
            if role:
                topology.address_roles[address.id] = role


def role_name(role: str | None) -> str | None:
    """Promoted or Unpromoted (also spelled Master and Slave); None for any other role."""
    lowered = (role or "").lower()
    if lowered in ("promoted", "master"):
        return "Promoted"
    return "Unpromoted" if lowered in ("unpromoted", "slave") else None


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
    infrastructure = [
        top.id for top in tops if topology.kinds[top.id] in ("infrastructure", "fencing")
    ]
    if not imported:
        report.note(subject, "concerns only resources that were not imported")
    elif storage and constraint.kind in ("rsc_colocation", "rsc_order"):
        report.unsupported(
            subject,
            f"ties storage {', '.join(storage)} to {', '.join(t.id for t in imported)}: mount a "
            "PersistentVolumeClaim in its pods instead",
        )
    elif infrastructure and constraint.kind in ("rsc_colocation", "rsc_order"):
        report.note(
            subject,
            f"ties {', '.join(infrastructure)} (not imported: not an application) to "
            f"{', '.join(t.id for t in imported)}: what replaces it in Kubernetes needs no such "
            "constraint",
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
        roles = [role_name(constraint.attrs.get(key)) for key in ("rsc-role", "with-rsc-role")]
        if not constraint.sets and any(roles):
            names = [f"{n} ({role})" if role else n for n, role in zip(names, roles, strict=False)]
            advice += "; pod affinity cannot follow a role (Promoted: the active pod)"
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
    promotable, promoted = promotion(top, meta)
    if bundle is not None:
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
        flag = f"promotable, {promoted} of {copies} copies promoted"
        if promoted >= copies:
            return "Clustered", copies, f"Clustered: {flag}, i.e. all of them; {replicas}"
        if promoted == 1:
            return (
                "ActivePassive",
                copies,
                f"ActivePassive: {flag} (the primary; the others unpromoted replicas): the active "
                f"pod is the primary, the standbys the replicas; {replicas}",
            )
        return (
            "Clustered",
            copies,
            f"Clustered: {flag} has no exact equivalent: every member serves as the promoted "
            f"ones did; {replicas}",
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


def promotion(top: Resource, meta: dict[str, str]) -> tuple[bool, int]:
    """Whether the clone or bundle is promotable, and how many copies pacemaker promoted (1 when
    it does not say, pacemaker's default). A bundle is promotable by its runtime's promoted-max
    (or the older masters) or by the meta attribute promotable, as a clone is; `<master>` always
    is."""
    if top.kind not in ("clone", "master", "bundle"):
        return False, 0
    flag = meta.get("promotable", "").lower() in ("true", "yes", "1", "on", "y")
    promoted = number(meta.get("promoted-max") or meta.get("master-max"))
    if top.bundle is not None and top.bundle.promoted_max is not None:
        promoted = top.bundle.promoted_max
        flag = flag or promoted > 0
    if not (flag or top.kind == "master"):
        return False, 0
    return True, 1 if promoted is None else max(promoted, 1)


def chain(top: Resource) -> list[Resource]:
    """The resources whose meta attributes apply to the service, outermost first: a clone, the
    group in it, the group's first service (pacemaker hands meta attributes down)."""
    chain = [top]
    while chain[-1].children:
        inner = chain[-1]
        services = [c for c in inner.children if kind_of(c) == "service"]
        chain.append(services[0] if inner.kind == "group" and services else inner.children[0])
    return chain


_TRUE = ("true", "yes", "on", "1", "y")
_FALSE = ("false", "no", "off", "0", "n")
_GUEST = (
    "it was also a pacemaker guest node (pacemaker_remote inside it): Kubernetes nodes join the "
    "cluster on their own"
)
META_RULES: dict[str, tuple[tuple[str, ...], str]] = {
    "allow-migrate": (
        _FALSE,
        "pacemaker migrated it live to another node; a pod is stopped there and started anew",
    ),
    "notify": (
        _FALSE,
        "the agent was told of its copies' starts, stops and promotions (notify actions); pods "
        "must learn of their peers themselves (the peers Service, the Lease)",
    ),
    "interleave": (
        (),
        "only shapes order constraints between clones (each copy waits for the copy on its own "
        "node), and those are reported on their own",
    ),
    "globally-unique": (
        _FALSE,
        "its copies were distinct (each doing its own share, like a hashed address); the pods of "
        "one HAService are interchangeable",
    ),
    "clone-node-max": (
        ("1",),
        "more than one copy could run on a node; placement.spread is Required (one per node): set "
        "it to Preferred to allow more",
    ),
    "promoted-node-max": (("1",), "more than one promoted copy could run on a node"),
    "master-node-max": (("1",), "more than one promoted copy could run on a node"),
    "collocated": (_TRUE, "its members could run on different nodes; here they share one pod"),
    "critical": (
        _TRUE,
        "colocations with it were optional for the others (critical false); colocations are "
        "reported on their own",
    ),
    "maintenance": (
        _FALSE,
        "was in maintenance: pacemaker neither started, stopped nor monitored it; the operator "
        "manages it",
    ),
    "priority": (
        ("0",),
        "when not everything could run, pacemaker kept the higher priorities running: give the "
        "pods a PriorityClass",
    ),
    "requires": (
        ("quorum", "fencing"),
        "pacemaker started it without waiting for quorum or fencing (nothing), or only on nodes "
        "unfenced first (unfencing); Kubernetes starts a replacement once the old pod is gone",
    ),
    "multiple-active": (
        ("stop_start",),
        "pacemaker's answer to finding it active on two nodes; the Lease keeps one pod active",
    ),
    "clone-min": (
        (),
        "resources ordered after it waited until this many copies ran; nothing waits in "
        "Kubernetes (the PodDisruptionBudget only keeps copies up during drains)",
    ),
    "container-attribute-target": (
        (),
        "rules saw the node attributes of the bundle's host; location rules are reported with "
        "the constraints",
    ),
    "remote-node": ((), _GUEST),
    "remote-port": ((), _GUEST),
    "remote-addr": ((), _GUEST),
    "remote-connect-timeout": ((), _GUEST),
    "remote-allow-migrate": ((), _GUEST),
    "container": (
        (),
        "it ran inside the named resource (a container monitored from outside); give that "
        "resource's HAService a probe instead",
    ),
    "restart-type": ((), "deprecated, and ignored by current pacemaker"),
    "resource-failure-stickiness": (
        (),
        "deprecated, and ignored by current pacemaker: migration-threshold replaced it",
    ),
    "description": (("*",), ""),
}
"""Meta attributes the import does not translate, by name: the values Kubernetes already behaves
like (nothing to say; `*` any value), and what any other value meant, for the report."""


def meta_verdict(name: str, value: str) -> str | None:
    """What a meta attribute meant that the HAService cannot say, or None when it matches (or
    when `name` is not in META_RULES: the caller reports those as having no equivalent)."""
    rule = META_RULES.get(name)
    if rule is None:
        return None
    matching, meaning = rule
    lowered = value.strip().lower()
    return None if lowered in matching or "*" in matching else meaning
