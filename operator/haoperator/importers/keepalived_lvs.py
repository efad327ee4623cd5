"""keepalived's LVS virtual servers as LoadBalanced HAServices.

A `virtual_server` balances over its `real_server`s: one replica per real server, the virtual ports
on the Service and the real port on the pods. A `virtual_server group NAME` serves every address
and port of its `virtual_server_group`: one HAService, one Service with all the ports (its cluster
IP replaces all the addresses). A firewall mark (`virtual_server fwmark N`, or `fwmark N` in a
group) chose traffic with iptables/nftables rules keepalived does not hold: Kubernetes has no
equivalent, so it is reported and the real servers and their checks are still translated, on
their own port (reported as assumed).

Real-server checks become a **readiness** probe, never a liveness probe: keepalived took a failing
real server out of the pool and put it back when it passed again; it never restarted it. The probe
is a tcpSocket (TCP_CHECK, and SMTP_CHECK whose dialogue is reported), or an httpGet (HTTP_GET,
SSL_GET) on the first url whose `status_code`s a probe can express (200-399), with the Host header
of `virtualhost`. Timing is inherited as keepalived does (virtual server, then real server, then
check): `delay_loop` is the period, `connect_timeout` the timeout, and the failure threshold makes
the pod leave the endpoints no sooner than keepalived removed the server, `retry` x
`delay_before_retry` after the first failed check. Everything a probe cannot express (digests,
other urls, status codes outside 200-399, script, UDP, ICMP, DNS checks, source addresses...) is
reported by keyword.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from haoperator.api import HAService
from haoperator.api.messages import describe as describe_error
from haoperator.importers.common import (
    Kind,
    Report,
    Unreadable,
    dns_label,
    has_secret_value,
    is_secret_name,
    port_name,
    well_known_port_name,
    whole_seconds,
)
from haoperator.importers.keepalived_syntax import (
    Address,
    Statement,
    address,
    address_range,
    conditional_name,
    is_conditional,
    number,
)
from haoperator.importers.workload import ContainerPlan, Plan, Port

PROBED_CHECKS = {"TCP_CHECK": "tcp", "SMTP_CHECK": "tcp", "HTTP_GET": "http", "SSL_GET": "https"}
"""Checks a Kubernetes probe can express, wholly or in part."""
OTHER_CHECKS = {
    "MISC_CHECK": "a script keepalived ran on the director: give the container an exec readiness "
    "probe running an equivalent check from inside the pod",
    "DNS_CHECK": "a DNS query over UDP, which no probe sends: give the container an exec "
    "readiness probe (e.g. dig) or a TCP check of a port it serves",
    "UDP_CHECK": "a UDP exchange, which no probe sends: give the container an exec readiness "
    "probe that checks the service",
    "PING_CHECK": "ICMP echo, which the kubelet does not send: a running pod answers its own "
    "network; add a probe if the service needs more",
    "FILE_CHECK": "a file on the director set the weight: no equivalent",
    "BFD_CHECK": "BFD sessions with the real server: no equivalent",
}
ALL_CHECKS = frozenset(PROBED_CHECKS) | frozenset(OTHER_CHECKS)
DEFAULT_DELAY_LOOP = 60.0
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_RETRY = 1.0
KUBELET_STATUS = (200, 399)
"""The status codes an httpGet probe counts as success."""
KEEPALIVED_STATUS = [(200, 299)]
"""What HTTP_GET and SSL_GET accept without `status_code`."""

INHERITED = ("connect_timeout", "retry", "nb_get_retry", "delay_before_retry", "delay_loop")
"""Check timing a virtual server passes to its real servers, and a real server to its checks."""
SERVER_TRANSLATED = frozenset(
    {
        "delay_loop",
        "protocol",
        "persistence_timeout",
        "lb_algo",
        "lvs_sched",
        "real_server",
        "virtualhost",
        *INHERITED,
    }
)
REAL_TRANSLATED = frozenset({"weight", "virtualhost", *INHERITED, *ALL_CHECKS})
CHECK_TRANSLATED = frozenset({"connect_port", "connect_ip", "url", "virtualhost", *INHERITED})
URL_TRANSLATED = frozenset({"path", "status_code", "virtualhost"})
TRANSLATED = (
    SERVER_TRANSLATED
    | REAL_TRANSLATED
    | CHECK_TRANSLATED
    | URL_TRANSLATED
    | {"virtual_server", "virtual_server_group"}
)
"""Every LVS keyword this module translates (where it can; what it cannot is reported)."""

VALUE_BLOCKS = frozenset(
    {
        "virtual_ipaddress",
        "virtual_ipaddress_excluded",
        "virtual_routes",
        "virtual_rules",
        "static_ipaddress",
        "static_routes",
        "static_rules",
        "unicast_peer",
        "track_interface",
        "track_script",
        "track_file",
        "track_process",
        "track_bfd",
        "notification_email",
        "group",
        "virtual_server_group",
        "linkbeat_interfaces",
        "interface_up_down_delays",
        "interfaces",
    }
)
"""Blocks whose lines are values (addresses, routes, names), not keywords."""

Reason = tuple[Kind, str]
FORWARDING = "LVS forwarding (NAT, DR, TUN): kube-proxy forwards to the pods"
ALERTS = "email alerts: watch the HAService's events and conditions instead"
SCHEDULER = "scheduler options: a Service spreads connections its own way"
WARMUP: Reason = (
    "note",
    "keepalived delayed the first check at random; the kubelet probes from the pod's start, and "
    "a pod is not ready before its first success",
)
ALPHA: Reason = ("note", "a pod is not ready before its first successful probe, as alpha assumed")
INHIBIT: Reason = (
    "unsupported",
    "keepalived set a failing server's weight to 0, keeping its connections; a pod failing its "
    "readiness probe leaves the Service's endpoints",
)
SERVER_REASONS: dict[str, Reason] = {
    "lb_kind": ("unsupported", FORWARDING),
    "lvs_method": ("unsupported", FORWARDING),
    "sorry_server": (
        "unsupported",
        "a Service has no fallback server: with no ready pod it has no endpoints",
    ),
    "quorum": (
        "unsupported",
        "the pool's quorum and its scripts: the HAService's Ready condition and readyReplicas "
        "say when too few pods are ready",
    ),
    "persistence_granularity": (
        "unsupported",
        "ClientIP affinity keeps each client address, with no netmask or engine",
    ),
    "ha_suspend": ("unsupported", "checks run whether or not the address is up: no equivalent"),
    "smtp_alert": ("unsupported", ALERTS),
    "snmp_name": ("unsupported", "SNMP: no equivalent"),
    "ip_family": ("unsupported", "the Service's IP family is the cluster's: no equivalent"),
    "ops": ("unsupported", SCHEDULER),
    "warmup": WARMUP,
    "alpha": ALPHA,
    "inhibit_on_failure": INHIBIT,
}
for _same, _as in (
    ("sorry_server_inhibit", "sorry_server"),
    ("sorry_server_lvs_method", "sorry_server"),
    ("hysteresis", "quorum"),
    ("quorum_up", "quorum"),
    ("quorum_down", "quorum"),
    ("omega", "quorum"),
    ("persistence_engine", "persistence_granularity"),
    ("hashed", "ops"),
    ("flag-1", "ops"),
    ("flag-2", "ops"),
    ("flag-3", "ops"),
    ("sh-port", "ops"),
    ("sh-fallback", "ops"),
    ("mh-port", "ops"),
    ("mh-fallback", "ops"),
):
    SERVER_REASONS[_same] = SERVER_REASONS[_as]
REAL_REASONS: dict[str, Reason] = {
    "inhibit_on_failure": INHIBIT,
    "notify_up": (
        "unsupported",
        "scripts are not run: the pod's readiness (events, the HAService's readyReplicas) says "
        "the same",
    ),
    "uthreshold": ("unsupported", "per-server connection limits: a Service has none"),
    "lvs_method": ("unsupported", FORWARDING),
    "smtp_alert": ("unsupported", ALERTS),
    "snmp_name": ("unsupported", "SNMP: no equivalent"),
    "warmup": WARMUP,
    "alpha": ALPHA,
}
REAL_REASONS["notify_down"] = REAL_REASONS["notify_up"]
REAL_REASONS["lthreshold"] = REAL_REASONS["uthreshold"]
SOURCE = "the kubelet connects from its node: the source address, port and interface are its own"
CHECK_REASONS: dict[str, Reason] = {
    "bindto": ("unsupported", SOURCE),
    "bind_to": ("unsupported", SOURCE),
    "bind_port": ("unsupported", SOURCE),
    "bind_if": ("unsupported", SOURCE),
    "fwmark": ("unsupported", "the check's packets were marked for firewall rules: no equivalent"),
    "warmup": WARMUP,
    "alpha": ALPHA,
    "log_all_failures": ("note", "the kubelet records every failed probe as an event"),
    "http_protocol": ("unsupported", "the kubelet's probes speak HTTP/1.1 and close"),
    "fast_recovery": ("unsupported", "a probe checks one path: nothing to hurry"),
    "enable_sni": ("unsupported", "the kubelet's HTTPS probe chooses its own TLS server name"),
    "sni_name": ("unsupported", "the kubelet's HTTPS probe chooses its own TLS server name"),
    "tls_compliant": ("unsupported", "the kubelet closes TLS its own way"),
    "helo_name": (
        "unsupported",
        "the SMTP dialogue (220 banner, HELO, 250, QUIT) is not checked: the probe only connects",
    ),
}
URL_REASONS: dict[str, Reason] = {
    "digest": ("unsupported", "a probe does not compare the page's MD5 digest, only the status"),
    "regex": ("unsupported", "a probe does not match the page's body, only the status"),
    "tls_compliant": CHECK_REASONS["tls_compliant"],
}
for _regex in ("regex_no_match", "regex_options", "regex_stack", "regex_min_offset"):
    URL_REASONS[_regex] = URL_REASONS["regex"]
URL_REASONS["regex_max_offset"] = URL_REASONS["regex"]
CONDITIONAL = (
    "conditional and parameter lines (@ID, $NAME=, ~SEQ) are not expanded: import the "
    "configuration as keepalived expands it for one node"
)


@dataclass(frozen=True)
class Frontend:
    """An address (or range) and port clients reached the virtual server on."""

    text: str
    first: Address
    last: Address
    port: int | None


@dataclass
class VirtualService:
    """What keepalived.py hands the session, then finishes in the document: the readiness probe
    (its port a number, named after the container port when there is one) and, for a
    virtual_server_group, the Service's ports (name, port), all to the one container port."""

    plan: Plan
    readiness: dict[str, Any] | None = None
    service_ports: list[tuple[str, int]] = field(default_factory=list)


