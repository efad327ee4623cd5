"""keepalived configurations as HAServices: `haoperator import keepalived keepalived.conf`.

Pure: the configuration's text in, HAService manifests and a report out.

- A `vrrp_instance` with `virtual_ipaddress` runs one active copy: **ActivePassive**, its addresses
  folded into the Service (recorded in an annotation). Instances of one `vrrp_sync_group` fail
  over together, so they become one HAService named after the group. `nopreempt` gives
  `preempt: false`; without it VRRP preempts, so `preempt: true`. Replicas: the unicast peers plus
  this node, else 2.
- Lease timing fails over no slower than VRRP: a backup declares the master dead after
  3 x advert_int + skew, skew = (256 - priority) / 256 x advert_int. The lease is that, rounded
  down to whole seconds, renew two thirds of it, retry a fifth (at least 1 s). The smallest valid
  timing is 3/2/1 s (retry < renew < lease), so an advert_int under 1 s cannot be matched: a
  warning says so.
- A `virtual_server` balances over its `real_server`s: **LoadBalanced**, one replica per real
  server, the virtual ports on the Service and the real port on the pods; a `virtual_server group`
  serves every address and port of its `virtual_server_group`; a firewall mark has no equivalent
  and is reported, its real servers translated still (keepalived_lvs). Real-server checks become a
  *readiness* probe: keepalived took a failing server out of the pool, it never restarted it. A
  VRRP instance that only floats virtual-server addresses is the director itself: the Services
  replace it, so it is not imported.
- `track_script`, `notify_*` and other scripts are reported, not run: a note suggests a probe.
  A tracked script moves the address after `fall` failed checks `interval` apart: the suggested
  readiness probe fails at the first (failureThreshold 1) and `activePassive.unhealthySeconds` is
  interval x (fall - 1), so the role moves after the same interval x fall.
- Every keyword read is translated (TRANSLATED_KEYWORDS) or named in the report: `global_defs`
  settings one by one, VRRP mechanics the Lease replaces in a note, the rest as `unsupported:`
  with the reason. Conditional (`@ID`) and parameter (`$NAME=`) lines are reported, not expanded.
- A refusal says why nothing could be imported (which instance or virtual server, and why).
- Secrets (`auth_pass`, or any script or value that looks like one) are never copied or printed.
"""

from __future__ import annotations

import ipaddress
import math
from typing import Any

from haoperator.importers.common import (
    Options,
    Report,
    Unreadable,
    dns_label,
    whole_seconds,
)
from haoperator.importers.keepalived_lvs import (
    ALERTS,
    Reason,
    VirtualService,
    describe,
    finish,
    report_rest,
    served_ranges,
    shown,
    virtual_server_plan,
)
from haoperator.importers.keepalived_lvs import TRANSLATED as LVS_TRANSLATED
from haoperator.importers.keepalived_syntax import (
    Address,
    Statement,
    address,
    is_conditional,
    parse,
    value,
)
from haoperator.importers.workload import ContainerPlan, Plan, Session

