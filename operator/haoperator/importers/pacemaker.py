"""Pacemaker/corosync resources as HAServices: `haoperator import pacemaker CIB.xml`.

Pure: the CIB's text in, HAService manifests and a report out. How each top-level resource maps:

- fencing devices (`class="stonith"`), storage (Filesystem, LVM, DRBD...) and node plumbing (ping,
  ethmonitor...) are not services: reported, not imported;
- an address (`IPaddr2`) colocated with a service becomes that service's Service: its cluster IP
  replaces the address (recorded in an annotation);
- a primitive or a group runs one active copy: **ActivePassive**; a group's services share a pod;
- a clone or bundle whose agent forms a cluster (galera, rabbitmq-cluster), or a promotable
  clone/bundle whose copies are all promoted (`promoted-max` = copies): **Clustered**, quorum
  Majority, with the agent's peer ports;
- a promotable clone/bundle with `promoted-max=1` (one active copy, redis or PostgreSQL
  replication): **ActivePassive**;
- any other clone or bundle is stateless: **LoadBalanced** when it serves a port (a bundle
  port-mapping, a `port` parameter, or the agent's well-known port), has an address colocated, or
  is tied to haproxy by a constraint; otherwise **QueueWorker**. `--category NAME=CATEGORY`
  overrides the guess.

Copies: the bundle's `replicas`, else `clone-max`, else the number of cluster nodes. Failures:
`migration-threshold` N moves the resource at the N-th failure, so N-1 restarts are allowed:
`maxRestarts: N-1`, `onLimit: Migrate`, `failure-timeout` -> `windowSeconds`. The monitor op gives
the probes' period and timeout (and the start op's timeout a startup probe), on the first port;
without a port there is no probe, as a probe that cannot pass would be worse than none.
"""

from __future__ import annotations

from typing import Any

from haoperator.api.base import MAX_RESTARTS, MAX_WINDOW_SECONDS
from haoperator.importers.cib import Cib, Op, Resource, parse
from haoperator.importers.common import (
    Options,
    Report,
    Unreadable,
    dns_label,
    duration,
    has_secret_value,
    is_secret_name,
    named_port,
    whole_seconds,
)
from haoperator.importers.known import (
    CONTAINER_AGENTS,
    PEER_PORTS,
    PORT_PARAMETERS,
    SERVICE_PORTS,
    agent_key,
)
from haoperator.importers.pacemaker_bundle import bundle_container
from haoperator.importers.pacemaker_rules import (
    chain,
    decide_category,
    ips,
    is_haproxy,
    kind_of,
    number,
    read_topology,
    report_cluster,
    report_constraints,
)
from haoperator.importers.workload import ContainerPlan, Plan, Port, Probe, Session

MAPPED_META = {
    "migration-threshold",
    "failure-timeout",
    "resource-stickiness",
    "ordered",
    "target-role",
    "is-managed",
    "clone-max",
    "promoted-max",
    "master-max",
    "promotable",
}
DEFAULT_OP_TIMEOUT = 20.0


def import_pacemaker(text: str, options: Options) -> tuple[list[dict[str, Any]], Report]:
    """HAServices for the CIB's services, and the report of what could not be expressed."""
    report = Report()
    cib = parse(text, report)
    return _Importer(cib, options, report).run(), report