def shown(script: str) -> str:
    """A script as the report may show it: not at all when a word of it looks like a secret."""
    return (
        "(not shown: it may hold a secret)"
        if has_secret_value(script) or any(is_secret_name(w) for w in script.split())
        else repr(script)
    )


def describe(statement: Statement) -> str:
    """How a report names a statement: its keyword, with the keywords of its block, `host
    (bindto, connect_ip)`; a conditional line without its value."""
    if is_conditional(statement):
        return conditional_name(statement)
    if not statement.block or statement.keyword in VALUE_BLOCKS:
        return statement.keyword
    inner = sorted(dict.fromkeys(describe(s) for s in statement.block))
    return f"{statement.keyword} ({', '.join(inner)})"


def report_rest(
    report: Report,
    subject: str,
    statements: Iterable[Statement | tuple[str, Statement]],
    handled: Collection[str],
    reasons: Mapping[str, Reason],
    default: str = "no equivalent",
    lead: str = "",
) -> None:
    """Report every statement whose keyword is not `handled`, grouped by reason (one line each,
    led by `lead`, each statement after its own prefix when given as (prefix, statement));
    conditional and parameter lines apart."""
    grouped: dict[Reason, list[str]] = {}
    conditional: list[str] = []
    for item in statements:
        prefix, statement = item if isinstance(item, tuple) else ("", item)
        if is_conditional(statement):
            conditional.append(f"{conditional_name(statement)} (line {statement.line})")
        elif statement.keyword not in handled:
            names = grouped.setdefault(reasons.get(statement.keyword, ("unsupported", default)), [])
            name = f"{prefix}{describe(statement)}"
            if name not in names:
                names.append(name)
    if conditional:
        report.unsupported(subject, f"{lead}{', '.join(conditional)}: {CONDITIONAL}")
    for (kind, text), names in grouped.items():
        report.add(kind, subject, f"{lead}{', '.join(names)}: {text}")


