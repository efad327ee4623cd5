"""Pacemaker/corosync resources as HAServices: `haoperator import pacemaker CIB.xml`.

Pure: the CIB's text in, HAService manifests and a report out. How each top-level resource maps:

- fencing devices (`class="stonith"`), storage (Filesystem, LVM, DRBD...) and infrastructure
  (virtual machines, cluster lock daemons, node health and network agents, notifiers; see
  known.py) are not services: reported with what replaces them, not imported;
- an address (`IPaddr2`, a cloud address mover) colocated with a service becomes that service's
  Service: its cluster IP replaces the address (recorded in an annotation);
- a primitive or a group runs one active copy: **ActivePassive**; a group's services share a pod,
  hence one network: a port several members would declare is declared once, by the first
  (workload.declare_once), before the probes are chosen;
- a clone or bundle whose agent forms a cluster (galera, rabbitmq-cluster), or a promotable
  clone/bundle whose copies are all promoted (`promoted-max` = copies): **Clustered**, quorum
  Majority, with the agent's peer ports;
- a promotable clone/bundle (`promotable=true`, `<master>`, a bundle's `promoted-max`) with one
  promoted copy (redis or PostgreSQL replication): **ActivePassive**;
- any other clone or bundle is stateless: **LoadBalanced** when it serves a port (a bundle
  port-mapping, a `port` parameter, or the agent's well-known port), has an address colocated, or
  is tied to haproxy by a constraint; otherwise **QueueWorker**. `--category NAME=CATEGORY`
  overrides the guess.

Copies: the bundle's `replicas`, else `clone-max`, else the number of cluster nodes. Failures:
`migration-threshold` N moves the resource at the N-th failure, so N-1 restarts are allowed:
`maxRestarts: N-1`, `onLimit: Migrate`, within `failure-timeout` widened to hold N restarts under
the kubelet's back-off (backoff.py); without a threshold pacemaker never moves it: `onLimit:
Notify`. A group's members each have their own: the strictest decides. The monitor op gives the
probes' period and timeout (and the start op's timeout a startup probe), on the first port;
without a port there is no probe, as a probe that cannot pass would be worse than none.

Every meta attribute, op attribute and element read is translated (TRANSLATED_META,
TRANSLATED_OP_ATTRIBUTES, TRANSLATED_OP_DEFAULTS) or named in the report. A value the report
prints goes through cib.shown: one that may be a secret (by its name or what it carries) is
printed as `<secret>`, its name kept.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from haoperator.api.base import MAX_RESTARTS, MAX_WINDOW_SECONDS
from haoperator.importers.backoff import window_for_restarts
from haoperator.importers.cib import Cib, Op, Resource, assignment, is_secret, parse, shown
from haoperator.importers.common import (
    Options,
    Report,
    Unreadable,
    dns_label,
    duration,
    named_port,
    whole_seconds,
)
from haoperator.importers.known import (
    CLOUD_ADDRESS_AGENTS,
    CONTAINER_AGENTS,
    INFRASTRUCTURE_AGENTS,
    PEER_PORTS,
    PORT_PARAMETERS,
    SERVICE_PORTS,
    agent_key,
)
from haoperator.importers.pacemaker_bundle import bundle_container
from haoperator.importers.pacemaker_rules import (
    META_RULES,
    chain,
    decide_category,
    ips,
    is_haproxy,
    kind_of,
    meta_verdict,
    number,
    promotion,
    read_topology,
    report_cluster,
    report_constraints,
)
from haoperator.importers.workload import (
    ContainerPlan,
    Plan,
    Port,
    Probe,
    Session,
    declare_once,
)

HANDLED_META = frozenset({
    "migration-threshold", "failure-timeout", "resource-stickiness", "target-role", "is-managed",
    "clone-max", "promoted-max", "master-max", "promotable", "ordered",
})  # fmt: skip
"""Meta attributes the import maps itself (restart limits, preemption, category and copies,
ordering) or reports by value (a stopped or unmanaged resource)."""
TRANSLATED_META = HANDLED_META | frozenset(
    name for name, (matching, _) in META_RULES.items() if matching
)
"""Every meta attribute name the import takes into account: mapped, or matched by Kubernetes'
own behaviour for its usual values and reported, naming it, for any other value. Names outside
this set are reported as they are found."""
TRANSLATED_OP_ATTRIBUTES = frozenset({
    "id", "name", "description", "interval", "timeout", "role", "enabled", "on-fail",
})  # fmt: skip
"""`<op>` attributes the import reads (the monitor's interval and timeout are the probes', the
start's timeout the startup probe's, a disabled op is left out); every `on-fail` value but the
default `restart` is reported. Other attributes (start-delay, interval-origin, record-pending,
requires) and the op's own nvpairs are reported by name."""
TRANSLATED_OP_DEFAULTS = frozenset({"timeout"})
"""op_defaults the import reads: the timeout of monitors that give none."""
DEFAULT_OP_TIMEOUT = 20.0
STOP_GRACE_SECONDS = 30
"""Kubernetes' default terminationGracePeriodSeconds: a stop that may take longer is reported."""
PROBE_OPS = frozenset({"monitor", "start", "stop"})
ON_FAIL_RESTART = frozenset({"restart", "restart-container"})
NOTIFY_RESTARTS = 5
"""Restarts before RecoveryLimitReached when pacemaker would never move the resource."""