class _Importer:
    def __init__(self, cib: Cib, options: Options, report: Report) -> None:
        self.cib = cib
        self.report = report
        self.session = Session(options, report)
        self.topology = read_topology(cib)
        self.kinds = self.topology.kinds
        self.addresses = self.topology.addresses

    def run(self) -> list[dict[str, Any]]:
        for top in self.cib.resources:
            self._resource(top)
        report_constraints(self.cib, self.topology, self.report)
        ignored = sorted(set(self.cib.rsc_defaults) - MAPPED_META)
        if ignored:
            self.report.unsupported("rsc_defaults", f"{', '.join(ignored)}: no equivalent")
        report_cluster(self.cib, self.report)
        haservices = self.session.finish()
        if not haservices:
            raise Unreadable(
                "<resources>",
                "holds no service to import (only fencing, addresses, storage or node plumbing)",
            )
        return haservices

    def _resource(self, top: Resource) -> None:
        kind = self.kinds[top.id]
        subject = f"{top.kind} {top.id}"
        if kind == "fencing":
            self.report.note(
                subject,
                f"fencing device ({top.agent}), not a service: not imported, nor its parameters",
            )
        elif kind == "address":
            if top.id not in self.topology.owner:
                self.report.warning(
                    subject,
                    f"address {', '.join(ips(top))} is colocated with "
                    "no imported service: not imported; a Service of type "
                    "LoadBalancer can hold a fixed address",
                )
        elif kind in ("storage", "plumbing"):
            self._not_a_service(top, subject)
        else:
            self.session.add(self._plan(top, subject))

    def _not_a_service(self, resource: Resource, subject: str) -> None:
        primitive = next(r for r in resource.walk() if r.kind == "primitive")
        if kind_of(resource) != "storage":
            self.report.unsupported(
                subject,
                f"node plumbing ({primitive.agent}): Kubernetes nodes and their conditions take "
                "its place",
            )
        elif agent_key(primitive.type) == "drbd":
            self.report.unsupported(
                subject,
                f"replicated storage ({primitive.agent}): a PersistentVolumeClaim of a replicated "
                "storage class takes its place",
            )
        else:
            where = primitive.params.get("directory")
            self.report.unsupported(
                subject,
                f"storage of the active node ({primitive.agent}): use a PersistentVolumeClaim"
                + (f" mounted at {where}" if where else ""),
            )

    def _plan(self, top: Resource, subject: str) -> Plan:
        primitives = [r for r in top.walk() if r.kind == "primitive"]
        services = [p for p in primitives if kind_of(p) == "service"]
        meta = dict(self.cib.rsc_defaults)
        for resource in chain(top):
            meta.update(resource.meta)
        start = len(self.report.items)
        containers = [self._container(top, p) for p in services] or [self._container(top, None)]
        for member in primitives:
            kind = kind_of(member)
            if kind in ("storage", "plumbing"):
                self._not_a_service(member, f"{subject}: primitive {member.id}")
            elif kind == "address" and top.kind == "group":
                self.addresses.setdefault(top.id, []).extend(ips(member))
        category, replicas, why = decide_category(
            top, services, containers, meta, self.topology, len(self.cib.nodes)
        )
        self.report.insert(start, "note", subject, why)
        if is_haproxy(top):
            self.report.note(
                subject,
                "haproxy balanced the cluster's services: in Kubernetes their Services do that; "
                "keep it only for clients outside the cluster",
            )
        plan = Plan(
            source=f"pacemaker {top.kind} {top.id}",
            subject=subject,
            ids=tuple(dict.fromkeys([top.id, *(r.id for r in top.walk())])),
            raw_name=top.children[0].id if top.kind in ("clone", "master") else top.id,
            category=category,
            containers=containers,
            replicas=replicas,
            addresses=self.addresses.get(top.id, []),
            spread="Required" if top.kind in ("clone", "master", "bundle") else None,
            ordered=meta.get("ordered", "false").lower() == "true",
        )
        self._meta(plan, top, meta)
        return plan

    def _container(self, top: Resource, primitive: Resource | None) -> ContainerPlan:
        source = primitive or top
        ids = (source.id,) if primitive is None or top.kind == "group" else (source.id, top.id)
        container = ContainerPlan(
            name=dns_label(source.id, max_length=63, letter_first=False), ids=ids
        )
        subject = f"{top.kind} {top.id}"
        bundle = top.bundle
        if bundle is not None:
            container.image, container.image_origin = bundle.image, f"bundle {top.id}"
            bundle_container(top, container, self.report)
        if primitive is None:
            return container
        key = agent_key(primitive.type)
        if key in CONTAINER_AGENTS and primitive.params.get("image"):
            container.image = primitive.params["image"]
            container.image_origin = f"parameter image of {primitive.id}"
        if primitive.cls in ("systemd", "lsb", "service", "upstart"):
            self.report.note(
                subject,
                f"{primitive.agent}: the image's entrypoint runs; `haoperator "
                "import systemd` on its unit file gives the command, environment and "
                "restart limits",
            )
        self._ports(primitive, container, subject, key)
        self._params(primitive, subject, key)
        container.probe = self._probe(primitive.ops, subject)
        return container

    def _ports(self, primitive: Resource, container: ContainerPlan, subject: str, key: str) -> None:
        numbers = {p.container_port for p in container.ports}
        for name in PORT_PARAMETERS:
            value = primitive.params.get(name)
            if value and value.isdigit() and 0 < int(value) < 65536 and int(value) not in numbers:
                port = int(value)
                known = SERVICE_PORTS.get(key)
                container.ports.append(
                    Port(known[0][0] if known else named_port(name, port), port, port)
                )
                numbers.add(port)
                self.report.note(subject, f"port {port} from parameter {name} of {primitive.id}")
        if key in CONTAINER_AGENTS:
            for port in _published(primitive.params.get("run_opts", "")):
                if port not in numbers:
                    container.ports.append(Port(named_port("port", port), port, port))
                    numbers.add(port)
                    self.report.note(
                        subject, f"port {port} published in run_opts of {primitive.id}"
                    )
        if not container.ports:
            for name, port in SERVICE_PORTS.get(key, ()):
                container.ports.append(Port(name, port, port))
                numbers.add(port)
                self.report.note(
                    subject,
                    f"port {port} ({name}) assumed: the usual port of "
                    f"{key}; correct spec.service if it differs",
                )
        for name, port in PEER_PORTS.get(key, ()):
            if port not in numbers:
                container.ports.append(Port(name, port, None, peer=True))
                numbers.add(port)

    def _params(self, primitive: Resource, subject: str, key: str) -> None:
        used = {*PORT_PARAMETERS, "image"} if key in CONTAINER_AGENTS else set(PORT_PARAMETERS)
        secret = sorted(
            n for n, v in primitive.params.items() if is_secret_name(n) or has_secret_value(v)
        )
        if secret:
            self.report.warning(
                subject,
                f"parameters {', '.join(secret)} of {primitive.id} not "
                "copied (secrets): put them in a Secret and reference it from the "
                "container's env",
            )
        other = sorted(set(primitive.params) - used - set(secret))
        if other:
            self.report.unsupported(
                subject,
                f"parameters {', '.join(other)} of {primitive.id} "
                "configure the agent: carry their effect in the image or a "
                "ConfigMap",
            )

    def _probe(self, ops: list[Op], subject: str) -> Probe | None:
        monitors = sorted(
            (op for op in ops if op.name == "monitor" and op.interval > 0),
            key=lambda op: (op.role is not None, op.interval),
        )
        for op in ops:
            if op.on_fail == "fence":
                self.report.note(
                    subject,
                    f"op {op.id} fences on failure: nodeLoss.action "
                    "ForceDelete is the closest, for you to opt in",
                )
            elif op.on_fail in ("block", "stop", "ignore", "standby"):
                self.report.unsupported(
                    subject,
                    f"op {op.id} on-fail={op.on_fail}: Kubernetes restarts a failed container",
                )
        if not monitors:
            return None
        monitor = monitors[0]
        default = self.cib.op_defaults.get("timeout")
        timeout = monitor.timeout or (
            _seconds(default, "op_defaults: timeout") if default else DEFAULT_OP_TIMEOUT
        )
        start = next((op.timeout for op in ops if op.name == "start" and op.timeout), None)
        return Probe(
            period=whole_seconds(monitor.interval),
            timeout=whole_seconds(timeout),
            startup_seconds=whole_seconds(start) if start else None,
            origin=f"op {monitor.id}",
        )

    def _meta(self, plan: Plan, top: Resource, meta: dict[str, str]) -> None:
        subject = plan.subject
        threshold = number(meta.get("migration-threshold"))
        timeout = meta.get("failure-timeout")
        window = None
        if timeout and number(timeout) != 0:
            seconds = whole_seconds(_seconds(timeout, f"{subject}: failure-timeout"))
            window = min(seconds, MAX_WINDOW_SECONDS)
        if threshold is not None and threshold > 0:
            threshold = min(threshold, MAX_RESTARTS + 1)
            plan.restart = {
                "maxRestarts": threshold - 1,
                "windowSeconds": window or 600,
                "onLimit": "Migrate",
            }
            self.report.note(
                subject,
                f"migration-threshold {threshold} moves it at failure "
                f"{threshold}: maxRestarts {threshold - 1}, onLimit Migrate, "
                f"windowSeconds {window or '600 (failures never expired)'}",
            )
        elif window:
            self.report.note(
                subject,
                "failure-timeout without migration-threshold: nothing moved "
                "it, the operator's default restart limit applies",
            )
        stickiness = meta.get("resource-stickiness") or self.cib.properties.get(
            "default-resource-stickiness"
        )
        if (
            plan.category == "ActivePassive"
            and stickiness
            and not stickiness.startswith(("-", "0"))
        ):
            plan.active_passive = {"preempt": False}
            self.report.note(subject, f"resource-stickiness {stickiness}: preempt false")
        if plan.category == "ActivePassive":
            self._unhealthy(plan, threshold)
        if meta.get("target-role", "").lower() == "stopped":
            self.report.warning(
                subject,
                "was stopped (target-role Stopped): imported anyway; scale it to 0 or leave it out",
            )
        if meta.get("is-managed", "true").lower() == "false":
            self.report.note(subject, "was unmanaged (is-managed false): the operator manages it")
        own = {name for r in [top, *top.walk()] for name in r.meta}
        ignored = sorted(own - MAPPED_META)
        if ignored:
            self.report.unsupported(subject, f"meta attributes {', '.join(ignored)}: no equivalent")

    def _unhealthy(self, plan: Plan, threshold: int | None) -> None:
        """The monitor as what moves the active role: its failures make the pod not Ready (the
        readiness probe, failing once), and the role moves when pacemaker would have moved the
        resource, at failure `migration-threshold`."""
        probes = [c.probe for c in plan.containers if c.probe is not None]
        if not probes:
            return
        probe = min(probes, key=lambda p: p.period)
        probe.failure_threshold = 1
        if threshold is not None and threshold > 0:
            seconds = min(probe.period * (threshold - 1), 3600)
            plan.active_passive = {**(plan.active_passive or {}), "unhealthySeconds": seconds}
            self.report.note(
                plan.subject,
                f"{probe.origin} every {probe.period}s, migration-threshold {threshold}: the "
                f"active role moves after {threshold} failed checks (unhealthySeconds {seconds})",
            )
        else:
            self.report.note(
                plan.subject,
                f"{probe.origin} every {probe.period}s: a failed check makes the pod not Ready and "
                "moves the active role to a ready standby at once, where pacemaker (no "
                "migration-threshold) restarted it in place; raise "
                "activePassive.unhealthySeconds to give it that time",
            )


def _seconds(value: str, where: str) -> float:
    try:
        return duration(value)
    except ValueError:
        raise Unreadable(where, f"{value!r} is not a duration") from None


def _published(options: str) -> list[int]:
    """The container ports `docker run -p [ip:]host:container[/proto]` publishes."""
    words = options.split()
    found = []
    for position, word in enumerate(words[:-1]):
        if word in ("-p", "--publish"):
            container = words[position + 1].rsplit(":", 1)[-1].split("/")[0]
            if container.isdigit() and 0 < int(container) < 65536:
                found.append(int(container))
    return found
