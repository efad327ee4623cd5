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
  server, the virtual port on the Service and the real port on the pods. Its TCP_CHECK, HTTP_GET or
  SSL_GET becomes the probes (`delay_loop` the period, `connect_timeout` the timeout, `retry` the
  failure threshold). A VRRP instance that only floats virtual-server addresses is the director
  itself: the Services replace it, so it is not imported.
- `track_script`, `notify_*` and other scripts are reported, not run: a note suggests a probe.
  A tracked script moves the address after `fall` failed checks `interval` apart: the suggested
  readiness probe fails at the first (failureThreshold 1) and `activePassive.unhealthySeconds` is
  interval x (fall - 1), so the role moves after the same interval x fall.
- Secrets (`auth_pass`, or any script or value that looks like one) are never copied or printed.
"""

from __future__ import annotations

import math
from typing import Any

from haoperator.importers.common import (
    Options,
    Report,
    Unreadable,
    dns_label,
    has_secret_value,
    is_secret_name,
    whole_seconds,
)
from haoperator.importers.keepalived_lvs import virtual_server_plan
from haoperator.importers.keepalived_syntax import Statement, address, parse, value
from haoperator.importers.workload import ContainerPlan, Plan, Session

TOP_LEVEL = {
    "global_defs",
    "vrrp_script",
    "vrrp_instance",
    "vrrp_sync_group",
    "virtual_server",
    "virtual_server_group",
    "static_ipaddress",
    "static_routes",
    "static_rules",
    "include",
    "vrrp_track_file",
    "track_file",
    "vrrp_track_process",
    "track_process",
    "bfd_instance",
    "garp_group",
    "linkbeat_use_polling",
    "net_namespace",
    "net_namespace_ipvs",
    "instance",
    "use_pid_dir",
    "child_wait_time",
}
VRRP_MECHANICS = {
    "state",
    "interface",
    "virtual_router_id",
    "priority",
    "advert_int",
    "nopreempt",
    "preempt_delay",
    "virtual_ipaddress",
    "virtual_ipaddress_excluded",
    "authentication",
    "track_script",
    "unicast_peer",
    "unicast_src_ip",
    "mcast_src_ip",
    "version",
    "garp_master_delay",
    "garp_master_refresh",
    "garp_master_repeat",
    "garp_master_refresh_repeat",
    "dont_track_primary",
}
"""What the Lease replaces or this importer reads: not reported as lost."""


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
    return [member.keyword for member in block.block or []] if block is not None else []


def _shown(script: str) -> str:
    """A script as the report may show it: not at all when a word of it looks like a secret."""
    return (
        "(not shown: it may hold a secret)"
        if has_secret_value(script) or any(is_secret_name(w) for w in script.split())
        else repr(script)
    )


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
        self.tracked: list[tuple[float, int]] = []  # the current instance's (interval, fall)
        self.groups: dict[str, Statement] = {}
        for group in (s for s in statements if s.keyword == "vrrp_sync_group" and s.args):
            for member in _members(group):
                self.groups.setdefault(member, group)
        self.instances = {
            s.args[0]: s for s in statements if s.keyword == "vrrp_instance" and s.args
        }
        self.served: set[str] = set()
        for server in (s for s in statements if s.keyword == "virtual_server"):
            if server.args and server.args[0] not in ("fwmark", "group"):
                self.served.add(address(server, server.args[0]))

    def run(self) -> list[dict[str, Any]]:
        done: set[str] = set()
        for statement in self.statements:
            keyword = statement.keyword
            if keyword.startswith(("@", "$")):
                self.report.unsupported(
                    f"line {statement.line}", "conditional or parameter lines are not expanded"
                )
            elif keyword not in TOP_LEVEL:
                raise Unreadable(
                    f"line {statement.line}",
                    f"unknown keyword {keyword!r}: is this a keepalived configuration?",
                )
            elif keyword == "vrrp_instance":
                group = self.groups.get(statement.args[0] if statement.args else "")
                key = (
                    f"group {group.args[0]}" if group is not None else f"instance {statement.line}"
                )
                if key not in done:
                    done.add(key)
                    self._vrrp(statement, group)
            elif keyword == "virtual_server":
                plan = virtual_server_plan(statement, self.report)
                if plan is not None:
                    self.session.add(plan)
            elif keyword == "include":
                self.report.unsupported(
                    f"line {statement.line}",
                    "include is not followed: import the included file too",
                )
            elif keyword not in ("vrrp_script", "vrrp_sync_group"):
                self.report.unsupported(f"{keyword} (line {statement.line})", "no equivalent")
        haservices = self.session.finish()
        if not haservices:
            raise Unreadable(
                "",
                "no vrrp_instance with virtual_ipaddress and no virtual_server: nothing to import",
            )
        return haservices

    def _vrrp(self, first: Statement, group: Statement | None) -> None:
        if group is not None:
            names = _members(group)
            members = [self.instances[name] for name in names if name in self.instances]
            subject, raw_name = f"vrrp_sync_group {group.args[0]}", group.args[0]
            self.report.note(
                subject, f"instances {', '.join(names)} fail over together: one HAService"
            )
            scripts = sorted({s.keyword for s in group.block or [] if s.keyword != "group"})
            if scripts:
                self.report.unsupported(
                    subject,
                    f"{', '.join(scripts)}: scripts are not run; the ha-elector answers GET "
                    "/leader for the application to ask",
                )
        else:
            if not first.args or first.block is None:
                raise Unreadable(f"line {first.line}", "vrrp_instance needs a name and a block")
            members, subject, raw_name = [first], f"vrrp_instance {first.args[0]}", first.args[0]
        addresses: list[str] = []
        budgets: list[tuple[float, int]] = []
        self.tracked = []
        preempt = True
        peers = 0
        for instance in members:
            addresses += self._instance(instance, subject)
            advert = value(instance, "advert_int", 0.001, 255) or 1.0
            priority = int(value(instance, "priority", 1, 255) or 100)
            budgets.append((advert, priority))
            preempt = preempt and not instance.has("nopreempt")
            peer_block = instance.first("unicast_peer")
            peers = max(peers, len(peer_block.block or []) if peer_block is not None else 0)
        if addresses and set(addresses) <= self.served:
            self.report.note(
                subject,
                "only floats virtual_server addresses: it is the load balancer "
                "itself, which the imported Services replace; not imported",
            )
            return
        if not addresses:
            self.report.warning(subject, "has no virtual_ipaddress: not imported")
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
        addresses = [
            address(entry, entry.keyword)
            for keyword in ("virtual_ipaddress", "virtual_ipaddress_excluded")
            for block in instance.all(keyword)
            for entry in block.block or []
        ]
        if instance.has("authentication"):
            self.report.warning(
                subject,
                f"authentication of {name} not copied (it holds auth_pass); "
                "the Lease needs none: RBAC guards it",
            )
        preempt_delay = instance.first("preempt_delay")
        if preempt_delay is not None:
            self.report.unsupported(
                subject, "preempt_delay: a preempting pod takes the role back at once"
            )
        for track in instance.all("track_script"):
            for entry in track.block or []:
                self._track(entry.keyword, subject)
        lost = sorted({s.keyword for s in instance.block or [] if s.keyword not in VRRP_MECHANICS})
        notify = [k for k in lost if k.startswith("notify")]
        if notify:
            self.report.unsupported(
                subject,
                f"{', '.join(notify)}: scripts are not run; the "
                "ha-elector answers GET /leader for the application to ask",
            )
        other = [k for k in lost if not k.startswith("notify")]
        if other:
            self.report.unsupported(subject, f"{', '.join(other)}: no equivalent")
        return addresses

    def _track(self, name: str, subject: str) -> None:
        script = self.scripts.get(name)
        if script is None:
            self.report.warning(subject, f"track_script {name} is not defined")
            return
        command = script.arg("script") or ""
        interval = value(script, "interval", 0.001, 86400) or 1
        fall = value(script, "fall", 1, 1000) or 1
        weight = value(script, "weight", -254, 254)
        self.tracked.append((interval, int(fall)))
        self.report.note(
            subject,
            f"track_script {name} runs {_shown(command)} every {interval:g}s: "
            f"give the container a readiness probe running the same check (periodSeconds "
            f"{whole_seconds(interval)}, failureThreshold 1)",
        )
        if weight:
            self.report.note(
                subject,
                f"track_script {name} has weight {weight:g}: keepalived only changed the "
                "priority; here a failed check moves the role to a ready standby",
            )