def import_pacemaker(text: str, options: Options) -> tuple[list[dict[str, Any]], Report]:
    """HAServices for the CIB's services, and the report of what could not be expressed."""
    report = Report()
    cib = parse(text, report)
    return _Importer(cib, options, report).run(), report


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "yes", "on", "1", "y")


class _Importer:
    def __init__(self, cib: Cib, options: Options, report: Report) -> None:
        self.cib = cib
        self.report = report
        self.session = Session(options, report)
        self.topology = read_topology(cib)
        self.kinds = self.topology.kinds
        self.addresses = self.topology.addresses
        self.left_out: Counter[str] = Counter()

    def run(self) -> list[dict[str, Any]]:
        for top in self.cib.resources:
            self._resource(top)
        report_constraints(self.cib, self.topology, self.report)
        self._defaults()
        report_cluster(self.cib, self.report)
        haservices = self.session.finish()
        if not haservices:
            found = ", ".join(
                f"{label} ({count})" for label, count in sorted(self.left_out.items())
            )
            raise Unreadable(
                "<resources>",
                f"holds no service to import, only {found}: none of them runs as an HAService",
            )
        return haservices

    def _defaults(self) -> None:
        for name, value in sorted(self.cib.rsc_defaults.items()):
            if name in HANDLED_META:
                continue
            meaning = meta_verdict(name, value)
            if meaning:
                self.report.unsupported("rsc_defaults", f"{assignment(name, value)}: {meaning}")
            elif name not in META_RULES:
                self.report.unsupported("rsc_defaults", f"{name}: no equivalent")
        timeout = self.cib.op_defaults.get("timeout")
        if timeout is not None and self._tolerant(timeout) is None:
            self.report.warning(
                "op_defaults",
                f"timeout {shown(timeout, 'timeout')!r} is not a duration: pacemaker's own default "
                f"({DEFAULT_OP_TIMEOUT:g}s) applies, as it does there",
            )
        ignored = sorted(set(self.cib.op_defaults) - TRANSLATED_OP_DEFAULTS)
        if ignored:
            self.report.unsupported(
                "op_defaults", f"{', '.join(ignored)}: no equivalent for the probes"
            )

    @staticmethod
    def _tolerant(value: str) -> float | None:
        try:
            return duration(value)
        except ValueError:
            return None

    def _resource(self, top: Resource) -> None:
        kind = self.kinds[top.id]
        subject = f"{top.kind} {top.id}"
        if kind == "address":
            self.left_out["addresses"] += 1
            agents = sorted({agent_key(r.type) for r in top.walk()} & CLOUD_ADDRESS_AGENTS)
            if agents:
                self.report.note(
                    subject,
                    f"{agents[0]} moved a cloud address to the active node: a Service of type "
                    "LoadBalancer (the cloud's load balancer, following the ready pods) is the "
                    "usual replacement",
                )
            if top.id not in self.topology.owner:
                self.report.warning(
                    subject,
                    f"address {', '.join(ips(top))} is colocated with "
                    "no imported service: not imported; a Service of type "
                    "LoadBalancer can hold a fixed address",
                )
            for member in top.walk():
                if member.kind == "primitive" and kind_of(member) != "address":
                    self._not_a_service(member, f"{subject}: primitive {member.id}")
        elif kind == "service":
            self.session.add(self._plan(top, subject))
        else:
            self._not_a_service(top, subject)

    def _not_a_service(self, resource: Resource, subject: str) -> None:
        """Report each primitive of `resource` that is not a service, with what replaces it."""
        for primitive in (r for r in resource.walk() if r.kind == "primitive"):
            where = subject if primitive is resource else f"{subject}: primitive {primitive.id}"
            kind = kind_of(primitive)
            key = agent_key(primitive.type)
            if kind == "fencing":
                self.left_out["fencing devices"] += 1
                self.report.note(
                    where,
                    f"fencing device ({primitive.agent}), not a service: not imported, nor its "
                    "parameters",
                )
            elif kind == "infrastructure":
                infrastructure = INFRASTRUCTURE_AGENTS[key]
                self.left_out[infrastructure.label] += 1
                guest = primitive.meta.get("remote-node")
                self.report.unsupported(
                    where,
                    f"{infrastructure.what} ({primitive.agent}), not an application: not "
                    f"imported; {infrastructure.instead}"
                    + (f"; it was also the pacemaker guest node {shown(guest)}" if guest else ""),
                )
            elif kind == "storage":
                self.left_out["storage"] += 1
                self._storage(primitive, where, key)

    def _storage(self, primitive: Resource, subject: str, key: str) -> None:
        if key == "drbd":
            self.report.unsupported(
                subject,
                f"replicated storage ({primitive.agent}): a PersistentVolumeClaim of a replicated "
                "storage class takes its place",
            )
        else:
            where = shown(primitive.params.get("directory") or "", "directory")
            self.report.unsupported(
                subject,
                f"storage of the active node ({primitive.agent}): use a PersistentVolumeClaim"
                + (f" mounted at {where}" if where else ""),
            )

    def _effective(self, top: Resource) -> dict[str, dict[str, str]]:
        """The meta attributes each primitive runs with, by id: rsc_defaults, then those of the
        resources around it (a clone's, a group's), then its own, as pacemaker hands them down."""
        found: dict[str, dict[str, str]] = {}

        def visit(resource: Resource, inherited: dict[str, str]) -> None:
            merged = {**inherited, **resource.meta}
            if resource.kind == "primitive":
                found[resource.id] = merged
            for child in resource.children:
                visit(child, merged)

        visit(top, dict(self.cib.rsc_defaults))
        return found

    def _plan(self, top: Resource, subject: str) -> Plan:
        primitives = [r for r in top.walk() if r.kind == "primitive"]
        services = [p for p in primitives if kind_of(p) == "service"]
        effective = self._effective(top)
        members = {p.id: effective[p.id] for p in services} or {
            top.id: {**self.cib.rsc_defaults, **top.meta}
        }
        meta = dict(self.cib.rsc_defaults)
        for resource in chain(top):
            meta.update(resource.meta)
        start = len(self.report.items)
        containers = [self._container(top, p) for p in services] or [self._container(top, None)]
        # Before the probes are chosen: a member left without a port has none to check.
        declare_once(subject, containers, self.report)
        for member in primitives:
            kind = kind_of(member)
            if kind in ("storage", "infrastructure", "fencing"):
                self._not_a_service(member, f"{subject}: primitive {member.id}")
            elif kind == "address":
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
        copies = {**self.cib.rsc_defaults, **top.meta}
        if top.kind != "group" and top.children and top.children[0].kind == "primitive":
            copies = {**copies, **top.children[0].meta}
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
            ordered=top.kind != "group" and _truthy(copies.get("ordered")),
        )
        self._promotable(plan, top, meta)
        promotable = promotion(top, meta)[0]
        for service in services:
            self._ops(plan, service, promotable)
        self._address_roles(plan, top, meta)
        self._order(plan, top, services, copies)
        self._utilization(plan, primitives)
        threshold = self._recovery(plan, members)
        self._stickiness(plan, members)
        if plan.category == "ActivePassive":
            self._unhealthy(plan, threshold)
        self._meta(plan, top, members, promotable)
        for address in self.cib.resources:
            if self.topology.owner.get(address.id) == top.id:
                self._folded(plan, address)
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
            if is_secret("image", bundle.image):
                self.report.warning(
                    subject,
                    f"the {bundle.runtime} image carries credentials: not copied; pull with an "
                    "imagePullSecret and give the image with --image-map",
                )
            else:
                container.image, container.image_origin = bundle.image, f"bundle {top.id}"
            bundle_container(top, container, self.report)
        if primitive is None:
            return container
        key = agent_key(primitive.type)
        image = primitive.params.get("image")
        if key in CONTAINER_AGENTS and image and not is_secret("image", image):
            container.image = image
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
        container.probe = self._probe(primitive.ops)
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
        secret = sorted(n for n, v in primitive.params.items() if is_secret(n, v))
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

    def _probe(self, ops: list[Op]) -> Probe | None:
        monitors = _monitors(ops)
        if not monitors:
            return None
        monitor = monitors[0]
        default = self._tolerant(self.cib.op_defaults.get("timeout") or "")
        timeout = monitor.timeout or default or DEFAULT_OP_TIMEOUT
        start = next((op.timeout for op in ops if op.name == "start" and op.timeout), None)
        return Probe(
            period=whole_seconds(monitor.interval),
            timeout=whole_seconds(timeout),
            startup_seconds=whole_seconds(start) if start else None,
            origin=f"op {monitor.label}",
        )

    def _ops(self, plan: Plan, primitive: Resource, promotable: bool) -> None:
        """Report what the ops of a service say beyond the probes."""
        subject = plan.subject
        monitors = _monitors(primitive.ops)
        for op in primitive.ops:
            where = f"op {op.label} of {primitive.id}"
            for attribute, value in op.problems:
                self.report.warning(
                    subject,
                    f"{where}: {attribute} {shown(value, attribute)!r} is not a duration, as "
                    "pacemaker also finds: "
                    + {
                        "interval": "no recurring check is taken from it",
                        "timeout": "the default timeout applies",
                    }.get(attribute, "read as none"),
                )
            self._on_fail(plan, where, op, promotable)
            if op.start_delay:
                self.report.note(
                    subject,
                    f"{where}: start-delay {whole_seconds(op.start_delay)}s: pacemaker waited that "
                    f"long after a start before the first {op.name}; give the probes "
                    f"initialDelaySeconds: {whole_seconds(op.start_delay)}",
                )
            other = sorted(set(op.attrs) - TRANSLATED_OP_ATTRIBUTES - {"start-delay"})
            if other:
                listed = ", ".join(assignment(name, op.attrs[name]) for name in other)
                self.report.unsupported(subject, f"{where}: {listed}: no equivalent")
            if op.nvpairs:
                listed = ", ".join(
                    assignment(name, value) for name, value in sorted(op.nvpairs.items())
                )
                self.report.unsupported(
                    subject,
                    f"{where}: {listed}: options of the agent's check (a deeper check with "
                    "OCF_CHECK_LEVEL or depth); the probes only check the port",
                )
            if op.name == "monitor" and monitors and op is not monitors[0] and op.interval > 0:
                role = f", role {shown(op.role)}" if op.role else ""
                self.report.note(
                    subject,
                    f"{where} (every {whole_seconds(op.interval)}s{role}) is not a probe: the "
                    f"probes follow op {monitors[0].label}",
                )
            if op.name == "stop" and op.timeout and op.timeout > STOP_GRACE_SECONDS:
                self.report.note(
                    subject,
                    f"{where}: a stop may take {whole_seconds(op.timeout)}s: set the pod "
                    f"template's terminationGracePeriodSeconds to {whole_seconds(op.timeout)} "
                    f"(Kubernetes waits {STOP_GRACE_SECONDS}s by default)",
                )
        actions = sorted({op.name for op in primitive.ops} - PROBE_OPS)
        if actions:
            self.report.unsupported(
                subject,
                f"ops {', '.join(actions)} of {primitive.id}: actions of the agent, which "
                "Kubernetes does not run (it only starts, probes and stops the container)",
            )

    def _on_fail(self, plan: Plan, where: str, op: Op, promotable: bool) -> None:
        value = (op.on_fail or "restart").lower()
        subject = plan.subject
        if value in ON_FAIL_RESTART:
            return
        if value == "fence":
            self.report.note(
                subject,
                f"{where} fences on failure: nodeLoss.action "
                "ForceDelete is the closest, for you to opt in",
            )
        elif value == "demote" and promotable and plan.category == "ActivePassive":
            self.report.note(
                subject,
                f"{where} on-fail=demote: pacemaker demoted the failed primary and kept it as a "
                "replica; here the failed check makes the pod not Ready, the active role moves "
                "to a ready standby and the pod stays as a standby: the closest equivalent",
            )
        else:
            meaning = {
                "demote": "pacemaker demoted the failed copy and kept it running; Kubernetes "
                "restarts a failed container",
                "ignore": "pacemaker ignored the failure and left it running; Kubernetes restarts "
                "a container whose liveness probe fails: remove the livenessProbe to keep it "
                "running",
                "block": "pacemaker left the failed resource alone for the administrator; "
                "Kubernetes restarts a failed container",
                "stop": "pacemaker stopped it and left it stopped; Kubernetes restarts a failed "
                "container (scale it to 0 by hand to keep it stopped)",
                "standby": "pacemaker moved every resource off the node; here only this "
                "service's container restarts",
            }.get(
                value,
                "not an on-fail value pacemaker knows; Kubernetes restarts a failed container",
            )
            self.report.unsupported(
                subject, f"{where} {assignment('on-fail', op.on_fail or '')}: {meaning}"
            )

    def _promotable(self, plan: Plan, top: Resource, meta: dict[str, str]) -> None:
        promotable, promoted = promotion(top, meta)
        if not promotable:
            return
        if plan.category == "ActivePassive":
            self.report.warning(
                plan.subject,
                "promotable: pacemaker ran the agent's promote on the primary and demote on the "
                "replicas (switching replication roles); the elector only marks the active pod "
                "(label haoperator.dev/role: active, the Lease): the image must take the primary "
                "role itself when its pod becomes active, and give it up when it stops being so",
            )
        else:
            self.report.note(
                plan.subject,
                f"promotable: pacemaker ran the agent's promote on {promoted} copies; no promote "
                "or demote runs here: the members must agree on their roles themselves",
            )

    def _address_roles(self, plan: Plan, top: Resource, meta: dict[str, str]) -> None:
        """An address that followed one role of a promotable service: the Service of an
        ActivePassive selects the active pod, which is the promoted copy; say where that is not
        what the address did."""
        promotable, promoted = promotion(top, meta)
        for address, owner in sorted(self.topology.owner.items()):
            role = self.topology.address_roles.get(address)
            if owner != top.id or role is None:
                continue
            listed = ", ".join(ips(self.topology.top[address]))
            if not promotable:
                self.report.warning(
                    plan.subject,
                    f"address {listed} was colocated with role {role}, which {top.id} (not "
                    "promotable) never has: pacemaker never placed it; check the constraint",
                )
            elif role == "Unpromoted":
                self.report.warning(
                    plan.subject,
                    f"address {listed} followed the unpromoted copies (replicas, e.g. for reads): "
                    "the Service selects the active pod; add a Service selecting "
                    "haoperator.dev/role: standby for it",
                )
            elif plan.category == "ActivePassive":
                self.report.note(
                    plan.subject,
                    f"address {listed} followed the promoted copy: the Service selects only the "
                    "active pod, as the address did",
                )
            elif promoted < (plan.replicas or 0):
                self.report.warning(
                    plan.subject,
                    f"address {listed} followed only the {promoted} promoted copies: the Service "
                    "reaches every ready member",
                )

    def _order(
        self, plan: Plan, top: Resource, services: list[Resource], copies: dict[str, str]
    ) -> None:
        """A group starts its members one after another, a clone with `ordered` its copies."""
        group = (
            top
            if top.kind == "group"
            else next((c for c in top.children if c.kind == "group"), None)
        )
        if group is not None and len(services) > 1:
            ordered = {**self.cib.rsc_defaults, **group.meta}.get("ordered", "true")
            if _truthy(ordered):
                self.report.note(
                    plan.subject,
                    f"members {', '.join(s.id for s in services)} started one after another (a "
                    "group is ordered): the containers of a pod start together; make each wait "
                    "for what it needs, or run the earlier ones as sidecar init containers "
                    "(restartPolicy Always), which start in order",
                )
        if plan.ordered and plan.category != "Clustered":
            self.report.unsupported(
                plan.subject,
                f"ordered {shown(copies.get('ordered') or '', 'ordered')}: copies started one at "
                "a time; a Deployment starts them together",
            )
        elif plan.ordered:
            self.report.note(plan.subject, "ordered: podManagementPolicy OrderedReady")

    def _utilization(self, plan: Plan, primitives: list[Resource]) -> None:
        strategy = self.cib.properties.get("placement-strategy", "default")
        used = (
            "pacemaker ignored it (placement-strategy default)"
            if strategy.lower() == "default"
            else f"pacemaker placed resources by it (placement-strategy {shown(strategy)})"
        )
        for primitive in primitives:
            if primitive.utilization:
                listed = ", ".join(
                    assignment(k, v) for k, v in sorted(primitive.utilization.items())
                )
                self.report.note(
                    plan.subject,
                    f"utilization {listed} of {primitive.id}: {used}; size the container's "
                    "resources.requests from it (its units are the cluster's own)",
                )

    def _recovery(self, plan: Plan, members: dict[str, dict[str, str]]) -> int | None:
        """The restart budget: the strictest member's migration-threshold and failure-timeout,
        the window widened to hold that many restarts under the kubelet's back-off; Notify when
        pacemaker would never have moved it. Returns the threshold in force."""
        limits: dict[str, tuple[int | None, float | None]] = {}
        for member, meta in members.items():
            limits[member] = (self._threshold(plan, member, meta), self._expiry(plan, member, meta))
        moving = {m: (t, e) for m, (t, e) in limits.items() if t is not None and t > 0}
        if not moving:
            self._never_moved(plan, members)
            return None
        member = min(moving, key=lambda m: (moving[m][0], -(moving[m][1] or float("inf"))))
        threshold, expiry = moving[member]
        assert threshold is not None
        if len(set(limits.values())) > 1:
            described = "; ".join(f"{m}: {_limit_text(t, e)}" for m, (t, e) in limits.items())
            self.report.note(
                plan.subject,
                f"the members' limits differ ({described}): the strictest, {member}'s, applies "
                "to the pod, whose containers restart and move together",
            )
        threshold = min(threshold, MAX_RESTARTS + 1)
        needed = window_for_restarts(threshold)
        if expiry is None:
            window = MAX_WINDOW_SECONDS
            because = (
                f"windowSeconds {window}, the longest: failures never expired (no "
                "failure-timeout), and pacemaker kept the node banned until a cleanup"
            )
        else:
            window = min(max(whole_seconds(expiry), needed), MAX_WINDOW_SECONDS)
            because = f"windowSeconds {window}"
        plan.restart = {
            "maxRestarts": threshold - 1,
            "windowSeconds": window,
            "onLimit": "Migrate",
        }
        self.report.note(
            plan.subject,
            f"migration-threshold {threshold} moves it at failure {threshold}: maxRestarts "
            f"{threshold - 1}, onLimit Migrate, {because}",
        )
        if needed >= MAX_WINDOW_SECONDS:
            self.report.warning(
                plan.subject,
                f"{threshold} restarts take more than a day under the kubelet's back-off (10 s "
                "doubling to 300 s between restarts): the limit cannot be reached; lower "
                "maxRestarts",
            )
        elif expiry is not None and whole_seconds(expiry) < needed:
            self.report.note(
                plan.subject,
                f"failure-timeout {whole_seconds(expiry)}s widened to {window}s: the kubelet "
                f"waits 10 s before restarting a crashed container, doubling up to 300 s, so "
                f"{threshold} restarts take {needed}s; the limit fires after {threshold} quick "
                "failures, as pacemaker's did, and the node is avoided that long",
            )
        return threshold

    def _threshold(self, plan: Plan, member: str, meta: dict[str, str]) -> int | None:
        raw = meta.get("migration-threshold")
        threshold = number(raw)
        if raw is not None and threshold is None and "INFINITY" not in raw.upper():
            self.report.warning(
                plan.subject,
                f"migration-threshold {shown(raw, 'migration-threshold')!r} of {member} is not a "
                "number: read as pacemaker's default, never move",
            )
        return threshold

    def _expiry(self, plan: Plan, member: str, meta: dict[str, str]) -> float | None:
        raw = meta.get("failure-timeout")
        if raw is None:
            return None
        seconds = self._tolerant(raw)
        if seconds is None:
            self.report.warning(
                plan.subject,
                f"failure-timeout {shown(raw, 'failure-timeout')!r} of {member} is not a duration: "
                "failures never expire, as pacemaker reads it",
            )
        return seconds or None

    def _never_moved(self, plan: Plan, members: dict[str, dict[str, str]]) -> None:
        """No migration-threshold (pacemaker's default, INFINITY) or 0: failures restart the
        resource where it is, forever. The operator's default policy would Migrate: Notify."""
        window = window_for_restarts(NOTIFY_RESTARTS + 1)
        plan.restart = {
            "maxRestarts": NOTIFY_RESTARTS,
            "windowSeconds": window,
            "onLimit": "Notify",
        }
        said = sorted({shown(m.get("migration-threshold", "")) for m in members.values()} - {""})
        expiring = any("failure-timeout" in m for m in members.values())
        fatal = _truthy(self.cib.properties.get("start-failure-is-fatal", "true"))
        self.report.note(
            plan.subject,
            ("no migration-threshold" if not said else f"migration-threshold {', '.join(said)}")
            + ": pacemaker restarted a failed resource where it was and never moved it for "
            + ("failing (only a failed start moved it)" if fatal else "failing")
            + ": onLimit Notify, a warning after "
            f"{NOTIFY_RESTARTS} restarts within {window}s, not the default Migrate"
            + ("; failure-timeout only expired failures that moved nothing" if expiring else ""),
        )

    def _stickiness(self, plan: Plan, members: dict[str, dict[str, str]]) -> None:
        """A group holds on to its node by the sum of its members' stickiness."""
        fallback = self.cib.properties.get("default-resource-stickiness")
        values = {m: meta.get("resource-stickiness") or fallback for m, meta in members.items()}
        said = {m: v for m, v in values.items() if v}
        if plan.category != "ActivePassive" or not said:
            return
        if sum(_score(v) for v in said.values()) <= 0:
            return
        plan.active_passive = {"preempt": False}
        if len(set(said.values())) == 1 and len(members) == 1:
            self.report.note(
                plan.subject,
                f"resource-stickiness {shown(next(iter(said.values())))}: preempt false",
            )
        else:
            listed = ", ".join(f"{m} {shown(v)}" for m, v in said.items())
            self.report.note(
                plan.subject,
                f"resource-stickiness {listed}: a group holds on by the sum of its members': "
                "preempt false",
            )

    def _meta(
        self, plan: Plan, top: Resource, members: dict[str, dict[str, str]], promotable: bool
    ) -> None:
        """Every meta attribute of the resource and of what it holds: mapped elsewhere, matched,
        or reported naming its resource."""
        subject = plan.subject
        for resource in top.walk():
            of = "" if resource is top else f" of {resource.kind} {resource.id}"
            who = "" if resource is top else f"{resource.kind} {resource.id} "
            if resource.kind == "primitive" and resource.id not in members:
                if resource.meta:
                    self.report.unsupported(
                        subject,
                        f"meta attributes {', '.join(sorted(resource.meta))}{of}: not applied, it "
                        "is not a container of the pod",
                    )
                continue
            unknown = []
            for name, value in sorted(resource.meta.items()):
                if name == "target-role":
                    self._target_role(subject, value, who, promotable, top)
                elif name == "is-managed" and not _truthy(value):
                    self.report.note(
                        subject,
                        f"{who}was unmanaged (is-managed {shown(value)}): the operator manages it",
                    )
                elif name in HANDLED_META:
                    continue
                elif meaning := meta_verdict(name, value):
                    self.report.unsupported(
                        subject, f"meta {assignment(name, value)}{of}: {meaning}"
                    )
                elif name not in META_RULES:
                    unknown.append(name)
            if unknown:
                self.report.unsupported(
                    subject, f"meta attributes {', '.join(unknown)}{of}: no equivalent"
                )
        inherited = self.cib.rsc_defaults.get("target-role")
        if inherited and "target-role" not in top.meta:
            self._target_role(subject, inherited, "", promotable, top)
        if not _truthy(self.cib.rsc_defaults.get("is-managed", "true")):
            self.report.note(
                subject, "was unmanaged (is-managed false in rsc_defaults): the operator manages it"
            )

    def _folded(self, plan: Plan, address: Resource) -> None:
        """What an address resource colocated with this service (and folded into its Service)
        said besides its addresses: its meta attributes and ops act on the address, which the
        Service's cluster IP replaces; it belongs to no node, so they have nothing to act on."""
        subject = plan.subject
        listed_ips = ips(address)
        where = (
            f"{address.kind} {address.id} (address{'es' if len(listed_ips) > 1 else ''} "
            f"{', '.join(listed_ips)}, now the Service)"
        )
        names: dict[tuple[str, ...], list[str]] = {}
        for resource in address.walk():
            listed = []
            for name, value in sorted(resource.meta.items()):
                lowered = value.strip().lower()
                if name == "target-role" and lowered == "stopped":
                    self.report.warning(
                        subject,
                        f"{where}: {resource.kind} {resource.id} was stopped (target-role "
                        "Stopped): the Service gives clients its address anyway",
                    )
                elif name == "is-managed" and not _truthy(value):
                    self.report.note(
                        subject,
                        f"{where}: {resource.kind} {resource.id} was unmanaged (is-managed "
                        f"{shown(value)}): the Service's address is managed by Kubernetes",
                    )
                elif name not in ("target-role", "is-managed", "description"):
                    listed.append(name)
            if listed:
                names.setdefault(tuple(listed), []).append(f"{resource.kind} {resource.id}")
        if names:
            said = "; ".join(f"{', '.join(n)} of {' and '.join(r)}" for n, r in names.items())
            self.report.unsupported(
                subject,
                f"{where}: meta attributes {said}: not applied: the Service's cluster IP belongs "
                "to no node, so it neither fails, moves nor holds on to one; the pods' own "
                "recovery and placement apply",
            )
        ops = []
        for primitive in (r for r in address.walk() if r.kind == "primitive"):
            for op in primitive.ops:
                extra = [n for n in op.attrs if n not in TRANSLATED_OP_ATTRIBUTES]
                if (op.on_fail or "restart").lower() not in ON_FAIL_RESTART:
                    extra.insert(0, assignment("on-fail", op.on_fail or ""))
                extra += list(op.nvpairs)
                if extra:
                    ops.append(f"op {op.label} of {primitive.id} ({', '.join(extra)})")
        if ops:
            self.report.unsupported(
                subject,
                f"{where}: {'; '.join(ops)}: not applied: Kubernetes keeps a Service's cluster "
                "IP up itself; the address's operations have nothing to act on",
            )
        for primitive in (r for r in address.walk() if r.utilization):
            used = ", ".join(assignment(k, v) for k, v in sorted(primitive.utilization.items()))
            self.report.note(
                subject,
                f"{where}: utilization {used} of {primitive.id}: not applied: an address "
                "takes no room on a node",
            )

    def _target_role(
        self, subject: str, raw: str, who: str, promotable: bool, top: Resource
    ) -> None:
        role = raw.strip().lower()
        value = shown(raw, "target-role")
        if role == "stopped" and who.startswith("primitive"):
            after = ", and with it the group's members after it" if top.kind == "group" else ""
            self.report.warning(
                subject,
                f"{who}was stopped (target-role Stopped){after}: imported anyway; remove its "
                "container or leave the service out",
            )
        elif role == "stopped":
            self.report.warning(
                subject,
                f"{who}was stopped (target-role Stopped): imported anyway; scale it to 0 or "
                "leave it out",
            )
        elif role in ("unpromoted", "slave") and promotable:
            self.report.warning(
                subject,
                f"{who}target-role {value}: pacemaker promoted no copy; here one pod becomes "
                "active",
            )
        elif role not in ("started", "promoted", "master", "unpromoted", "slave"):
            self.report.unsupported(
                subject, f"{who}target-role {value}: not a role pacemaker knows"
            )

    def _unhealthy(self, plan: Plan, threshold: int | None) -> None:
        """The monitor as what moves the active role: its failures make the pod not Ready (the
        readiness probe, failing once), and the role moves when pacemaker would have moved the
        resource, at failure `migration-threshold`."""
        probes = [
            c.probe
            for c in plan.containers
            if c.probe is not None
            and (c.probe.port is not None or any(p.protocol == "TCP" for p in c.ports))
        ]
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


def _monitors(ops: list[Op]) -> list[Op]:
    """The recurring monitors that can give a probe, the one to use first: one for every role
    before a role's own, the most frequent first; a monitor of role Stopped checks that the
    resource is *not* running and never gives one."""
    return sorted(
        (
            op
            for op in ops
            if op.name == "monitor" and op.interval > 0 and (op.role or "").lower() != "stopped"
        ),
        key=lambda op: (op.role is not None, op.interval),
    )


def _score(value: str) -> float:
    """A pacemaker score: INFINITY is a million, as in pacemaker; unreadable is 0."""
    text = value.strip().upper()
    if text.lstrip("+-") == "INFINITY":
        return -1e6 if text.startswith("-") else 1e6
    try:
        return float(int(text))
    except ValueError:
        return 0.0


def _limit_text(threshold: int | None, expiry: float | None) -> str:
    moves = f"migration-threshold {threshold}" if threshold else "never moves"
    return moves + (f", failure-timeout {whole_seconds(expiry)}s" if expiry else "")


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