INCLUDES = {"include", "includer", "includem", "includew", "includeb", "includea"}
DAEMON = "how the keepalived daemon runs: no equivalent"
HOST_NETWORK = "addresses, routes and rules kept on the host: the node's own network configuration"
TRACKERS = (
    "what the VRRP instances tracked besides scripts: give the container a readiness probe "
    "checking the same, or leave it to the kubelet and the node's readiness"
)
TOP_REASONS: dict[str, Reason] = {
    "static_ipaddress": ("unsupported", HOST_NETWORK),
    "static_routes": ("unsupported", HOST_NETWORK),
    "static_rules": ("unsupported", HOST_NETWORK),
    "linkbeat_interfaces": ("unsupported", "interface monitoring of the VRRP host: no equivalent"),
    "interface_up_down_delays": (
        "unsupported",
        "interface monitoring of the VRRP host: no equivalent",
    ),
    "linkbeat_use_polling": ("unsupported", "interface monitoring of the VRRP host: no equivalent"),
    "track_file": ("unsupported", TRACKERS),
    "vrrp_track_file": ("unsupported", TRACKERS),
    "track_process": ("unsupported", TRACKERS),
    "vrrp_track_process": ("unsupported", TRACKERS),
    "bfd_instance": ("unsupported", TRACKERS),
    "track_group": ("unsupported", TRACKERS),
    "garp_group": ("unsupported", "gratuitous ARP pacing of VRRP: the Lease replaces VRRP"),
    "SSL": (
        "unsupported",
        "TLS client settings of SSL_GET: the kubelet's HTTPS probe presents no certificate and "
        "verifies none; not copied",
    ),
    "net_namespace": ("unsupported", DAEMON),
    "net_namespace_ipvs": ("unsupported", DAEMON),
    "namespace_with_ipsets": ("unsupported", DAEMON),
    "instance": ("unsupported", DAEMON),
    "use_pid_dir": ("unsupported", DAEMON),
    "child_wait_time": ("unsupported", DAEMON),
}
TOP_LEVEL = {
    *TOP_REASONS,
    *INCLUDES,
    "global_defs",
    "vrrp_script",
    "vrrp_instance",
    "vrrp_sync_group",
    "virtual_server",
    "virtual_server_group",
}
VRRP_TRANSLATED = {
    "virtual_ipaddress",
    "virtual_ipaddress_excluded",
    "priority",
    "advert_int",
    "nopreempt",
    "preempt",
    "unicast_peer",
    "track_script",
}
"""What a vrrp_instance's HAService is made of."""
VRRP_REPLACED = {
    "state",
    "interface",
    "virtual_router_id",
    "unicast_src_ip",
    "mcast_src_ip",
    "version",
    "garp_master_delay",
    "garp_master_refresh",
    "garp_master_repeat",
    "garp_master_refresh_repeat",
    "garp_lower_prio_delay",
    "garp_lower_prio_repeat",
    "dont_track_primary",
}
"""VRRP's own mechanics, which the Lease and the Service replace: one note names them."""
SCRIPTS = "scripts are not run; the ha-elector answers GET /leader for the application to ask"
VRRP_REASONS: dict[str, Reason] = {
    "preempt_delay": ("unsupported", "a preempting pod takes the role back at once"),
    "track_interface": (
        "unsupported",
        "the address also moved when an interface went down: the kubelet and the node's "
        "readiness watch the network",
    ),
    "track_file": ("unsupported", TRACKERS),
    "track_process": ("unsupported", TRACKERS),
    "track_bfd": ("unsupported", TRACKERS),
    "virtual_routes": ("unsupported", "routes and rules that followed the address: no equivalent"),
    "virtual_rules": ("unsupported", "routes and rules that followed the address: no equivalent"),
    "smtp_alert": ("unsupported", ALERTS),
    "lvs_sync_daemon_interface": (
        "unsupported",
        "LVS connection sync between directors: kube-proxy has no director to sync",
    ),
}
ADDRESS_OPTIONS = {
    "brd",
    "dev",
    "scope",
    "label",
    "peer",
    "home",
    "-nodad",
    "mngtmpaddr",
    "noprefixroute",
    "autojoin",
    "no_track",
    "preferred_lft",
    "use_vmac",
    "track_group",
}
"""Options of a virtual_ipaddress line (as `ip address add` takes them)."""
SYNC_TRANSLATED = {"group", "track_script"}
SCRIPT_TRANSLATED = {"script", "interval", "fall", "rise", "timeout", "weight"}
"""What a tracked vrrp_script gives: the suggested probe, unhealthySeconds, the weight's note."""
SCRIPT_REASONS: dict[str, Reason] = {
    "user": ("unsupported", "a probe runs as the container's user"),
    "init_fail": (
        "note",
        "a readiness probe starts failed too: the pod is not ready before its first success",
    ),
}
GLOBAL_REASONS: dict[str, Reason] = {
    "notification_email": ("unsupported", ALERTS),
    "notification_email_from": ("unsupported", ALERTS),
    "no_email_faults": ("unsupported", ALERTS),
    "enable_script_security": ("unsupported", "scripts are not run: no equivalent"),
    "script_user": ("unsupported", "scripts are not run: no equivalent"),
}
GLOBAL_DEFAULT = "a setting of the keepalived daemon (identity, VRRP or LVS tuning): no equivalent"
TRANSLATED_KEYWORDS = frozenset(
    {
        "vrrp_instance",
        "vrrp_sync_group",
        "vrrp_script",
        *VRRP_TRANSLATED,
        *SYNC_TRANSLATED,
        *SCRIPT_TRANSLATED,
        *LVS_TRANSLATED,
    }
)
"""Every keyword the importer translates into the HAServices. Any other keyword it reads is
named in the report (`unsupported:`, or a `note:` saying how it was mapped or why it needs
nothing)."""