def _port(statement: Statement, word: str | None) -> int | None:
    """A port, or None for `0` or no port (every port, as ipvsadm reads it)."""
    if word is None or word == "0":
        return None
    return int(number(statement, word, 0, 65535)) or None


def _members(
    group: Statement, report: Report | None, subject: str
) -> tuple[list[Frontend], list[str]]:
    """The addresses (with ports) and the firewall marks of a virtual_server_group."""
    frontends: list[Frontend] = []
    marks: list[str] = []
    for entry in group.block or []:
        if is_conditional(entry):
            if report is not None:
                report_rest(report, subject, [entry], (), {})
        elif entry.keyword == "fwmark":
            marks.append(str(int(number(entry, entry.args[0] if entry.args else None, 0, 2**32))))
        else:
            first, last = address_range(entry, entry.keyword)
            text = str(first) if first == last else f"{first}-{last}"
            if "/" in entry.keyword:
                text = entry.keyword
            port = _port(entry, entry.args[0]) if entry.args else None
            frontends.append(Frontend(text, first, last, port))
    return frontends, marks


def _frontends(
    server: Statement, groups: Mapping[str, Statement], report: Report | None, subject: str
) -> tuple[list[Frontend], list[str], Statement | None] | None:
    """The virtual server's addresses and ports, its firewall marks, and its group; None when it
    names a group that does not exist."""
    kind = server.args[0]
    if kind == "fwmark":
        word = server.args[1] if len(server.args) > 1 else None
        return [], [str(int(number(server, word, 0, 2**32)))], None
    if kind == "group":
        if len(server.args) < 2:
            raise Unreadable(f"line {server.line}", "virtual_server group needs a group name")
        group = groups.get(server.args[1])
        if group is None:
            return None
        frontends, marks = _members(group, report, subject)
        return frontends, marks, group
    vip = address(server, kind)
    first, _ = address_range(server, vip)
    port = _port(server, server.args[1]) if len(server.args) > 1 else None
    return [Frontend(vip, first, first, port)], [], None


