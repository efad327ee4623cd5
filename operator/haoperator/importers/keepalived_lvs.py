"""keepalived's LVS virtual servers as LoadBalanced HAServices.

A `virtual_server` balances over its `real_server`s: one replica per real server, the virtual port
on the Service and the real port on the pods. Its first real server's TCP_CHECK, HTTP_GET or
SSL_GET becomes the probes (`delay_loop` the period, `connect_timeout` the timeout, `retry` the
failure threshold); other checks run scripts and are reported. Scheduling (`lb_algo`, weights,
`lb_kind`, sorry servers) has no equivalent in a Service and is reported too.
"""

from __future__ import annotations

from typing import Literal

from haoperator.importers.common import Report, Unreadable, dns_label, well_known_port_name
from haoperator.importers.keepalived_syntax import Statement, address, number, value
from haoperator.importers.workload import ContainerPlan, Plan, Port, Probe

CHECKS: dict[str, Literal["tcp", "http", "https"]] = {
    "TCP_CHECK": "tcp",
    "HTTP_GET": "http",
    "SSL_GET": "https",
}
OTHER_CHECKS = {"MISC_CHECK", "SMTP_CHECK", "DNS_CHECK", "UDP_CHECK", "PING_CHECK", "FILE_CHECK"}
DEFAULT_DELAY_LOOP = 60
DEFAULT_CONNECT_TIMEOUT = 5


def virtual_server_plan(server: Statement, report: Report) -> Plan | None:
    """The LoadBalanced plan of a virtual_server, or None (reported) when it has no equivalent."""
    if len(server.args) < 2 or server.block is None:
        raise Unreadable(
            f"line {server.line}", "virtual_server needs an address, a port and a block"
        )
    subject = f"virtual_server {' '.join(server.args)}"
    if server.args[0] in ("fwmark", "group"):
        report.unsupported(
            subject,
            f"{server.args[0]} virtual servers have no equivalent: "
            "give each address and port its own Service",
        )
        return None
    vip = address(server, server.args[0])
    port = int(number(server, server.args[1], 1, 65535))
    protocol = (server.arg("protocol") or "TCP").upper()
    reals = server.all("real_server")
    if not reals:
        report.warning(subject, "has no real_server: not imported")
        return None
    real_ports = [
        int(number(r, r.args[1] if len(r.args) > 1 else str(port), 1, 65535)) for r in reals
    ]
    for real in reals:
        address(real, real.args[0] if real.args else "")
    target = real_ports[0]
    if len(set(real_ports)) > 1:
        report.unsupported(
            subject,
            f"real servers listen on ports {sorted(set(real_ports))}: the pods all use {target}",
        )
    weights = {r.arg("weight") or "1" for r in reals}
    if len(weights) > 1:
        report.unsupported(subject, "real_server weights differ: a Service spreads evenly")
    report.note(subject, f"{len(reals)} real servers: {len(reals)} replicas")
    container = ContainerPlan(name=dns_label(f"virtual-server-{port}", max_length=63))
    container.ports.append(Port(well_known_port_name(port, protocol), target, port, protocol))
    container.probe = _probe(server, reals[0], subject, protocol, target, report)
    affinity = None
    if server.has("persistence_timeout"):
        affinity = "ClientIP"
        report.note(
            subject,
            "persistence_timeout: sessionAffinity ClientIP (the Service "
            "keeps a client for 3 hours by default)",
        )
    algorithm = server.arg("lb_algo") or server.arg("lvs_sched")
    if algorithm and algorithm not in ("rr", "wrr"):
        report.unsupported(
            subject, f"lb_algo {algorithm}: a Service spreads connections its own way"
        )
    known = {
        "delay_loop",
        "protocol",
        "persistence_timeout",
        "lb_algo",
        "lvs_sched",
        "real_server",
    }
    lost = sorted({s.keyword for s in server.block} - known)
    if lost:
        report.unsupported(subject, f"{', '.join(lost)}: no equivalent")
    return Plan(
        source=f"keepalived {subject}",
        subject=subject,
        ids=(f"{vip}:{port}",),
        raw_name=f"virtual-server-{port}",
        category="LoadBalanced",
        containers=[container],
        replicas=len(reals),
        addresses=[vip],
        session_affinity=affinity,
        spread="Required",
    )


def _probe(
    server: Statement, real: Statement, subject: str, protocol: str, target: int, report: Report
) -> Probe | None:
    checks = [s for s in real.block or [] if s.keyword in CHECKS or s.keyword in OTHER_CHECKS]
    if not checks:
        return None
    check = checks[0]
    if check.keyword in OTHER_CHECKS or protocol != "TCP":
        report.unsupported(
            subject,
            f"{check.keyword} of {protocol} real servers: add a probe running the same check",
        )
        return None
    period = int(value(server, "delay_loop", 1, 86400) or DEFAULT_DELAY_LOOP)
    timeout = int(value(check, "connect_timeout", 1, 86400) or DEFAULT_CONNECT_TIMEOUT)
    retry = check.first("retry") or check.first("nb_get_retry")
    connect_port = value(check, "connect_port", 1, 65535)
    url = check.first("url")
    path = (url.arg("path") if url is not None else None) or "/"
    return Probe(
        period=period,
        timeout=timeout,
        kind=CHECKS[check.keyword],
        port=int(connect_port) if connect_port and connect_port != target else None,
        path=path,
        failure_threshold=int(number(retry, retry.args[0] if retry.args else None, 1, 100))
        if retry
        else None,
        origin=check.keyword,
    )