def import_keepalived(text: str, options: Options) -> tuple[list[dict[str, Any]], Report]:
    """HAServices for the configuration's VRRP instances and virtual servers, and the report."""
    report = Report()
    statements = parse(text)
    return _Importer(statements, options, report).run(), report


def lease_timing(advert_int: float, priority: int) -> tuple[dict[str, int], float]:
    """Lease, renew and retry (whole seconds) failing over no slower than VRRP would, and VRRP's
    own master-down interval."""
    master_down = 3 * advert_int + (256 - priority) * advert_int / 256
    lease = max(3, math.floor(master_down))
    retry = max(1, lease // 5)
    renew = max(retry + 1, 2 * lease // 3)
    timing = {
        "leaseDurationSeconds": lease,
        "renewDeadlineSeconds": renew,
        "retryPeriodSeconds": retry,
    }
    return timing, master_down


def _members(group: Statement) -> list[str]:
    block = group.first("group")
    return (
        [m.keyword for m in block.block or [] if not is_conditional(m)] if block is not None else []
    )


def _global(statement: Statement, report: Report) -> None:
    """global_defs: every setting named, as no Kubernetes object has a use for it."""
    reasons = dict(GLOBAL_REASONS)
    for item in statement.block or []:
        if item.keyword.startswith(("smtp_", "email_")):
            reasons[item.keyword] = ("unsupported", ALERTS)
    report_rest(report, "global_defs", statement.block or [], (), reasons, GLOBAL_DEFAULT)
    if not statement.block:
        report.unsupported("global_defs", "empty: nothing to translate")


class _Importer:
    def __init__(self, statements: list[Statement], options: Options, report: Report) -> None:
        self.statements = statements
        self.report = report
        self.session = Session(options, report)
        self.scripts = {
            s.args[0]: s
            for s in statements
            if s.keyword == "vrrp_script" and s.args and s.block is not None
        }
        self.used_scripts: set[str] = set()
        self.tracked: list[tuple[float, int]] = []  # the current instance's (interval, fall)
        self.groups: dict[str, Statement] = {}
        for group in (s for s in statements if s.keyword == "vrrp_sync_group" and s.args):
            for member in _members(group):
                self.groups.setdefault(member, group)
        self.instances = {
            s.args[0]: s for s in statements if s.keyword == "vrrp_instance" and s.args
        }
        self.server_groups = {
            s.args[0]: s
            for s in statements
            if s.keyword == "virtual_server_group" and s.args and s.block is not None
        }
        self.served: list[tuple[Address, Address]] = [
            served
            for s in statements
            if s.keyword == "virtual_server"
            for served in served_ranges(s, self.server_groups)
        ]
        self.skipped: list[str] = []

    def run(self) -> list[dict[str, Any]]:
        done: set[str] = set()
        used_groups: set[str] = set()
        report_rest(
            self.report, "top level", [s for s in self.statements if is_conditional(s)], (), {}
        )
        for statement in self.statements:
            keyword = statement.keyword
            if is_conditional(statement):
                continue
            if keyword not in TOP_LEVEL:
                raise Unreadable(
                    f"line {statement.line}",
                    f"unknown keyword {keyword!r}: is this a keepalived configuration?",
                )
            if keyword == "vrrp_instance":
                group = self.groups.get(statement.args[0] if statement.args else "")
                key = (
                    f"group {group.args[0]}" if group is not None else f"instance {statement.line}"
                )
                if key not in done:
                    done.add(key)
                    self._vrrp(statement, group)
            elif keyword == "virtual_server":
                if statement.args[:1] == ["group"] and len(statement.args) > 1:
                    used_groups.add(statement.args[1])
                self._virtual_server(statement)
            elif keyword == "global_defs":
                _global(statement, self.report)
            elif keyword in INCLUDES:
                self.report.unsupported(
                    f"line {statement.line}",
                    f"{keyword} is not followed: import the included file too",
                )
            elif keyword == "vrrp_sync_group":
                self._sync_group_leftovers(statement)
            elif keyword in ("vrrp_script", "virtual_server_group"):
                if not statement.args or statement.block is None:
                    self.report.unsupported(
                        f"line {statement.line}",
                        f"{keyword} needs a name and a block: keepalived ignores it",
                    )
            else:
                report_rest(self.report, f"line {statement.line}", [statement], (), TOP_REASONS)
        for name in self.server_groups:
            if name not in used_groups:
                self.report.unsupported(
                    f"virtual_server_group {name}",
                    "used by no virtual_server: keepalived balanced nothing with it",
                )
        for name, script in self.scripts.items():
            if name not in self.used_scripts:
                inner = describe(script).partition(" (")[2].rstrip(")")
                self.report.unsupported(
                    f"vrrp_script {name} (line {script.line})",
                    f"{inner or 'empty'}: tracked by no vrrp_instance: keepalived does not run it",
                )
        haservices = self.session.finish()
        if not haservices:
            if not self.skipped:
                raise Unreadable("", "no vrrp_instance and no virtual_server: nothing to import")
            raise Unreadable("", f"no HAService to import: {'; '.join(self.skipped)}")
        return haservices

    def _virtual_server(self, statement: Statement) -> None:
        service = virtual_server_plan(statement, self.server_groups, self.report, self.skipped)
        if service is not None:
            self._add(service)

    def _add(self, service: VirtualService) -> None:
        self.session.add(service.plan)
        finish(self.session.haservices[-1], service)

    def _served(self, text: str) -> bool:
        found = ipaddress.ip_address(text)
        return any(
            first.version == found.version and int(first) <= int(found) <= int(last)
            for first, last in self.served
        )

    def _sync_group_leftovers(self, group: Statement) -> None:
        """A sync group none of whose members exist is not imported by _vrrp: report it here."""
        if not group.args or group.block is None:
            raise Unreadable(f"line {group.line}", "vrrp_sync_group needs a name and a block")
        if not any(name in self.instances for name in _members(group)):
            self._group_settings(group, f"vrrp_sync_group {group.args[0]}")
            self.report.warning(
                f"vrrp_sync_group {group.args[0]}",
                "has no defined vrrp_instance in a group { } block: not imported",
            )

    def _group_settings(self, group: Statement, subject: str) -> None:
        """Report a sync group's settings other than its members and tracked scripts."""
        block = group.block or []
        loose = [s for s in block if s.keyword in self.instances]
        if loose:
            self.report.unsupported(
                subject,
                f"{', '.join(s.keyword for s in loose)} outside a group {{ }} block: keepalived "
                "does not read them as members; those instances are imported on their own",
            )
        notify = [s for s in block if s.keyword.startswith("notify")]
        report_rest(
            self.report,
            subject,
            [s for s in block if s not in loose],
            {*SYNC_TRANSLATED, *(s.keyword for s in notify)},
            VRRP_REASONS,
        )
        if notify:
            self.report.unsupported(
                subject, f"{', '.join(dict.fromkeys(s.keyword for s in notify))}: {SCRIPTS}"
            )

    def _vrrp(self, first: Statement, group: Statement | None) -> None:
        self.tracked = []
        if group is not None:
            names = _members(group)
            members = [self.instances[name] for name in names if name in self.instances]
            subject, raw_name = f"vrrp_sync_group {group.args[0]}", group.args[0]
            self.report.note(
                subject, f"instances {', '.join(names)} fail over together: one HAService"
            )
            missing = [name for name in names if name not in self.instances]
            if missing:
                self.report.warning(
                    subject, f"{', '.join(missing)} in its group: no such vrrp_instance"
                )
            self._group_settings(group, subject)
            for track in group.all("track_script"):
                self._tracks(track, subject)
        else:
            if not first.args or first.block is None:
                raise Unreadable(f"line {first.line}", "vrrp_instance needs a name and a block")
            members, subject, raw_name = [first], f"vrrp_instance {first.args[0]}", first.args[0]
        addresses: list[str] = []
        budgets: list[tuple[float, int]] = []
        preempt = True
        peers = 0
        for instance in members:
            addresses += self._instance(instance, subject)
            advert = value(instance, "advert_int", 0.001, 255) or 1.0
            priority = int(value(instance, "priority", 1, 255) or 100)
            budgets.append((advert, priority))
            preempt = preempt and not instance.has("nopreempt")
            peer_block = instance.first("unicast_peer")
            peers = max(
                peers,
                len([p for p in peer_block.block or [] if not is_conditional(p)])
                if peer_block is not None
                else 0,
            )
        if addresses and all(self._served(a) for a in addresses):
            self.report.note(
                subject,
                "only floats virtual_server addresses: it is the load balancer "
                "itself, which the imported Services replace; not imported",
            )
            self.skipped.append(f"{subject} only floats the virtual servers' addresses")
            return
        if not addresses:
            self.report.warning(subject, "has no virtual_ipaddress: not imported")
            self.skipped.append(f"{subject} has no virtual_ipaddress")
            return
        advert, priority = min(budgets, key=lambda b: lease_timing(*b)[1])
        timing, master_down = lease_timing(advert, priority)
        text = (
            f"advert_int {advert:g}s, priority {priority}: VRRP declares the master dead after "
            f"{master_down:.2f}s; lease {timing['leaseDurationSeconds']}s, renew "
            f"{timing['renewDeadlineSeconds']}s, retry {timing['retryPeriodSeconds']}s"
        )
        if master_down < timing["leaseDurationSeconds"]:
            self.report.warning(
                subject, f"{text}: the shortest valid lease fails over slower than VRRP"
            )
        else:
            self.report.note(subject, text)
        self.report.note(
            subject,
            "nopreempt: preempt false"
            if not preempt
            else "no nopreempt: VRRP preempts, so preempt true",
        )
        replicas = peers + 1 if peers else None
        if replicas:
            self.report.note(
                subject, f"{replicas} replicas: this node and its {peers} unicast peers"
            )
        self.session.add(
            Plan(
                source=f"keepalived {subject}",
                subject=subject,
                ids=tuple(dict.fromkeys([raw_name, *(m.args[0] for m in members)])),
                raw_name=raw_name,
                category="ActivePassive",
                containers=[
                    ContainerPlan(name=dns_label(raw_name, max_length=63, letter_first=False))
                ],
                replicas=replicas,
                addresses=list(dict.fromkeys(addresses)),
                active_passive={**timing, "preempt": preempt, **self._unhealthy(subject)},
            )
        )

    def _unhealthy(self, subject: str) -> dict[str, int]:
        """`unhealthySeconds` from the tracked scripts: the role moves after the slowest one's
        interval x fall, the probe counting for the first interval."""
        if not self.tracked:
            return {}
        interval, fall = max(self.tracked, key=lambda t: t[0] * t[1])
        seconds = min(whole_seconds(interval * (fall - 1)), 3600) if fall > 1 else 0
        self.report.note(
            subject,
            f"track_script: the address moved after {fall} failed checks {interval:g}s apart; "
            f"unhealthySeconds {seconds} after a probe failing once moves the role as late",
        )
        return {"unhealthySeconds": seconds}

    def _instance(self, instance: Statement, subject: str) -> list[str]:
        """The instance's addresses; reports what it carries that has no equivalent."""
        name = instance.args[0]
        entries = [
            entry
            for keyword in ("virtual_ipaddress", "virtual_ipaddress_excluded")
            for block in instance.all(keyword)
            for entry in block.block or []
        ]
        report_rest(self.report, subject, [e for e in entries if is_conditional(e)], (), {})
        addresses = [address(e, e.keyword) for e in entries if not is_conditional(e)]
        options = sorted(
            {w for e in entries if not is_conditional(e) for w in e.args if w in ADDRESS_OPTIONS}
        )
        if options:
            self.report.note(
                subject,
                f"virtual_ipaddress {', '.join(options)}: how the address sat on the host's "
                "interfaces; a Service's cluster IP needs none of it",
            )
        authentication = instance.first("authentication")
        if authentication is not None:
            self.report.warning(
                subject,
                f"{describe(authentication)} of {name} not copied: the Lease needs none, RBAC "
                "guards it",
            )
        for track in instance.all("track_script"):
            self._tracks(track, subject)
        block = instance.block or []
        replaced = sorted({s.keyword for s in block if s.keyword in VRRP_REPLACED})
        if replaced:
            self.report.note(
                subject,
                f"{', '.join(replaced)}: VRRP's own settings; the Lease elects the active pod "
                "and the Service carries the address",
            )
        notify = [s.keyword for s in block if s.keyword.startswith("notify")]
        if notify:
            self.report.unsupported(subject, f"{', '.join(dict.fromkeys(notify))}: {SCRIPTS}")
        report_rest(
            self.report,
            subject,
            block,
            {*VRRP_TRANSLATED, *VRRP_REPLACED, *notify, "authentication"},
            VRRP_REASONS,
        )
        return addresses

    def _tracks(self, track: Statement, subject: str) -> None:
        entries = track.block or []
        report_rest(self.report, subject, [e for e in entries if is_conditional(e)], (), {})
        for entry in entries:
            if not is_conditional(entry):
                self._track(entry, subject)

    def _track(self, entry: Statement, subject: str) -> None:
        name = entry.keyword
        script = self.scripts.get(name)
        if script is None:
            self.report.warning(subject, f"track_script {name} is not defined")
            return
        first_use = name not in self.used_scripts
        self.used_scripts.add(name)
        command = script.arg("script")
        interval = value(script, "interval", 0.001, 86400) or 1
        fall = value(script, "fall", 1, 1000) or 1
        rise = value(script, "rise", 1, 1000)
        timeout = value(script, "timeout", 0.001, 86400)
        weight = value(script, "weight", -254, 254)
        if "weight" in entry.args:
            override = Statement(entry.args[entry.args.index("weight") :], entry.line)
            weight = value(Statement(["track_script"], entry.line, [override]), "weight", -254, 254)
        self.tracked.append((interval, int(fall)))
        runs = (
            f"runs {shown(command)}"
            if command is not None
            else "has no script (a conditional line may have held it)"
        )
        extra = "".join(
            [
                f", timeoutSeconds {whole_seconds(timeout)} (timeout)" if timeout else "",
                f", successThreshold {int(rise)} (rise)" if rise and rise > 1 else "",
            ]
        )
        self.report.note(
            subject,
            f"track_script {name} {runs} every {interval:g}s: give the container a readiness "
            f"probe running the same check (periodSeconds {whole_seconds(interval)}"
            f"{extra}, failureThreshold 1)",
        )
        if weight:
            self.report.note(
                subject,
                f"track_script {name} has weight {weight:g}: keepalived only changed the "
                "priority; here a failed check moves the role to a ready standby",
            )
        if first_use:
            report_rest(
                self.report,
                f"vrrp_script {name}",
                script.block or [],
                SCRIPT_TRANSLATED,
                SCRIPT_REASONS,
            )