def served_ranges(
    server: Statement, groups: Mapping[str, Statement]
) -> list[tuple[Address, Address]]:
    """The addresses a virtual server answers on, as (first, last) ranges."""
    if not server.args or server.block is None:
        return []
    found = _frontends(server, groups, None, "")
    return [(f.first, f.last) for f in found[0]] if found is not None else []


def virtual_server_plan(
    server: Statement, groups: Mapping[str, Statement], report: Report, skipped: list[str]
) -> VirtualService | None:
    """The LoadBalanced HAService of a virtual_server, or None (reported, and its reason added to
    `skipped`) when there is nothing to run."""
    if not server.args or server.block is None:
        raise Unreadable(
            f"line {server.line}",
            "virtual_server needs an address (and port), fwmark N or group NAME, and a block",
        )
    return _VirtualServer(server, groups, report, skipped).plan()


def finish(document: dict[str, Any], service: VirtualService) -> None:
    """Put the readiness probe and the further Service ports into the HAService the session made
    of `service.plan`, and validate it again."""
    spec = document["spec"]
    container = spec["template"]["spec"]["containers"][0]
    if service.readiness is not None:
        probe = copy.deepcopy(service.readiness)
        action = probe.get("httpGet") or probe["tcpSocket"]
        named = [
            p["name"]
            for p in container.get("ports", [])
            if p["containerPort"] == action["port"] and p.get("protocol", "TCP") == "TCP"
        ]
        if named:
            action["port"] = named[0]
        rebuilt: dict[str, Any] = {}
        for key, value in container.items():
            if key == "resources":
                rebuilt["readinessProbe"] = probe
            rebuilt[key] = value
        container.clear()
        container.update(rebuilt)
    if service.service_ports and "service" in spec:
        target = container["ports"][0]
        protocol = {"protocol": target["protocol"]} if "protocol" in target else {}
        spec["service"]["ports"] = [
            {"name": name, "port": port, "targetPort": target["name"], **protocol}
            for name, port in service.service_ports
        ]
    try:
        HAService.model_validate(
            {**document, "metadata": {"namespace": "x", **document["metadata"]}}
        )
    except ValidationError as error:  # pragma: no cover - a bug, never a user error
        raise RuntimeError(
            f"imported {document['metadata']['name']} is not valid: "
            f"{'; '.join(describe_error(error))}"
        ) from error


def _status_codes(url: Statement) -> list[tuple[int, int]]:
    found = url.first("status_code")
    if found is None:
        return list(KEEPALIVED_STATUS)
    if not found.args:
        raise Unreadable(f"line {found.line}", "status_code needs codes or ranges")
    codes = []
    for word in found.args:
        low, _, high = word.partition("-")
        first = int(number(found, low, 100, 599))
        codes.append((first, int(number(found, high, first, 599)) if high else first))
    return codes


def _codes_text(codes: list[tuple[int, int]]) -> str:
    return " ".join(str(a) if a == b else f"{a}-{b}" for a, b in codes)


def _path(url: Statement) -> str:
    """A url's path as the probe and the report may show it."""
    return _safe_path(url.arg("path") or "/")[0]


def _safe_path(path: str) -> tuple[str, bool]:
    """The path a probe may carry: without its query when that looks like it holds a secret."""
    base, question, query = path.partition("?")
    names = [part.partition("=")[0] for part in re.split("[&;]", query)] if question else []
    if has_secret_value(path) or any(is_secret_name(name) for name in names):
        return base or "/", True
    return path, False


class _VirtualServer:
    def __init__(
        self,
        server: Statement,
        groups: Mapping[str, Statement],
        report: Report,
        skipped: list[str],
    ) -> None:
        self.server = server
        self.groups = groups
        self.report = report
        self.skipped = skipped
        self.subject = f"virtual_server {' '.join(server.args)}"
        self.reals = server.all("real_server")
        self.protocol = (server.arg("protocol") or "TCP").upper()
        if self.protocol not in ("TCP", "UDP", "SCTP"):
            found = server.first("protocol")
            raise Unreadable(
                f"line {found.line if found else server.line}", "protocol is TCP, UDP or SCTP"
            )

    def skip(self, why: str) -> None:
        inner = describe(self.server).partition(" (")[2].rstrip(")")
        settings = f", nor its settings ({inner})" if inner else ""
        self.report.warning(self.subject, f"{why}: not imported{settings}")
        self.skipped.append(f"{self.subject} (line {self.server.line}) {why}")

    def plan(self) -> VirtualService | None:
        server, subject, report = self.server, self.subject, self.report
        found = _frontends(server, self.groups, report, subject)
        if found is None:
            self.skip(f"uses virtual_server_group {server.args[1]}, which is not defined")
            return None
        frontends, marks, group = found
        if marks:
            where = f"virtual_server_group {group.args[0]} " if group and group.args else ""
            report.unsupported(
                subject,
                f"{where}{', '.join(f'fwmark {m}' for m in marks)}: firewall rules outside "
                "keepalived marked the traffic this server balanced; Kubernetes has no firewall "
                "marks: send that traffic to the Service's ports (a LoadBalancer or NodePort "
                "Service for outside clients)",
            )
        if not self.reals:
            self.skip("has no real_server")
            return None
        if group is not None and not frontends and not marks:
            self.skip(f"virtual_server_group {server.args[1]} has no member")
            return None
        real_ports = [self._real_port(real) for real in self.reals]
        service_ports = list(dict.fromkeys(f.port for f in frontends if f.port is not None))
        known = [p for p in real_ports if p is not None]
        target = known[0] if known else None
        if len(set(known)) > 1:
            report.unsupported(
                subject,
                f"real servers listen on ports {sorted(set(known))}: the pods all use {target}",
            )
        if target is None and not service_ports:
            target = self._check_port()
            if target is not None:
                report.warning(
                    subject,
                    f"no real_server or virtual port given: container and Service port {target} "
                    "assumed from the check's connect_port; set the ports clients use",
                )
        elif not service_ports and target is not None:
            why = "fwmark" if marks else "no virtual port (every port is forwarded)"
            report.warning(
                subject,
                f"{why}: the Service gets the real servers' port {target}; add the other ports "
                "clients use",
            )
        if target is None and not service_ports:
            report.warning(
                subject,
                "no port known (neither the real servers' nor a virtual one): add the container "
                "port and spec.service with the ports clients use",
            )
        if group is not None:
            shown_members = ", ".join(
                f"{f.text} {f.port}" if f.port is not None else f.text for f in frontends
            )
            report.note(
                subject,
                f"virtual_server_group {server.args[1]} ({shown_members or 'firewall marks only'}"
                "): one HAService, its Service on every port, its cluster IP for every address",
            )
        self._weights()
        report.note(subject, f"{len(self.reals)} real servers: {len(self.reals)} replicas")
        if group is not None:
            ids: tuple[str, ...] = (server.args[1],)
            raw_name = server.args[1]
        elif marks:
            ids, raw_name = (f"fwmark-{marks[0]}",), f"fwmark-{marks[0]}"
        else:
            port = frontends[0].port
            ids = (f"{frontends[0].text}:{port}",) if port is not None else (frontends[0].text,)
            raw_name = f"virtual-server-{port}" if port is not None else "virtual-server"
        container = ContainerPlan(name=dns_label(raw_name, max_length=63))
        ports: list[tuple[str, int]] = []
        if target is not None:
            # One virtual port: the container port is named after it, as clients know it; several
            # (a group): after the real port they all lead to, each Service port after its own.
            first: int = service_ports[0] if service_ports else target
            named_after = first if len(service_ports) < 2 else target
            container.ports.append(
                Port(well_known_port_name(named_after, self.protocol), target, first, self.protocol)
            )
            if len(service_ports) > 1:
                for each in service_ports:
                    name = well_known_port_name(each, self.protocol)
                    if name in (n for n, _ in ports):
                        name = port_name(f"{self.protocol.lower()}-{each}")
                    ports.append((name, each))
        else:
            for each in service_ports:
                container.ports.append(
                    Port(well_known_port_name(each, self.protocol), each, each, self.protocol)
                )
        probe_port = container.ports[0].container_port if container.ports else None
        readiness = _Checks(self, probe_port).readiness()
        affinity = None
        timeout = self._persistence()
        if timeout is not None:
            affinity = "ClientIP"
            report.note(
                subject,
                f"persistence_timeout{f' {timeout:g}s' if timeout else ''}: sessionAffinity "
                "ClientIP (the Service keeps a client for 3 hours by default)",
            )
        algorithm = server.first("lb_algo") or server.first("lvs_sched")
        if algorithm is not None and (algorithm.args[:1] or [""])[0] not in ("rr", "wrr"):
            report.unsupported(
                subject,
                f"{algorithm.keyword} {' '.join(algorithm.args)}: a Service spreads connections "
                "its own way",
            )
        report_rest(report, subject, server.block or [], SERVER_TRANSLATED, SERVER_REASONS)
        plan = Plan(
            source=f"keepalived {subject}",
            subject=subject,
            ids=ids,
            raw_name=raw_name,
            category="LoadBalanced",
            containers=[container],
            replicas=len(self.reals),
            addresses=list(dict.fromkeys(f.text for f in frontends)),
            session_affinity=affinity,
            spread="Required",
        )
        return VirtualService(plan, readiness, ports)

    def _real_port(self, real: Statement) -> int | None:
        if not real.args:
            raise Unreadable(f"line {real.line}", "real_server needs an address")
        address(real, real.args[0])
        return _port(real, real.args[1]) if len(real.args) > 1 else None

    def _check_port(self) -> int | None:
        for check in self.reals[0].block or []:
            if check.keyword in PROBED_CHECKS:
                port = check.first("connect_port")
                if port is not None:
                    return _port(port, port.args[0] if port.args else None)
        return None

    def _persistence(self) -> float | None:
        found = self.server.first("persistence_timeout")
        if found is None:
            return None
        return number(found, found.args[0], 0, 2**31) if found.args else 0.0

    def _weights(self) -> None:
        weights = []
        for real in self.reals:
            found = real.first("weight")
            weights.append(
                number(found, found.args[0] if found.args else None, 0, 2**31) if found else 1.0
            )
        if len(set(weights)) > 1:
            self.report.unsupported(
                self.subject,
                f"real_server weights differ ({', '.join(f'{w:g}' for w in weights)}): a Service "
                "spreads evenly",
            )
        seen: dict[str, list[Statement]] = {}
        for real in self.reals:
            for statement in real.block or []:
                seen.setdefault(statement.keyword, []).append(statement)
        report_rest(
            self.report,
            self.subject,
            [statements[0] for statements in seen.values()],
            REAL_TRANSLATED,
            REAL_REASONS,
            lead="real_server ",
        )


class _Checks:
    """The readiness probe made of the first real server's checks, and the report of the rest."""

    def __init__(self, owner: _VirtualServer, port: int | None) -> None:
        self.owner = owner
        self.server = owner.server
        self.real = owner.reals[0]
        self.subject = owner.subject
        self.report = owner.report
        self.port = port

    def readiness(self) -> dict[str, Any] | None:
        checks = [s for s in self.real.block or [] if s.keyword in ALL_CHECKS]
        self._compare()
        probe: dict[str, Any] | None = None
        chosen: Statement | None = None
        for check in checks:
            if check.keyword in OTHER_CHECKS:
                self._other(check)
            elif probe is None:
                probe = self._probe(check)
                chosen = check if probe is not None else None
            else:
                self.report.unsupported(
                    self.subject,
                    f"{describe(check)}: keepalived also required this check; a container has "
                    f"one readiness probe, made of the {chosen.keyword if chosen else 'first'}",
                )
        if probe is None:
            self._unused((*INHERITED, "virtualhost"), "set for checks that gave no probe")
        elif "tcpSocket" in probe:
            self._unused(("virtualhost",), "the probe is no HTTP request")
        if probe is not None and len(checks) > 1:
            self.report.note(
                self.subject,
                f"keepalived required all of {', '.join(c.keyword for c in checks)} to pass: the "
                f"readiness probe expresses {chosen.keyword if chosen else 'one'}; the others "
                "are reported",
            )
        return probe

    def _compare(self) -> None:
        first = _signature(self.real)
        differ = []
        for real in self.owner.reals[1:]:
            own = _signature(real)
            if own != first:
                checks = [
                    describe(s)
                    for s, sign in zip(_checked(real), own, strict=True)
                    if sign not in first
                ]
                differ.append(f"{' '.join(real.args)} ({', '.join(checks) or 'fewer checks'})")
        if differ:
            self.report.unsupported(
                self.subject,
                f"real_server {'; '.join(differ)}: checks differ from those of the first, "
                f"real_server {' '.join(self.real.args)}: every pod gets the probe made of the "
                "first's",
            )

    def _other(self, check: Statement) -> None:
        text = OTHER_CHECKS[check.keyword]
        script = check.arg("misc_path")
        if script is not None:
            text = f"runs {shown(script)}: {text}"
        self.report.unsupported(self.subject, f"{describe(check)}: {text}")

    def _unused(self, keywords: tuple[str, ...], why: str) -> None:
        """Settings the virtual or real server passed to checks that did not use them."""
        for block, where in ((self.server, ""), (self.real, "real_server ")):
            names = [s.keyword for s in block.block or [] if s.keyword in keywords]
            if names:
                self.report.unsupported(
                    self.subject, f"{where}{', '.join(dict.fromkeys(names))}: {why}"
                )

    def _setting(
        self, check: Statement, keywords: tuple[str, ...], low: float, high: float
    ) -> float | None:
        for block in (check, self.real, self.server):
            for keyword in keywords:
                found = block.first(keyword)
                if found is not None:
                    return number(found, found.args[0] if found.args else None, low, high)
        return None

    def _text(self, check: Statement, keyword: str) -> str | None:
        for block in (check, self.real, self.server):
            found = block.arg(keyword)
            if found is not None:
                return found
        return None

    def _probe(self, check: Statement) -> dict[str, Any] | None:
        subject, report = self.subject, self.report
        kind = PROBED_CHECKS[check.keyword]
        handled = set(CHECK_TRANSLATED)
        connect_ip = check.first("connect_ip")
        if connect_ip is not None and connect_ip.args:
            target = address(connect_ip, connect_ip.args[0])
            if target != address(self.real, self.real.args[0]):
                handled.discard("connect_ip")
                report.unsupported(
                    subject,
                    f"{check.keyword} connect_ip {target}: keepalived checked another address; a "
                    "probe checks the pod itself",
                )
        if check.keyword == "SMTP_CHECK":
            handled.add("helo_name")
            hosts = check.all("host")
            if hosts:
                handled.add("host")
                report.unsupported(
                    subject,
                    f"SMTP_CHECK {', '.join(dict.fromkeys(describe(h) for h in hosts))}: "
                    "keepalived checked each of these hosts; a probe checks the pod itself",
                )
        if kind == "tcp":
            handled.discard("virtualhost")
        report_rest(
            report, subject, check.block or [], handled, CHECK_REASONS, lead=f"{check.keyword} "
        )
        connect_port = check.first("connect_port")
        port = (
            _port(connect_port, connect_port.args[0] if connect_port.args else None)
            if connect_port is not None
            else None
        ) or self.port
        if port is None:
            report.note(
                subject,
                f"{check.keyword} has no port to check: no probe; add a readiness probe to the "
                "container that runs the same check",
            )
            return None
        action: dict[str, Any]
        shown_action = f"tcpSocket on port {port}"
        fallback = False
        if kind == "tcp":
            action = {"tcpSocket": {"port": port}}
            if check.keyword == "SMTP_CHECK":
                report.unsupported(
                    subject,
                    "SMTP_CHECK: the SMTP dialogue (220 banner, HELO with helo_name, 250, QUIT) "
                    "is not checked: the readiness probe only checks that the port accepts "
                    "connections",
                )
        else:
            http = self._http(check, kind, port)
            if http is None:
                fallback = True
                action = {"tcpSocket": {"port": port}}
            else:
                action, shown_action = http
        timing, timing_text = self._timing(check, kind)
        report.note(
            subject,
            f"{check.keyword}{' (as a connection check)' if fallback else ''}: readinessProbe "
            f"{shown_action}, {timing_text}",
        )
        report.note(
            subject,
            "the probe is a readiness probe only: a failing pod leaves the Service's endpoints "
            "and comes back when it passes, as keepalived took the real server out of the pool "
            "and back; nothing restarts it",
        )
        return action | timing

    def _http(self, check: Statement, kind: str, port: int) -> tuple[dict[str, Any], str] | None:
        """The httpGet action on the first url a probe can express, or None (a connection check
        then); reports the other urls and every url keyword a probe cannot express."""
        subject, report = self.subject, self.report
        urls = check.all("url")
        chosen: Statement | None = None
        refused: list[str] = []
        for url in urls:
            codes = _status_codes(url)
            if all(KUBELET_STATUS[0] <= a and b <= KUBELET_STATUS[1] for a, b in codes):
                chosen = chosen or url
            else:
                refused.append(f"url {_path(url)} status_code {_codes_text(codes)}")
        report_rest(
            report,
            subject,
            [(f"url {_path(url)} ", s) for url in urls for s in url.block or []],
            URL_TRANSLATED,
            URL_REASONS,
            lead=f"{check.keyword} ",
        )
        if chosen is None and refused:
            report.warning(
                subject,
                f"{check.keyword} {', '.join(refused)}: a probe counts only 200-399 as healthy "
                "and would take out servers keepalived kept; the readiness probe only checks "
                f"that port {port} accepts connections: to check the answer, give the container "
                "an exec probe (e.g. curl) or a health path answering 200",
            )
            return None
        if chosen is None:
            report.note(subject, f"{check.keyword} has no url: the probe asks for /")
        safe, cut = _safe_path((chosen.arg("path") if chosen is not None else None) or "/")
        if cut:
            report.warning(
                subject,
                f"{check.keyword} url path has a query that looks like it holds a secret: not "
                f"copied; the probe asks for {safe}",
            )
        others = [
            f"url {_path(url)}"
            + (
                f" (status_code {_codes_text(_status_codes(url))})"
                if url.has("status_code")
                else ""
            )
            for url in urls
            if url is not chosen
        ]
        if others:
            report.unsupported(
                subject,
                f"{check.keyword} {', '.join(others)}: keepalived required every url to pass; "
                f"the readiness probe checks only {safe} (one health path checking them all "
                "would keep the rule)",
            )
        codes = _status_codes(chosen) if chosen is not None else list(KEEPALIVED_STATUS)
        if codes != [KUBELET_STATUS]:
            given = "status_code " if chosen is not None and chosen.has("status_code") else ""
            report.note(
                subject,
                f"{check.keyword} url {safe}: keepalived wanted {given or 'by default '}"
                f"{_codes_text(codes)}; the probe counts every status from 200 to 399 as healthy",
            )
        action: dict[str, Any] = {"path": safe, "port": port}
        if kind == "https":
            action["scheme"] = "HTTPS"
        host = (chosen.arg("virtualhost") if chosen is not None else None) or self._text(
            check, "virtualhost"
        )
        text = f"httpGet{' HTTPS' if kind == 'https' else ''} {safe} on port {port}"
        if host:
            action["httpHeaders"] = [{"name": "Host", "value": host}]
            text += f" with Host: {host} (virtualhost)"
        return {"httpGet": action}, text

    def _timing(self, check: Statement, kind: str) -> tuple[dict[str, int], str]:
        defaults = {
            "delay_loop": DEFAULT_DELAY_LOOP,
            "connect_timeout": DEFAULT_CONNECT_TIMEOUT,
            "retry": DEFAULT_RETRY,
            "delay_before_retry": 1.0 if kind == "tcp" else 3.0,
        }
        found = {
            "delay_loop": self._setting(check, ("delay_loop",), 0.001, 86400),
            "connect_timeout": self._setting(check, ("connect_timeout",), 0.001, 86400),
            "retry": self._setting(check, ("retry", "nb_get_retry"), 0, 10000),
            "delay_before_retry": self._setting(check, ("delay_before_retry",), 0, 86400),
        }
        values = {k: defaults[k] if v is None else v for k, v in found.items()}
        shown = {
            k: f"{k} {values[k]:g}{'s' if k != 'retry' else ''}"
            + (" by default" if found[k] is None else "")
            for k in values
        }
        period = whole_seconds(values["delay_loop"])
        timeout = whole_seconds(values["connect_timeout"])
        out_after = values["retry"] * values["delay_before_retry"]
        threshold = 1 + math.ceil(out_after / period - 1e-9)
        timing = {
            "periodSeconds": period,
            "timeoutSeconds": timeout,
            "failureThreshold": threshold,
        }
        text = (
            f"periodSeconds {period} ({shown['delay_loop']}), timeoutSeconds {timeout} "
            f"({shown['connect_timeout']}), failureThreshold {threshold}: keepalived took a "
            f"server out {out_after:g}s after its first failed check ({shown['retry']}, "
            f"{shown['delay_before_retry']}), the pod leaves the endpoints "
            f"{(threshold - 1) * period}s after it"
        )
        return timing, text


_WORD_BOUNDARY = r"(?<![\w.:]){}(?![\w:]|\.\d)"


def _signature(real: Statement) -> tuple[Any, ...]:
    """A real server's checks and check timing, with its own address as a placeholder: what must
    be equal for every pod to get the same probe."""
    own = re.compile(_WORD_BOUNDARY.format(re.escape(real.args[0]))) if real.args else None

    def words(statement: Statement) -> tuple[Any, ...]:
        plain = tuple(own.sub("<address>", w) if own else w for w in statement.words)
        inner = tuple(words(s) for s in statement.block) if statement.block is not None else None
        return plain, inner

    return tuple(words(s) for s in _checked(real))


def _checked(real: Statement) -> list[Statement]:
    """What a real server's probe is made of: its checks and its check timing."""
    return [s for s in real.block or [] if s.keyword in ALL_CHECKS or s.keyword in INHERITED]
